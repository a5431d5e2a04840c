// WriteLockSet: try to add; when one is busy, let all go and wait for them
// in address order.
#include "util/write_lock_set.h"

#include <algorithm>
#include <functional>

namespace detourfs {

WriteLockSet::~WriteLockSet() { ReleaseAll(); }

bool WriteLockSet::Holds(const RwLock* mu) const {
  return std::find(held_.begin(), held_.end(), mu) != held_.end();
}

void WriteLockSet::ReleaseAll() NO_THREAD_SAFETY_ANALYSIS {
  for (auto it = held_.rbegin(); it != held_.rend(); ++it) (*it)->Unlock();
  held_.clear();
}

bool WriteLockSet::TryAdd(RwLock* mu) NO_THREAD_SAFETY_ANALYSIS {
  if (mu == nullptr || Holds(mu)) return true;
  if (!mu->TryLock()) return false;
  held_.push_back(mu);
  return true;
}

void WriteLockSet::LockAll(std::initializer_list<RwLock*> mus) NO_THREAD_SAFETY_ANALYSIS {
  std::vector<RwLock*> want = held_;
  for (RwLock* mu : mus) {
    if (mu != nullptr && std::find(want.begin(), want.end(), mu) == want.end()) {
      want.push_back(mu);
    }
  }
  // Already holding them all, or able to add the rest without waiting.
  bool all = true;
  for (size_t i = held_.size(); i < want.size() && all; ++i) all = TryAdd(want[i]);
  if (all) return;
  // Waiting: all let go, then taken in one global order (their addresses,
  // fixed while the objects live), so any two sets waiting for each other's
  // locks took them in the same order. Blocking keeps the rwlock's writer
  // preference (a try-lock loses to every reader).
  ReleaseAll();
  std::sort(want.begin(), want.end(), std::less<RwLock*>());
  for (RwLock* mu : want) {
    mu->Lock();
    held_.push_back(mu);
  }
}

}  // namespace detourfs
