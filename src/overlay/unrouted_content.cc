// Unrouted tier content: the walk over a tier's scaffolding.
#include "overlay/unrouted_content.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "overlay/backing_tree.h"
#include "overlay/markers.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

struct Walk {
  std::vector<UnroutedEntry> unrouted;
  bool serves = false;  // something beneath is routed to the tier
  // The directory holds files the rules do not route to the tier, not only
  // directories and whiteouts as the directories above a routed subtree do:
  // it is reported as a whole.
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

// The directory `dirfd` at `prefix` ("" or "a/b/"), not routed itself.
Result<Walk> WalkScaffolding(int dirfd, const std::string& prefix, TierId tier,
                             const Router& router) {
  Walk walk;
  Result<std::vector<std::string>> names = EntryNames(dirfd);
  if (!names.ok()) return Errno{names.error()};
  for (const std::string& name : *names) {
    Result<struct stat> st = sys::StatAt(dirfd, name.c_str());
    if (!st.ok()) {
      if (st.error() == ENOENT) continue;
      return Errno{st.error()};
    }
    const std::string path = prefix + name;
    const bool is_dir = S_ISDIR(st->st_mode);
    bool whiteout = false;
    if (!is_dir) {
      Result<bool> w = markers::IsWhiteout(dirfd, name.c_str(), *st);
      if (!w.ok()) return Errno{w.error()};
      whiteout = *w;
    }
    // A whiteout hides whatever the volume has by its name, a directory
    // included: lookups ask the rules about the name as a directory first.
    const RouteDecision now = router.Route(path, is_dir || whiteout);
    if (now.routed() && now.rule->tier == tier) {
      walk.serves = true;
      continue;
    }
    UnroutedEntry entry = Describe(path, st->st_mode & S_IFMT, now);
    if (is_dir && !now.routed()) {
      Result<UniqueFd> sub =
          sys::OpenBeneath(dirfd, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
      if (!sub.ok()) return Errno{sub.error()};
      Result<Walk> inner = WalkScaffolding(sub->get(), path + "/", tier, router);
      if (!inner.ok()) return Errno{inner.error()};
      walk.serves = walk.serves || inner->serves;
      if (inner->holds_files && !inner->serves) {
        walk.unrouted.push_back(std::move(entry));  // the whole directory, once
      } else {
        for (UnroutedEntry& e : inner->unrouted) walk.unrouted.push_back(std::move(e));
      }
      continue;
    }
    walk.holds_files = walk.holds_files || (!is_dir && !whiteout);
    entry.whiteout = whiteout;
    walk.unrouted.push_back(std::move(entry));
  }
  return walk;
}

}  // namespace

Result<std::vector<UnroutedEntry>> FindUnroutedContent(int upper_fd, TierId tier,
                                                       const Router& router) {
  Result<Walk> walk = WalkScaffolding(upper_fd, "", tier, router);
  if (!walk.ok()) return Errno{walk.error()};
  return std::move(walk->unrouted);
}

}  // namespace detourfs
