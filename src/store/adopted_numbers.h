// AdoptedNumbers: the volume inode numbers that other entries report as their
// id — a copy on a tier keeps the number of the volume entry it was copied
// from (st_ino stays), and so does a copy moved back to the volume. While
// anything reports such a number, the volume must not free the inode that
// owns it, or ext4 gives the number to a new file and two names report one
// st_ino. The volume's trash asks Has() before it frees an inode, whether
// or not the mount has looked up the entry reporting it this run.
//
// Kept in an append-only file of 8-byte records (host order) in the volume's
// private directory, read at start; a torn last record is ignored. Numbers
// are never removed yet: one whose last reporter went keeps its inode held
// until the flush releases held inodes (docs/overlay.md, "Numbers that live
// on elsewhere stay reserved").
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <unordered_set>

#include "detourfs/result.h"
#include "detourfs/status.h"
#include "detourfs/unique_fd.h"
#include "util/locks.h"

namespace detourfs {

class AdoptedNumbers {
 public:
  // Opens (making it if missing) the record file `name` in `dirfd` and reads
  // what it holds.
  Status Open(int dirfd, const char* name);
  // Records that an entry reports `number` (a volume inode number). Written
  // before the entry carries it, so a crash never leaves an unrecorded
  // reporter (a power cut: see Sync). Without Open, a no-op.
  Result<void> Add(uint64_t number) EXCLUDES(mu_);
  bool Has(uint64_t number) const EXCLUDES(mu_);
  // Makes the records written so far durable (fdatasync), if any are new;
  // the change layer calls it before each sync of the tiers, whose copies
  // carry the numbers.
  Result<void> Sync() EXCLUDES(mu_);
  size_t size() const EXCLUDES(mu_);

 private:
  mutable Mutex mu_;
  UniqueFd fd_;                         // set once by Open
  off_t end_ GUARDED_BY(mu_) = 0;       // where the next record goes
  bool dirty_ GUARDED_BY(mu_) = false;  // records written since the last Sync
  std::unordered_set<uint64_t> numbers_ GUARDED_BY(mu_);
};

}  // namespace detourfs
