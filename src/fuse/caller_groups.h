// CallerGroups: the supplementary groups of the process making a request,
// for entries made with its credentials (AsCaller). fuse_req_getgroups reads
// /proc/<pid>/task/<tid>/status, which costs more than a create; the answer
// is kept per process for a second (a process changes its groups rarely,
// and the kernel has already checked the request's permissions with its
// real credentials: the groups only decide what the backing filesystem
// lets the create do, as it would have without the mount).
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <chrono>
#include <unordered_map>
#include <vector>

#include "util/locks.h"

namespace detourfs::fuseops {

class CallerGroups {
 public:
  // The groups of `pid` (uid, gid from the request) into `out`; false when
  // they cannot be read (the caller then makes entries with its uid and gid
  // only).
  bool Get(fuse_req_t req, pid_t pid, uid_t uid, gid_t gid, std::vector<gid_t>* out) EXCLUDES(mu_);

 private:
  struct Known {
    uid_t uid;
    gid_t gid;
    std::vector<gid_t> groups;
    std::chrono::steady_clock::time_point at;
  };
  static constexpr size_t kMax = 1024;
  Mutex mu_;
  std::unordered_map<pid_t, Known> known_ GUARDED_BY(mu_);
};

}  // namespace detourfs::fuseops
