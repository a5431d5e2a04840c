// Walking trees on one backing filesystem (a tier or the volume): listing a
// directory with getdents64, removing a whole subtree. For merged listings,
// tree moves and spills.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "detourfs/result.h"
#include "detourfs/unique_fd.h"
#include "sys/sys.h"

namespace detourfs {

// Calls `fn(name, d_ino, d_type)` for each entry of the directory `dirfd`
// (an O_PATH fd: reopened for reading), "." and ".." skipped.
template <typename Fn>
Result<void> ForEachEntry(int dirfd, Fn fn) {
  Result<UniqueFd> dir = sys::Reopen(dirfd, O_RDONLY | O_DIRECTORY);
  if (!dir.ok()) return Errno{dir.error()};
  std::vector<char> buf(size_t{32} * 1024);
  for (;;) {
    long n = ::syscall(SYS_getdents64, dir->get(), buf.data(), buf.size());
    if (n < 0) return Errno{errno};
    if (n == 0) return {};
    for (long pos = 0; pos < n;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf.data() + pos);
      pos += d->d_reclen;
      std::string_view name(d->d_name);
      if (name == "." || name == "..") continue;
      DETOURFS_TRY(fn(name, d->d_ino, static_cast<mode_t>(d->d_type) << 12));
    }
  }
}

// The names in the directory `dirfd` (O_PATH is fine), "." and ".." skipped:
// for walks that change the directory as they go.
Result<std::vector<std::string>> EntryNames(int dirfd);

// Removes `name` in `dirfd` and, for a directory, everything beneath it,
// never following a symlink. `removing`, if given, is told each entry just
// before it goes — its directory, name and stat — so nodes bound to those
// files can let go of them before the filesystem gives their inode numbers
// to new files, and a stub's spilled data can go with it.
using RemovedFn = std::function<void(int dirfd, const char* name, const struct stat&)>;
Result<void> RemoveTreeAt(int dirfd, const char* name, const RemovedFn& removing = nullptr);

// The bytes the tree under the directory `dirfd` takes on its filesystem
// (st_blocks, each file once however many links it has), as du counts.
Result<uint64_t> DiskUsage(int dirfd);

// After a directory tree lands at a new path on a tier (`upper_dir`), with
// `volume_dir` the volume's directory at that path: each subdirectory whose
// name the volume also has becomes opaque, at every depth, so none of the
// volume's old content there shows through.
Result<void> HideVolumeBeneath(int upper_dir, int volume_dir);

}  // namespace detourfs
