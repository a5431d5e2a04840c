// The flush's planner (docs/flush.md, "Plan"): compares what a capture
// noted of a persisted subtree with what the volume holds there, and lists
// the manifest steps that make the volume equal to the capture, and the
// objects to stage for them.
//
// Unchanged entries need no step: a regular file the capture knows is clean
// (not changed since it was last flushed) whose volume copy still has its
// type, size, mtime, mode and owner — size and mtime alone cannot tell (npm
// gives every file it extracts the same mtime, and a package upgrade may
// keep a file's size) — a symlink with
// its target and owner, a device or fifo with its mode, owner and number, a
// directory with its mode, owner and mtime. Names the volume holds in a
// captured directory that the capture does not are removed. The volume is
// read beneath its root without following symlinks, one directory at a time
// (no fd held per directory or file).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "detourfs/result.h"
#include "flush/manifest_format.h"

namespace detourfs::flush {

// One entry as the mount showed it at the capture.
struct CapturedEntry {
  std::string path;  // relative to the volume's root
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint64_t size = 0;   // regular files
  uint64_t rdev = 0;   // devices
  std::string target;  // symlinks
  uint64_t group = 0;  // hard links: a nonzero number shared by every name of one file
  // Regular files: the capturer knows the data has not changed since the
  // file was last flushed (from its change tracking). Otherwise the file is
  // staged whatever the volume's copy looks like.
  bool clean = false;
};

// A persisted subtree at the capture: its root directory first, then every
// entry beneath it in pre-order (a directory before what it holds). Every
// entry of each directory listed is there.
struct CapturedTree {
  std::vector<CapturedEntry> entries;
};

// An object to stage: the captured entry `entry`'s data (or, for a
// directory, an empty directory with its owner, mode and xattrs) as
// data/<staged>, for the step `step` (whose size and hash the stager fills
// in for a regular file).
struct StageItem {
  uint64_t staged = 0;
  size_t entry = 0;
  size_t step = 0;
};

struct Plan {
  std::vector<ManifestStep> steps;
  std::vector<StageItem> stage;
  uint64_t stage_bytes = 0;  // regular files' data to copy
  size_t unchanged = 0;      // entries that needed no step
};

// Adds to `plan` the steps for `tree` against the volume's tree `volume`
// (a directory fd). Staged objects are numbered from `*next_staged` on
// (then advanced): an epoch numbers them across its subtrees. EINVAL for a
// capture that is not a pre-order tree of valid paths; the errno of opening
// the root's parent on the volume (ENOENT, ENOTDIR, ELOOP) when it is not a
// directory there.
Result<void> PlanSubtree(const CapturedTree& tree, int volume, uint64_t* next_staged, Plan* plan);

}  // namespace detourfs::flush
