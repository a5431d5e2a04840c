// Mountpoint checks, lower directory, fd limit.
#include "daemon/mountpoint.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace detourfs {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out.push_back(static_cast<char>(std::strtol(s.substr(i + 1, 3).c_str(), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

bool IsDetourfsMount(const std::string& path) {
  char* real = ::realpath(path.c_str(), nullptr);
  if (!real) return false;
  const std::string target(real);
  std::free(real);
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint options [optional...] - fstype source
    std::istringstream fields(line);
    std::string id, parent, devno, root, mnt;
    fields >> id >> parent >> devno >> root >> mnt;
    size_t sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream tail(line.substr(sep + 3));
    std::string fstype;
    tail >> fstype;
    if (fstype == "fuse.detourfs" && Unescape(mnt) == target) return true;
  }
  return false;
}

Status CheckMountpoint(const std::string& mountpoint) {
  struct stat st {};
  if (::stat(mountpoint.c_str(), &st) < 0) {
    return Status::FromErrno(errno, "mountpoint '" + mountpoint + "'");
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument("mountpoint '" + mountpoint + "' is not a directory");
  }
  if (IsDetourfsMount(mountpoint)) {
    return Status::InvalidArgument("'" + mountpoint +
                                   "' is already a detourfs mount; unmount it first "
                                   "(fusermount3 -u)");
  }
  return Status::OK();
}

Result<UniqueFd> OpenLower(const std::string& path) {
  int fd = ::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno{errno};
  return UniqueFd(fd);
}

unsigned long RaiseFdLimit() {  // NOLINT(runtime/int)
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) < 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &rl);
    (void)::getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

}  // namespace detourfs
