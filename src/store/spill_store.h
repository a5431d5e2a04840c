// SpillStore: where the data of memory-tier files goes when the memory tier
// is full and the route falls back to the disk tier. A directory on the disk
// tier (<disk root>/spill, beside its upper tree) holds one file per spilled
// file, named by a random 64-bit token in hex; the file's stub on the memory
// tier carries the token (markers.h). Files are reached by token only, never
// by a path through the mount.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "detourfs/inode_table.h"
#include "detourfs/result.h"
#include "detourfs/unique_fd.h"

namespace detourfs {

class SpillStore {
 public:
  // `dir`: an O_PATH fd on the store's directory.
  explicit SpillStore(SharedFd dir) : dir_(std::move(dir)) {}

  int dir() const { return dir_->get(); }
  const SharedFd& dir_fd() const { return dir_; }

  // A fresh token (never 0), from the kernel's random pool.
  static uint64_t NewToken();
  // The file name a token's data has in the store: 16 hex digits.
  static std::string NameOf(uint64_t token);
  // The token a store file name stands for; 0 for any other name.
  static uint64_t TokenOf(const std::string& name);

  // The data of `token`, opened with `flags` (O_PATH, O_RDWR, ...), never
  // through a symlink. ENOENT when the store has none.
  Result<UniqueFd> Open(uint64_t token, int flags) const;
  // Removes the data of `token` (its open fds keep it readable).
  Result<void> Remove(uint64_t token) const;
  // Every token the store holds data for.
  Result<std::vector<uint64_t>> Tokens() const;

 private:
  SharedFd dir_;
};

}  // namespace detourfs
