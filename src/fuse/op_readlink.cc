// readlink — Valid replies: fuse_reply_readlink, fuse_reply_err.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Readlink(fuse_req_t req, fuse_ino_t ino) noexcept {
  Guarded(req, "readlink", [&] {
    Result<std::string> r = FuseContext::From(req).overlay->Readlink(ino);
    if (!r.ok()) return ReplyErr(req, r.error(), "readlink");
    fuse_reply_readlink(req, r->c_str());
  });
}

}  // namespace detourfs::fuseops
