// RwLock: a writer-preferring pthread rwlock.
#include "util/locks.h"

#include <cstdlib>

namespace detourfs {

RwLock::RwLock() {
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  // Writers first: a waiting writer blocks new readers (glibc's
  // PREFER_WRITER_NP is ignored; NONRECURSIVE is the one that works). A
  // thread must then never take the same RwLock shared twice.
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  if (pthread_rwlock_init(&rw_, &attr) != 0) std::abort();
  pthread_rwlockattr_destroy(&attr);
}

RwLock::~RwLock() { pthread_rwlock_destroy(&rw_); }

// pthread_rwlock_* fail only on misuse (deadlock on self, not initialised):
// a bug, not a condition to recover from.
void RwLock::Lock() {
  if (pthread_rwlock_wrlock(&rw_) != 0) std::abort();
}
bool RwLock::TryLock() { return pthread_rwlock_trywrlock(&rw_) == 0; }
void RwLock::Unlock() { pthread_rwlock_unlock(&rw_); }
void RwLock::LockShared() {
  if (pthread_rwlock_rdlock(&rw_) != 0) std::abort();
}
void RwLock::UnlockShared() { pthread_rwlock_unlock(&rw_); }

}  // namespace detourfs
