// WriteLockSet: std::lock's algorithm over RwLocks — wait for one, try the
// rest, and on a busy one let all go and start by waiting for that one.
#include "util/write_lock_set.h"

#include <algorithm>
#include <thread>

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
  size_t first = want.size();
  for (size_t i = held_.size(); i < want.size(); ++i) {
    if (!TryAdd(want[i])) {
      first = i;  // busy: wait for this one first
      break;
    }
  }
  if (first == want.size()) return;
  ReleaseAll();
  for (;;) {
    want[first]->Lock();
    held_.push_back(want[first]);
    size_t busy = want.size();
    for (size_t i = 0; i < want.size(); ++i) {
      if (i != first && !TryAdd(want[i])) {
        busy = i;
        break;
      }
    }
    if (busy == want.size()) return;
    ReleaseAll();
    first = busy;
    std::this_thread::yield();  // let the holder finish before waiting on it
  }
}

}  // namespace detourfs
