// Syscall wrappers: each converts the return value and errno into a Result.
#include "sys/sys.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace detourfs::sys {
namespace {

Result<void> Check(int rc) {
  if (rc < 0) return Errno{errno};
  return {};
}

Result<UniqueFd> CheckFd(int fd) {
  if (fd < 0) return Errno{errno};
  return UniqueFd(fd);
}

}  // namespace

ProcPath ProcFdPath(int fd) {
  ProcPath p{};
  std::snprintf(p.data(), p.size(), "/proc/self/fd/%d", fd);
  return p;
}

Result<UniqueFd> OpenBeneath(int dirfd, const char* name, int flags, mode_t mode) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW);
  // The kernel rejects a mode without O_CREAT/O_TMPFILE.
  if (flags & (O_CREAT | O_TMPFILE)) how.mode = mode & 07777;  // no S_IFMT bits allowed
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return CheckFd(static_cast<int>(::syscall(SYS_openat2, dirfd, name, &how, sizeof(how))));
}

Result<UniqueFd> Reopen(int fd, int flags) {
  return CheckFd(::open(ProcFdPath(fd).data(), flags | O_CLOEXEC));
}

Result<struct stat> Fstat(int fd) {
  struct stat st {};
  if (::fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) return Errno{errno};
  return st;
}

Result<struct stat> StatAt(int dirfd, const char* name) {
  struct stat st {};
  if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return Errno{errno};
  return st;
}

Result<void> MkdirAt(int dirfd, const char* name, mode_t mode) {
  return Check(::mkdirat(dirfd, name, mode));
}

Result<void> MknodAt(int dirfd, const char* name, mode_t mode, dev_t rdev) {
  return Check(::mknodat(dirfd, name, mode, rdev));
}

Result<void> SymlinkAt(const char* target, int dirfd, const char* name) {
  return Check(::symlinkat(target, dirfd, name));
}

Result<void> LinkFd(int fd, int newdirfd, const char* newname) {
  // AT_SYMLINK_FOLLOW on the /proc magic link links the inode itself, even a
  // symlink; AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH.
  return Check(::linkat(AT_FDCWD, ProcFdPath(fd).data(), newdirfd, newname, AT_SYMLINK_FOLLOW));
}

Result<void> UnlinkAt(int dirfd, const char* name, int flags) {
  return Check(::unlinkat(dirfd, name, flags));
}

Result<void> RenameAt(int olddirfd, const char* oldname, int newdirfd, const char* newname,
                      unsigned int flags) {
  return Check(::renameat2(olddirfd, oldname, newdirfd, newname, flags));
}

Result<std::string> ReadlinkFd(int fd) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = ::readlinkat(fd, "", buf.data(), buf.size());
    if (n < 0) return Errno{errno};
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    if (buf.size() >= (1U << 16)) return Errno{ENAMETOOLONG};
    buf.resize(buf.size() * 2);
  }
}

Result<void> ChownFd(int fd, uid_t uid, gid_t gid) {
  return Check(::fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
}

Result<void> ChmodPath(int fd, mode_t mode) { return Check(::chmod(ProcFdPath(fd).data(), mode)); }

Result<void> TruncatePath(int fd, off_t size) {
  return Check(::truncate(ProcFdPath(fd).data(), size));
}

Result<void> UtimensPath(int fd, const struct timespec times[2]) {
  return Check(::utimensat(AT_FDCWD, ProcFdPath(fd).data(), times, 0));
}

Result<void> UtimensAt(int dirfd, const char* name, const struct timespec times[2]) {
  return Check(::utimensat(dirfd, name, times, AT_SYMLINK_NOFOLLOW));
}

Result<void> Fchmod(int fd, mode_t mode) { return Check(::fchmod(fd, mode)); }
Result<void> Ftruncate(int fd, off_t size) { return Check(::ftruncate(fd, size)); }
Result<void> Futimens(int fd, const struct timespec times[2]) {
  return Check(::futimens(fd, times));
}

Result<void> Fsync(int fd, bool datasync) {
  return Check(datasync ? ::fdatasync(fd) : ::fsync(fd));
}

Result<void> Fallocate(int fd, int mode, off_t offset, off_t length) {
  return Check(::fallocate(fd, mode, offset, length));
}

Result<size_t> CopyFileRange(int fd_in, off_t off_in, int fd_out, off_t off_out, size_t len,
                             unsigned int flags) {
  ssize_t n = ::copy_file_range(fd_in, &off_in, fd_out, &off_out, len, flags);
  if (n < 0) return Errno{errno};
  return static_cast<size_t>(n);
}

Result<off_t> Lseek(int fd, off_t off, int whence) {
  off_t r = ::lseek(fd, off, whence);
  if (r < 0) return Errno{errno};
  return r;
}

Result<size_t> Read(int fd, void* buf, size_t size) {
  for (;;) {
    const ssize_t n = ::read(fd, buf, size);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return Errno{errno};
  }
}

Result<void> WriteAll(int fd, const void* buf, size_t size) {
  const char* p = static_cast<const char*>(buf);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno{errno};
    if (n == 0) return Errno{EIO};
    p += n;
    size -= static_cast<size_t>(n);
  }
  return {};
}

Result<struct statvfs> Fstatvfs(int fd) {
  struct statvfs st {};
  if (::fstatvfs(fd, &st) < 0) return Errno{errno};
  return st;
}

Result<size_t> GetXattr(int fd, const char* name, void* value, size_t size) {
  ssize_t n = ::getxattr(ProcFdPath(fd).data(), name, value, size);
  if (n < 0) return Errno{errno};
  return static_cast<size_t>(n);
}

Result<size_t> ListXattr(int fd, char* list, size_t size) {
  ssize_t n = ::listxattr(ProcFdPath(fd).data(), list, size);
  if (n < 0) return Errno{errno};
  return static_cast<size_t>(n);
}

Result<void> SetXattr(int fd, const char* name, const void* value, size_t size, int flags) {
  return Check(::setxattr(ProcFdPath(fd).data(), name, value, size, flags));
}

Result<void> RemoveXattr(int fd, const char* name) {
  return Check(::removexattr(ProcFdPath(fd).data(), name));
}

}  // namespace detourfs::sys
