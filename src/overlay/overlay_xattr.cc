// Overlay: extended attributes, POSIX ACLs included (system.posix_acl_*).
#include <cstring>
#include <vector>

#include "detourfs/overlay.h"
#include "inodes/resolver.h"
#include "overlay/markers.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

// Linux has no race-free call for a symlink's own xattrs before 6.13, and
// user.* xattrs are not allowed on symlinks anyway: a symlink has none here.
constexpr int kSymlinkNoXattr = ENODATA;

}  // namespace

Result<void> Overlay::CopyUpIno(uint64_t ino) {
  Result<Node*> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  return PrepareChange(*node);
}

Result<SharedFd> Overlay::XattrFd(uint64_t ino) {
  Result<Node*> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  if ((*node)->is_symlink()) return SharedFd();
  return FdOf(*node);
}

Result<size_t> Overlay::GetXattr(uint64_t ino, const char* name, void* value, size_t size) {
  // detourfs's own markers (markers.h) are not the caller's to see.
  if (markers::IsReservedXattr(name)) return Errno{ENODATA};
  Result<SharedFd> fd = XattrFd(ino);
  if (!fd.ok()) return Errno{fd.error()};
  if (!*fd) return Errno{kSymlinkNoXattr};
  return sys::GetXattr((*fd)->get(), name, value, size);
}

Result<size_t> Overlay::ListXattr(uint64_t ino, char* list, size_t size) {
  Result<SharedFd> fd = XattrFd(ino);
  if (!fd.ok()) return Errno{fd.error()};
  if (!*fd) return size_t{0};
  // The list without detourfs's reserved names, so the size asked for with
  // size 0 is the size of what will be returned.
  std::vector<char> all;
  for (;;) {
    Result<size_t> need = sys::ListXattr((*fd)->get(), nullptr, 0);
    if (!need.ok()) return Errno{need.error()};
    all.resize(*need);
    if (*need == 0) return size_t{0};
    Result<size_t> got = sys::ListXattr((*fd)->get(), all.data(), all.size());
    if (got.ok()) {
      all.resize(markers::FilterXattrList(all.data(), *got));
      break;
    }
    if (got.error() != ERANGE) return Errno{got.error()};  // ERANGE: it grew, again
  }
  if (size == 0) return all.size();
  if (size < all.size()) return Errno{ERANGE};
  std::memcpy(list, all.data(), all.size());
  return all.size();
}

Result<void> Overlay::SetXattr(uint64_t ino, const char* name, const void* value, size_t size,
                               int flags, bool kill_sgid) {
  if (markers::IsReservedXattr(name)) return Errno{EPERM};
  DETOURFS_TRY(CopyUpIno(ino));
  LayerLock::Hold layers = layers_.Shared();
  Result<SharedFd> fd = XattrFd(ino);
  if (!fd.ok()) return Errno{fd.error()};
  if (!*fd) return Errno{EPERM};
  const int f = (*fd)->get();
  DETOURFS_TRY(sys::SetXattr(f, name, value, size, flags));
  // Setting the access ACL updated the mode's group bits as root, who keeps
  // S_ISGID; the caller, outside the file's group, would not have.
  if (!kill_sgid || std::strcmp(name, "system.posix_acl_access") != 0) return {};
  Result<struct stat> st = sys::Fstat(f);
  if (!st.ok()) return Errno{st.error()};
  if ((st->st_mode & S_ISGID) == 0) return {};
  return sys::ChmodPath(f, st->st_mode & 07777 & ~S_ISGID);
}

Result<void> Overlay::RemoveXattr(uint64_t ino, const char* name) {
  if (markers::IsReservedXattr(name)) return Errno{EPERM};
  DETOURFS_TRY(CopyUpIno(ino));
  LayerLock::Hold layers = layers_.Shared();
  Result<SharedFd> fd = XattrFd(ino);
  if (!fd.ok()) return Errno{fd.error()};
  if (!*fd) return Errno{kSymlinkNoXattr};
  return sys::RemoveXattr((*fd)->get(), name);
}

}  // namespace detourfs
