// MoveGate (move_gate.h).
#include "overlay/move_gate.h"

#include <algorithm>
#include <chrono>
#include <thread>

namespace detourfs {
namespace {

std::atomic<size_t> next_slot{0};

}  // namespace

size_t MoveGate::MySlot() {
  // Each thread keeps one slot for its life; FUSE worker and ring threads
  // are long-lived, and slots are many.
  thread_local const size_t slot = next_slot.fetch_add(1) % kSlots;
  return slot;
}

bool MoveGate::InFrozen(Node* node) {
  MutexLock lock(&mu_);
  for (Node* root : frozen_) {
    if (table_.IsWithin(node, root)) return true;
  }
  return false;
}

MoveGate::Pass MoveGate::Enter(std::initializer_list<Node*> nodes) {
  const size_t s = MySlot();
  Slot& slot = slots_[s];
  for (;;) {
    size_t i = 0;
    for (Node* n : nodes) {
      if (n != nullptr && i < kNodesPerSlot)
        slot.ids[i++].store(n->id(), std::memory_order_seq_cst);
    }
    if (frozen_count_.load(std::memory_order_seq_cst) == 0) return Pass(this, s);
    bool blocked = false;
    for (Node* n : nodes) blocked = blocked || (n != nullptr && InFrozen(n));
    if (!blocked) return Pass(this, s);
    Leave(s);
    MutexLock lock(&mu_);
    cv_.wait_for(mu_, std::chrono::milliseconds(100), [&]() NO_THREAD_SAFETY_ANALYSIS {
      return std::none_of(nodes.begin(), nodes.end(), [&](Node* n) NO_THREAD_SAFETY_ANALYSIS {
        return n != nullptr && std::any_of(frozen_.begin(), frozen_.end(),
                                           [&](Node* r) { return table_.IsWithin(n, r); });
      });
    });
  }
}

void MoveGate::Leave(size_t s) {
  for (auto& id : slots_[s].ids) id.store(0, std::memory_order_seq_cst);
}

MoveGate::Pass::~Pass() {
  if (gate_ != nullptr) gate_->Leave(slot_);
}

MoveGate::Freeze MoveGate::Begin(Node* root) {
  {
    MutexLock lock(&mu_);
    frozen_.push_back(root);
  }
  frozen_count_.fetch_add(1, std::memory_order_seq_cst);
  const size_t mine = MySlot();
  // Wait for requests already inside to leave.
  for (;;) {
    bool busy = false;
    for (size_t s = 0; s < kSlots && !busy; ++s) {
      if (s == mine) continue;
      for (auto& a : slots_[s].ids) {
        const uint64_t id = a.load(std::memory_order_seq_cst);
        // By id: the node may be gone by now (then it is not inside).
        if (id != 0 && table_.IsWithinId(id, root)) {
          busy = true;
          break;
        }
      }
    }
    if (!busy) return Freeze(this, root);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

MoveGate::Freeze::~Freeze() {
  if (gate_ == nullptr) return;
  {
    MutexLock lock(&gate_->mu_);
    auto& f = gate_->frozen_;
    f.erase(std::find(f.begin(), f.end(), root_));
  }
  gate_->frozen_count_.fetch_sub(1, std::memory_order_seq_cst);
  gate_->cv_.notify_all();
}

}  // namespace detourfs
