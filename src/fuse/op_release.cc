// release — Valid replies: fuse_reply_err.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Release(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) noexcept {
  FuseContext::From(req).overlay->Release(FileOf(fi));
  ReplyOk(req);
}

}  // namespace detourfs::fuseops
