// The model checker's whole-tree comparison: the tree under test against the
// reference, entry by entry (names, types, permission bits, sizes, link counts
// of non-directories, device numbers, contents, symlink targets), and inode
// numbers as POSIX promises them: two names are hard links iff they share a
// number (the same partition as the reference's), readdir's d_ino is lstat's
// st_ino, and an object keeps its number for its life (across renames, copy-up
// and the comparisons in between).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace detourfs::stress {

class TreeChecker {
 public:
  TreeChecker(std::string test_root, std::string ref_root)
      : test_root_(std::move(test_root)), ref_root_(std::move(ref_root)) {}

  // Compares the two trees now; "" or the first difference, whose kind
  // ("listing", "contents", "hard links", "st_ino changed", ...) goes to
  // `category`. Remembers the inode numbers seen, so a later Check finds an
  // object whose number changed.
  std::string Check(std::string* category = nullptr);

 private:
  struct Entry {
    std::string rel;
    ino_t test_ino = 0;
    ino_t ref_ino = 0;
    ino_t test_d_ino = 0;  // readdir's number under test (0 for the root)
  };
  std::string CompareEntry(const std::string& rel, ino_t test_d_ino, std::vector<Entry>* entries);
  std::string CheckLinks(const std::vector<Entry>& entries);
  std::string CheckNumbers(const std::vector<Entry>& entries);

  std::string test_root_;
  std::string ref_root_;
  // Every reference inode number seen, to the number under test it had. tmpfs
  // never reuses a number, so one reference number is one object.
  std::map<ino_t, ino_t> seen_;
  std::string category_;  // of the last difference found
};

// One comparison with no history.
std::string CompareTrees(const std::string& test_root, const std::string& ref_root);

}  // namespace detourfs::stress
