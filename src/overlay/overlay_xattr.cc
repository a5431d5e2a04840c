// Overlay: extended attributes, POSIX ACLs included (system.posix_acl_*).
#include "detourfs/overlay.h"
#include "inodes/resolver.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

// Linux has no race-free call for a symlink's own xattrs before 6.13, and
// user.* xattrs are not allowed on symlinks anyway: a symlink has none here.
constexpr int kSymlinkNoXattr = ENODATA;

}  // namespace

Result<size_t> Overlay::GetXattr(uint64_t ino, const char* name, void* value, size_t size) {
  Result<Node*> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  if ((*node)->is_symlink()) return Errno{kSymlinkNoXattr};
  Result<SharedFd> fd = FdOf(*node);
  if (!fd.ok()) return Errno{fd.error()};
  return sys::GetXattr((*fd)->get(), name, value, size);
}

Result<size_t> Overlay::ListXattr(uint64_t ino, char* list, size_t size) {
  Result<Node*> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  if ((*node)->is_symlink()) return size_t{0};
  Result<SharedFd> fd = FdOf(*node);
  if (!fd.ok()) return Errno{fd.error()};
  return sys::ListXattr((*fd)->get(), list, size);
}

Result<void> Overlay::SetXattr(uint64_t ino, const char* name, const void* value, size_t size,
                               int flags) {
  Result<Node*> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  if ((*node)->is_symlink()) return Errno{EPERM};
  Result<SharedFd> fd = FdOf(*node);
  if (!fd.ok()) return Errno{fd.error()};
  return sys::SetXattr((*fd)->get(), name, value, size, flags);
}

Result<void> Overlay::RemoveXattr(uint64_t ino, const char* name) {
  Result<Node*> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  if ((*node)->is_symlink()) return Errno{kSymlinkNoXattr};
  Result<SharedFd> fd = FdOf(*node);
  if (!fd.ok()) return Errno{fd.error()};
  return sys::RemoveXattr((*fd)->get(), name);
}

}  // namespace detourfs
