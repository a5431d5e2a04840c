// Saved content and attributes of one inode: what the power-cut model
// (power_cut_model.h) keeps from the first change after the inode was last
// made durable, and writes back when the power is cut. Content is kept as a
// copy in the model's state directory, attributes in memory.
//
// Functions return 0 or -errno.
#pragma once

#include <sys/stat.h>

#include <string>
#include <utility>
#include <vector>

namespace flakyfs {

struct SavedAttrs {
  mode_t mode = 0;  // permission bits only
  uid_t uid = 0;
  gid_t gid = 0;
  timespec atime{};
  timespec mtime{};
  bool is_symlink = false;  // then no mode: a symlink has none to set
  std::vector<std::pair<std::string, std::string>> xattrs;
};

// Copies the content of the regular file `fd` (readable) to a new file `name`
// in `dir_fd`.
int SaveContent(int fd, int dir_fd, const std::string& name);
// Makes the regular file `fd` (writable) hold the copy `name` in `dir_fd`, or
// nothing when `name` is empty.
int RestoreContent(int fd, int dir_fd, const std::string& name);

// `fd` may be an O_PATH fd, of any file type.
int SaveAttrs(int fd, SavedAttrs* attrs);
int RestoreAttrs(int fd, const SavedAttrs& attrs);

}  // namespace flakyfs
