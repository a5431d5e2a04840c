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
// The parent directory of the directory `fd` (".."; O_PATH): for walks of
// trees the daemon owns, which check the result's identity.
Result<UniqueFd> OpenParent(int fd);
// open(2) of an absolute path (configured directories at start-up only).
Result<UniqueFd> OpenPath(const char* path, int flags, mode_t mode = 0);
// F_DUPFD_CLOEXEC.
Result<UniqueFd> Dup(int fd);
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
// pread(2) / pwrite(2) until all is written, retried on EINTR.
Result<size_t> PRead(int fd, void* buf, size_t size, off_t off);
Result<void> PWriteAll(int fd, const void* buf, size_t size, off_t off);
// read(2), retried on EINTR: the bytes read, 0 at the end.
Result<size_t> Read(int fd, void* buf, size_t size);
// Everything left to read from `fd`, to its end.
Result<std::string> ReadAll(int fd);
// write(2) until all of `size` is written, retried on EINTR.
Result<void> WriteAll(int fd, const void* buf, size_t size);
Result<struct statvfs> Fstatvfs(int fd);

// Extended attributes of what an O_PATH fd refers to (not for symlinks: Linux
// before 6.13 has no race-free call for a symlink's own xattrs).
Result<size_t> GetXattr(int fd, const char* name, void* value, size_t size);
Result<size_t> ListXattr(int fd, char* list, size_t size);
Result<void> SetXattr(int fd, const char* name, const void* value, size_t size, int flags);
Result<void> RemoveXattr(int fd, const char* name);
// The xattr `attr` of `name` in `dirfd`, never following a symlink (a
// symlink's own xattrs): getxattrat(2) on Linux 6.13+, else lgetxattr(2)
// through the directory's /proc path. For lookups and listings, which read
// one xattr of many names without opening each.
Result<size_t> GetXattrAt(int dirfd, const char* name, const char* attr, void* value, size_t size);

// Sets or removes the xattr `attr` of `name` in `dirfd`, never following a
// symlink (setxattrat(2) on 6.13+, else lsetxattr through /proc).
Result<void> SetXattrAt(int dirfd, const char* name, const char* attr, const void* value,
                        size_t size, int flags);

// link(2) of `oldname` in `olddirfd` as `newname` in `newdirfd`, never
// following a symlink.
Result<void> LinkAt(int olddirfd, const char* oldname, int newdirfd, const char* newname);
Result<void> Syncfs(int fd);
// flock(2) of an open (not O_PATH) fd.
Result<void> Flock(int fd, int operation);
// fsync of a directory held as an O_PATH fd (reopened for reading: fsync
// refuses O_PATH fds).
Result<void> SyncDir(int dirfd);
Result<void> Fadvise(int fd, off_t offset, off_t len, int advice);
Result<void> Fchown(int fd, uid_t uid, gid_t gid);  // an open (not O_PATH) fd
// getdents64 into `buf`: the bytes filled, 0 at the end.
Result<size_t> Getdents(int fd, char* buf, size_t size);

// A file handle (name_to_handle_at) for `name` in `dirfd`, as opaque bytes
// (struct file_handle, header included): survives renames of the file, so a
// tier can name the volume file it stands for.
Result<std::string> NameToHandle(int dirfd, const char* name);
// Opens the file a handle from NameToHandle names, on the filesystem of
// `mount_fd` (needs CAP_DAC_READ_SEARCH). ESTALE when it is gone.
Result<UniqueFd> OpenByHandle(int mount_fd, const std::string& handle, int flags);

// Per-thread credentials (raw syscalls: glibc would apply setgroups to every
// thread of the process). Each returns the id in effect before.
uid_t SetFsuid(uid_t uid);
gid_t SetFsgid(gid_t gid);
Result<void> SetThreadGroups(const gid_t* groups, size_t count);
Result<size_t> GetThreadGroups(gid_t* groups, size_t max);

}  // namespace detourfs::sys
