// read — Valid replies: fuse_reply_buf, fuse_reply_iov, fuse_reply_data,
// fuse_reply_err. The data is spliced from the backing file when possible.
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void Read(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* fi) noexcept {
  FileHandle* fh = FileOf(fi);
  std::shared_lock lock(fh->mu);  // a spill waits until the data is sent
  fuse_bufvec buf = FdBufvec(fh->fd->get(), size, off);
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

}  // namespace detourfs::fuseops
