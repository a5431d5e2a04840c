// statfs — Valid replies: fuse_reply_statfs, fuse_reply_err.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void StatFs(fuse_req_t req, fuse_ino_t ino) noexcept {
  Result<struct statvfs> r = FuseContext::From(req).overlay->StatFs(ino);
  if (!r.ok()) return ReplyErr(req, r.error(), "statfs");
  fuse_reply_statfs(req, &*r);
}

}  // namespace detourfs::fuseops
