// Directory helpers for the power-cut model: is a directory empty, and
// remove a whole tree. Both work under a directory fd; 0 or -errno.
#pragma once

#include <string>

namespace flakyfs {

// 0 when `name` under `dirfd` is an empty directory, else -ENOTEMPTY or -errno.
int CheckEmpty(int dirfd, const std::string& name);
// Removes `name` under `dirfd` and everything beneath it, best effort.
void RemoveTree(int dirfd, const std::string& name);

}  // namespace flakyfs
