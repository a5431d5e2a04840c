// Unrouted tier content: the walk over a tier's scaffolding (iterative:
// TreeWalk keeps a few fds however deep the tree).
#include "overlay/unrouted_content.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "store/markers.h"
#include "store/tree_walk.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

struct Level {
  UnroutedEntry entry;  // the directory itself, reported whole if need be
  std::vector<UnroutedEntry> unrouted;
  bool serves = false;  // something beneath is routed to the tier
  // It holds files the rules do not route to the tier, not only the
  // directories and whiteouts above a routed subtree: reported as a whole.
  bool holds_files = false;
};

UnroutedEntry Describe(const std::string& path, mode_t type, const RouteDecision& now) {
  UnroutedEntry e;
  e.path = path;
  e.type = type;
  if (now.routed()) {
    e.now = now.rule->tier;
    e.rule_line = now.rule->line;
  }
  return e;
}

}  // namespace

Result<std::vector<UnroutedEntry>> FindUnroutedContent(int upper_fd, TierId tier,
                                                       const Router& router) {
  std::vector<Level> stack(1);
  WalkCallbacks cb;
  cb.visit = [&](const WalkDir& d, const WalkItem& item) -> Result<bool> {
    const int dirfd = d.fds[0];
    Result<struct stat> st = sys::StatAt(dirfd, item.name.c_str());
    if (!st.ok()) return st.error() == ENOENT ? Result<bool>(false) : Errno{st.error()};
    const std::string path = d.path->empty() ? item.name : *d.path + "/" + item.name;
    const bool is_dir = S_ISDIR(st->st_mode);
    bool whiteout = false;
    if (!is_dir) {
      Result<bool> w = markers::IsWhiteout(dirfd, item.name.c_str(), *st);
      if (!w.ok()) return Errno{w.error()};
      whiteout = *w;
    }
    // A whiteout hides whatever the volume has by its name, a directory
    // included: ask the rules about the name as a directory.
    const RouteDecision now = router.Route(path, is_dir || whiteout);
    Level& level = stack.back();
    if (now.routed() && now.rule->tier == tier) {
      level.serves = true;
      return false;
    }
    UnroutedEntry entry = Describe(path, st->st_mode & S_IFMT, now);
    if (is_dir && !now.routed()) {
      Level inner;
      inner.entry = std::move(entry);
      stack.push_back(std::move(inner));
      return true;
    }
    level.holds_files = level.holds_files || (!is_dir && !whiteout);
    entry.whiteout = whiteout;
    level.unrouted.push_back(std::move(entry));
    return false;
  };
  cb.leave = [&](const WalkDir&, const WalkItem&) -> Result<void> {
    Level inner = std::move(stack.back());
    stack.pop_back();
    Level& outer = stack.back();
    outer.serves = outer.serves || inner.serves;
    if (inner.holds_files && !inner.serves) {
      outer.unrouted.push_back(std::move(inner.entry));  // the whole directory, once
    } else {
      for (UnroutedEntry& e : inner.unrouted) outer.unrouted.push_back(std::move(e));
    }
    return {};
  };
  DETOURFS_TRY(WalkTrees({upper_fd, -1, -1, -1}, cb));
  return std::move(stack.front().unrouted);
}

}  // namespace detourfs
