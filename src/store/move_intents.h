// MoveIntents: a record of each move across layers while it runs. A move
// builds its copy under a hidden name (`.detourfs-move.*`) beside the
// destination and renames it into place when complete; a daemon killed in
// between would leave that partial copy in sight, in the user's directory.
// So a move records where it builds before it starts and forgets the record
// when the hidden name is gone (renamed into place, or removed after a
// failure); the next start removes what each remaining record names.
//
// The records live in <tier root>/moves on the disk tier, else the memory
// tier: a directory of small files, one per running move, each made
// unnamed and linked in whole (never torn). The volume is not written.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "detourfs/inode_table.h"
#include "detourfs/result.h"
#include "detourfs/unique_fd.h"

namespace detourfs {

struct MoveIntent {
  Layer layer = Layer::kVolume;  // where the copy is built
  std::string parent;            // its directory, relative to that layer's root ("" for the root)
  std::string hidden;            // the hidden name it is built under
};

class MoveIntents {
 public:
  // The prefix every hidden name has; a record naming anything else is
  // never acted on.
  static constexpr std::string_view kHiddenPrefix = ".detourfs-move.";

  // `dir`: an O_PATH fd on the records' directory.
  explicit MoveIntents(SharedFd dir) : dir_(std::move(dir)) {}

  // Records `intent` before its copy is begun; returns the record's name.
  Result<std::string> Begin(const MoveIntent& intent) const;
  // Forgets a record whose move ended (logged if that fails: the next
  // start then finds its hidden name gone, and forgets it).
  void End(const std::string& record) const;
  // The records a daemon that stopped mid-move left, with their names.
  // Unreadable ones are left in place and logged.
  Result<std::vector<std::pair<std::string, MoveIntent>>> Pending() const;

 private:
  SharedFd dir_;
};

}  // namespace detourfs
