// InodeTable: FUSE inode numbers to nodes, with the kernel's lookup counts.
//
// A node is a file as the kernel knows it. Its FUSE inode number is a detourfs
// node id, assigned once and never reused while the daemon runs, so it can stay
// the same when the overlay later moves the file's backing (copy-up). A
// secondary index maps the backing file's identity (st_dev, st_ino) to its node,
// so hard links share one node, as on a local filesystem.
//
// No fd is kept per node: a node records where it is reached — its aliases,
// (parent node, name) pairs the kernel has looked up — and the resolver opens it
// on demand through a bounded fd cache. A parent stays alive while any alias
// names it (a pin), so a path can always be rebuilt.
//
// Lifetime: a node lives while nlookup > 0 (the kernel holds it), while it is
// pinned (children's aliases, in-flight path walks) or while files are open on
// it. Forget() drops nlookup; the node is erased when all three reach zero.
//
// Thread safety: every method takes the table mutex; a Node's mutable fields are
// guarded by it and only read through the table. Lock order: the table mutex is
// a leaf (nothing else is locked while it is held).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "detourfs/unique_fd.h"

namespace detourfs {

struct BackingId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const BackingId& o) const { return dev == o.dev && ino == o.ino; }
};

struct BackingIdHash {
  size_t operator()(const BackingId& id) const noexcept {
    return std::hash<uint64_t>()(id.ino * 0x9E3779B97F4A7C15ULL ^ id.dev);
  }
};

using SharedFd = std::shared_ptr<const UniqueFd>;

// Where a node's file lives: the volume (the lower directory), or the upper
// tree of a tier (config.h). A node of a routed subtree starts on the volume
// when that is where it was found, and moves to its tier on copy-up, keeping
// its id.
enum class Layer : uint8_t { kVolume = 0, kMemory = 1, kDisk = 2 };
inline constexpr size_t kLayerCount = 3;
// For log lines: "volume", "memory tier", "disk tier".
inline constexpr const char* LayerName(Layer layer) {
  return layer == Layer::kVolume ? "volume" : layer == Layer::kMemory ? "memory tier" : "disk tier";
}
// Node::route() of a node no routing rule covers.
inline constexpr int kNotRouted = -1;

class InodeTable;

class Node {
 public:
  uint64_t id() const { return id_; }
  // S_IFMT bits; a node never changes type.
  mode_t type() const { return type_; }
  bool is_dir() const { return S_ISDIR(type_); }
  bool is_symlink() const { return S_ISLNK(type_); }
  // The layer holding the node's file now.
  Layer layer() const { return layer_.load(std::memory_order_acquire); }
  // The index of the routing rule covering the node, or kNotRouted.
  int route() const { return route_.load(std::memory_order_acquire); }
  // The inode number reported through the mount when it is not the backing
  // file's (a file copied up keeps its volume number); 0 otherwise.
  uint64_t ino() const { return ino_.load(std::memory_order_acquire); }
  // For a memory-tier file whose data spilled to the disk tier's spill
  // store: the store's token (its file on the tier is an empty stub that
  // keeps its names); 0 otherwise.
  uint64_t spilled() const { return spilled_.load(std::memory_order_acquire); }

 private:
  friend class InodeTable;
  struct Alias {
    Node* parent;
    std::string name;
  };

  Node(uint64_t id, mode_t type, BackingId backing) : id_(id), type_(type), backing_(backing) {}

  const uint64_t id_;
  const mode_t type_;
  BackingId backing_;
  std::atomic<Layer> layer_{Layer::kVolume};
  std::atomic<int> route_{kNotRouted};
  std::atomic<uint64_t> ino_{0};
  std::atomic<uint64_t> spilled_{0};
  uint64_t nlookup_ = 0;
  uint32_t pins_ = 0;
  bool indexed_ = false;
  std::vector<Alias> aliases_;
  std::vector<SharedFd> open_fds_;  // fds of open files, for nodes without a name
  // The fd of a file that lost its last name while the kernel still holds
  // its node: kept here, not in the bounded cache, so no eviction makes the
  // node unreachable. Dropped with the node; does not keep it alive.
  SharedFd orphan_fd_;
  // Instead of orphan_fd_ past the table's budget: the file's attributes when
  // it lost its last name, which the node answers with from then on.
  std::unique_ptr<struct stat> last_attr_;
};

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

  explicit InodeTable(const struct stat& root_st);
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;

  Node* root() const { return root_; }

  // The node with FUSE inode number `id`, or nullptr. The kernel only names
  // inodes it holds, so the node stays valid for the request.
  Node* Find(uint64_t id);
  // The layer of node `id` if it is still in the table (safe for any id).
  std::optional<Layer> LayerOf(uint64_t id);

  // The node for `name` in `parent`, whose backing file has stat `st`, found
  // by identity or created; takes one lookup reference and records the alias.
  // `layer` and `route` describe a node created here (a node found by
  // identity keeps its own). `created`, if given, says which it was.
  Node* Remember(Node* parent, std::string_view name, const struct stat& st,
                 Layer layer = Layer::kVolume, int route = kNotRouted, bool* created = nullptr);

  // The node's file is now the one with stat `st` on `layer` (after a
  // copy-up): the identity index follows, the node id stays. A new file
  // holds its own data: the spill token goes.
  void Rebind(Node* node, const struct stat& st, Layer layer);

  // The node moved under another rule (a rename across routed subtrees).
  void SetRoute(Node* node, int route) { node->route_.store(route, std::memory_order_release); }
  // The node's data lives in the spill store under `token` (0: in its file).
  void SetSpilled(Node* node, uint64_t token) {
    node->spilled_.store(token, std::memory_order_release);
  }
  // Pins the inode number reported for `node` (0: its backing file's).
  void KeepIno(Node* node, uint64_t ino) { node->ino_.store(ino, std::memory_order_release); }

  // The node's path from the root ("" for the root), by its most recent
  // names; empty with `ok` false if it has lost its name.
  std::string PathOf(Node* node, bool* ok = nullptr);

  // Drops `n` lookup references; the node is erased once nothing holds it.
  void Forget(uint64_t id, uint64_t n);

  // Every alias of `node`, parents pinned, most recent first.
  std::vector<Location> Locations(Node* node);

  // `name` in `parent` no longer names the file with stat `st` (unlinked or
  // replaced). If that was its last link, its identity is dropped from the
  // index, since the filesystem may give the inode number to a new file. The
  // node id is returned when the node has no known name left (its last link,
  // or other links never looked up), so the caller keeps an fd on it; else 0.
  uint64_t Unlinked(Node* parent, std::string_view name, const struct stat& st);

  // The file with stat `st` is gone from its filesystem, removed by detourfs
  // along with a whole subtree (stale volume content the overlay hid, the
  // source of a move): a node still bound to it loses its names and its
  // place in the index, so a file given the same inode number later is a
  // new node, never mistaken for it. Ignored for a file with links left.
  void Removed(const struct stat& st);

  // The file with stat `st` moved from (old_parent, old_name) to
  // (new_parent, new_name).
  void Renamed(const struct stat& st, Node* old_parent, std::string_view old_name, Node* new_parent,
               std::string_view new_name);
  // The same for a node in hand (its identity need not be indexed).
  void Renamed(Node* node, Node* old_parent, std::string_view old_name, Node* new_parent,
               std::string_view new_name);

  // Open files keep an fd reachable for nodes that lost every name.
  void AddOpenFd(Node* node, SharedFd fd);
  void RemoveOpenFd(Node* node, const SharedFd& fd);
  SharedFd AnyOpenFd(Node* node);
  // Keeps `fd` as the way to reach `node`, which lost its last name (an open
  // file moved off its tier: always kept).
  void SetOrphanFd(Node* node, SharedFd fd);
  // The same for a file just unlinked or replaced, whose stat was `st` — but
  // only while fewer orphans than the budget hold an fd: rm -rf runs ahead of
  // the kernel's FORGETs, and an fd per removed file would exhaust the fd
  // limit. Past the budget the fd is closed and the node answers from `st`
  // (LastAttr; nothing but the kernel can reach the file any more). Returns
  // whether the fd was kept.
  bool KeepOrphan(Node* node, SharedFd fd, const struct stat& st);
  void SetOrphanBudget(size_t budget);
  size_t orphan_fds();
  // The attributes of an orphan without an fd, and their update by a setattr.
  std::optional<struct stat> LastAttr(Node* node);
  void SetLastAttr(Node* node, const struct stat& st);

  // The identity of the file backing `node`.
  BackingId Backing(Node* node);

  NodePin Pin(Node* node);
  void Unpin(Node* node);

  // Counts for status and tests.
  size_t size();
  uint64_t LookupCount(uint64_t id);

 private:
  Node* NodeByBacking(const struct stat& st);                         // requires mu_
  void AddAlias(Node* node, Node* parent, std::string_view name);     // requires mu_
  bool RemoveAlias(Node* node, Node* parent, std::string_view name);  // requires mu_
  void MoveAlias(Node* node, Node* old_parent, std::string_view old_name, Node* new_parent,
                 std::string_view new_name);   // requires mu_
  void MaybeErase(Node* node);                 // requires mu_
  void HoldOrphanFd(Node* node, SharedFd fd);  // requires mu_; counts orphan_fds_
  void Unindex(Node* node);                    // requires mu_

  std::mutex mu_;
  uint64_t next_id_ = kRootId + 1;
  std::unordered_map<uint64_t, std::unique_ptr<Node>> nodes_;
  std::unordered_map<BackingId, Node*, BackingIdHash> by_backing_;
  Node* root_ = nullptr;
  size_t orphan_budget_ = 4096;
  size_t orphan_fds_ = 0;  // nodes holding an orphan_fd_
};

}  // namespace detourfs
