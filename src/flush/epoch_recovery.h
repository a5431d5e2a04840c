// Recovery of the flush's epochs on the volume (docs/flush.md, "Recovery"):
// run at mount before anything is served, and offline on a volume whose
// detourfs is gone. Every committed epoch is finished (applied again, which
// is idempotent, synced and verified); every uncommitted one is discarded.
// Afterwards each persisted subtree on the volume is exactly its state at a
// committed epoch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "detourfs/result.h"
#include "flush/epoch_area.h"

namespace detourfs::flush {

struct RecoveryReport {
  std::vector<uint64_t> finished;   // committed, applied and verified
  std::vector<uint64_t> discarded;  // never committed
  std::vector<uint64_t> cleared;    // done already (only their removal was cut short)
  // Committed epochs that could not be finished, oldest first, with why
  // (their directories stay for the next try; later epochs are left too).
  std::vector<std::string> unfinished;
};

// Recovers every epoch in `area` onto the volume tree `tree`, oldest first,
// stopping at the first committed one that cannot be finished. An error
// only when the area itself cannot be listed.
Result<RecoveryReport> RecoverEpochs(EpochArea* area, int tree);

// The flush area of the volume whose root is `volume`, checked and locked:
// ENOENT when it has none, EPERM when .detourfs or flush/ is not root's
// and private (or .detourfs is on another filesystem), EBUSY when another
// process holds it.
Result<EpochArea> OpenVolumeArea(int volume);

// Recovers the volume whose root is `volume` (a directory fd): the epochs
// in its .detourfs/flush/, if it has one (nothing to do otherwise: the
// report is empty). For the daemon at start, before anything is served, and
// for offline recovery of a volume detourfs is gone from. EPERM when
// .detourfs or flush/ is not root's and private (or .detourfs is on another
// filesystem): a user made it, and nothing in it is applied. EBUSY when
// another process holds the area (a running daemon). `keep`, when given,
// receives the area, whose lock then lasts as long as the caller keeps it.
Result<RecoveryReport> RecoverVolume(int volume, std::unique_ptr<EpochArea>* keep = nullptr);

// What is wrong with the ownership of the volume's .detourfs and flush/
// (owner and mode, for a message after EPERM), or "".
std::string DescribeAreaOwnership(int volume);

// Applies a committed epoch's manifest, syncs the volume, verifies, and
// marks it done. EIO when the result does not verify (`why` says what).
Result<void> FinishEpoch(EpochArea* area, const Manifest& manifest, int tree, std::string* why);

}  // namespace detourfs::flush
