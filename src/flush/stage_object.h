// Staging one planned object into an epoch's data/ directory on the volume
// (docs/flush.md, "Stage"): a regular file's data, xattrs, owner, mode and
// captured mtime (its size and XXH3 checksum go into its step), an empty
// directory with owner, mode and xattrs, a symlink, device or fifo. Not
// synced: the commit syncs the volume once for the whole epoch.
#pragma once

#include "detourfs/result.h"
#include "flush/flush_plan.h"
#include "flush/manifest_format.h"

namespace detourfs::flush {

// Stages `entry` as data/<step->staged> in `data_dir`, from `source` (an
// O_PATH fd of the captured object) and, for a regular file whose data
// lives elsewhere (a spill store), `data` (an open fd; -1: read `source`).
// ESTALE when the source's data is not the captured size (it changed after
// the capture without being preserved).
Result<void> StageObject(const CapturedEntry& entry, int source, int data, int data_dir,
                         ManifestStep* step);

}  // namespace detourfs::flush
