// Markers: how the overlay records, on a tier, what the volume must no longer
// show — a whiteout (a deleted volume entry) and an opaque directory (one
// whose volume content is hidden, after `rm -rf dir && mkdir dir`).
//
// A whiteout is a character device 0:0 carrying the xattr
// trusted.detourfs.whiteout; an opaque directory carries
// trusted.detourfs.opaque. Both live in the tier itself, so they survive a
// daemon restart and move with their directory on rename, and the flusher
// finds them where the change is.
//
// Nothing a user creates through the mount can be mistaken for one: a device
// 0:0 made with mknod lacks the xattr, and the trusted.detourfs.* names are
// reserved — the overlay refuses to set or remove them for a caller (EPERM)
// and never shows them (getxattr answers ENODATA, listxattr omits them).
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <string_view>

#include "detourfs/result.h"

namespace detourfs::markers {

inline constexpr const char* kWhiteoutXattr = "trusted.detourfs.whiteout";
inline constexpr const char* kOpaqueXattr = "trusted.detourfs.opaque";
// On a file copied up: the inode number (8 bytes, host order) it had through
// the mount, which it keeps.
inline constexpr const char* kOriginXattr = "trusted.detourfs.origin";

// True for the xattr names detourfs keeps for itself.
bool IsReservedXattr(std::string_view name);

// Removes reserved names from a listxattr buffer (NUL-separated names) in
// place; returns the new length.
size_t FilterXattrList(char* list, size_t length);

// Creates a whiteout named `name` in the directory `dirfd` (EEXIST if the
// name is taken).
Result<void> MakeWhiteout(int dirfd, const char* name);
// True if `name` in `dirfd`, whose lstat is `st`, is a whiteout.
Result<bool> IsWhiteout(int dirfd, const char* name, const struct stat& st);

// Marks the directory open as `dir_fd` (O_PATH is fine) opaque, or asks.
Result<void> SetOpaque(int dir_fd);
Result<bool> IsOpaque(int dir_fd);
// Removes the opaque marker (no-op without one).
Result<void> ClearOpaque(int dir_fd);

}  // namespace detourfs::markers
