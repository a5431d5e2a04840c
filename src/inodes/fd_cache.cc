// FdCache: LRU of O_PATH fds keyed by node id.
#include "inodes/fd_cache.h"

namespace detourfs {

SharedFd FdCache::Get(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = map_.find(id);
  if (it == map_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void FdCache::Put(uint64_t id, SharedFd fd) {
  SharedFd evicted;  // closed after the lock is released
  std::lock_guard lock(mu_);
  auto it = map_.find(id);
  if (it != map_.end()) {
    it->second->second = std::move(fd);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.emplace_front(id, std::move(fd));
  map_[id] = lru_.begin();
  if (map_.size() > capacity_) {
    evicted = std::move(lru_.back().second);
    map_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

void FdCache::Erase(uint64_t id) {
  SharedFd dropped;
  std::lock_guard lock(mu_);
  auto it = map_.find(id);
  if (it == map_.end()) return;
  dropped = std::move(it->second->second);
  lru_.erase(it->second);
  map_.erase(it);
}

std::vector<uint64_t> FdCache::Keys() {
  std::lock_guard lock(mu_);
  std::vector<uint64_t> keys;
  keys.reserve(map_.size());
  for (const Entry& e : lru_) keys.push_back(e.first);
  return keys;
}

size_t FdCache::size() {
  std::lock_guard lock(mu_);
  return map_.size();
}

}  // namespace detourfs
