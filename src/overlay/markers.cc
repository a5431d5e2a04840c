// Whiteouts, opaque directories and the reserved xattr names (markers.h).
#include "overlay/markers.h"

#include <fcntl.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "sys/sys.h"

namespace detourfs::markers {
namespace {

constexpr std::string_view kReservedPrefix = "trusted.detourfs.";
constexpr char kMarkerValue = 'y';

// True if the file open as `fd` carries the marker xattr `name`.
Result<bool> HasMarker(int fd, const char* name) {
  char value = 0;
  Result<size_t> n = sys::GetXattr(fd, name, &value, 1);
  if (n.ok()) return *n == 1 && value == kMarkerValue;
  if (n.error() == ENODATA || n.error() == ERANGE) return false;
  return Errno{n.error()};
}

}  // namespace

bool IsReservedXattr(std::string_view name) {
  return name.substr(0, kReservedPrefix.size()) == kReservedPrefix;
}

size_t FilterXattrList(char* list, size_t length) {
  size_t out = 0;
  size_t i = 0;
  while (i < length) {
    const size_t len = ::strnlen(list + i, length - i);
    const size_t span = std::min(len + 1, length - i);  // with its NUL, if there is one
    if (!IsReservedXattr(std::string_view(list + i, len))) {
      std::memmove(list + out, list + i, span);
      out += span;
    }
    i += span;
  }
  return out;
}

Result<void> MakeWhiteout(int dirfd, const char* name) {
  DETOURFS_TRY(sys::MknodAt(dirfd, name, S_IFCHR | 0000, makedev(0, 0)));
  Result<UniqueFd> fd = sys::OpenBeneath(dirfd, name, O_PATH);
  Result<void> marked = fd.ok() ? sys::SetXattr(fd->get(), kWhiteoutXattr, &kMarkerValue, 1, 0)
                                : Result<void>(Errno{fd.error()});
  if (!marked.ok()) {
    // A device without the mark is not a whiteout: never leave one behind.
    (void)sys::UnlinkAt(dirfd, name, 0);
    return Errno{marked.error()};
  }
  return {};
}

Result<bool> IsWhiteout(int dirfd, const char* name, const struct stat& st) {
  if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(0, 0)) return false;
  Result<UniqueFd> fd = sys::OpenBeneath(dirfd, name, O_PATH);
  if (!fd.ok()) return Errno{fd.error()};
  return HasMarker(fd->get(), kWhiteoutXattr);
}

Result<void> SetOpaque(int dir_fd) {
  return sys::SetXattr(dir_fd, kOpaqueXattr, &kMarkerValue, 1, 0);
}

Result<bool> IsOpaque(int dir_fd) { return HasMarker(dir_fd, kOpaqueXattr); }

Result<void> ClearOpaque(int dir_fd) {
  Result<void> r = sys::RemoveXattr(dir_fd, kOpaqueXattr);
  return !r.ok() && r.error() == ENODATA ? Result<void>() : r;
}

Result<uint64_t> SpilledToken(int fd) {
  uint64_t token = 0;
  Result<size_t> n = sys::GetXattr(fd, kSpilledXattr, &token, sizeof(token));
  if (n.ok()) return *n == sizeof(token) ? token : 0;
  if (n.error() == ENODATA || n.error() == ERANGE) return uint64_t{0};
  return Errno{n.error()};
}

Result<void> MarkSpilled(int fd, uint64_t token) {
  return sys::SetXattr(fd, kSpilledXattr, &token, sizeof(token), 0);
}

}  // namespace detourfs::markers
