// TreeWalk: an iterative walk over up to four parallel directory trees
// (the tiers' parts, the volume's part, a copy being built) that never recurses
// and never holds more than a few fds, however deep the tree: a user can
// make a tree 10,000 levels deep, and the daemon's fd limit may be 1,024.
//
// Each directory is listed once when entered (ListFn: by default getdents of
// the first tree), its entries visited in order. Directories above the
// window of the deepest levels keep no fd while their subdirectories are
// walked (except on a tree the level below lacks: at most one such fd per
// tree); on the way back up the walk reopens a parent with
// openat(child, "..") and checks it is the same directory (dev, ino) it
// left, so a tree moved or changed underneath stops the walk with ESTALE
// instead of acting on something else.
#pragma once

#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "detourfs/result.h"
#include "detourfs/unique_fd.h"

namespace detourfs {

inline constexpr size_t kWalkTrees = 4;

// One entry of a listed directory.
struct WalkItem {
  std::string name;
  mode_t type = 0;   // S_IFMT bits (S_IFDIR: the walk may descend)
  uint64_t tag = 0;  // the lister's own note (e.g. which tree it came from)
  // Trees (bit t) whose directory of this name is not part of this one:
  // the walk does not go into them.
  unsigned apart = 0;
};

// The directory being walked, on each tree (fd -1 where a tree has no
// directory at this path).
struct WalkDir {
  std::array<int, kWalkTrees> fds{-1, -1, -1, -1};
  const std::string* path = nullptr;  // relative to the roots, "" at the top
  size_t depth = 0;
  const WalkItem* self = nullptr;  // how this directory was listed (null at the top)
};

struct WalkCallbacks {
  // Lists a directory; default: every entry of fds[0] (d_type; DT_UNKNOWN
  // entries are lstat'ed).
  std::function<Result<std::vector<WalkItem>>(const WalkDir&)> list;
  // Called for every entry, before a directory's contents. Return true to
  // descend into a directory item (it may make the directory on the other
  // trees first). Errors stop the walk.
  std::function<Result<bool>(const WalkDir& parent, const WalkItem& item)> visit;
  // Called for a directory after its contents (e.g. to remove it).
  std::function<Result<void>(const WalkDir& parent, const WalkItem& item)> leave;
};

// Walks the trees under `roots` (directory fds; -1 for a tree not there).
Result<void> WalkTrees(std::array<int, kWalkTrees> roots, const WalkCallbacks& callbacks);

// Every entry of the directory `dirfd` (O_PATH is fine), "." and ".."
// skipped.
Result<std::vector<WalkItem>> ListDir(int dirfd);

// Removes `name` in `dirfd` and everything beneath it, never following a
// symlink. `removing`, if given, is told of each entry just before it goes:
// a non-directory before its unlink (a stub's spilled data goes first), a
// directory once its contents are gone, before its rmdir (a directory that
// still holds a kept entry is not offered). When it answers true the entry
// is not removed (moved away, or kept: a kept entry's directory then stays
// too, ENOTEMPTY).
using RemovingFn = std::function<bool(int dirfd, const char* name, const struct stat&)>;
Result<void> RemoveTree(int dirfd, const char* name, const RemovingFn& removing = nullptr);

// The bytes the tree under the directory `dirfd` takes (st_blocks, each file
// once however many links it has), as du counts.
Result<uint64_t> DiskUsage(int dirfd);

}  // namespace detourfs
