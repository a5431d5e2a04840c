// Syscall wrappers: each converts the return value and errno into a Result.
#include "sys/sys.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>

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

Result<UniqueFd> OpenParent(int fd) {
  return CheckFd(::openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
}

Result<UniqueFd> OpenPath(const char* path, int flags, mode_t mode) {
  return CheckFd(::open(path, flags | O_CLOEXEC, mode));
}

Result<UniqueFd> Dup(int fd) { return CheckFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

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

Result<std::string> ReadAll(int fd) {
  std::string out;
  char buf[8192];
  for (;;) {
    Result<size_t> n = Read(fd, buf, sizeof(buf));
    if (!n.ok()) return Errno{n.error()};
    if (*n == 0) return out;
    out.append(buf, *n);
  }
}

Result<size_t> PRead(int fd, void* buf, size_t size, off_t off) {
  for (;;) {
    const ssize_t n = ::pread(fd, buf, size, off);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return Errno{errno};
  }
}

Result<void> PWriteAll(int fd, const void* buf, size_t size, off_t off) {
  const char* p = static_cast<const char*>(buf);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, p, size, off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno{errno};
    if (n == 0) return Errno{EIO};
    p += n;
    off += n;
    size -= static_cast<size_t>(n);
  }
  return {};
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

namespace {

// getxattrat(2), Linux 6.13: the same number on every architecture.
constexpr long kSysGetxattrat = 464;
struct XattrArgs {  // struct xattr_args of <linux/xattr.h>, 6.13
  uint64_t value;
  uint32_t size;
  uint32_t flags;
};

}  // namespace

Result<size_t> GetXattrAt(int dirfd, const char* name, const char* attr, void* value, size_t size) {
  // Whether this kernel has getxattrat: a property of the running kernel,
  // learnt once (ENOSYS does not change while the process lives).
  static std::atomic<bool> have_at{true};
  if (have_at.load(std::memory_order_relaxed)) {
    XattrArgs args{reinterpret_cast<uint64_t>(value), static_cast<uint32_t>(size), 0};
    const long n =
        ::syscall(kSysGetxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, attr, &args, sizeof(args));
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != ENOSYS) return Errno{errno};
    have_at.store(false, std::memory_order_relaxed);
  }
  char path[64 + NAME_MAX];
  const int len = std::snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
  if (len < 0 || static_cast<size_t>(len) >= sizeof(path)) return Errno{ENAMETOOLONG};
  const ssize_t n = ::lgetxattr(path, attr, value, size);
  if (n < 0) return Errno{errno};
  return static_cast<size_t>(n);
}

Result<void> SetXattrAt(int dirfd, const char* name, const char* attr, const void* value,
                        size_t size, int flags) {
  static std::atomic<bool> have_at{true};
  constexpr long kSysSetxattrat = 463;
  if (have_at.load(std::memory_order_relaxed)) {
    XattrArgs args{reinterpret_cast<uint64_t>(value), static_cast<uint32_t>(size),
                   static_cast<uint32_t>(flags)};
    const long rc =
        ::syscall(kSysSetxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, attr, &args, sizeof(args));
    if (rc == 0) return {};
    if (errno != ENOSYS) return Errno{errno};
    have_at.store(false, std::memory_order_relaxed);
  }
  char path[64 + NAME_MAX];
  const int len = std::snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
  if (len < 0 || static_cast<size_t>(len) >= sizeof(path)) return Errno{ENAMETOOLONG};
  return Check(::lsetxattr(path, attr, value, size, flags));
}

Result<void> LinkAt(int olddirfd, const char* oldname, int newdirfd, const char* newname) {
  return Check(::linkat(olddirfd, oldname, newdirfd, newname, 0));
}

Result<void> Flock(int fd, int operation) { return Check(::flock(fd, operation)); }

Result<void> Syncfs(int fd) {
  // syncfs refuses O_PATH fds too: through /proc.
  UniqueFd own;
  if (::fcntl(fd, F_GETFL) & O_PATH) {
    Result<UniqueFd> r = Reopen(fd, O_RDONLY | O_DIRECTORY);
    if (!r.ok()) return Errno{r.error()};
    own = std::move(*r);
    fd = own.get();
  }
  return Check(::syncfs(fd));
}

Result<void> SyncDir(int dirfd) {
  Result<UniqueFd> dir = Reopen(dirfd, O_RDONLY | O_DIRECTORY);
  if (!dir.ok()) return Errno{dir.error()};
  return Check(::fsync(dir->get()));
}

Result<void> Fadvise(int fd, off_t offset, off_t len, int advice) {
  const int rc = ::posix_fadvise(fd, offset, len, advice);  // returns the error, not -1
  if (rc != 0) return Errno{rc};
  return {};
}

Result<void> Fchown(int fd, uid_t uid, gid_t gid) { return Check(::fchown(fd, uid, gid)); }

Result<size_t> Getdents(int fd, char* buf, size_t size) {
  const long n = ::syscall(SYS_getdents64, fd, buf, size);
  if (n < 0) return Errno{errno};
  return static_cast<size_t>(n);
}

Result<std::string> NameToHandle(int dirfd, const char* name) {
  std::string buf(sizeof(struct file_handle) + MAX_HANDLE_SZ, '\0');
  auto* fh = reinterpret_cast<struct file_handle*>(buf.data());
  fh->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  const int flags = name[0] == '\0' ? AT_EMPTY_PATH : 0;
  if (::name_to_handle_at(dirfd, name, fh, &mount_id, flags) < 0) return Errno{errno};
  buf.resize(sizeof(struct file_handle) + fh->handle_bytes);
  return buf;
}

Result<UniqueFd> OpenByHandle(int mount_fd, const std::string& handle, int flags) {
  if (handle.size() < sizeof(struct file_handle)) return Errno{EINVAL};
  std::string copy = handle;  // open_by_handle_at takes a non-const handle
  auto* fh = reinterpret_cast<struct file_handle*>(copy.data());
  if (sizeof(struct file_handle) + fh->handle_bytes != copy.size()) return Errno{EINVAL};
  Result<UniqueFd> fd = CheckFd(::open_by_handle_at(mount_fd, fh, flags | O_CLOEXEC));
  if (fd.ok() || fd.error() != EBADF) return fd;
  // An O_PATH mount_fd is refused: a real one for the same directory.
  const std::string self = "/proc/self/fd/" + std::to_string(mount_fd);
  Result<UniqueFd> real = CheckFd(::open(self.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!real.ok()) return Errno{EBADF};
  return CheckFd(::open_by_handle_at(real->get(), fh, flags | O_CLOEXEC));
}

uid_t SetFsuid(uid_t uid) { return static_cast<uid_t>(::setfsuid(uid)); }
gid_t SetFsgid(gid_t gid) { return static_cast<gid_t>(::setfsgid(gid)); }

Result<void> SetThreadGroups(const gid_t* groups, size_t count) {
  return Check(static_cast<int>(::syscall(SYS_setgroups, count, groups)));
}

Result<size_t> GetThreadGroups(gid_t* groups, size_t max) {
  const long n = ::syscall(SYS_getgroups, max, groups);
  if (n < 0) return Errno{errno};
  return static_cast<size_t>(n);
}

}  // namespace detourfs::sys
