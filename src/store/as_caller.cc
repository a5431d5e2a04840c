// AsCaller (as_caller.h).
#include "store/as_caller.h"

#include <unistd.h>

#include "sys/sys.h"

namespace detourfs {

AsCaller::AsCaller(const Caller& caller) : umask_(caller.umask) {
  if (::geteuid() != 0 || (caller.uid == 0 && caller.gid == 0 && !caller.groups_known)) return;
  if (caller.groups_known) {
    old_groups_.resize(64);
    Result<size_t> n = sys::GetThreadGroups(old_groups_.data(), old_groups_.size());
    if (!n.ok()) {
      status_ = Errno{n.error()};
      return;
    }
    old_groups_.resize(*n);
    Result<void> set = sys::SetThreadGroups(caller.groups.data(), caller.groups.size());
    if (!set.ok()) {
      status_ = set;
      return;
    }
    groups_set_ = true;
  }
  old_gid_ = sys::SetFsgid(caller.gid);
  old_uid_ = sys::SetFsuid(caller.uid);
  switched_ = true;
}

AsCaller::~AsCaller() {
  if (switched_) {
    sys::SetFsuid(old_uid_);
    sys::SetFsgid(old_gid_);
  }
  // Restoring the daemon's own groups cannot fail for root; if it did, the
  // thread would keep a caller's groups, which grant nothing root lacks.
  if (groups_set_) (void)sys::SetThreadGroups(old_groups_.data(), old_groups_.size());
}

}  // namespace detourfs
