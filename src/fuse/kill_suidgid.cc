// kill_suidgid — see kill_suidgid.h.
#include "fuse/kill_suidgid.h"

#include <linux/fuse.h>

#include <cstddef>
#include <cstring>

namespace detourfs::fuseops {
namespace {

// Reads the fixed argument of type T after the header, lets `change` edit
// it, and writes it back (the buffer need not be aligned for T).
template <typename T, typename Fn>
void EditArgument(void* request, size_t len, Fn change) {
  if (len < sizeof(fuse_in_header) + sizeof(T)) return;
  char* at = static_cast<char*>(request) + sizeof(fuse_in_header);
  T arg;
  std::memcpy(&arg, at, sizeof(arg));
  if (change(arg)) std::memcpy(at, &arg, sizeof(arg));
}

// OPEN and CREATE: the mark is in open_flags, the carrier in the open flags.
template <typename T>
void CarryOpenMark(void* request, size_t len) {
  EditArgument<T>(request, len, [](T& o) {
    if ((o.open_flags & FUSE_OPEN_KILL_SUIDGID) == 0) return false;
    o.flags |= static_cast<uint32_t>(kKillSuidgidFlag);
    return true;
  });
}

// SETXATTR in the extended layout: {size, flags, setxattr_flags, padding},
// name, value. libfuse 3.14 reads {size, flags}, name, value.
size_t CarrySetxattrMark(void* request, size_t len) {
  constexpr size_t kCompat = offsetof(fuse_setxattr_in, setxattr_flags);
  constexpr size_t kShorter = sizeof(fuse_setxattr_in) - kCompat;
  if (len < sizeof(fuse_in_header) + sizeof(fuse_setxattr_in)) return len;
  char* at = static_cast<char*>(request) + sizeof(fuse_in_header);
  fuse_setxattr_in x;
  std::memcpy(&x, at, sizeof(x));
  if (x.setxattr_flags & FUSE_SETXATTR_ACL_KILL_SGID) x.flags |= kAclKillSgidFlag;
  std::memcpy(at, &x, kCompat);
  std::memmove(at + kCompat, at + sizeof(x), len - sizeof(fuse_in_header) - sizeof(x));
  fuse_in_header in;
  std::memcpy(&in, request, sizeof(in));
  in.len -= static_cast<uint32_t>(kShorter);
  std::memcpy(request, &in, sizeof(in));
  return len - kShorter;
}

}  // namespace

size_t CarryKillSuidgid(void* request, size_t len, bool setxattr_ext) {
  if (len < sizeof(fuse_in_header)) return len;
  fuse_in_header in;
  std::memcpy(&in, request, sizeof(in));
  switch (in.opcode) {
    case FUSE_WRITE:
      EditArgument<fuse_write_in>(request, len, [](fuse_write_in& w) {
        if ((w.write_flags & FUSE_WRITE_KILL_SUIDGID) == 0) return false;
        w.flags |= static_cast<uint32_t>(kKillSuidgidFlag);
        return true;
      });
      break;
    case FUSE_OPEN:
      CarryOpenMark<fuse_open_in>(request, len);
      break;
    case FUSE_CREATE:
      CarryOpenMark<fuse_create_in>(request, len);
      break;
    case FUSE_SETXATTR:
      if (setxattr_ext) return CarrySetxattrMark(request, len);
      break;
    case FUSE_SETATTR:
      EditArgument<fuse_setattr_in>(request, len, [](fuse_setattr_in& s) {
        // An explicit mode wins over the mark (the kernel never sends both).
        if ((s.valid & FATTR_KILL_SUIDGID) == 0 || (s.valid & FATTR_MODE) != 0) return false;
        s.mode = kKillSuidgidMode;
        return true;
      });
      break;
    default:
      break;
  }
  return len;
}

bool TakeKillSuidgid(fuse_file_info* fi) {
  if ((fi->flags & kKillSuidgidFlag) == 0) return false;
  fi->flags &= ~kKillSuidgidFlag;
  return true;
}

bool TakeAclKillSgid(int* flags) {
  if ((*flags & kAclKillSgidFlag) == 0) return false;
  *flags &= ~kAclKillSgidFlag;
  return true;
}

bool TakeKillSuidgid(const struct stat& attr, int to_set) {
  return (to_set & FUSE_SET_ATTR_MODE) == 0 && attr.st_mode == kKillSuidgidMode;
}

}  // namespace detourfs::fuseops
