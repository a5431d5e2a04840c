// Carries the kernel's "clear setuid/setgid" marks through libfuse 3.14,
// which predates them and drops them.
//
// With FUSE_HANDLE_KILLPRIV_V2 negotiated, the kernel leaves clearing
// S_ISUID and S_ISGID to the server and marks each request that must do it:
// a write or truncate by a caller without CAP_FSETID (FUSE_WRITE_KILL_SUIDGID,
// FATTR_KILL_SUIDGID, FUSE_OPEN_KILL_SUIDGID with O_TRUNC) and every chown
// of a non-directory. In return it stops asking for `security.capability`
// before each write and refreshing attributes before each chown — two of the
// ~12.7 requests an extracted file costs (docs/benchmarks.md). File
// capabilities stay the kernel's: it still asks once per file and removes
// them itself.
//
// With FUSE_SETXATTR_EXT negotiated, setting a POSIX access ACL by a caller
// neither in the file's group nor holding CAP_FSETID carries
// FUSE_SETXATTR_ACL_KILL_SGID: the server clears S_ISGID, as a local
// filesystem does (the daemon sets the ACL as root, and would keep it).
//
// libfuse 3.14 drops write_flags and open_flags, masks setattr's `valid`,
// and parses only the old, shorter fuse_setxattr_in. The transport's hooks
// see each request whole before libfuse does; CarryKillSuidgid moves the
// mark into a field libfuse hands on (and rewrites an extended SETXATTR to
// the old layout), and the adapters take it back out with the Take* calls
// below.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>

namespace detourfs::fuseops {

// The INIT flags (in fuse_init_in/out.flags).
inline constexpr uint32_t kHandleKillprivV2 = 1U << 28;
inline constexpr uint32_t kSetxattrExt = 1U << 29;

// Rewrites one raw request (fuse_in_header and arguments, `len` bytes) in
// place: a kill mark on WRITE, OPEN or CREATE becomes kKillSuidgidFlag in
// the open flags libfuse passes as fuse_file_info::flags; on SETATTR it
// becomes kKillSuidgidMode in the mode libfuse passes when no mode is being
// set. Anything else, or a request too short to hold its arguments, is left
// alone. With `setxattr_ext` (FUSE_SETXATTR_EXT negotiated) a SETXATTR is
// rewritten to the old layout, 8 bytes shorter, its ACL mark carried as
// kAclKillSgidFlag in its flags. Returns the request's length now.
size_t CarryKillSuidgid(void* request, size_t len, bool setxattr_ext);

// The carriers: bit 30 is no open flag (they end at bit 22, __O_TMPFILE),
// and a setattr that sets no mode always carries mode 0.
inline constexpr int kKillSuidgidFlag = 1 << 30;
inline constexpr mode_t kKillSuidgidMode = S_ISUID | S_ISGID;
// setxattr's flags are XATTR_CREATE and XATTR_REPLACE (bits 0 and 1).
inline constexpr int kAclKillSgidFlag = 1 << 30;

// Whether the request carried a kill mark; removes the carrier so the open
// flags can reach open(2).
bool TakeKillSuidgid(fuse_file_info* fi);
// The same for setattr's arguments (nothing to remove: the mode is unused).
bool TakeKillSuidgid(const struct stat& attr, int to_set);
// The same for setxattr's flags.
bool TakeAclKillSgid(int* flags);

}  // namespace detourfs::fuseops
