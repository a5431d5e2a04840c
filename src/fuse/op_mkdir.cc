// mkdir — Valid replies: fuse_reply_entry, fuse_reply_err.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) noexcept {
  Guarded(req, "mkdir", [&] {
    Result<Entry> r =
        FuseContext::From(req).overlay->Mkdir(parent, name, mode, CallerOf(req, true));
    if (!r.ok()) return ReplyErr(req, r.error(), "mkdir");
    ReplyEntry(req, *r);
  });
}

}  // namespace detourfs::fuseops
