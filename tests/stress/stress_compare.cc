// The model checker's whole-tree comparison (stress_compare.h).
#include "stress_compare.h"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "stress_fs.h"

namespace detourfs::stress {
namespace {

std::string Show(const std::string& rel) { return rel.empty() ? "." : rel; }

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : " ") + n;
  return out;
}

std::string ReadLink(const std::string& path) {
  std::array<char, 4096> buf{};
  ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
  if (n < 0) return std::string("<readlink failed: ") + std::strerror(errno) + ">";
  return std::string(buf.data(), static_cast<size_t>(n));
}

}  // namespace

std::string TreeChecker::CompareEntry(const std::string& rel, ino_t test_d_ino,
                                      std::vector<Entry>* entries) {
  const std::string t = rel.empty() ? test_root_ : test_root_ + "/" + rel;
  const std::string r = rel.empty() ? ref_root_ : ref_root_ + "/" + rel;
  struct stat ts {};
  struct stat rs {};
  if (::lstat(t.c_str(), &ts) != 0) {
    category_ = "lstat";
    return Show(rel) + ": lstat failed under test: " + std::strerror(errno);
  }
  if (::lstat(r.c_str(), &rs) != 0) {
    category_ = "lstat";
    return Show(rel) + ": lstat failed in the reference";
  }
  // A directory's link count is the filesystem's convention (btrfs and
  // overlays report 1, "not counted"): compare directories without it.
  if (S_ISDIR(ts.st_mode) && S_ISDIR(rs.st_mode)) ts.st_nlink = rs.st_nlink;
  if (StatLine(ts) != StatLine(rs)) {
    category_ = "attributes";
    return Show(rel) + ": under test '" + StatLine(ts) + "', reference '" + StatLine(rs) + "'";
  }
  entries->push_back(Entry{rel, ts.st_ino, rs.st_ino, test_d_ino});
  if (S_ISLNK(ts.st_mode)) {
    const std::string a = ReadLink(t);
    const std::string b = ReadLink(r);
    if (a != b) {
      category_ = "symlink target";
      return Show(rel) + ": symlink target '" + a + "' under test, '" + b + "' reference";
    }
  } else if (S_ISREG(ts.st_mode)) {
    if (Slurp(t) != Slurp(r)) {
      category_ = "contents";
      return Show(rel) + ": contents differ";
    }
  } else if (S_ISDIR(ts.st_mode)) {
    int et = 0;
    int er = 0;
    auto lt = ListDir(t, &et);
    std::vector<std::string> nr = Names(r, &er);
    std::vector<std::string> nt;
    for (auto& e : lt) nt.push_back(e.first);
    if (et != er || nt != nr) {
      category_ = "listing";
      return Show(rel) + ": listing under test [" + Join(nt) + "], reference [" + Join(nr) + "]";
    }
    for (auto& [name, d_ino] : lt) {
      std::string d = CompareEntry(rel.empty() ? name : rel + "/" + name, d_ino, entries);
      if (!d.empty()) return d;
    }
  }
  return {};
}

std::string TreeChecker::CheckLinks(const std::vector<Entry>& entries) {
  category_ = "hard links";
  std::map<ino_t, std::vector<std::string>> test_groups;
  std::map<ino_t, std::vector<std::string>> ref_groups;
  for (const Entry& e : entries) {
    test_groups[e.test_ino].push_back(Show(e.rel));
    ref_groups[e.ref_ino].push_back(Show(e.rel));
  }
  for (const Entry& e : entries) {
    const auto& a = test_groups[e.test_ino];
    const auto& b = ref_groups[e.ref_ino];
    if (a != b) {
      return Show(e.rel) + ": the names sharing its inode number under test are [" + Join(a) +
             "] (st_ino " + std::to_string(e.test_ino) + "), in the reference [" + Join(b) + "]";
    }
  }
  return {};
}

std::string TreeChecker::CheckNumbers(const std::vector<Entry>& entries) {
  for (const Entry& e : entries) {
    if (!e.rel.empty() && e.test_d_ino != e.test_ino) {
      category_ = "d_ino";
      return e.rel + ": readdir's d_ino " + std::to_string(e.test_d_ino) +
             " under test is not lstat's st_ino " + std::to_string(e.test_ino);
    }
  }
  for (const Entry& e : entries) {
    auto it = seen_.find(e.ref_ino);
    if (it != seen_.end() && it->second != e.test_ino) {
      category_ = "st_ino changed";
      return Show(e.rel) + ": st_ino under test changed from " + std::to_string(it->second) +
             " to " + std::to_string(e.test_ino) +
             " since the last comparison; the reference's stayed " + std::to_string(e.ref_ino);
    }
  }
  for (const Entry& e : entries) seen_[e.ref_ino] = e.test_ino;
  return {};
}

std::string TreeChecker::Check(std::string* category) {
  std::vector<Entry> entries;
  std::string diff = CompareEntry("", 0, &entries);
  if (diff.empty()) diff = CheckLinks(entries);
  if (diff.empty()) diff = CheckNumbers(entries);
  if (category != nullptr) *category = diff.empty() ? "" : category_;
  return diff;
}

std::string CompareTrees(const std::string& test_root, const std::string& ref_root) {
  return TreeChecker(test_root, ref_root).Check();
}

}  // namespace detourfs::stress
