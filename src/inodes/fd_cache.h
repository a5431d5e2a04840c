// FdCache: a bounded, least-recently-used map from node id to an O_PATH fd.
// It is the only place the daemon keeps fds for nodes, so the number of fds it
// holds stays below its capacity however many inodes the kernel references.
// Entries are shared: an fd evicted while a request uses it closes when that
// request drops it. Thread-safe; its mutex is a leaf.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "inodes/node.h"

namespace detourfs {

class FdCache {
 public:
  explicit FdCache(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  SharedFd Get(uint64_t id);
  void Put(uint64_t id, SharedFd fd);
  void Erase(uint64_t id);
  // The ids cached now (a snapshot).
  std::vector<uint64_t> Keys();
  size_t size();
  size_t capacity() const { return capacity_; }

 private:
  using Entry = std::pair<uint64_t, SharedFd>;

  const size_t capacity_;
  std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<uint64_t, std::list<Entry>::iterator> map_;
};

}  // namespace detourfs
