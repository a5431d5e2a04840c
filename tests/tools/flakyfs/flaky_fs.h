// FlakyFs: the pass-through operations of flakyfs (libfuse's high-level,
// path-based API), each asking the FaultPlan first, and making its change
// through the PowerCutModel when durability is modelled.
//
// A test tool, not a product: it runs as root, serves a source directory
// through a directory fd opened before the mount (so it can mount in place),
// and aims for faithful pass-through of data and metadata, not for full
// multi-user POSIX semantics (new files are chowned to the caller; that is all).
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse.h>

#include "fault_plan.h"
#include "open_handles.h"
#include "power_cut_model.h"

namespace flakyfs {

struct FlakyFs {
  int source_fd = -1;
  double cache_timeout = 0;  // kernel attr/entry timeout; 0 shows every fault
  FaultPlan plan;
  PowerCutModel model;
  OpenHandles<FileHandle> files;
  OpenHandles<DirHandle> dirs;
};

// The operations table; fuse_new's private data must be a FlakyFs*.
const fuse_operations& FlakyOperations();

}  // namespace flakyfs
