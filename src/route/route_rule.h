// RouteRule: one [[route]] of the config — which globs, which tier, whether
// the subtree is flushed to the volume, and where new data spills when that
// tier is full.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "route/glob.h"

namespace detourfs {

// Where a path's data lives. kVolume is the pass-through (no tier).
enum class TierId { kVolume, kMemory, kDisk };

// batch: flushed to the volume in batches; never: scratch, never flushed.
enum class Persist { kBatch, kNever };

std::string_view TierName(TierId tier);
std::string_view PersistName(Persist persist);

struct RouteRule {
  std::vector<Glob> globs;
  TierId tier = TierId::kVolume;
  Persist persist = Persist::kBatch;
  std::vector<TierId> fallback;  // spill chain after `tier`, in order
  int line = 0;                  // where the rule starts in the config file
};

}  // namespace detourfs
