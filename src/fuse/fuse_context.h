// FuseContext: what the FUSE adapters need, reached from a request through
// fuse_req_userdata (no globals). Owned by the daemon for the session's life.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "detourfs/overlay.h"
#include "fuse/caller_groups.h"

namespace detourfs::fuseops {

struct FuseSettings {
  double entry_timeout = 60.0;     // seconds the kernel may trust a name
  double attr_timeout = 60.0;      // seconds the kernel may trust attributes
  double negative_timeout = 60.0;  // seconds it may trust "no such name"
  bool writeback_cache = true;
  bool splice = true;
  unsigned max_write = 1U << 20;
};

class UringTransport;

struct FuseContext {
  Overlay* overlay = nullptr;
  UringTransport* transport = nullptr;  // the session's io hooks (and io_uring rings), if installed
  FuseSettings settings;
  CallerGroups groups;

  static FuseContext& From(fuse_req_t req) {
    return *static_cast<FuseContext*>(fuse_req_userdata(req));
  }
};

}  // namespace detourfs::fuseops
