// Trees for the flush's unit tests: files written with given owners, modes
// and times, a dump of a whole tree to compare two, and a home-like project
// before and after an epoch (its node_modules changed in every way a flush
// must carry: removals, type changes, new content, symlinks, hard links).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "flush/epoch_area.h"
#include "flush/epoch_recovery.h"

namespace detourfs::flush::flush_trees {

constexpr int64_t kTime = 1700000000;

inline void WriteFile(const std::string& path, const std::string& content, mode_t mode = 0644) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  ::close(fd);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

inline std::string ReadFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<missing>";
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

inline void SetMeta(const std::string& path, uid_t uid, gid_t gid, mode_t mode, int64_t mtime) {
  ASSERT_EQ(::lchown(path.c_str(), uid, gid), 0) << path;
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  if (!S_ISLNK(st.st_mode)) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
  }
  const struct timespec times[2] = {{mtime, 0}, {mtime, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
}

// Every entry under `root` (detourfs's directory left out), one line each:
// type, owner, mode, content or target, the first name of its inode when
// it has several, and the times that a flush sets.
inline std::string Dump(const std::string& root) {
  std::map<std::string, std::string> lines;
  std::map<std::pair<dev_t, ino_t>, std::string> first_name;
  std::vector<std::string> todo = {""};
  while (!todo.empty()) {
    const std::string rel = todo.back();
    todo.pop_back();
    DIR* d = ::opendir((root + "/" + rel).c_str());
    if (d == nullptr) continue;
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == ".." || (rel.empty() && name == ".detourfs")) continue;
      const std::string p = rel.empty() ? name : rel + "/" + name;
      struct stat st {};
      if (::lstat((root + "/" + p).c_str(), &st) != 0) continue;
      std::string line = std::to_string(st.st_mode) + " " + std::to_string(st.st_uid) + ":" +
                         std::to_string(st.st_gid);
      if (S_ISDIR(st.st_mode)) {
        todo.push_back(p);
        if (p.rfind("proj/node_modules", 0) == 0) line += " t" + std::to_string(st.st_mtim.tv_sec);
      } else if (S_ISLNK(st.st_mode)) {
        char target[256] = {};
        (void)!::readlink((root + "/" + p).c_str(), target, sizeof(target) - 1);
        line += std::string(" -> ") + target;
      } else {
        line += " '" + ReadFile(root + "/" + p) + "'";
        if (p.rfind("proj/node_modules", 0) == 0) line += " t" + std::to_string(st.st_mtim.tv_sec);
      }
      lines[p] = line;
      if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
        auto [it, fresh] = first_name.emplace(std::make_pair(st.st_dev, st.st_ino), p);
        if (!fresh) lines[p] += " =" + std::min(it->second, p);
      }
    }
    ::closedir(d);
  }
  std::string out;
  for (const auto& [p, line] : lines) out += p + ": " + line + "\n";
  return out;
}

// A home-like tree: a project whose node_modules was on the volume before,
// with entries that go, change type, change content, and an unrouted
// neighbour that must not change.
inline void BuildOld(const std::string& v) {
  for (const char* d : {"proj", "proj/src", "proj/node_modules", "proj/node_modules/left",
                        "proj/node_modules/becomes_file", "proj/node_modules/becomes_file/deep"}) {
    ASSERT_EQ(::mkdir((v + "/" + d).c_str(), 0755), 0) << d;
  }
  WriteFile(v + "/proj/src/main.c", "int main;");
  WriteFile(v + "/proj/node_modules/left/old.js", "old");
  WriteFile(v + "/proj/node_modules/becomes_dir", "a file for now");
  WriteFile(v + "/proj/node_modules/becomes_file/deep/x", "x");
  WriteFile(v + "/proj/node_modules/keep.js", "v1");
}

// What the epoch makes of it, built by hand.
inline void BuildNew(const std::string& v) {
  for (const char* d : {"proj", "proj/src", "proj/node_modules", "proj/node_modules/becomes_dir",
                        "proj/node_modules/new"}) {
    ASSERT_EQ(::mkdir((v + "/" + d).c_str(), 0755), 0) << d;
  }
  WriteFile(v + "/proj/src/main.c", "int main;");
  WriteFile(v + "/proj/node_modules/becomes_dir/child.js", "child", 0600);
  SetMeta(v + "/proj/node_modules/becomes_dir/child.js", 1000, 1000, 0600, kTime + 1);
  WriteFile(v + "/proj/node_modules/becomes_file", "now a file");
  SetMeta(v + "/proj/node_modules/becomes_file", 1000, 1000, 0644, kTime + 2);
  WriteFile(v + "/proj/node_modules/keep.js", "v2", 0755);
  SetMeta(v + "/proj/node_modules/keep.js", 1000, 1000, 0755, kTime + 3);
  ASSERT_EQ(::symlink("../keep.js", (v + "/proj/node_modules/new/link").c_str()), 0);
  SetMeta(v + "/proj/node_modules/new/link", 1000, 1000, 0777, kTime + 4);
  WriteFile(v + "/proj/node_modules/new/a.js", "shared");
  SetMeta(v + "/proj/node_modules/new/a.js", 1000, 1000, 0644, kTime + 5);
  ASSERT_EQ(::link((v + "/proj/node_modules/new/a.js").c_str(),
                   (v + "/proj/node_modules/new/b.js").c_str()),
            0);
  SetMeta(v + "/proj/node_modules/becomes_dir", 1000, 1000, 0750, kTime + 10);
  SetMeta(v + "/proj/node_modules/new", 1000, 1000, 0700, kTime + 11);
  SetMeta(v + "/proj/node_modules", 1000, 1000, 0711, kTime + 12);
}

// Opens (made if missing) the flush area of the volume `tree` into `*area`, letting go of
// the one it held first (its lock, as a process that ended would).
inline void ReopenArea(int tree, EpochArea* area) {
  *area = EpochArea();
  (void)::mkdirat(tree, ".detourfs/flush", 0700);  // as the flush makes it
  Result<EpochArea> opened = OpenVolumeArea(tree);
  ASSERT_TRUE(opened.ok());
  *area = std::move(*opened);
}

}  // namespace detourfs::flush::flush_trees
