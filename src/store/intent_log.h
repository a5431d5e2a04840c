// IntentLog: records of multi-step changes while they run — a change that
// must touch more than one place visibly (a directory renamed on the volume
// and on the tiers that hold parts of it, a tree moved between layers: its
// copy published, then its source removed). The record is written and
// synced before the first visible step, lists every step, and goes when the
// last is done; at start each record left by a crash is carried out to the
// end from the step after the last one recorded done (each step is
// idempotent, but a step that cleared a name must not run again once a
// later one put something there), before anything is served. So a crash
// leaves the old state (no record yet: the staged parts are in work/, which
// start-up clears) or, after recovery, the new one.
//
// Records live in <tier>/intents on the disk tier when there is one (it
// outlives a reboot), else the memory tier. Format (docs/overlay.md):
//   detourfs-intent 1
//   <step> <layer>:<area>:<path> [<layer>:<area>:<path>]
//   end <xxh64 of the lines above, hex>
//   done NNNN    (appended after each step, synced: steps finished)
// Paths are relative to their area and percent-encoded; a record whose
// checksum does not match is torn (the crash came while writing it, before
// any step) and is dropped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "detourfs/result.h"
#include "inodes/node.h"
#include "store/layer.h"

namespace detourfs {

// The areas of a layer a path can be in (layer_dirs.h).
// (kIndex: a tier's index/.)
enum class Area : uint8_t { kTree, kWork, kTrash, kHeld, kIndex, kKept };

struct IntentPath {
  Layer layer = Layer::kVolume;
  Area area = Area::kTree;
  std::string path;
};

enum class StepKind : uint8_t {
  kRename,           // a -> b, replacing what b holds (a file, or an empty directory)
  kRenameNoReplace,  // a -> b; b must not exist
  kWhiteout,         // a becomes a whiteout (what it held goes to the trash)
  kTrash,            // a goes to the trash
  kHold,             // a goes to held/ as b (keeps its inode numbers reserved)
  // As kHold, but its files with other names stay in it too, until the
  // caller knows those names are on the volume (ChangeLayer::LetGoOfLinked).
  kHoldWhole,
  // a goes to the trash if it is a whiteout; anything else there (a name
  // made since, by a user, when a record is replayed) stays.
  kDropWhiteout,
};

inline bool IsHold(StepKind k) { return k == StepKind::kHold || k == StepKind::kHoldWhole; }

// Whether a step moves `a` to `b` (rename, rename-noreplace, hold): only
// then does `b` name anything.
inline bool IsMove(StepKind k) {
  return k == StepKind::kRename || k == StepKind::kRenameNoReplace || IsHold(k);
}

struct IntentStep {
  StepKind kind = StepKind::kTrash;
  IntentPath a;
  IntentPath b;
};

struct Intent {
  std::vector<IntentStep> steps;
  // Steps finished before a crash (read back; not part of the encoding):
  // recovery resumes after them, so a step that cleared a name is never
  // run again over what a later step put there.
  size_t done = 0;
};

std::string EncodeIntent(const Intent& intent);
// EUCLEAN for a torn or corrupt record.
Result<Intent> DecodeIntent(std::string_view text);

class IntentLog {
 public:
  // `dir`: the intents directory (O_PATH).
  explicit IntentLog(SharedFd dir) : dir_(std::move(dir)) {}

  // Writes `intent` durably (data synced, then linked in and the directory
  // synced); returns the record's name.
  Result<std::string> Write(const Intent& intent);
  // Records durably that the first `steps` steps are done (a line
  // appended and synced).
  Result<void> MarkDone(const std::string& name, size_t steps);
  Result<void> Remove(const std::string& name);
  // Marks a record whose change stopped half-made while the mount goes on
  // serving (its name gains kServedSuffix; returns the new name): its replay
  // removes nothing, since what its steps would clear may have changed.
  Result<std::string> MarkServed(const std::string& name);
  static constexpr std::string_view kServedSuffix = ".served";
  static bool Served(const std::string& name) {
    return name.size() > kServedSuffix.size() &&
           name.compare(name.size() - kServedSuffix.size(), kServedSuffix.size(), kServedSuffix) ==
               0;
  }
  // The records left, oldest first; torn ones are dropped (and logged).
  Result<std::vector<std::pair<std::string, Intent>>> Pending();

 private:
  SharedFd dir_;
  uint64_t next_ = 0;  // guarded by the caller (the change layer serializes records)
};

}  // namespace detourfs
