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
// A third marker says where a file's data went when its tier filled up: a
// memory-tier file whose data spilled to the disk tier's spill store keeps
// its inode (its names, hard links and inode number) as an empty stub with
// mode 0000 and the xattr trusted.detourfs.spilled, the store's token for the
// data (overlay_spill.cc).
//
// Nothing a user creates through the mount can be mistaken for one: a device
// 0:0 made with mknod, or an empty file chmod'ed 0000, lacks the xattr, and
// the trusted.detourfs.* names are
// reserved — the overlay refuses to set or remove them for a caller (EPERM)
// and never shows them (getxattr answers ENODATA, listxattr omits them).
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "detourfs/result.h"

namespace detourfs::markers {

inline constexpr const char* kWhiteoutXattr = "trusted.detourfs.whiteout";
inline constexpr const char* kOpaqueXattr = "trusted.detourfs.opaque";
// On a file copied up: the inode number (8 bytes, host order) it had through
// the mount, which it keeps.
inline constexpr const char* kOriginXattr = "trusted.detourfs.origin";

// On a spilled file's stub: the spill store's token for its data (8 bytes,
// host order, never 0).
inline constexpr const char* kSpilledXattr = "trusted.detourfs.spilled";

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

// Whether a file with stat `st` may be a spilled file's stub: a regular
// file with mode 0000 (the xattr decides; most files fail this for free).
inline bool MaybeSpilled(const struct stat& st) {
  return S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0;
}
// The spill token of the file open as `fd` (O_PATH is fine): 0 when it is
// not a stub.
Result<uint64_t> SpilledToken(int fd);
// Marks the file open as `fd` as spilled to `token`.
Result<void> MarkSpilled(int fd, uint64_t token);

}  // namespace detourfs::markers
