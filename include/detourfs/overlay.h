// Overlay: the namespace the mount serves, as calls the FUSE adapters make
// with node ids and names, returning Results. An adapter unpacks a request,
// makes one call and replies; everything else is beneath this interface
// (src/overlay/, docs/overlay.md).
//
// The volume (the directory the mount is made over) passes through where no
// routing rule applies; routed subtrees live on a memory or disk tier,
// overlaid on the volume: one merged namespace, whatever layer each name is
// on.
//
// Ownership: a call returning an Entry has taken one lookup reference on
// entry.ino for the kernel; the adapter hands the entry to the kernel or
// calls Forget(entry.ino, 1). Open/Create/OpenDir return handles the adapter
// owns until it passes them to Release/ReleaseDir.
//
// Thread safety: every method may be called concurrently.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "detourfs/caller.h"
#include "detourfs/result.h"

namespace detourfs {

// A node with the attributes to report for it.
struct Entry {
  uint64_t ino = 0;  // the FUSE node id
  struct stat attr {};
};

struct FileHandle;  // an open file (src/overlay/handles.h)
struct DirHandle;   // an open directory

// One directory entry for ReadDir; `entry` is set in plus mode, except for
// "." and "..", which are never looked up.
struct DirEntry {
  std::string_view name;
  ino_t ino = 0;
  mode_t type = 0;  // S_IFMT bits
  off_t next_offset = 0;
  std::optional<Entry> entry;
};

// Which attributes SetAttr changes; a time's tv_nsec may be UTIME_NOW.
struct SetAttrRequest {
  std::optional<mode_t> mode;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<off_t> size;
  std::optional<struct timespec> atime;
  std::optional<struct timespec> mtime;
  // Clear S_ISUID, and S_ISGID if the group may execute, as a write,
  // truncate or chown by a caller without CAP_FSETID does (regular files).
  bool kill_suidgid = false;
};

class Overlay {
 public:
  virtual ~Overlay() = default;

  // Namespace.
  virtual Result<Entry> Lookup(uint64_t parent, std::string_view name) = 0;
  virtual void Forget(uint64_t ino, uint64_t nlookup) = 0;
  virtual Result<Entry> Mknod(uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
                              const Caller& caller) = 0;
  virtual Result<Entry> Mkdir(uint64_t parent, std::string_view name, mode_t mode,
                              const Caller& caller) = 0;
  virtual Result<Entry> Symlink(std::string_view target, uint64_t parent, std::string_view name,
                                const Caller& caller) = 0;
  virtual Result<Entry> Link(uint64_t ino, uint64_t new_parent, std::string_view new_name) = 0;
  virtual Result<void> Unlink(uint64_t parent, std::string_view name) = 0;
  virtual Result<void> Rmdir(uint64_t parent, std::string_view name) = 0;
  // `flags`: 0 or RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT.
  virtual Result<void> Rename(uint64_t parent, std::string_view name, uint64_t new_parent,
                              std::string_view new_name, unsigned int flags,
                              const Caller& caller) = 0;

  // Attributes. `fh`: the open file the kernel named, if any.
  virtual Result<struct stat> GetAttr(uint64_t ino, FileHandle* fh) = 0;
  virtual Result<struct stat> SetAttr(uint64_t ino, const SetAttrRequest& req, FileHandle* fh) = 0;
  virtual Result<std::string> Readlink(uint64_t ino) = 0;
  virtual Result<struct statvfs> StatFs(uint64_t ino) = 0;

  // Files. The returned handle belongs to the caller until Release.
  virtual Result<FileHandle*> Open(uint64_t ino, int flags) = 0;
  // Creates and opens `name`; without O_EXCL a file that exists is opened
  // (with `kill_suidgid`, an O_TRUNC by a caller without CAP_FSETID, it loses
  // setuid and setgid as Open's caller would make it).
  virtual Result<std::pair<Entry, FileHandle*>> Create(uint64_t parent, std::string_view name,
                                                       mode_t mode, int flags, const Caller& caller,
                                                       bool kill_suidgid) = 0;
  virtual void Release(FileHandle* fh) = 0;
  // Reads through `reply(fd, off, size)`, called with the file's fd while
  // the file cannot move (it sends the data; its return value is returned).
  // When the file's data cannot be reached, `reply` is not called and the
  // answer is a negative errno.
  using ReadFn = std::function<int(int fd, off_t off, size_t size)>;
  virtual int Read(FileHandle& fh, off_t off, size_t size, const ReadFn& reply) = 0;
  // Writes `size` bytes at `off` through `write(fd, off, size)` (bytes
  // written or -errno). A full tier does not fail the write: the file's
  // data moves on along its route's fallback chain first.
  using WriteFn = std::function<ssize_t(int fd, off_t off, size_t size)>;
  virtual Result<size_t> Write(FileHandle& fh, off_t off, size_t size, const WriteFn& write) = 0;
  virtual Result<void> Fsync(FileHandle& fh, bool datasync) = 0;
  virtual Result<void> Fallocate(FileHandle& fh, int mode, off_t offset, off_t length) = 0;
  virtual Result<size_t> CopyFileRange(FileHandle& in, off_t off_in, FileHandle& out, off_t off_out,
                                       size_t len, unsigned int flags) = 0;
  virtual Result<off_t> Lseek(FileHandle& fh, off_t off, int whence) = 0;

  // Directories. ReadDir calls `emit` for each entry from `offset` on until
  // it returns false (no room): in plus mode that entry's lookup is undone.
  virtual Result<DirHandle*> OpenDir(uint64_t ino) = 0;
  virtual Result<void> ReadDir(DirHandle& dh, off_t offset, bool plus,
                               const std::function<bool(const DirEntry&)>& emit) = 0;
  virtual void ReleaseDir(DirHandle* dh) = 0;
  virtual Result<void> FsyncDir(DirHandle& dh, bool datasync) = 0;

  // Extended attributes (POSIX ACLs are system.posix_acl_* xattrs). With
  // size 0, Get/List return the size needed. `kill_sgid`: setting the
  // access ACL from outside the file's group without CAP_FSETID clears
  // S_ISGID.
  virtual Result<size_t> GetXattr(uint64_t ino, const char* name, void* value, size_t size) = 0;
  virtual Result<size_t> ListXattr(uint64_t ino, char* list, size_t size) = 0;
  virtual Result<void> SetXattr(uint64_t ino, const char* name, const void* value, size_t size,
                                int flags, bool kill_sgid) = 0;
  virtual Result<void> RemoveXattr(uint64_t ino, const char* name) = 0;

  // Counts for status and tests.
  virtual size_t NodeCount() = 0;
  virtual size_t CachedFds() = 0;
  // Starts background work (the trash drain, the tiers' periodic sync). Not
  // part of opening: the daemon forks into the background after the mount
  // and before serving, and a fork keeps only the thread that called it.
  virtual void StartBackground() = 0;
  // Stops background work (the session has ended) and syncs the tiers.
  virtual void Shutdown() = 0;
};

}  // namespace detourfs
