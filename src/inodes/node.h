// Node: one file as the kernel knows it, and where its parts live.
//
// Identity. id() is the FUSE node id: assigned once, never reused while the
// daemon runs. pid() is the persistent id reported as st_ino (and d_ino): a
// volume file's own inode number until detourfs moves it, else the id its
// tier copy records (markers::kIdXattr). A node's pid never changes; a file
// that must change identity (one name of a hard-linked file moved to another
// layer) gets a new node.
//
// Binding (guarded by content_mu): where the node's file is.
//  - A non-directory has one file: on `layer` (the volume, or a tier's
//    upper tree or index), with `parts[layer]` its backing identity. Its
//    data may be in a spill store (`spill`): the file is then an empty stub.
//    `index` says it is <tier>/index/<pid>, the single copy-up of a
//    hard-linked volume file that every name of it resolves to.
//  - A directory has a part on each layer that holds its path: the volume's
//    directory and each tier's. `layer` is its home: the volume for a
//    directory no rule routes (its tier parts are scaffolding for routed
//    descendants), else its route's tier. `opaque`: its tier part hides the
//    volume's, whole. A part not yet looked at is kUnknown.
//
// Invariants:
//  - parts[layer] is kPresent for a non-directory (unless it lost every name
//    and is reached only through open or orphan fds).
//  - A routed directory has its home part or its volume part (or both).
//  - pid() == the kIdXattr of every tier part that records one.
//  - A node is erased only when nlookup, pins and open handles are all 0.
//
// Locks (order in docs/architecture.md): dir_mu serializes changes to a
// directory's entries (create, remove, rename, copy-up link-in) and is taken
// shared by lookups and listings; content_mu guards the binding and is held
// shared by any request using the node's file, exclusively while the file
// moves (copy-up, spill, a move across layers). Table-managed fields
// (lookup count, pins, aliases) are guarded by the InodeTable's mutex.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "detourfs/unique_fd.h"
#include "store/layer.h"
#include "store/markers.h"
#include "util/locks.h"

namespace detourfs {

struct FileHandle;
using SharedFd = std::shared_ptr<const UniqueFd>;

// The identity of one layer's part of a node.
struct Part {
  enum State : uint8_t { kUnknown, kAbsent, kPresent };
  State state = kUnknown;
  dev_t dev = 0;
  ino_t ino = 0;

  static Part Of(const struct stat& st) { return Part{kPresent, st.st_dev, st.st_ino}; }
  static Part Absent() { return Part{kAbsent, 0, 0}; }
  bool present() const { return state == kPresent; }
  bool Is(const struct stat& st) const {
    return state == kPresent && dev == st.st_dev && ino == st.st_ino;
  }
};

struct Binding {
  Layer layer = Layer::kVolume;
  Part parts[kLayerCount];
  bool opaque = false;      // directories
  bool index = false;       // non-directories: <layer>/index/<pid>
  bool metacopy = false;    // an index entry whose data is still the volume file's
  markers::SpillRef spill;  // non-directories: data in a spill store
  const Part& home() const { return parts[Index(layer)]; }
  // The part whose attributes the node reports: its home's, or for a
  // routed directory not yet on its tier, the volume's.
  Layer primary() const { return home().present() ? layer : Layer::kVolume; }
};

class Node {
 public:
  uint64_t id() const { return id_; }
  uint64_t pid() const { return pid_; }
  mode_t type() const { return type_; }
  bool is_dir() const { return S_ISDIR(type_); }

  // The node's binding; the caller holds content_mu (shared or not).
  const Binding& binding() const REQUIRES_SHARED(content_mu) { return binding_; }
  Binding& mutable_binding() REQUIRES(content_mu) { return binding_; }
  // A copy for code that holds no lock: the snapshot may be stale by the
  // time it is used, so use it for routing hints only.
  Binding Snapshot() EXCLUDES(content_mu) {
    ReadLock l(&content_mu);
    return binding_;
  }

  mutable RwLock content_mu;
  RwLock dir_mu;
  // Open files of this node, to point at the file's new place when it moves
  // (a leaf lock: taken under content_mu, nothing taken under it).
  Mutex handles_mu;
  std::vector<FileHandle*> open_handles GUARDED_BY(handles_mu);

  // Cached route of the node's path (an index into the router's rules, -1:
  // none), valid while `route_gen` equals the table's namespace generation.
  std::atomic<int> route{-1};
  std::atomic<uint64_t> route_gen{0};
  // For a volume directory: some entries carry kIdXattr (markers::kIdsXattr),
  // read when the node was looked up. -1 unknown, 0 no, 1 yes.
  std::atomic<int> volume_ids{-1};
  // When a routed directory was last found to have no volume part
  // (steady clock, ns): looked for again after the negative timeout, so a
  // directory made underneath the mount shows.
  std::atomic<int64_t> volume_absent_at{0};
  // Bumped whenever the binding changes: an fd cached from an older binding
  // is never stored (Resolver).
  std::atomic<uint64_t> generation{0};

 private:
  friend class InodeTable;
  struct Alias {
    Node* parent;
    std::string name;
  };

  Node(uint64_t id, uint64_t pid, mode_t type, const Binding& b)
      : id_(id), pid_(pid), type_(type), binding_(b) {}

  const uint64_t id_;
  const uint64_t pid_;
  const mode_t type_;
  Binding binding_ GUARDED_BY(content_mu);

  // Guarded by the table's mutex.
  uint64_t nlookup_ = 0;
  uint32_t pins_ = 0;
  uint32_t handles_ = 0;
  bool indexed_ = false;        // found by pid in the table's index
  std::vector<Alias> aliases_;  // most recently used first
  // The fd of a file that lost its last name while the kernel still holds
  // it (bounded by the orphan budget), or past the budget the attributes it
  // had then.
  SharedFd orphan_fd_;
  std::unique_ptr<struct stat> last_attr_;
};

}  // namespace detourfs
