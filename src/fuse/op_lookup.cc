// lookup — Valid replies: fuse_reply_entry, fuse_reply_err.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  Guarded(req, "lookup", [&] {
    Result<Entry> r = FuseContext::From(req).overlay->Lookup(parent, name);
    if (r.ok()) return ReplyEntry(req, *r);
    if (r.error() == ENOENT) return ReplyNoEntry(req);
    ReplyErr(req, r.error(), "lookup");
  });
}

}  // namespace detourfs::fuseops
