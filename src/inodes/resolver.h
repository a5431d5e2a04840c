// Resolver: turns a node into an fd on demand, without keeping one per node.
// A hit in the fd cache costs nothing; a miss walks up the node's aliases,
// opening each missing component beneath its parent's fd (never following a
// symlink), and checks the result is still the same file (st_dev, st_ino)
// before caching it. A node that lost every name (unlinked but open) is reached
// through one of its open files.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <mutex>
#include <unordered_map>

#include "detourfs/inode_table.h"
#include "detourfs/result.h"
#include "inodes/fd_cache.h"

namespace detourfs {

class SpillStore;

// Each layer (the volume, and the upper tree of each configured tier) has its
// own root fd, and a node is resolved on a layer by the same names: the
// volume counterpart of a tier directory, or the tier directory of a volume
// one, is the same path under the other root.
//
// "No such path on that layer" is remembered too: a directory made on a tier
// has no volume counterpart, and every lookup and create beneath it would
// otherwise try to open one. Those answers hold for a while (the mount's
// negative timeout) or until NewPaths(), which the
// overlay calls after anything that can make a path appear on a layer where a
// node had none: a directory made for a spill or a copy-up, a rename, a tree
// moved between layers (DropOtherLayers calls it).
class Resolver {
 public:
  // `absent_ttl`: how long a "no such path" answer is trusted (0: never
  // kept) — changes made underneath the mount show after that.
  Resolver(InodeTable& table, FdCache& cache, SharedFd root_fd,
           std::chrono::steady_clock::duration absent_ttl = std::chrono::seconds(60))
      : table_(table), cache_(cache), absent_ttl_(absent_ttl) {
    roots_[0] = std::move(root_fd);
  }

  // Adds the root of a tier's upper tree.
  void SetLayerRoot(Layer layer, SharedFd fd) {
    roots_[static_cast<size_t>(layer)] = std::move(fd);
  }
  // The disk tier's spill store, where spilled nodes' data is (their own
  // layer's name holds a stub, checked by identity; the fd is the data's).
  void SetSpillStore(const SpillStore* store) { spill_ = store; }
  bool HasLayer(Layer layer) const { return roots_[static_cast<size_t>(layer)] != nullptr; }
  const SharedFd& layer_root(Layer layer) const { return roots_[static_cast<size_t>(layer)]; }

  // An fd for `node`: O_PATH, or an open file's fd when the node has no name.
  // ESTALE when the file is gone or was replaced underneath the mount.
  Result<SharedFd> Fd(Node* node) { return Fd(node, node->layer()); }
  // The same path on another layer: ENOENT when it has no such directory
  // (a tier only holds what was routed to it, and the scaffolding above).
  Result<SharedFd> Fd(Node* node, Layer layer);

  // A real fd opened with `flags` on `node`'s file: reopened from a cached or
  // open fd, else opened by name beneath its parent (checked as in Fd), which
  // costs no more syscalls than the O_PATH walk would.
  Result<UniqueFd> Open(Node* node, int flags);

  // Caches `fd`, already known to be `node`'s file on its layer (or on
  // `layer`) from a lookup or create.
  void Prime(Node* node, UniqueFd fd) { Prime(node, node->layer(), std::move(fd)); }
  void Prime(Node* node, Layer layer, UniqueFd fd);
  void Drop(uint64_t id);
  void Drop(uint64_t id, Layer layer) { cache_.Erase(Key(id, layer)); }
  bool Cached(Node* node) { return cache_.Get(Key(node->id(), node->layer())) != nullptr; }
  // Forgets the fds cached for nodes on layers other than their own. Those
  // were found by path, not checked by identity: after a directory moves or
  // a tree goes on some layer, the same path may name something else.
  void DropOtherLayers();
  // Forgets every "no such path" answer. Call after the change, so that a
  // resolution racing with it cannot store an answer from before it.
  void NewPaths() { epoch_.fetch_add(1, std::memory_order_acq_rel); }

  const SharedFd& root_fd() const { return roots_[0]; }

 private:
  static uint64_t Key(uint64_t id, Layer layer) {
    return id * kLayerCount + static_cast<uint64_t>(layer);
  }
  // Opens `node` on `layer` by one of its names with `flags`; on the node's
  // own layer it checks the file's identity, elsewhere only its type.
  Result<UniqueFd> OpenByName(Node* node, Layer layer, int flags);
  // The data of a spilled node (EIO, logged, when the store lacks it).
  Result<UniqueFd> SpilledData(uint64_t token, int flags);
  bool KnownAbsent(uint64_t key);
  void NoteAbsent(uint64_t key, uint64_t epoch);

  InodeTable& table_;
  FdCache& cache_;
  std::array<SharedFd, kLayerCount> roots_;
  const SpillStore* spill_ = nullptr;

  // Keys found to have no path on their layer, with the epoch they were
  // found in; valid while the epoch is current and until they expire.
  struct Absent {
    uint64_t epoch;
    std::chrono::steady_clock::time_point expires;
  };
  static constexpr size_t kMaxAbsent = 1 << 16;  // then start over
  const std::chrono::steady_clock::duration absent_ttl_;
  std::atomic<uint64_t> epoch_{0};
  std::mutex absent_mu_;
  std::unordered_map<uint64_t, Absent> absent_;  // guarded by absent_mu_
};

}  // namespace detourfs
