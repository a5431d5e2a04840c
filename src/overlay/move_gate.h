// MoveGate: keeps requests out of a directory tree while it moves between
// layers (`mv node_modules node_modules.old`, copied to the volume), without
// a lock for the whole mount. A request that changes something (a create,
// an unlink, a rename, a write, an attribute) passes the gate naming the
// nodes it changes; a move freezes its tree's root. A request inside a
// frozen tree waits at the gate until the move is done, so nothing made
// meanwhile is lost; the move waits until requests already inside have left.
// Requests elsewhere pass at the cost of two atomic stores.
//
// Dekker's handshake on seq_cst atomics: a request publishes its nodes in
// its thread's slot, then looks for frozen trees; a move publishes its root,
// then looks at the slots. One of the two always sees the other.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "inodes/inode_table.h"
#include "util/locks.h"

namespace detourfs {

class MoveGate {
 public:
  explicit MoveGate(InodeTable& table) : table_(table) {}

  class Pass {
   public:
    Pass(Pass&& o) noexcept : gate_(o.gate_), slot_(o.slot_) { o.gate_ = nullptr; }
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    Pass& operator=(Pass&&) = delete;
    ~Pass();

   private:
    friend class MoveGate;
    Pass(MoveGate* gate, size_t slot) : gate_(gate), slot_(slot) {}
    MoveGate* gate_;
    size_t slot_;
  };
  // A changing request on `nodes` (null entries ignored): waits while any
  // of them is in a frozen tree.
  [[nodiscard]] Pass Enter(std::initializer_list<Node*> nodes);

  class Freeze {
   public:
    Freeze(Freeze&& o) noexcept : gate_(o.gate_), root_(o.root_) { o.gate_ = nullptr; }
    Freeze(const Freeze&) = delete;
    Freeze& operator=(const Freeze&) = delete;
    Freeze& operator=(Freeze&&) = delete;
    ~Freeze();

   private:
    friend class MoveGate;
    Freeze(MoveGate* gate, Node* root) : gate_(gate), root_(root) {}
    MoveGate* gate_;
    Node* root_;
  };
  // Freezes the tree under `root` (the caller's own pass, if it holds one,
  // is not waited for).
  [[nodiscard]] Freeze Begin(Node* root);

 private:
  static constexpr size_t kSlots = 1024;
  static constexpr size_t kNodesPerSlot = 4;
  struct Slot {
    std::array<std::atomic<uint64_t>, kNodesPerSlot> ids{};  // node ids; 0: none
  };
  size_t MySlot();
  bool InFrozen(Node* node) EXCLUDES(mu_);
  void Leave(size_t slot);

  InodeTable& table_;
  std::array<Slot, kSlots> slots_{};
  std::atomic<int> frozen_count_{0};
  Mutex mu_;
  std::condition_variable_any cv_;
  std::vector<Node*> frozen_ GUARDED_BY(mu_);
};

}  // namespace detourfs
