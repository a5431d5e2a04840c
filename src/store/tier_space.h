// How full a tier is: its capacity (the configured one, or its filesystem's
// size when that is smaller or none is set) against what its filesystem
// uses. The overlay asks before writing into a tier and spills to the
// volume when the answer is "full"; statfs on a routed path reports these
// numbers.
#pragma once

#include <sys/statvfs.h>

#include <chrono>
#include <cstdint>
#include <mutex>

#include "detourfs/result.h"
#include "detourfs/unique_fd.h"
#include "inodes/node.h"
#include "store/layer.h"

namespace detourfs {

class TierSpace {
 public:
  // `root`: any fd on the tier's filesystem. `capacity` 0: the filesystem's
  // size.
  TierSpace(SharedFd root, uint64_t capacity, double high_watermark);

  struct Usage {
    uint64_t capacity = 0;  // bytes the tier may hold
    uint64_t used = 0;      // bytes its filesystem holds
    uint64_t fs_free = 0;   // bytes its filesystem still has (for unprivileged users)
    uint64_t files = 0;     // inodes, as the filesystem reports them
    uint64_t files_free = 0;
    uint64_t block_size = 4096;
  };
  // The numbers now (statvfs, at most every 100 ms; writes since counted).
  Result<Usage> Read();
  // Whether `bytes` more would take the tier past its capacity or its
  // filesystem past full; counted as used when not.
  bool Admit(uint64_t bytes);
  // Whether the tier is filled past its high watermark.
  bool AboveHighWatermark();
  // The tier's numbers in statvfs form: blocks = capacity, free = what is
  // left of it (never more than the filesystem has).
  Result<struct statvfs> StatFs();
  // Whether the tier may share its filesystem: a capacity is set and is
  // smaller than the filesystem. Its usage is then not the filesystem's.
  bool MayShareFilesystem();
  // The tier's own trees take `own` bytes now (DiskUsage at start): the
  // rest of what the filesystem holds is someone else's, and is not counted
  // as the tier's from now on (what the filesystem gains later is).
  Result<void> SetOwnUsage(uint64_t own);

 private:
  // Requires mu_. `raw`, if given, gets the statvfs read (force reads one).
  Result<Usage> RefreshLocked(bool force, struct statvfs* raw = nullptr);

  const SharedFd root_;
  const uint64_t configured_;
  const double high_watermark_;
  std::mutex mu_;
  uint64_t others_ = 0;                            // guarded by mu_: bytes not the tier's
  Usage usage_;                                    // guarded by mu_
  uint64_t since_refresh_ = 0;                     // guarded by mu_: bytes admitted since
  std::chrono::steady_clock::time_point read_at_;  // guarded by mu_
  bool read_ = false;                              // guarded by mu_
};

}  // namespace detourfs
