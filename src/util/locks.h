// Mutex and RwLock: the daemon's locks, annotated for clang's thread-safety
// analysis, with RAII holders. RwLock prefers writers (glibc's default
// pthread rwlock, like std::shared_mutex, lets a stream of readers starve a
// writer forever: a file being spilled would wait behind its own readers).
#pragma once

#include <pthread.h>

#include <mutex>

#include "util/thread_annotations.h"

namespace detourfs {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // For std::condition_variable_any and std::unique_lock.
  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class CAPABILITY("rwlock") RwLock {
 public:
  RwLock();
  ~RwLock();
  RwLock(const RwLock&) = delete;
  RwLock& operator=(const RwLock&) = delete;

  void Lock() ACQUIRE();
  bool TryLock() TRY_ACQUIRE(true);
  void Unlock() RELEASE();
  void LockShared() ACQUIRE_SHARED();
  void UnlockShared() RELEASE_SHARED();
  // Tell the analysis a lock held through another name (two nodes locked
  // in id order, one of them this) is held; no runtime check.
  void AssertHeld() ASSERT_CAPABILITY(this) {}
  void AssertReaderHeld() ASSERT_SHARED_CAPABILITY(this) {}

 private:
  pthread_rwlock_t rw_;
};

class SCOPED_CAPABILITY WriteLock {
 public:
  explicit WriteLock(RwLock* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~WriteLock() RELEASE() { mu_->Unlock(); }
  WriteLock(const WriteLock&) = delete;
  WriteLock& operator=(const WriteLock&) = delete;

 private:
  RwLock* const mu_;
};

// A WriteLock that can be let go before the end of its scope.
class SCOPED_CAPABILITY ReleasableWriteLock {
 public:
  explicit ReleasableWriteLock(RwLock* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~ReleasableWriteLock() RELEASE() {
    if (mu_ != nullptr) mu_->Unlock();
  }
  ReleasableWriteLock(const ReleasableWriteLock&) = delete;
  ReleasableWriteLock& operator=(const ReleasableWriteLock&) = delete;
  void Unlock() RELEASE() {
    mu_->Unlock();
    mu_ = nullptr;
  }

 private:
  RwLock* mu_;
};

class SCOPED_CAPABILITY ReadLock {
 public:
  explicit ReadLock(RwLock* mu) ACQUIRE_SHARED(mu) : mu_(mu) { mu_->LockShared(); }
  ~ReadLock() RELEASE() { mu_->UnlockShared(); }
  ReadLock(const ReadLock&) = delete;
  ReadLock& operator=(const ReadLock&) = delete;

 private:
  RwLock* const mu_;
};

}  // namespace detourfs
