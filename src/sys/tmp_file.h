// TmpFile: a regular file filled in a directory before it is linked in
// whole under its real name, so no reader ever sees it half-written.
// O_TMPFILE where the filesystem has it; where it has not (a FUSE or
// network filesystem answers EOPNOTSUPP) a file under a private name
// (kTmpfilePrefix) in the same directory, removed once it is linked in or
// dropped. A crash can leave such a name behind: IsTmpfileName tells it.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "detourfs/result.h"
#include "detourfs/unique_fd.h"

namespace detourfs::sys {

inline constexpr std::string_view kTmpfilePrefix = ".detourfs-tmp.";
inline bool IsTmpfileName(std::string_view name) { return name.starts_with(kTmpfilePrefix); }

class TmpFile {
 public:
  TmpFile() = default;
  TmpFile(TmpFile&& other) noexcept;
  TmpFile& operator=(TmpFile&& other) noexcept;
  TmpFile(const TmpFile&) = delete;
  TmpFile& operator=(const TmpFile&) = delete;
  ~TmpFile();

  int get() const { return fd_.get(); }
  // Links the file in as `name` in `dirfd` (EEXIST when taken); a private
  // name goes once the file has its new one.
  Result<void> Link(int dirfd, const char* name);

 private:
  friend Result<TmpFile> OpenTmpfile(int dirfd, mode_t mode);
  void DropName();

  UniqueFd fd_;
  int dir_ = -1;      // the directory of the private name (the caller's fd)
  std::string name_;  // the private name; empty for O_TMPFILE
};

// A TmpFile opened O_RDWR in `dirfd`, which must outlive it.
Result<TmpFile> OpenTmpfile(int dirfd, mode_t mode);

// Replaces the small file `name` in `dirfd` durably: `bytes` written to a
// new file, synced, renamed over `name` (via `name`.new), the directory
// synced. A crash leaves the old content or the new, never a mix.
Result<void> ReplaceFileDurably(int dirfd, const std::string& name, std::string_view bytes,
                                mode_t mode);

}  // namespace detourfs::sys
