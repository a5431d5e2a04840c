// symlink — Valid replies: fuse_reply_entry, fuse_reply_err.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) noexcept {
  Guarded(req, "symlink", [&] {
    Result<Entry> r =
        FuseContext::From(req).overlay->Symlink(link, parent, name, CallerOf(req, true));
    if (!r.ok()) return ReplyErr(req, r.error(), "symlink");
    ReplyEntry(req, *r);
  });
}

}  // namespace detourfs::fuseops
