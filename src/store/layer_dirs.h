// LayerDirs: the directories detourfs keeps on each layer, made on first
// start and adopted as they are on later ones (a container restart keeps a
// pod's emptyDir volumes, memory-backed ones included).
//
// A tier root (root-owned, 0700; users reach tier data only through the
// mount) holds:
//   format    "detourfs-tier 2" and the tier's instance id
//   upper/    the mount's paths for routed subtrees and the directories above
//   work/     things being built, published into upper/ with one rename
//   trash/    things removed, deleted in the background
//   index/    copy-ups of hard-linked volume files, by id
//   spill/    data of files spilled here from a fuller tier
//   intents/  records of multi-step changes while they run
//   kept/     tier content no rule serves that had to make way (a directory
//             removed or made where it was): set aside, logged, never deleted
//   journal/  the write-back journal's segments (docs/journal.md)
//   ids       the id incarnation (id_source.h)
// The volume gets the same private directories under <volume>/.detourfs
// (a name the mount hides and refuses), minus upper/, index/ and intents/,
// plus held/ (inodes kept so their numbers are not reused) and `adopted`
// (the numbers entries elsewhere report, adopted_numbers.h).
#pragma once

#include <string>

#include "config/config.h"
#include "detourfs/status.h"
#include "detourfs/unique_fd.h"
#include "inodes/node.h"
#include "store/layer.h"

namespace detourfs {

inline constexpr const char* kPrivateDirName = ".detourfs";

struct LayerDirs {
  Layer layer = Layer::kVolume;
  SharedFd tree;  // the volume's root, or <tier>/upper
  SharedFd root;  // <tier root>, or <volume>/.detourfs
  SharedFd work;
  SharedFd trash;
  SharedFd index;  // tiers
  SharedFd spill;
  SharedFd intents;          // tiers
  SharedFd kept;             // tiers: content set aside, never deleted
  SharedFd journal;          // tiers: the write-back journal's segments
  bool journal_new = false;  // journal/ was made by this start
  SharedFd held;             // the volume
  dev_t dev = 0;             // the filesystem of all of the above
  bool adopted = false;      // the layer held detourfs's directories already
  bool migrated = false;     // a tier in format 1 was converted
};

// Opens a tier: makes its root (0700, root-owned) and directories if
// missing, refuses a root that is a symlink, not a directory, owned by
// another user, or writable by group or others, and converts format 1
// (whiteouts marked by an xattr) to format 2.
Status OpenTierDirs(const TierConfig& tier, LayerDirs* out);

// Opens the volume's root `lower` (an O_PATH directory fd) and, when
// `with_private` (routes are configured), its private directories under
// .detourfs, made if missing.
Status OpenVolumeDirs(UniqueFd lower, bool with_private, LayerDirs* out);

}  // namespace detourfs
