// Checks and preparation before mounting: the mountpoint must exist, be a
// directory and not already be a detourfs mount; the lower directory is opened
// (O_PATH) before the mount hides it.
#pragma once

#include <string>

#include "detourfs/result.h"
#include "detourfs/status.h"
#include "detourfs/unique_fd.h"

namespace detourfs {

Status CheckMountpoint(const std::string& mountpoint);
// True if /proc/self/mountinfo lists a fuse.detourfs mount at `path`.
bool IsDetourfsMount(const std::string& path);
Result<UniqueFd> OpenLower(const std::string& path);
// Raises the soft RLIMIT_NOFILE to the hard limit: open files and the fd cache
// draw on it. Nothing depends on it being high: the daemon never keeps an fd
// per inode. Returns the limit in force.
unsigned long RaiseFdLimit();  // NOLINT(runtime/int): rlim_t's width

}  // namespace detourfs
