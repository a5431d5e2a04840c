// AsCaller: the calls made in its scope, on this thread, run with a caller's
// file-system credentials (fsuid, fsgid, supplementary groups, umask), as
// mergerfs's ugid guard does. Creates then belong to the caller from their
// first instant: there is no create-as-root-then-chown window, and the
// backing filesystem applies quotas, reserved blocks, setgid directories
// and default ACLs exactly as it would for the caller.
//
// Only fsuid/fsgid change (per thread in Linux); groups are set with the raw
// syscall, which glibc would otherwise apply to every thread. While fsuid is
// not 0 the thread lacks CAP_DAC_OVERRIDE and CAP_FOWNER for file access,
// keeping CAP_SYS_ADMIN (trusted.* xattrs still work). A daemon not running
// as root cannot switch: it creates as itself.
#pragma once

#include <sys/types.h>

#include <vector>

#include "detourfs/caller.h"
#include "detourfs/result.h"
#include "store/caller_umask.h"

namespace detourfs {

class AsCaller {
 public:
  explicit AsCaller(const Caller& caller);
  ~AsCaller();
  AsCaller(const AsCaller&) = delete;
  AsCaller& operator=(const AsCaller&) = delete;

  // Whether the switch took; the caller should fail its request with the
  // error (EPERM, ENOMEM) rather than create with the daemon's identity.
  Result<void> status() const { return status_; }
  // The mode to create with (the umask is the kernel's to apply, per thread).
  mode_t Mode(mode_t mode) const { return umask_.Apply(mode); }

 private:
  ScopedUmask umask_;
  bool switched_ = false;
  bool groups_set_ = false;
  uid_t old_uid_ = 0;
  gid_t old_gid_ = 0;
  std::vector<gid_t> old_groups_;
  Result<void> status_;
};

}  // namespace detourfs
