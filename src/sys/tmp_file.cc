// TmpFile (tmp_file.h).
#include "sys/tmp_file.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <utility>

#include "sys/sys.h"

namespace detourfs::sys {

TmpFile::TmpFile(TmpFile&& other) noexcept
    : fd_(std::move(other.fd_)), dir_(other.dir_), name_(std::move(other.name_)) {
  other.dir_ = -1;
  other.name_.clear();
}

TmpFile& TmpFile::operator=(TmpFile&& other) noexcept {
  if (this != &other) {
    DropName();
    fd_ = std::move(other.fd_);
    dir_ = other.dir_;
    name_ = std::move(other.name_);
    other.dir_ = -1;
    other.name_.clear();
  }
  return *this;
}

TmpFile::~TmpFile() { DropName(); }

void TmpFile::DropName() {
  if (!name_.empty()) (void)UnlinkAt(dir_, name_.c_str(), 0);
  name_.clear();
}

Result<void> TmpFile::Link(int dirfd, const char* name) {
  if (name_.empty()) return LinkFd(fd_.get(), dirfd, name);
  DETOURFS_TRY(LinkAt(dir_, name_.c_str(), dirfd, name));
  DropName();
  return {};
}

Result<TmpFile> OpenTmpfile(int dirfd, mode_t mode) {
  TmpFile t;
  const int fd = ::openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode & 07777);
  if (fd >= 0) {
    t.fd_ = UniqueFd(fd);
    return t;
  }
  // EISDIR: a kernel without O_TMPFILE opened the directory instead.
  if (errno != EOPNOTSUPP && errno != EISDIR) return Errno{errno};
  for (int tries = 0; tries < 8; ++tries) {
    uint64_t token = 0;
    if (::getrandom(&token, sizeof(token), 0) != static_cast<ssize_t>(sizeof(token))) {
      return Errno{EIO};
    }
    char name[64];
    std::snprintf(name, sizeof(name), "%.*s%016" PRIx64, static_cast<int>(kTmpfilePrefix.size()),
                  kTmpfilePrefix.data(), token);
    const int named =
        ::openat(dirfd, name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, mode & 07777);
    if (named >= 0) {
      t.fd_ = UniqueFd(named);
      t.dir_ = dirfd;
      t.name_ = name;
      return t;
    }
    if (errno != EEXIST) return Errno{errno};
  }
  return Errno{EEXIST};
}

Result<void> ReplaceFileDurably(int dirfd, const std::string& name, std::string_view bytes,
                                mode_t mode) {
  Result<TmpFile> tmp = OpenTmpfile(dirfd, mode);
  if (!tmp.ok()) return Errno{tmp.error()};
  DETOURFS_TRY(WriteAll(tmp->get(), bytes.data(), bytes.size()));
  DETOURFS_TRY(Fsync(tmp->get(), true));
  const std::string aside = name + ".new";
  if (Result<void> r = UnlinkAt(dirfd, aside.c_str(), 0); !r.ok() && r.error() != ENOENT) return r;
  DETOURFS_TRY(tmp->Link(dirfd, aside.c_str()));
  DETOURFS_TRY(RenameAt(dirfd, aside.c_str(), dirfd, name.c_str(), 0));
  return SyncDir(dirfd);
}

}  // namespace detourfs::sys
