// IdSource: persistent ids for files detourfs makes — the inode numbers the
// mount reports for them (st_ino, d_ino), kept in markers::kIdXattr, so a
// file keeps its number across copy-up, spills, moves between layers and
// restarts.
//
// An id is kIdBase | incarnation << 32 | counter. The incarnation is kept in
// a file `ids` on every layer's private directory (the volume's .detourfs
// and each tier root); at start the largest one found plus one is written
// back to all of them (synced) before any id is handed out, so ids never
// repeat while any layer remembers the last start — a wiped memory tier
// alone cannot make them repeat. Volume inode numbers (below kIdBase on
// every Linux filesystem in practice) never collide with them.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "detourfs/status.h"
#include "util/locks.h"

namespace detourfs {

inline constexpr uint64_t kIdBase = uint64_t{1} << 62;

class IdSource {
 public:
  // `dirs`: O_PATH fds of the directories that keep the incarnation.
  static Status Open(const std::vector<int>& dirs, std::unique_ptr<IdSource>* out);
  // An IdSource that keeps nothing (no routes configured): ids still never
  // repeat within the run.
  static std::unique_ptr<IdSource> Transient();

  // A fresh id.
  uint64_t Next() EXCLUDES(mu_);
  uint64_t incarnation() const { return incarnation_.load(std::memory_order_acquire); }

 private:
  IdSource(std::vector<int> dirs, uint64_t incarnation)
      : dirs_(std::move(dirs)), incarnation_(incarnation) {}
  Status Persist(uint64_t incarnation);

  const std::vector<int> dirs_;
  std::atomic<uint64_t> incarnation_;
  std::atomic<uint64_t> next_{0};
  Mutex mu_;  // a new incarnation, when a run exhausts 2^32 ids
};

}  // namespace detourfs
