// ScopedUmask: per-thread umask through unshare(CLONE_FS).
#include "store/caller_umask.h"

#include <sched.h>
#include <sys/stat.h>

namespace detourfs {
namespace {

bool ThreadHasOwnUmask() {
  thread_local const bool own = ::unshare(CLONE_FS) == 0;
  return own;
}

}  // namespace

ScopedUmask::ScopedUmask(mode_t umask) : umask_(umask & 0777), per_thread_(ThreadHasOwnUmask()) {
  if (per_thread_) saved_ = ::umask(umask_);
}

ScopedUmask::~ScopedUmask() {
  if (per_thread_) ::umask(saved_);
}

}  // namespace detourfs
