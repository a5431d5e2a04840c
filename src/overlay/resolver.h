// Resolver: a node's part on a layer as an fd, on demand, without keeping
// one per node. A hit in the bounded fd cache costs nothing; a miss opens
// the part by name beneath its parent's part on the same layer (never
// following a symlink), walking up iteratively to the nearest cached
// ancestor, and checks every directory it opens is the one the node's
// binding names (dev, ino) before caching it.
//
// Locks: Fd() is called with the node's content_mu held (shared or not) and
// the binding read under it; the resolver takes each *ancestor's* content_mu
// shared while it opens that ancestor, so a concurrent rename of it (which
// holds it exclusively) is never half-seen. It never takes the node's own.
#pragma once

#include "inodes/fd_cache.h"
#include "inodes/inode_table.h"
#include "store/change_layer.h"

namespace detourfs {

class Resolver {
 public:
  Resolver(InodeTable& table, FdCache& cache, ChangeLayer& changes)
      : table_(table), cache_(cache), changes_(changes) {}

  // An O_PATH fd on `node`'s part on `layer` (`b` its binding, read under
  // its content_mu, which the caller holds). ENOENT: the node has no part
  // there; ESTALE: its file vanished or was replaced underneath.
  Result<SharedFd> Fd(Node* node, const Binding& b, Layer layer);
  Result<SharedFd> Fd(Node* node, const Binding& b) { return Fd(node, b, b.layer); }
  // The same for a directory whose content_mu the caller does not hold.
  Result<SharedFd> DirFd(Node* dir, Layer layer);
  // A real fd (not O_PATH) on the node's data, opened with `flags`: its
  // file, a spill store's data, or a metacopy's volume file.
  Result<UniqueFd> OpenData(Node* node, const Binding& b, int flags);

  // Forgets the node's cached fds (after its binding changed: the caller
  // holds content_mu exclusively).
  void Drop(uint64_t id);
  void Prime(Node* node, Layer layer, SharedFd fd) {
    cache_.Put(Key(node->id(), layer), std::move(fd));
  }
  static uint64_t Key(uint64_t id, Layer layer) { return id * kLayerCount + Index(layer); }

 private:
  // Opens `name` in `parent_fd` and checks it is `want` (a present part).
  Result<SharedFd> OpenChecked(int parent_fd, const std::string& name, const Part& want);
  Result<SharedFd> IndexEntry(Node* node, Layer layer);

  InodeTable& table_;
  FdCache& cache_;
  ChangeLayer& changes_;
};

}  // namespace detourfs
