// InodeTable: FUSE node ids to nodes, with the kernel's lookup counts, the
// names each node was found by (aliases), and an index from persistent id
// (pid, the reported st_ino) to node, so every name of a file — hard links,
// a volume file and its tier copy — is one node.
//
// No fd is kept per node: aliases let the resolver reopen a node by name
// through a bounded fd cache. A parent stays alive while an alias names it
// (a pin), so a node's path can always be rebuilt.
//
// Lifetime: a node lives while nlookup > 0 (the kernel holds it), while it
// is pinned (children's aliases, requests in flight) or while files are open
// on it; then it is erased. Erasing is iterative, so a chain of 10,000
// directories going at once cannot overflow the stack.
//
// Thread safety: every method takes the table's mutex, a leaf lock (nothing
// else is locked while it is held; callers may hold node locks).
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "inodes/node.h"
#include "util/locks.h"

namespace detourfs {

class InodeTable;

// A counted reference that keeps a node alive; move-only.
class NodePin {
 public:
  NodePin() = default;
  NodePin(InodeTable* table, Node* node) : table_(table), node_(node) {}
  NodePin(NodePin&& o) noexcept : table_(o.table_), node_(o.node_) { o.node_ = nullptr; }
  NodePin& operator=(NodePin&& o) noexcept;
  NodePin(const NodePin&) = delete;
  NodePin& operator=(const NodePin&) = delete;
  ~NodePin();

  Node* get() const { return node_; }
  Node* operator->() const { return node_; }
  explicit operator bool() const { return node_ != nullptr; }

 private:
  InodeTable* table_ = nullptr;
  Node* node_ = nullptr;
};

// Where a node can be reached: a pinned parent and a name in it.
struct Location {
  NodePin parent;
  std::string name;
};

class InodeTable {
 public:
  static constexpr uint64_t kRootId = 1;  // FUSE_ROOT_ID

  InodeTable(uint64_t root_pid, const Binding& root_binding);
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;

  Node* root() const { return root_; }

  // The node with FUSE node id `id`, pinned; empty if there is none.
  NodePin Find(uint64_t id);
  // The live node with persistent id `pid` and type `type`, pinned; empty
  // if none (a node of another type with that pid is stale: it is dropped
  // from the index, and keeps serving its open files).
  NodePin FindByPid(uint64_t pid, mode_t type);
  // Whether a live node has persistent id `pid` (nothing is dropped).
  bool HasPid(uint64_t pid);

  // The node for `name` in `parent` with persistent id `pid`: found by pid
  // or created with `binding`. Takes one lookup reference (`lookup`) or
  // none, and records the alias. `created` says which.
  // `single_name`: the file has one link, so a node found by pid under
  // other names is a file since deleted whose inode number was given to
  // this one (underneath the mount): it gets a node of its own.
  NodePin Remember(Node* parent, std::string_view name, uint64_t pid, mode_t type,
                   const Binding& binding, bool lookup, bool* created = nullptr,
                   bool single_name = false);
  // A new node, in the pid index, with no name yet (a file made by a move
  // across layers before its name is published).
  NodePin Fresh(uint64_t pid, mode_t type, const Binding& binding);

  // Drops `n` lookup references; the node is erased once nothing holds it.
  // Returns true when it was erased.
  bool Forget(uint64_t id, uint64_t n);
  void AddLookup(Node* node);

  // The node's path from the root ("" for the root) by its most recent
  // names; nullopt if it lost its name.
  std::optional<std::string> PathOf(Node* node);
  // Every alias of `node`, parents pinned, most recent first.
  std::vector<Location> Locations(Node* node);
  size_t AliasCount(Node* node);
  // Whether `node` is `ancestor` or beneath it by its most recent names.
  bool IsWithin(Node* node, Node* ancestor);
  // Every node beneath `root` (by most recent names), pinned; `root` not
  // included. A scan of the whole table: for rare, large operations.
  std::vector<NodePin> NodesWithin(Node* root);
  // The same for the node with id `id`, if it still exists.
  bool IsWithinId(uint64_t id, Node* ancestor);

  // `name` in `parent` no longer names `node` (unlinked, replaced, or the
  // directory removed). Returns true when that was its last known name: it
  // leaves the pid index, so a file given its pid later is a new node.
  bool Unlinked(Node* node, Node* parent, std::string_view name);
  // `node` was renamed from (old_parent, old_name) to (new_parent, new_name).
  void Renamed(Node* node, Node* old_parent, std::string_view old_name, Node* new_parent,
               std::string_view new_name);
  // `node` leaves the pid index (it no longer stands for that file).
  void Unindex(Node* node);

  // Open handles keep a node alive.
  void AddHandle(Node* node);
  void RemoveHandle(Node* node);

  // Keeps `fd` as the way to reach `node`, which lost its last name, while
  // fewer orphans than the budget hold one; past it, `st` answers for it.
  // Returns whether the fd was kept.
  bool KeepOrphan(Node* node, SharedFd fd, const struct stat& st);
  SharedFd OrphanFd(Node* node);
  std::optional<struct stat> LastAttr(Node* node);
  void SetLastAttr(Node* node, const struct stat& st);
  void SetOrphanBudget(size_t budget);
  size_t orphan_fds();

  // Bumped by every rename of a directory: cached routes of paths beneath
  // it are recomputed.
  uint64_t namespace_gen() const { return namespace_gen_.load(std::memory_order_acquire); }
  void BumpNamespace() { namespace_gen_.fetch_add(1, std::memory_order_acq_rel); }

  NodePin Pin(Node* node);
  void Unpin(Node* node);

  size_t size();
  uint64_t LookupCount(uint64_t id);

 private:
  void AddAlias(Node* node, Node* parent, std::string_view name) REQUIRES(mu_);
  bool RemoveAlias(Node* node, Node* parent, std::string_view name) REQUIRES(mu_);
  void MaybeErase(Node* node) REQUIRES(mu_);
  void UnindexLocked(Node* node) REQUIRES(mu_);
  Node* NewNode(uint64_t pid, mode_t type, const Binding& binding) REQUIRES(mu_);

  Mutex mu_;
  uint64_t next_id_ GUARDED_BY(mu_) = kRootId + 1;
  std::unordered_map<uint64_t, std::unique_ptr<Node>> nodes_ GUARDED_BY(mu_);
  std::unordered_map<uint64_t, Node*> by_pid_ GUARDED_BY(mu_);
  Node* root_ = nullptr;
  size_t orphan_budget_ GUARDED_BY(mu_) = 4096;
  size_t orphan_fds_ GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> namespace_gen_{1};
};

}  // namespace detourfs
