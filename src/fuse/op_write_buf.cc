// write_buf — Valid replies: fuse_reply_write, fuse_reply_err. The request's
// buffers (a pipe, with splice) are copied straight into the backing file,
// through the overlay, which moves the file off a full tier first. A write
// by a caller without CAP_FSETID to a setuid file clears the bits first, as
// the VFS does (kill_suidgid.h).
#include "fuse/kill_suidgid.h"
#include "fuse/ops.h"
#include "fuse/reply.h"

namespace detourfs::fuseops {

void WriteBuf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* bufv, off_t off,
              fuse_file_info* fi) noexcept {
  Overlay* overlay = FuseContext::From(req).overlay;
  if (TakeKillSuidgid(fi)) {
    SetAttrRequest kill;
    kill.kill_suidgid = true;
    Result<struct stat> killed = overlay->SetAttr(ino, kill, FileOf(fi));
    if (!killed.ok()) return ReplyErr(req, killed.error(), "write");
  }
  Result<size_t> n =
      overlay->Write(*FileOf(fi), off, fuse_buf_size(bufv), [bufv](int fd, off_t at, size_t size) {
        fuse_bufvec out = FdBufvec(fd, size, at);
        return fuse_buf_copy(&out, bufv, static_cast<fuse_buf_copy_flags>(0));
      });
  if (!n.ok()) return ReplyErr(req, n.error(), "write");
  fuse_reply_write(req, *n);
}

}  // namespace detourfs::fuseops
