// Resolver: turns a node into an fd on demand, without keeping one per node.
// A hit in the fd cache costs nothing; a miss walks up the node's aliases,
// opening each missing component beneath its parent's fd (never following a
// symlink), and checks the result is still the same file (st_dev, st_ino)
// before caching it. A node that lost every name (unlinked but open) is reached
// through one of its open files.
#pragma once

#include "detourfs/inode_table.h"
#include "detourfs/result.h"
#include "inodes/fd_cache.h"

namespace detourfs {

class Resolver {
 public:
  Resolver(InodeTable& table, FdCache& cache, SharedFd root_fd)
      : table_(table), cache_(cache), root_fd_(std::move(root_fd)) {}

  // An fd for `node`: O_PATH, or an open file's fd when the node has no name.
  // ESTALE when the file is gone or was replaced underneath the mount.
  Result<SharedFd> Fd(Node* node);

  // A real fd opened with `flags` on `node`'s file: reopened from a cached or
  // open fd, else opened by name beneath its parent (checked as in Fd), which
  // costs no more syscalls than the O_PATH walk would.
  Result<UniqueFd> Open(Node* node, int flags);

  // Caches `fd`, already known to be `node`'s file (from a lookup or create).
  void Prime(Node* node, UniqueFd fd);
  void Drop(uint64_t id) { cache_.Erase(id); }
  bool Cached(uint64_t id) { return cache_.Get(id) != nullptr; }

  const SharedFd& root_fd() const { return root_fd_; }

 private:
  // Opens `node` by one of its names with `flags`, checking its identity.
  Result<UniqueFd> OpenByName(Node* node, int flags);

  InodeTable& table_;
  FdCache& cache_;
  const SharedFd root_fd_;
};

}  // namespace detourfs
