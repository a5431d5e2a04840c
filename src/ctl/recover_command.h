// `detourctl recover DIR`: offline recovery of a volume's flush epochs
// (docs/flush.md, "Recovery"), for a volume detourfs is gone from or not
// running on. A mounted detourfs recovers at start instead.
#pragma once

#include <cstdint>
#include <string>

namespace detourfs::ctl {

// Exit codes of detourctl (docs/detourctl.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitUnfinished = 1;  // an epoch could not be finished
inline constexpr int kExitUsage = 2;
inline constexpr int kExitCannot = 3;  // the directory or its flush area cannot be read

// Recovers the volume at `dir`, printing what was done; returns the exit
// code. With `discard` (an epoch number, 0: none) that epoch is discarded
// instead, committed or not: the way out when one cannot be finished.
int RunRecover(const std::string& dir, uint64_t discard);

}  // namespace detourfs::ctl
