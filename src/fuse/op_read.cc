// read — Valid replies: fuse_reply_buf, fuse_reply_iov, fuse_reply_data,
// fuse_reply_err. The data is spliced from the backing file when possible.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Read(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* fi) noexcept {
  // The overlay holds the file still (no spill or move swaps it) while the
  // data is spliced from it into the reply.
  bool replied = false;
  const int rc = FuseContext::From(req).overlay->Read(
      *FileOf(fi), off, size, [req, &replied](int fd, off_t at, size_t n) {
        replied = true;
        fuse_bufvec buf = FdBufvec(fd, n, at);
        return fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
      });
  // No reply sent: the overlay's error (the file's data out of reach). A
  // failed send is the kernel's affair.
  if (!replied) ReplyErr(req, rc < 0 ? -rc : EIO, "read");
}

}  // namespace detourfs::fuseops
