// forget, forget_multi — Valid replies: fuse_reply_none.
#include "fuse/ops.h"

namespace detourfs::fuseops {

void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) noexcept {
  FuseContext::From(req).overlay->Forget(ino, nlookup);
  fuse_reply_none(req);
}

void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) noexcept {
  Overlay* overlay = FuseContext::From(req).overlay;
  for (size_t i = 0; i < count; ++i) overlay->Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

}  // namespace detourfs::fuseops
