// File copies between layers (file_copy.h).
#include "store/file_copy.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstring>
#include <memory>
#include <vector>

#include "store/markers.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

// Copies [off, off + len) of `in` to the same place in `out`.
Result<void> CopyRange(int in, int out, off_t off, off_t len) {
  bool plain = false;
  std::vector<char> buf;
  while (len > 0) {
    if (!plain) {
      Result<size_t> n = sys::CopyFileRange(in, off, out, off, static_cast<size_t>(len), 0);
      if (n.ok() && *n > 0) {
        off += static_cast<off_t>(*n);
        len -= static_cast<off_t>(*n);
        continue;
      }
      if (n.ok()) return {};  // the source ended early (truncated meanwhile)
      if (n.error() != EXDEV && n.error() != EINVAL && n.error() != ENOSYS &&
          n.error() != EOPNOTSUPP) {
        return Errno{n.error()};
      }
      plain = true;  // no cross-filesystem copy here: reads and writes
      buf.resize(size_t{1} << 20);
    }
    const size_t want = static_cast<size_t>(std::min<off_t>(len, static_cast<off_t>(buf.size())));
    Result<size_t> n = sys::PRead(in, buf.data(), want, off);
    if (!n.ok()) return Errno{n.error()};
    if (*n == 0) return {};
    DETOURFS_TRY(sys::PWriteAll(out, buf.data(), *n, off));
    off += static_cast<off_t>(*n);
    len -= static_cast<off_t>(*n);
  }
  return {};
}

}  // namespace

Result<void> CopyData(int in, int out, off_t size) {
  off_t pos = 0;
  while (pos < size) {
    Result<off_t> data = sys::Lseek(in, pos, SEEK_DATA);
    if (!data.ok()) {
      if (data.error() == ENXIO) break;  // only a hole left
      if (data.error() != EINVAL && data.error() != ENOTSUP) return Errno{data.error()};
      DETOURFS_TRY(CopyRange(in, out, pos, size - pos));  // no hole support: all of it
      break;
    }
    if (*data >= size) break;
    Result<off_t> hole = sys::Lseek(in, *data, SEEK_HOLE);
    const off_t end = hole.ok() ? std::min(*hole, size) : size;
    DETOURFS_TRY(CopyRange(in, out, *data, end - *data));
    pos = end;
  }
  return sys::Ftruncate(out, size);
}

Result<DataDigest> DigestOf(int fd) {
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  if (!state || XXH3_64bits_reset(state.get()) != XXH_OK) return Errno{ENOMEM};
  std::vector<char> buf(size_t{1} << 20);
  off_t pos = 0;
  for (;;) {
    Result<size_t> n = sys::PRead(fd, buf.data(), buf.size(), pos);
    if (!n.ok()) return Errno{n.error()};
    if (*n == 0) break;
    if (XXH3_64bits_update(state.get(), buf.data(), *n) != XXH_OK) return Errno{ENOMEM};
    pos += static_cast<off_t>(*n);
  }
  return DataDigest{XXH3_64bits_digest(state.get()), pos};
}

Result<void> CopyXattrs(int from, int to) {
  Result<size_t> need = sys::ListXattr(from, nullptr, 0);
  if (!need.ok()) return need.error() == ENOTSUP ? Result<void>() : Errno{need.error()};
  std::vector<char> list(*need);
  Result<size_t> got = sys::ListXattr(from, list.data(), list.size());
  if (!got.ok()) return Errno{got.error()};
  std::vector<char> value;
  for (size_t i = 0; i < *got;) {
    const char* name = list.data() + i;
    i += std::strlen(name) + 1;
    if (markers::IsReservedXattr(name)) continue;
    Result<size_t> vlen = sys::GetXattr(from, name, nullptr, 0);
    if (!vlen.ok()) {
      if (vlen.error() == ENODATA) continue;  // removed meanwhile
      return Errno{vlen.error()};
    }
    value.resize(*vlen);
    Result<size_t> v = sys::GetXattr(from, name, value.data(), value.size());
    if (!v.ok()) return Errno{v.error()};
    Result<void> set = sys::SetXattr(to, name, value.data(), *v, 0);
    if (!set.ok() && set.error() != ENOTSUP && set.error() != EOPNOTSUPP) return set;
  }
  return {};
}

Result<void> CopyOwnerModeTimes(int fd, const struct stat& st) {
  DETOURFS_TRY(sys::Fchown(fd, st.st_uid, st.st_gid));
  DETOURFS_TRY(sys::Fchmod(fd, st.st_mode & 07777));
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  return sys::Futimens(fd, times);
}

Result<sys::TmpFile> CopyToTmpfile(int src, int data, const struct stat& st, int tmp_dir) {
  Result<sys::TmpFile> out = sys::OpenTmpfile(tmp_dir, 0600);
  if (!out.ok()) return Errno{out.error()};
  UniqueFd own_in;
  if (data < 0) {
    Result<UniqueFd> in = sys::Reopen(src, O_RDONLY);
    if (!in.ok()) return Errno{in.error()};
    own_in = std::move(*in);
    data = own_in.get();
  }
  Result<struct stat> dst = sys::Fstat(data);
  if (!dst.ok()) return Errno{dst.error()};
  DETOURFS_TRY(CopyData(data, out->get(), dst->st_size));
  // Owner before mode (chown clears setuid), and both before the xattrs
  // (chown clears security.capability); the data copy set mtime, so times
  // are set here too, and setting xattrs does not change them.
  struct stat meta = st;
  meta.st_atim = dst->st_atim;
  meta.st_mtim = dst->st_mtim;
  DETOURFS_TRY(CopyOwnerModeTimes(out->get(), meta));
  DETOURFS_TRY(CopyXattrs(src, out->get()));
  return std::move(*out);
}

Result<void> CopySpecial(int src, const struct stat& st, int dirfd, const char* name) {
  if (S_ISLNK(st.st_mode)) {
    Result<std::string> target = sys::ReadlinkFd(src);
    if (!target.ok()) return Errno{target.error()};
    DETOURFS_TRY(sys::SymlinkAt(target->c_str(), dirfd, name));
  } else {
    DETOURFS_TRY(sys::MknodAt(dirfd, name, (st.st_mode & S_IFMT) | 0600, st.st_rdev));
  }
  Result<UniqueFd> fd = sys::OpenBeneath(dirfd, name, O_PATH);
  if (!fd.ok()) return Errno{fd.error()};
  DETOURFS_TRY(sys::ChownFd(fd->get(), st.st_uid, st.st_gid));
  if (!S_ISLNK(st.st_mode)) {
    DETOURFS_TRY(sys::ChmodPath(fd->get(), st.st_mode & 07777));
    DETOURFS_TRY(CopyXattrs(src, fd->get()));
  }
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  return sys::UtimensAt(dirfd, name, times);
}

}  // namespace detourfs
