// EpochArea: the flush's directory on the volume, <volume>/.detourfs/flush/
// (docs/flush.md), on the volume's own filesystem so that staged objects
// reach their places by rename:
//   last             the number of the last epoch done (decimal; replaced
//                    by rename)
//   epoch-<16 hex>/  an epoch in flight
//     data/          its staged objects, named by number (StagedName)
//     manifest       present once the epoch is committed
// An epoch directory without a manifest is discarded by recovery; one with
// a manifest is finished.
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
  // making it (0700) if missing, and reads `last`.
  static Result<EpochArea> Open(int private_dir);

  EpochArea() = default;
  uint64_t last_done() const { return last_done_; }
  int fd() const { return dir_.get(); }

  // The epochs with a directory here, oldest first.
  Result<std::vector<uint64_t>> InFlight() const;

  // Makes epoch `epoch`'s directory and data/ (removing what an earlier,
  // uncommitted attempt left) and returns data/.
  Result<UniqueFd> Begin(uint64_t epoch);
  // data/ of an epoch in flight.
  Result<UniqueFd> OpenData(uint64_t epoch) const;

  // Commits `manifest` (its epoch begun): the volume is synced (the staged
  // objects durable, one syncfs), then the manifest written aside, synced,
  // renamed into place and its directory synced; then read back. EIO when
  // it does not read back as written (the volume lost it).
  Result<void> Commit(int volume_fd, const Manifest& manifest);

  // The committed manifest of `epoch`: ENOENT when it was never committed,
  // EINVAL (with `why`) when it does not decode.
  Result<Manifest> ReadManifest(uint64_t epoch, std::string* why) const;

  // Records `epoch` as the last done (durably), then removes its directory.
  Result<void> Done(uint64_t epoch);
  // Removes an uncommitted epoch's directory.
  Result<void> Discard(uint64_t epoch);

 private:
  UniqueFd dir_;
  uint64_t last_done_ = 0;
};

std::string EpochDirName(uint64_t epoch);

}  // namespace detourfs::flush
