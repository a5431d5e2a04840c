// Markers: the tier format's extended attributes and special files — what a
// tier records beyond plain files (docs/overlay.md, "On a tier"). Every name
// is under trusted.detourfs., which the mount never shows and refuses to
// set or remove for a caller, so nothing made through the mount passes for a
// marker.
//
// - A *whiteout* (a volume entry deleted through the mount) is a character
//   device 0:0 on a tier, as overlayfs's: renameat2(RENAME_WHITEOUT) makes
//   one atomically with a rename. A user's own 0:0 device on a tier carries
//   kDeviceXattr, which makes it a device again.
// - kIdXattr, the id record: the persistent inode number a tier entry
//   reports (its id); for a directory whether it is *opaque* (it hides the
//   volume's directory at its path, whole); for a *stub* where its data is:
//   a spill store's layer and token (its own inode on the tier is then
//   empty, and keeps its names and id). One xattr, so a lookup learns all of
//   it with one read.
// - Index entries (<tier>/index/<id>) stand for a volume file with several
//   links: kHandleXattr is the volume file's handle, kLinksXattr the link
//   count to report, kMetacopyXattr says the data is still the volume's.
// - On the volume, kIdsXattr on a directory says some of its entries carry
//   kIdXattr (files detourfs placed there keep the id they had).
#pragma once

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "detourfs/result.h"
#include "store/layer.h"

namespace detourfs::markers {

inline constexpr std::string_view kReservedPrefix = "trusted.detourfs.";
inline constexpr const char* kDeviceXattr = "trusted.detourfs.device";
inline constexpr const char* kIdXattr = "trusted.detourfs.id";
inline constexpr const char* kHandleXattr = "trusted.detourfs.handle";
inline constexpr const char* kLinksXattr = "trusted.detourfs.links";
inline constexpr const char* kMetacopyXattr = "trusted.detourfs.metacopy";
inline constexpr const char* kIdsXattr = "trusted.detourfs.ids";
// Tier format 1 (before the change layer) marked whiteouts positively.
inline constexpr const char* kV1WhiteoutXattr = "trusted.detourfs.whiteout";
inline constexpr const char* kV1OriginXattr = "trusted.detourfs.origin";
inline constexpr const char* kV1SpilledXattr = "trusted.detourfs.spilled";
inline constexpr const char* kV1OpaqueXattr = "trusted.detourfs.opaque";

// The name of the index entry (and held inode) of id `id`: 16 hex digits.
std::string IndexName(uint64_t id);

// True for the xattr names detourfs keeps for itself.
bool IsReservedXattr(std::string_view name);
// Removes reserved names from a listxattr buffer (NUL-separated) in place;
// returns the new length.
size_t FilterXattrList(char* list, size_t length);

// Whether an entry with stat `st` may be a whiteout (a 0:0 character
// device); IsWhiteout decides by the device marker.
inline bool MaybeWhiteout(const struct stat& st) {
  return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}
// True if `name` in the tier directory `dirfd` (lstat `st`) is a whiteout.
Result<bool> IsWhiteout(int dirfd, const char* name, const struct stat& st);

// A one-byte marker ('y') on the file `fd` (O_PATH is fine).
Result<void> SetFlag(int fd, const char* xattr);
Result<bool> HasFlag(int fd, const char* xattr);
Result<bool> HasFlagAt(int dirfd, const char* name, const char* xattr);
Result<void> ClearFlag(int fd, const char* xattr);

// A 64-bit number (little-endian) in `xattr`: 0 when absent.
Result<uint64_t> GetNumber(int fd, const char* xattr);
Result<uint64_t> GetNumberAt(int dirfd, const char* name, const char* xattr);
Result<void> SetNumber(int fd, const char* xattr, uint64_t value);
Result<void> SetNumberAt(int dirfd, const char* name, const char* xattr, uint64_t value);

// Where a spilled file's data is.
struct SpillRef {
  Layer layer = Layer::kVolume;
  uint64_t token = 0;  // 0: not spilled
};
// What kIdXattr holds: the id (0: none recorded), a directory's opacity and
// a stub's data. Encoded as 8 bytes (id, little-endian), 9 (and a flags
// byte) or 18 (and the spill token, 8 bytes, and its layer, 1 byte).
struct IdRecord {
  uint64_t id = 0;
  bool opaque = false;
  SpillRef spill;
};
Result<IdRecord> GetIdRecord(int fd);
Result<IdRecord> GetIdRecordAt(int dirfd, const char* name);
Result<void> SetIdRecord(int fd, const IdRecord& record);
// `flags`: setxattr's (XATTR_CREATE: EEXIST if one is there).
Result<void> SetIdRecordAt(int dirfd, const char* name, const IdRecord& record, int flags = 0);
size_t EncodeIdRecord(const IdRecord& record, unsigned char* buf);  // buf: 18 bytes

Result<std::string> GetBytes(int fd, const char* xattr);  // "" when absent
// The same for `name` in `dirfd`, never following it (a symlink's markers:
// an O_PATH fd on a symlink takes no xattr calls).
Result<std::string> GetBytesAt(int dirfd, const char* name, const char* xattr);
Result<void> SetBytes(int fd, const char* xattr, const std::string& value);

}  // namespace detourfs::markers
