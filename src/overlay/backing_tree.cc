// RemoveTreeAt: a whole subtree off one backing filesystem.
#include "overlay/backing_tree.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <string>
#include <unordered_set>
#include <vector>

#include "overlay/markers.h"

namespace detourfs {

Result<std::vector<std::string>> EntryNames(int dirfd) {
  std::vector<std::string> names;
  DETOURFS_TRY(ForEachEntry(dirfd, [&](std::string_view n, ino_t, mode_t) -> Result<void> {
    names.emplace_back(n);
    return {};
  }));
  return names;
}

Result<void> RemoveTreeAt(int dirfd, const char* name, const RemovedFn& removing) {
  Result<UniqueFd> dir = sys::OpenBeneath(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW);
  if (!dir.ok()) {
    if (dir.error() != ENOTDIR && dir.error() != ELOOP) return Errno{dir.error()};
    if (removing) {
      if (Result<struct stat> st = sys::StatAt(dirfd, name); st.ok()) removing(dirfd, name, *st);
    }
    return sys::UnlinkAt(dirfd, name, 0);
  }
  Result<std::vector<std::string>> names = EntryNames(dir->get());
  if (!names.ok()) return Errno{names.error()};
  for (const std::string& n : *names) DETOURFS_TRY(RemoveTreeAt(dir->get(), n.c_str(), removing));
  if (removing) {
    if (Result<struct stat> st = sys::Fstat(dir->get()); st.ok()) removing(dirfd, name, *st);
  }
  return sys::UnlinkAt(dirfd, name, AT_REMOVEDIR);
}

namespace {

Result<void> AddUsage(int dirfd, std::unordered_set<ino_t>* linked, uint64_t* bytes) {
  std::vector<std::string> dirs;
  DETOURFS_TRY(ForEachEntry(dirfd, [&](std::string_view n, ino_t, mode_t) -> Result<void> {
    const std::string name(n);
    Result<struct stat> st = sys::StatAt(dirfd, name.c_str());
    if (!st.ok()) return st.error() == ENOENT ? Result<void>() : Errno{st.error()};
    if (S_ISDIR(st->st_mode)) dirs.push_back(name);
    if (!S_ISDIR(st->st_mode) && st->st_nlink > 1 && !linked->insert(st->st_ino).second) return {};
    *bytes += static_cast<uint64_t>(st->st_blocks) * 512;
    return {};
  }));
  for (const std::string& d : dirs) {
    Result<UniqueFd> sub = sys::OpenBeneath(dirfd, d.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (!sub.ok()) continue;  // gone meanwhile
    DETOURFS_TRY(AddUsage(sub->get(), linked, bytes));
  }
  return {};
}

}  // namespace

Result<uint64_t> DiskUsage(int dirfd) {
  std::unordered_set<ino_t> linked;
  uint64_t bytes = 0;
  DETOURFS_TRY(AddUsage(dirfd, &linked, &bytes));
  return bytes;
}

Result<void> HideVolumeBeneath(int upper_dir, int volume_dir) {
  std::vector<std::string> dirs;
  DETOURFS_TRY(ForEachEntry(upper_dir, [&](std::string_view n, ino_t, mode_t type) -> Result<void> {
    if (S_ISDIR(type) || type == 0) dirs.emplace_back(n);
    return {};
  }));
  for (const std::string& n : dirs) {
    Result<struct stat> vst = sys::StatAt(volume_dir, n.c_str());
    if (!vst.ok()) continue;  // nothing of the volume's there
    Result<UniqueFd> up = sys::OpenBeneath(upper_dir, n.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (!up.ok()) continue;  // not a directory after all
    DETOURFS_TRY(markers::SetOpaque(up->get()));
    if (!S_ISDIR(vst->st_mode)) continue;
    Result<UniqueFd> low =
        sys::OpenBeneath(volume_dir, n.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (low.ok()) DETOURFS_TRY(HideVolumeBeneath(up->get(), low->get()));
  }
  return {};
}

}  // namespace detourfs
