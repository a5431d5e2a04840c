// ScopedUmask: runs a create call under the calling process's umask.
//
// With FUSE_CAP_POSIX_ACL and FUSE_CAP_DONT_MASK the kernel sends the mode
// unmasked plus the caller's umask, and leaves masking to us. Letting the
// backing filesystem apply the umask itself is the only way to get POSIX
// semantics: it ignores the umask where the parent has a default ACL. The
// umask is per process, so each worker thread first takes a private copy of
// its fs attributes (unshare(CLONE_FS)); if that is impossible the mode is
// masked here instead and default ACLs lose their say over the mask.
#pragma once

#include <sys/types.h>

namespace detourfs {

class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t umask);
  ~ScopedUmask();
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

  // The mode to pass to the create call.
  mode_t Apply(mode_t mode) const { return per_thread_ ? mode : (mode & ~umask_); }

 private:
  mode_t umask_;
  bool per_thread_;
  mode_t saved_ = 0;
};

}  // namespace detourfs
