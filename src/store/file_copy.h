// Copying files between layers: data (holes kept where the source has them),
// extended attributes, owner, mode and times. Copy-up, spills and moves
// across layers use these; each result is built unnamed or aside and
// published whole by the change layer.
#pragma once

#include <sys/stat.h>

#include <cstdint>

#include "detourfs/result.h"
#include "detourfs/unique_fd.h"
#include "sys/tmp_file.h"

namespace detourfs {

// Copies the data of `in` to `out` (open fds; both from offset 0) and sets
// `out`'s size to `size`: data segments found with SEEK_DATA/SEEK_HOLE are
// copied with copy_file_range (plain reads and writes across filesystems),
// holes stay holes.
Result<void> CopyData(int in, int out, off_t size);

// The XXH3 digest of all the bytes of an open file (read from offset 0),
// and how many there were. A copy on the volume, which is known to lose
// fresh writes, is read back and compared with its source's this way
// before the source goes.
struct DataDigest {
  uint64_t hash = 0;
  off_t size = 0;
  bool operator==(const DataDigest&) const = default;
};
Result<DataDigest> DigestOf(int fd);

// Copies the xattrs of `from` to `to` (O_PATH fds are fine), skipping
// detourfs's reserved ones and those the target does not support.
Result<void> CopyXattrs(int from, int to);

// Gives the open file `fd` the owner, mode and times of `st` (owner first:
// chown clears setuid).
Result<void> CopyOwnerModeTimes(int fd, const struct stat& st);

// An unnamed, complete copy of the regular file `src` (an O_PATH fd, stat
// `st`) as an O_TMPFILE in the directory `tmp_dir`: data (read from `data`,
// an open fd, when the data lives elsewhere, e.g. a spill store), xattrs,
// owner, mode and times. Not yet synced.
Result<sys::TmpFile> CopyToTmpfile(int src, int data, const struct stat& st, int tmp_dir);

// Makes `name` in `dirfd` a copy of the symlink, device, fifo or socket
// `src` (O_PATH, stat `st`): target or device, owner, mode, xattrs.
Result<void> CopySpecial(int src, const struct stat& st, int dirfd, const char* name);

}  // namespace detourfs
