// Saving and restoring an inode's content and attributes (saved_inode.h).
#include "saved_inode.h"

#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

namespace flakyfs {
namespace {

// Copies everything from `in` (at its offset 0) to `out` (at its offset).
int CopyAll(int in, int out) {
  loff_t in_off = 0;
  while (true) {
    ssize_t n = copy_file_range(in, &in_off, out, nullptr, 1 << 30, 0);
    if (n == 0) return 0;
    if (n > 0) continue;
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS) return -errno;
    break;  // no in-kernel copy here: copy by hand from where it stopped
  }
  std::array<char, 1 << 16> buf{};
  while (true) {
    ssize_t n = pread(in, buf.data(), buf.size(), in_off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) return 0;
    in_off += n;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(out, buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return -errno;
      done += w;
    }
  }
}

std::string ProcPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// Every xattr name of `path` (following the /proc magic link to the inode).
int ListXattrs(const std::string& path, std::vector<std::string>* names) {
  ssize_t size = listxattr(path.c_str(), nullptr, 0);
  if (size < 0) return errno == ENOTSUP ? 0 : -errno;
  std::string list(static_cast<size_t>(size), '\0');
  size = listxattr(path.c_str(), list.data(), list.size());
  if (size < 0) return -errno;
  list.resize(static_cast<size_t>(size));
  for (size_t i = 0; i < list.size();) {
    size_t end = list.find('\0', i);
    if (end == std::string::npos) end = list.size();
    if (end > i) names->push_back(list.substr(i, end - i));
    i = end + 1;
  }
  return 0;
}

}  // namespace

int SaveContent(int fd, int dir_fd, const std::string& name) {
  int out = openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0) return -errno;
  int r = CopyAll(fd, out);
  close(out);
  if (r != 0) unlinkat(dir_fd, name.c_str(), 0);
  return r;
}

int RestoreContent(int fd, int dir_fd, const std::string& name) {
  if (ftruncate(fd, 0) != 0) return -errno;
  if (name.empty()) return 0;
  int in = openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return -errno;
  if (lseek(fd, 0, SEEK_SET) < 0) {
    int err = errno;
    close(in);
    return -err;
  }
  int r = CopyAll(in, fd);
  close(in);
  return r;
}

int SaveAttrs(int fd, SavedAttrs* attrs) {
  struct stat st {};
  if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return -errno;
  attrs->mode = st.st_mode & 07777;
  attrs->uid = st.st_uid;
  attrs->gid = st.st_gid;
  attrs->atime = st.st_atim;
  attrs->mtime = st.st_mtim;
  attrs->is_symlink = S_ISLNK(st.st_mode);
  attrs->xattrs.clear();
  // A symlink's xattrs too: the /proc name of its O_PATH fd is the link.
  const std::string path = ProcPath(fd);
  std::vector<std::string> names;
  if (int r = ListXattrs(path, &names); r != 0) return r;
  for (const std::string& name : names) {
    ssize_t size = getxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (size < 0) return -errno;
    std::string value(static_cast<size_t>(size), '\0');
    size = getxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (size < 0) return -errno;
    value.resize(static_cast<size_t>(size));
    attrs->xattrs.emplace_back(name, std::move(value));
  }
  return 0;
}

// Owner first (a chown drops set-id bits and file capabilities), then the
// mode, the xattrs, and the times last (every other change touches them).
int RestoreAttrs(int fd, const SavedAttrs& attrs) {
  if (fchownat(fd, "", attrs.uid, attrs.gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    return -errno;
  }
  const std::string path = ProcPath(fd);
  if (!attrs.is_symlink && chmod(path.c_str(), attrs.mode) != 0) return -errno;
  std::vector<std::string> names;
  if (int r = ListXattrs(path, &names); r != 0) return r;
  for (const std::string& name : names) {
    bool kept = std::any_of(attrs.xattrs.begin(), attrs.xattrs.end(),
                            [&](const auto& x) { return x.first == name; });
    if (!kept && removexattr(path.c_str(), name.c_str()) != 0 && errno != ENODATA) return -errno;
  }
  for (const auto& [name, value] : attrs.xattrs) {
    if (setxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0) != 0) return -errno;
  }
  const timespec times[2] = {attrs.atime, attrs.mtime};
  if (utimensat(fd, "", times, AT_EMPTY_PATH) != 0) return -errno;
  return 0;
}

}  // namespace flakyfs
