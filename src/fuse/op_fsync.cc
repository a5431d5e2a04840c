// fsync, fsyncdir — Valid replies: fuse_reply_err.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Fsync(fuse_req_t req, fuse_ino_t /*ino*/, int datasync, fuse_file_info* fi) noexcept {
  Result<void> r = FuseContext::From(req).overlay->Fsync(*FileOf(fi), datasync != 0);
  if (!r.ok()) return ReplyErr(req, r.error(), "fsync");
  ReplyOk(req);
}

void FsyncDir(fuse_req_t req, fuse_ino_t /*ino*/, int datasync, fuse_file_info* fi) noexcept {
  Result<void> r = FuseContext::From(req).overlay->FsyncDir(*DirOf(fi), datasync != 0);
  if (!r.ok()) return ReplyErr(req, r.error(), "fsyncdir");
  ReplyOk(req);
}

}  // namespace detourfs::fuseops
