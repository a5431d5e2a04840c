// Tier roots: the directory a tier keeps its data in, made with safe
// permissions on first start and adopted as it is on later ones (a container
// restart keeps a pod's emptyDir volumes, memory-backed ones included).
//
// Layout: <root>/upper mirrors the mount's paths for the routed subtrees (and
// the directories above them); <root>/spill holds the data of files another
// tier spilled here (spill_store.h); <root>/moves the records of moves
// across layers while they run (move_intents.h). The root is root-owned and 0700: users reach
// tier data only through the mount.
#pragma once

#include <string>

#include "config/config.h"
#include "detourfs/status.h"
#include "detourfs/unique_fd.h"

namespace detourfs {

struct OpenedTier {
  UniqueFd root;         // O_PATH on <root>
  UniqueFd upper;        // O_PATH on <root>/upper
  UniqueFd spill;        // O_PATH on <root>/spill
  UniqueFd moves;        // O_PATH on <root>/moves (move_intents.h)
  bool adopted = false;  // the upper tree existed already
};

// Creates (if missing) and opens the tier's root and upper tree. Refuses a
// root that is a symlink, not a directory, not owned by the daemon's user,
// or writable by group or others.
Status OpenTierRoot(const TierConfig& tier, OpenedTier* out);

}  // namespace detourfs
