// CallerGroups (caller_groups.h).
#include "fuse/caller_groups.h"

namespace detourfs::fuseops {

bool CallerGroups::Get(fuse_req_t req, pid_t pid, uid_t uid, gid_t gid, std::vector<gid_t>* out) {
  const auto now = std::chrono::steady_clock::now();
  {
    MutexLock lock(&mu_);
    auto it = known_.find(pid);
    if (it != known_.end() && it->second.uid == uid && it->second.gid == gid &&
        now - it->second.at < std::chrono::seconds(1)) {
      *out = it->second.groups;
      return true;
    }
  }
  std::vector<gid_t> groups(64);
  int n = fuse_req_getgroups(req, static_cast<int>(groups.size()), groups.data());
  if (n > static_cast<int>(groups.size())) {
    groups.resize(static_cast<size_t>(n));
    n = fuse_req_getgroups(req, static_cast<int>(groups.size()), groups.data());
  }
  if (n < 0 || n > static_cast<int>(groups.size())) return false;
  groups.resize(static_cast<size_t>(n));
  *out = groups;
  MutexLock lock(&mu_);
  if (known_.size() >= kMax) known_.clear();
  known_[pid] = Known{uid, gid, std::move(groups), now};
  return true;
}

}  // namespace detourfs::fuseops
