// The model checker's filesystem helpers (stress_fs.h).
#include "stress_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <sstream>

namespace detourfs::stress {

std::string StatLine(const struct stat& st) {
  std::ostringstream out;
  char type = S_ISDIR(st.st_mode)    ? 'd'
              : S_ISLNK(st.st_mode)  ? 'l'
              : S_ISREG(st.st_mode)  ? 'f'
              : S_ISCHR(st.st_mode)  ? 'c'
              : S_ISBLK(st.st_mode)  ? 'b'
              : S_ISFIFO(st.st_mode) ? 'p'
              : S_ISSOCK(st.st_mode) ? 's'
                                     : '?';
  out << type << " " << std::oct << (st.st_mode & 07777) << std::dec << " nlink " << st.st_nlink;
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    out << " rdev " << major(st.st_rdev) << ":" << minor(st.st_rdev);
  } else if (!S_ISDIR(st.st_mode)) {
    out << " size " << st.st_size;
  }
  return out.str();
}

std::vector<std::pair<std::string, ino_t>> ListDir(const std::string& dir, int* err) {
  std::vector<std::pair<std::string, ino_t>> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    *err = errno;
    return names;
  }
  *err = 0;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n, e->d_ino);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> Names(const std::string& dir, int* err) {
  std::vector<std::string> names;
  for (auto& entry : ListDir(dir, err)) names.push_back(entry.first);
  return names;
}

std::string Slurp(const std::string& path) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::string("<open failed: ") + std::strerror(errno) + ">";
  std::array<char, 65536> buf{};
  ssize_t n = 0;
  while ((n = ::read(fd, buf.data(), buf.size())) > 0)
    out.append(buf.data(), static_cast<size_t>(n));
  if (n < 0) out = std::string("<read failed: ") + std::strerror(errno) + ">";
  ::close(fd);
  return out;
}

}  // namespace detourfs::stress
