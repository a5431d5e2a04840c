// getattr — Valid replies: fuse_reply_attr, fuse_reply_err.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  Guarded(req, "getattr", [&] {
    Result<struct stat> r = FuseContext::From(req).overlay->GetAttr(ino, fi ? FileOf(fi) : nullptr);
    if (!r.ok()) return ReplyErr(req, r.error(), "getattr");
    ReplyAttr(req, *r);
  });
}

}  // namespace detourfs::fuseops
