// WriteLockSet: several RwLocks held exclusively at once. Locks are added by
// trying; when one is busy the set lets all go and waits for them in one
// global order (their addresses). Callers need no order among the locks, so
// none depends on the order of what they guard (directories, whose ancestry
// renames change) at the time. Only sets may hold more than one of these
// locks at a time.
#pragma once

#include <initializer_list>
#include <vector>

#include "util/locks.h"

namespace detourfs {

class WriteLockSet {
 public:
  WriteLockSet() = default;
  ~WriteLockSet();
  WriteLockSet(const WriteLockSet&) = delete;
  WriteLockSet& operator=(const WriteLockSet&) = delete;

  // Holds every lock in `mus` and those already held (nulls and repeats
  // count once). Held locks may be let go on the way: what they guard must
  // be read again afterwards.
  void LockAll(std::initializer_list<RwLock*> mus);
  // Adds `mu` if it is free now (or already held), without waiting; false if
  // another holds it (nothing held is let go).
  bool TryAdd(RwLock* mu);
  bool Holds(const RwLock* mu) const;

 private:
  void ReleaseAll();

  std::vector<RwLock*> held_;
};

}  // namespace detourfs
