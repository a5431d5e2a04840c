// The tier format's markers (markers.h).
#include "store/markers.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "sys/sys.h"

namespace detourfs::markers {
namespace {

constexpr char kFlagValue = 'y';

bool Absent(int err) { return err == ENODATA || err == ERANGE; }

uint64_t Decode(const unsigned char* b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

void Encode(uint64_t v, unsigned char* b) {
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
}

Result<uint64_t> NumberFrom(Result<size_t> n, const unsigned char* buf) {
  if (n.ok()) return *n == 8 ? Decode(buf) : uint64_t{0};
  if (Absent(n.error())) return uint64_t{0};
  return Errno{n.error()};
}

}  // namespace

std::string IndexName(uint64_t id) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(id));  // NOLINT
  return buf;
}

bool IsReservedXattr(std::string_view name) {
  return name.substr(0, kReservedPrefix.size()) == kReservedPrefix;
}

size_t FilterXattrList(char* list, size_t length) {
  size_t out = 0;
  size_t i = 0;
  while (i < length) {
    const size_t len = ::strnlen(list + i, length - i);
    const size_t span = std::min(len + 1, length - i);  // with its NUL, if there is one
    if (!IsReservedXattr(std::string_view(list + i, len))) {
      std::memmove(list + out, list + i, span);
      out += span;
    }
    i += span;
  }
  return out;
}

Result<bool> IsWhiteout(int dirfd, const char* name, const struct stat& st) {
  if (!MaybeWhiteout(st)) return false;
  Result<bool> device = HasFlagAt(dirfd, name, kDeviceXattr);
  if (!device.ok()) return Errno{device.error()};
  return !*device;
}

Result<void> SetFlag(int fd, const char* xattr) {
  return sys::SetXattr(fd, xattr, &kFlagValue, 1, 0);
}

Result<bool> HasFlag(int fd, const char* xattr) {
  char value = 0;
  Result<size_t> n = sys::GetXattr(fd, xattr, &value, 1);
  if (n.ok()) return *n == 1 && value == kFlagValue;
  if (Absent(n.error())) return false;
  return Errno{n.error()};
}

Result<bool> HasFlagAt(int dirfd, const char* name, const char* xattr) {
  char value = 0;
  Result<size_t> n = sys::GetXattrAt(dirfd, name, xattr, &value, 1);
  if (n.ok()) return *n == 1 && value == kFlagValue;
  if (Absent(n.error())) return false;
  return Errno{n.error()};
}

Result<void> ClearFlag(int fd, const char* xattr) {
  Result<void> r = sys::RemoveXattr(fd, xattr);
  if (!r.ok() && r.error() == ENODATA) return {};
  return r;
}

Result<uint64_t> GetNumber(int fd, const char* xattr) {
  unsigned char buf[8];
  return NumberFrom(sys::GetXattr(fd, xattr, buf, sizeof(buf)), buf);
}

Result<uint64_t> GetNumberAt(int dirfd, const char* name, const char* xattr) {
  unsigned char buf[8];
  return NumberFrom(sys::GetXattrAt(dirfd, name, xattr, buf, sizeof(buf)), buf);
}

Result<void> SetNumber(int fd, const char* xattr, uint64_t value) {
  unsigned char buf[8];
  Encode(value, buf);
  return sys::SetXattr(fd, xattr, buf, sizeof(buf), 0);
}

Result<void> SetNumberAt(int dirfd, const char* name, const char* xattr, uint64_t value) {
  unsigned char buf[8];
  Encode(value, buf);
  return sys::SetXattrAt(dirfd, name, xattr, buf, sizeof(buf), 0);
}

namespace {

constexpr size_t kIdOnly = 8;
constexpr size_t kIdFlags = 9;
constexpr size_t kIdFlagsSpill = 18;
constexpr unsigned char kOpaqueFlag = 1;

Result<IdRecord> IdRecordFrom(Result<size_t> n, const unsigned char* buf) {
  if (!n.ok()) {
    // Longer than any record (ERANGE): corrupt, never "no record".
    if (n.error() == ERANGE) return Errno{EUCLEAN};
    if (Absent(n.error())) return IdRecord{};
    return Errno{n.error()};
  }
  if (*n != kIdOnly && *n != kIdFlags && *n != kIdFlagsSpill) return Errno{EUCLEAN};
  IdRecord r;
  r.id = Decode(buf);
  if (*n >= kIdFlags) r.opaque = (buf[8] & kOpaqueFlag) != 0;
  if (*n == kIdFlagsSpill) {
    if (buf[17] > static_cast<unsigned char>(Layer::kDisk)) return Errno{EUCLEAN};
    r.spill = SpillRef{static_cast<Layer>(buf[17]), Decode(buf + 9)};
  }
  return r;
}

}  // namespace

Result<IdRecord> GetIdRecord(int fd) {
  unsigned char buf[kIdFlagsSpill];
  return IdRecordFrom(sys::GetXattr(fd, kIdXattr, buf, sizeof(buf)), buf);
}

Result<IdRecord> GetIdRecordAt(int dirfd, const char* name) {
  unsigned char buf[kIdFlagsSpill];
  return IdRecordFrom(sys::GetXattrAt(dirfd, name, kIdXattr, buf, sizeof(buf)), buf);
}

size_t EncodeIdRecord(const IdRecord& record, unsigned char* buf) {
  Encode(record.id, buf);
  if (!record.opaque && record.spill.token == 0) return kIdOnly;
  buf[8] = record.opaque ? kOpaqueFlag : 0;
  if (record.spill.token == 0) return kIdFlags;
  Encode(record.spill.token, buf + 9);
  buf[17] = static_cast<unsigned char>(record.spill.layer);
  return kIdFlagsSpill;
}

Result<void> SetIdRecord(int fd, const IdRecord& record) {
  unsigned char buf[kIdFlagsSpill];
  const size_t n = EncodeIdRecord(record, buf);
  return sys::SetXattr(fd, kIdXattr, buf, n, 0);
}

Result<void> SetIdRecordAt(int dirfd, const char* name, const IdRecord& record, int flags) {
  unsigned char buf[kIdFlagsSpill];
  const size_t n = EncodeIdRecord(record, buf);
  return sys::SetXattrAt(dirfd, name, kIdXattr, buf, n, flags);
}

Result<std::string> GetBytes(int fd, const char* xattr) {
  std::string value(256, '\0');
  for (;;) {
    Result<size_t> n = sys::GetXattr(fd, xattr, value.data(), value.size());
    if (n.ok()) {
      value.resize(*n);
      return value;
    }
    if (n.error() == ENODATA) return std::string();
    if (n.error() != ERANGE || value.size() >= 65536) return Errno{n.error()};
    value.resize(value.size() * 4);
  }
}

Result<std::string> GetBytesAt(int dirfd, const char* name, const char* xattr) {
  std::string value(256, '\0');
  for (;;) {
    Result<size_t> n = sys::GetXattrAt(dirfd, name, xattr, value.data(), value.size());
    if (n.ok()) {
      value.resize(*n);
      return value;
    }
    if (n.error() == ENODATA) return std::string();
    if (n.error() != ERANGE || value.size() >= 65536) return Errno{n.error()};
    value.resize(value.size() * 4);
  }
}

Result<void> SetBytes(int fd, const char* xattr, const std::string& value) {
  return sys::SetXattr(fd, xattr, value.data(), value.size(), 0);
}

}  // namespace detourfs::markers
