// LayerLock: keeps nodes on their layers while a request acts on them.
//
// A node changes layer (copy-up, a spill from a full tier, a move across
// tiers) in steps: the new copy appears under the name, the old one goes,
// the node is rebound to the new file. A request in between would stat a
// file already unlinked (nlink 0), change it after its data was copied, or
// turn the new copy into a second node for the same file. So requests that
// turn what a layer holds into nodes (lookups) or act on a node's backing
// file without an open handle (getattr, setattr, xattrs, link) hold this
// lock shared; a move holds it exclusively from its first change to the
// rebind. Requests with an open handle hold the handle's lock instead.
//
// Exclusive holds nest on one thread, and Shared() passes through on a
// thread holding the lock exclusively, so a move may make directories and
// look names up. A thread holding it shared must not ask for it exclusively.
// Lock order: taken after Overlay's names_mu_, copy_up_mu_, handles_mu_ and handle
// locks; only leaf locks (the inode table's, the fd cache's) after it.
#pragma once

#include <atomic>
#include <cstdint>
#include <shared_mutex>
#include <thread>

namespace detourfs {

class LayerLock {
 public:
  class Hold {
   public:
    Hold(Hold&& other) noexcept : lock_(other.lock_), mode_(other.mode_) { other.lock_ = nullptr; }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    Hold& operator=(Hold&&) = delete;
    ~Hold();

   private:
    friend class LayerLock;
    enum class Mode : uint8_t { kPassed, kShared, kExclusive };
    Hold(LayerLock* lock, Mode mode) : lock_(lock), mode_(mode) {}
    LayerLock* lock_;
    Mode mode_;
  };

  [[nodiscard]] Hold Shared();
  [[nodiscard]] Hold Exclusive();

 private:
  bool MineExclusively() const;

  std::shared_mutex mu_;
  std::atomic<std::thread::id> owner_{};  // the thread holding mu_ exclusively
  int depth_ = 0;                         // its nested holds; only it touches this
};

}  // namespace detourfs
