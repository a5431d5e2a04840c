// rename — Valid replies: fuse_reply_err.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
            const char* newname, unsigned int flags) noexcept {
  Guarded(req, "rename", [&] {
    Result<void> r = FuseContext::From(req).overlay->Rename(parent, name, newparent, newname, flags,
                                                            CallerOf(req, true));
    if (!r.ok()) return ReplyErr(req, r.error(), "rename");
    ReplyOk(req);
  });
}

}  // namespace detourfs::fuseops
