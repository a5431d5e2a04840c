// fallocate, copy_file_range, lseek — Valid replies: fuse_reply_err
// (fallocate), fuse_reply_write (copy_file_range), fuse_reply_lseek (lseek).
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Fallocate(fuse_req_t req, fuse_ino_t /*ino*/, int mode, off_t offset, off_t length,
               fuse_file_info* fi) noexcept {
  Result<void> r = FuseContext::From(req).overlay->Fallocate(*FileOf(fi), mode, offset, length);
  if (!r.ok()) return ReplyErr(req, r.error(), "fallocate");
  ReplyOk(req);
}

void CopyFileRange(fuse_req_t req, fuse_ino_t /*ino_in*/, off_t off_in, fuse_file_info* fi_in,
                   fuse_ino_t /*ino_out*/, off_t off_out, fuse_file_info* fi_out, size_t len,
                   int flags) noexcept {
  Result<size_t> r = FuseContext::From(req).overlay->CopyFileRange(
      *FileOf(fi_in), off_in, *FileOf(fi_out), off_out, len, static_cast<unsigned>(flags));
  if (!r.ok()) return ReplyErr(req, r.error(), "copy_file_range");
  fuse_reply_write(req, *r);
}

void Lseek(fuse_req_t req, fuse_ino_t /*ino*/, off_t off, int whence, fuse_file_info* fi) noexcept {
  Result<off_t> r = FuseContext::From(req).overlay->Lseek(*FileOf(fi), off, whence);
  if (!r.ok()) return ReplyErr(req, r.error(), "lseek");
  fuse_reply_lseek(req, *r);
}

}  // namespace detourfs::fuseops
