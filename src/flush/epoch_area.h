// EpochArea: the flush's directory on the volume, <volume>/.detourfs/flush/
// (docs/flush.md), on the volume's own filesystem so that staged objects
// reach their places by rename:
//   last             the number of the last epoch done (decimal; replaced
//                    by rename)
//   epoch-<16 hex>/  an epoch in flight
//     data/          its staged objects, named by number (StagedName)
//     manifest       present once the epoch is committed
// An epoch directory without a manifest is discarded by recovery; one with
// a manifest is finished. At most one committed epoch is here at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "detourfs/result.h"
#include "detourfs/unique_fd.h"
#include "flush/manifest_format.h"

namespace detourfs::flush {

inline constexpr const char* kFlushDirName = "flush";

class EpochArea {
 public:
  // Opens flush/ under the volume's private directory `private_dir`,
  // making it (0700) if missing, locks it (flock, held while this object
  // lives: one daemon or one `detourctl recover` at a time; EBUSY when
  // another holds it; the lock is per host: flock on a directory of an NFS
  // or FUSE volume does not reach other nodes) and reads `last`. EPERM when
  // flush/ is not owned by this (root) user or is writable by group or
  // others: not made by detourfs.
  static Result<EpochArea> Open(int private_dir);

  EpochArea() = default;
  uint64_t last_done() const { return last_done_; }
  int fd() const { return dir_.get(); }

  // The epochs with a directory here, oldest first.
  Result<std::vector<uint64_t>> InFlight() const;
  // The number the next epoch takes: above `last` and every epoch here.
  Result<uint64_t> NextEpoch() const;

  // Begins epoch `epoch` on the volume `volume`: makes its directory and
  // data/ and returns data/. EEXIST for a number at or below one done or
  // in flight; EBUSY while a committed epoch not done is here (it must be
  // finished or given up first: a later one planned over it would be
  // undone by its replay). An epoch is planned after its Begin, so it is
  // planned against a volume no committed epoch is still changing. The
  // volume is reopened here for reading, so the commit's syncfs reports
  // any write-back error met by the staging.
  Result<UniqueFd> Begin(int volume, uint64_t epoch);
  // data/ of an epoch in flight.
  Result<UniqueFd> OpenData(uint64_t epoch) const;

  // Commits the begun epoch's `manifest`: the volume synced (one syncfs for
  // all the staged objects), every staged regular file read back from the
  // volume (its page cache dropped first) and checked against its step's
  // size and hash, then the manifest written aside, synced, renamed into
  // place, its directory synced, and read back. EIO when a staged file or
  // the manifest does not read back as written (nothing is committed then).
  Result<void> Commit(const Manifest& manifest);

  // The committed manifest of `epoch`: ENOENT when it was never committed,
  // EINVAL (with `why`) when it does not decode.
  Result<Manifest> ReadManifest(uint64_t epoch, std::string* why) const;

  // Records `epoch` as the last done (durably), then removes its directory:
  // for an epoch finished, and for one given up by hand (`detourctl recover
  // --discard`), so its number is never used again.
  Result<void> Done(uint64_t epoch);
  // Removes an epoch's directory, its manifest first (durably), so a
  // removal cut short leaves an uncommitted epoch.
  Result<void> Discard(uint64_t epoch);

 private:
  UniqueFd dir_;
  UniqueFd lock_;  // flush/, open for reading, flock'ed
  uint64_t last_done_ = 0;
  uint64_t begun_ = 0;  // the epoch Begin made (0: none)
  UniqueFd sync_fd_;    // the volume, open for reading since Begin
};

std::string EpochDirName(uint64_t epoch);

}  // namespace detourfs::flush
