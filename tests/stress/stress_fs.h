// Filesystem helpers the model checker's operations and tree comparison
// share: one line describing an entry's attributes, a directory's sorted
// names with their readdir inode numbers, a file's whole content.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace detourfs::stress {

// "f 644 nlink 2 size 10", "d 755 nlink 3", "c 0 nlink 1 rdev 0:0".
std::string StatLine(const struct stat& st);

// The names in `dir` but "." and "..", sorted, each with readdir's d_ino;
// `err` gets 0 or opendir's errno.
std::vector<std::pair<std::string, ino_t>> ListDir(const std::string& dir, int* err);

// The names alone.
std::vector<std::string> Names(const std::string& dir, int* err);

// The content of the file at `path`, or "<open failed: ...>".
std::string Slurp(const std::string& path);

}  // namespace detourfs::stress
