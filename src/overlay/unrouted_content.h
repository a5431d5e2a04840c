// Unrouted tier content: what a tier's upper tree holds that the config no
// longer routes to that tier — a rule removed, or pointed at another tier,
// since the content was written. Lookups go where the rules say now, so such
// content is not served (and a whiteout there no longer hides the volume's
// entry), yet it may be the only copy of what was written. The daemon
// reports it at start and never removes it.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "detourfs/result.h"
#include "route/route_rule.h"
#include "route/router.h"

namespace detourfs {

struct UnroutedEntry {
  std::string path;  // relative to the mount root
  mode_t type = 0;   // S_IFMT bits of the tier's entry
  bool whiteout = false;
  TierId now = TierId::kVolume;  // where the rules send the path now
  int rule_line = 0;             // the config line of the rule that does; 0: none
};

// Walks the upper tree `upper_fd` of tier `tier`. Directories the rules do
// not route are descended (those above a routed subtree hold only
// directories and whiteouts); every other entry not routed to `tier` is
// reported, and an unrouted directory that holds files but nothing routed
// to `tier` once, as a whole.
Result<std::vector<UnroutedEntry>> FindUnroutedContent(int upper_fd, TierId tier,
                                                       const Router& router);

}  // namespace detourfs
