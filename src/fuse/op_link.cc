// link — Valid replies: fuse_reply_entry, fuse_reply_err.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) noexcept {
  Guarded(req, "link", [&] {
    Result<Entry> r = FuseContext::From(req).overlay->Link(ino, newparent, newname);
    if (!r.ok()) return ReplyErr(req, r.error(), "link");
    ReplyEntry(req, *r);
  });
}

}  // namespace detourfs::fuseops
