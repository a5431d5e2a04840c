// read — Valid replies: fuse_reply_buf, fuse_reply_iov, fuse_reply_data,
// fuse_reply_err. The data is spliced from the backing file when possible.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Read(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* fi) noexcept {
  // The fd is taken under the handle's lock (a spill may swap it) and kept
  // alive by its reference: once the reply is out, the kernel may release
  // the handle at any moment.
  SharedFd fd = FuseContext::From(req).overlay->FdOf(*FileOf(fi));
  fuse_bufvec buf = FdBufvec(fd->get(), size, off);
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

}  // namespace detourfs::fuseops
