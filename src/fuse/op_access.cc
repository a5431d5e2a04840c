// access — Valid replies: fuse_reply_err. The mount runs with
// default_permissions, so the kernel answers access(2) itself; this answers
// only if a kernel asks anyway.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Access(fuse_req_t req, fuse_ino_t ino, int mask) noexcept {
  Result<void> r = FuseContext::From(req).overlay->Access(ino, mask, CallerOf(req));
  if (!r.ok()) return ReplyErr(req, r.error(), "access");
  ReplyOk(req);
}

}  // namespace detourfs::fuseops
