// Reply helpers: the only code that builds fuse replies from overlay values.
// Each logs a failure once: errnos that say the volume misbehaves at warning
// level, ordinary answers (ENOENT, EEXIST, ...) at debug level.
#pragma once

#include "detourfs/overlay.h"
#include "fuse/fuse_context.h"

namespace detourfs::fuseops {

// The request's caller: uid, gid, pid, umask; `with_groups` adds its
// supplementary groups (for requests that make entries).
Caller CallerOf(fuse_req_t req, bool with_groups = false);

// A one-buffer fuse_bufvec over `size` bytes of `fd` at `off` (libfuse's
// FUSE_BUFVEC_INIT is a C compound literal).
fuse_bufvec FdBufvec(int fd, size_t size, off_t off);

void ReplyErr(fuse_req_t req, int err, const char* op);
void ReplyOk(fuse_req_t req);
// Hands `entry` to the kernel; if the kernel no longer waits for it, the
// lookup reference taken for it is dropped again.
void ReplyEntry(fuse_req_t req, const Entry& entry);
// ENOENT from a lookup, cached by the kernel for the negative timeout.
void ReplyNoEntry(fuse_req_t req);
void ReplyAttr(fuse_req_t req, const struct stat& st);
// False when the kernel no longer waits: the caller still owns fi->fh.
bool ReplyCreate(fuse_req_t req, const Entry& entry, fuse_file_info* fi);

}  // namespace detourfs::fuseops

namespace detourfs::fuseops {

// Runs an adapter body; nothing throws across the C boundary: an allocation
// failure becomes ENOMEM, anything else EIO (and an error log line).
void ReplyException(fuse_req_t req, const char* op) noexcept;

template <typename Fn>
void Guarded(fuse_req_t req, const char* op, Fn&& fn) noexcept {
  try {
    fn();
  } catch (...) {
    ReplyException(req, op);
  }
}

}  // namespace detourfs::fuseops
