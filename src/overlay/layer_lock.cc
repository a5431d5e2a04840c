// LayerLock: shared holds for requests, nested exclusive holds for moves.
#include "overlay/layer_lock.h"

namespace detourfs {

bool LayerLock::MineExclusively() const {
  // Only this thread can have stored its own id: a relaxed load suffices.
  return owner_.load(std::memory_order_relaxed) == std::this_thread::get_id();
}

LayerLock::Hold LayerLock::Shared() {
  if (MineExclusively()) return Hold(this, Hold::Mode::kPassed);
  mu_.lock_shared();
  return Hold(this, Hold::Mode::kShared);
}

LayerLock::Hold LayerLock::Exclusive() {
  if (!MineExclusively()) {
    mu_.lock();
    owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  }
  ++depth_;
  return Hold(this, Hold::Mode::kExclusive);
}

LayerLock::Hold::~Hold() {
  if (lock_ == nullptr) return;
  switch (mode_) {
    case Mode::kPassed:
      break;
    case Mode::kShared:
      lock_->mu_.unlock_shared();
      break;
    case Mode::kExclusive:
      if (--lock_->depth_ == 0) {
        lock_->owner_.store(std::thread::id(), std::memory_order_relaxed);
        lock_->mu_.unlock();
      }
      break;
  }
}

}  // namespace detourfs
