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

Result<SharedFd> Overlay::XattrFd(uint64_t ino) {
  Result<Node*> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  if ((*node)->is_symlink()) return SharedFd();
  return FdOf(*node);
}

Result<size_t> Overlay::GetXattr(uint64_t ino, const char* name, void* value, size_t size) {
  Result<SharedFd> fd = XattrFd(ino);
  if (!fd.ok()) return Errno{fd.error()};
  if (!*fd) return Errno{kSymlinkNoXattr};
  return sys::GetXattr((*fd)->get(), name, value, size);
}

Result<size_t> Overlay::ListXattr(uint64_t ino, char* list, size_t size) {
  Result<SharedFd> fd = XattrFd(ino);
  if (!fd.ok()) return Errno{fd.error()};
  if (!*fd) return size_t{0};
  return sys::ListXattr((*fd)->get(), list, size);
}

Result<void> Overlay::SetXattr(uint64_t ino, const char* name, const void* value, size_t size,
                               int flags) {
  Result<SharedFd> fd = XattrFd(ino);
  if (!fd.ok()) return Errno{fd.error()};
  if (!*fd) return Errno{EPERM};
  return sys::SetXattr((*fd)->get(), name, value, size, flags);
}

Result<void> Overlay::RemoveXattr(uint64_t ino, const char* name) {
  Result<SharedFd> fd = XattrFd(ino);
  if (!fd.ok()) return Errno{fd.error()};
  if (!*fd) return Errno{kSymlinkNoXattr};
  return sys::RemoveXattr((*fd)->get(), name);
}

}  // namespace detourfs
