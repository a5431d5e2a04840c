// unlink, rmdir — Valid replies: fuse_reply_err.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  Guarded(req, "unlink", [&] {
    Result<void> r = FuseContext::From(req).overlay->Unlink(parent, name);
    if (!r.ok()) return ReplyErr(req, r.error(), "unlink");
    ReplyOk(req);
  });
}

void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  Guarded(req, "rmdir", [&] {
    Result<void> r = FuseContext::From(req).overlay->Rmdir(parent, name);
    if (!r.ok()) return ReplyErr(req, r.error(), "rmdir");
    ReplyOk(req);
  });
}

}  // namespace detourfs::fuseops
