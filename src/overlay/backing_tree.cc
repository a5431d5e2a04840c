// RemoveTreeAt: a whole subtree off one backing filesystem.
#include "overlay/backing_tree.h"

#include <fcntl.h>

#include <string>

namespace detourfs {

Result<void> RemoveTreeAt(int dirfd, const char* name) {
  Result<UniqueFd> dir = sys::OpenBeneath(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW);
  if (!dir.ok()) {
    if (dir.error() != ENOTDIR && dir.error() != ELOOP) return Errno{dir.error()};
    return sys::UnlinkAt(dirfd, name, 0);
  }
  std::vector<std::string> names;
  DETOURFS_TRY(ForEachEntry(dir->get(), [&](std::string_view n, ino_t, mode_t) -> Result<void> {
    names.emplace_back(n);
    return {};
  }));
  for (const std::string& n : names) DETOURFS_TRY(RemoveTreeAt(dir->get(), n.c_str()));
  return sys::UnlinkAt(dirfd, name, AT_REMOVEDIR);
}

}  // namespace detourfs
