// mknod — Valid replies: fuse_reply_entry, fuse_reply_err.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) noexcept {
  Guarded(req, "mknod", [&] {
    Result<Entry> r =
        FuseContext::From(req).overlay->Mknod(parent, name, mode, rdev, CallerOf(req, true));
    if (!r.ok()) return ReplyErr(req, r.error(), "mknod");
    ReplyEntry(req, *r);
  });
}

}  // namespace detourfs::fuseops
