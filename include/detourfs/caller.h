// Caller: the process a request comes from — its credentials, which files
// it makes are given (detourfs creates them with the caller's fsuid, fsgid
// and groups, so quotas, reserved blocks and default ACLs apply as they
// would without the mount).
#pragma once

#include <sys/types.h>

#include <vector>

namespace detourfs {

struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  mode_t umask = 022;
  std::vector<gid_t> groups;  // supplementary groups, when known
  bool groups_known = false;
};

}  // namespace detourfs
