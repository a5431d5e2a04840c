// Applying a committed manifest to the volume's tree, and verifying the
// result (docs/flush.md, "Apply" and "Verify").
//
// Every step is idempotent: applying a manifest again, whole or from any
// point a crash stopped it at, gives the same tree. A staged object leaves
// the epoch's data/ directory by the rename that puts it in place, so a step
// whose object is gone was done. Paths are resolved beneath the tree without
// following any symlink (a user's symlink on the volume cannot redirect a
// step), and detourfs's private directory cannot be named (manifest_format.h).
#pragma once

#include <string>
#include <vector>

#include "detourfs/result.h"
#include "flush/manifest_format.h"

namespace detourfs::flush {

// The name of a staged object in data/ (16 hex digits).
std::string StagedName(uint64_t number);

// Applies every step of `manifest` to the tree `tree` (a directory fd), the
// staged objects taken from `data` (the epoch's data/ directory, O_PATH is
// fine), then gives directories their times, deepest last-made first. Not
// synced: the caller syncs the volume once. Stops at the first failing step
// with its errno (and `failed_step` set to its index when given).
Result<void> ApplyManifest(const Manifest& manifest, int tree, int data,
                           size_t* failed_step = nullptr);

// A step whose result is not what the manifest says.
struct VerifyFinding {
  size_t step = 0;
  std::string path;
  std::string what;  // "missing", "size 3, expected 5", "content differs", ...
};

// Checks the tree against every step: removed names are gone (unless a
// later step makes them again), placed files exist with their type, owner,
// mode, size and data checksum (symlinks: their target), directories are
// directories, links name the same inode as their first name. An error only
// when the checking itself fails (e.g. EIO reading a file back: that is
// reported as a finding, so EIO here means the tree could not be opened).
Result<std::vector<VerifyFinding>> VerifyManifest(const Manifest& manifest, int tree);

}  // namespace detourfs::flush
