// FileKey: an inode's identity on the source file system, and the way back to
// it, for the power-cut model. It is the inode's file handle
// (name_to_handle_at(2)): stable across renames and links, and never reused
// while the inode lives, since it carries the generation number. No fd is held.
//
// Functions return 0 (or an fd) on success and -errno on failure, like the
// FUSE operations they serve. open_by_handle_at(2) needs CAP_DAC_READ_SEARCH
// and a file system that exports handles (ext4, xfs, btrfs and tmpfs do).
#pragma once

#include <string>

namespace flakyfs {

using FileKey = std::string;

// The key of the open file `fd`.
int KeyOf(int fd, FileKey* key);
// The key of `name` under `dirfd` ("" for dirfd itself); a final symlink is not followed.
int KeyAt(int dirfd, const std::string& name, FileKey* key);
// Opens the inode `key` names; `mount_fd` is any fd on the file system that is
// not O_PATH. Returns the fd or -errno (-ESTALE once the inode is gone).
int OpenByKey(int mount_fd, const FileKey& key, int flags);

}  // namespace flakyfs
