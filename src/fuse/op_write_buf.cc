// write_buf — Valid replies: fuse_reply_write, fuse_reply_err. The request's
// buffers (a pipe, with splice) are copied straight into the backing file.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void WriteBuf(fuse_req_t req, fuse_ino_t /*ino*/, fuse_bufvec* bufv, off_t off,
              fuse_file_info* fi) noexcept {
  fuse_bufvec out = FdBufvec(FileOf(fi)->fd->get(), fuse_buf_size(bufv), off);
  ssize_t n = fuse_buf_copy(&out, bufv, static_cast<fuse_buf_copy_flags>(0));
  if (n < 0) return ReplyErr(req, static_cast<int>(-n), "write");
  fuse_reply_write(req, static_cast<size_t>(n));
}

}  // namespace detourfs::fuseops
