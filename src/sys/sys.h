// Thin wrappers over the *at() syscalls the daemon uses. Each returns a Result
// made straight from the call's return value and errno; no code above this
// layer reads errno. Every fd returned is O_CLOEXEC. Names are single path
// components resolved beneath a directory fd and never through a symlink.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <array>
#include <string>

#include "detourfs/result.h"
#include "detourfs/unique_fd.h"

namespace detourfs::sys {

// "/proc/self/fd/N": reaches what an O_PATH fd refers to with path-only calls.
using ProcPath = std::array<char, 32>;
ProcPath ProcFdPath(int fd);

// openat2(dirfd, name, flags | O_CLOEXEC | O_NOFOLLOW) with RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: `name` cannot escape `dirfd`
// and no symlink is followed, the last component included (with O_PATH the
// symlink itself is opened).
Result<UniqueFd> OpenBeneath(int dirfd, const char* name, int flags, mode_t mode = 0);
// Opens what the O_PATH fd `fd` refers to with real access `flags`.
Result<UniqueFd> Reopen(int fd, int flags);

Result<struct stat> Fstat(int fd);                        // works on O_PATH fds, symlinks included
Result<struct stat> StatAt(int dirfd, const char* name);  // never follows

Result<void> MkdirAt(int dirfd, const char* name, mode_t mode);
Result<void> MknodAt(int dirfd, const char* name, mode_t mode, dev_t rdev);
Result<void> SymlinkAt(const char* target, int dirfd, const char* name);
Result<void> LinkFd(int fd, int newdirfd, const char* newname);
Result<void> UnlinkAt(int dirfd, const char* name, int flags);
Result<void> RenameAt(int olddirfd, const char* oldname, int newdirfd, const char* newname,
                      unsigned int flags);
Result<std::string> ReadlinkFd(int fd);

// Metadata by O_PATH fd (through /proc for the calls that need a real file).
Result<void> ChownFd(int fd, uid_t uid, gid_t gid);  // -1 keeps a field
Result<void> ChmodPath(int fd, mode_t mode);
Result<void> TruncatePath(int fd, off_t size);
Result<void> UtimensPath(int fd, const struct timespec times[2]);
Result<void> UtimensAt(int dirfd, const char* name, const struct timespec times[2]);

// Calls on an open (non-O_PATH) fd.
Result<void> Fchmod(int fd, mode_t mode);
Result<void> Ftruncate(int fd, off_t size);
Result<void> Futimens(int fd, const struct timespec times[2]);
Result<void> Fsync(int fd, bool datasync);
Result<void> Fallocate(int fd, int mode, off_t offset, off_t length);
Result<size_t> CopyFileRange(int fd_in, off_t off_in, int fd_out, off_t off_out, size_t len,
                             unsigned int flags);
Result<off_t> Lseek(int fd, off_t off, int whence);
// read(2), retried on EINTR: the bytes read, 0 at the end.
Result<size_t> Read(int fd, void* buf, size_t size);
// write(2) until all of `size` is written, retried on EINTR.
Result<void> WriteAll(int fd, const void* buf, size_t size);
Result<struct statvfs> Fstatvfs(int fd);

// Extended attributes of what an O_PATH fd refers to (not for symlinks: Linux
// before 6.13 has no race-free call for a symlink's own xattrs).
Result<size_t> GetXattr(int fd, const char* name, void* value, size_t size);
Result<size_t> ListXattr(int fd, char* list, size_t size);
Result<void> SetXattr(int fd, const char* name, const void* value, size_t size, int flags);
Result<void> RemoveXattr(int fd, const char* name);

}  // namespace detourfs::sys
