// Generation, execution and comparison of the model checker's operations.
#include "stress_ops.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "stress_fs.h"

namespace detourfs::stress {
namespace {

constexpr std::array<const char*, static_cast<size_t>(Kind::kCount)> kNames = {"create",
                                                                               "write",
                                                                               "read",
                                                                               "truncate",
                                                                               "rename",
                                                                               "link",
                                                                               "unlink",
                                                                               "mkdir",
                                                                               "rmdir",
                                                                               "symlink",
                                                                               "chmod",
                                                                               "utimens",
                                                                               "fsync",
                                                                               "stat",
                                                                               "list",
                                                                               "hold_open",
                                                                               "hold_write",
                                                                               "hold_read",
                                                                               "hold_close",
                                                                               "rename_noreplace",
                                                                               "rename_exchange",
                                                                               "rename_whiteout",
                                                                               "mkdir_p",
                                                                               "rm_rf"};

// Relative weights of the flat namespace: data operations dominate, as in a
// build. The kinds after kHoldClose (weight 0) came later; the home namespace
// draws them.
constexpr std::array<int, static_cast<size_t>(Kind::kCount)> kWeights = {
    8, 12, 8, 4, 6, 3, 5, 4, 3, 2, 2, 2, 2, 6, 3, 3, 6, 4, 2, 0, 0, 0, 0, 0};

constexpr std::array<uint32_t, 5> kModes = {0644, 0600, 0755, 0444, 0700};

std::string Data(uint32_t seed, uint64_t length) {
  std::string out(length, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (char& c : out) {
    x ^= x << 13U;
    x ^= x >> 7U;
    x ^= x << 17U;
    c = static_cast<char>(x & 0xFFU);
  }
  return out;
}

// What one side did: the return value, errno, and any data it produced.
struct Outcome {
  long long ret = 0;  // NOLINT: syscall results
  int err = 0;
  std::string data;
  bool operator==(const Outcome&) const = default;
  std::string Describe() const {
    std::ostringstream out;
    out << "ret=" << ret;
    if (err != 0) out << " errno=" << err << " (" << std::strerror(err) << ")";
    if (!data.empty()) {
      bool printable =
          std::all_of(data.begin(), data.end(), [](char c) { return c >= 32 && c < 127; });
      out << (printable ? " data='" + data + "'"
                        : " data=<" + std::to_string(data.size()) + " bytes>");
    }
    return out.str();
  }
};

Outcome Syscall(long long r) {  // NOLINT
  Outcome o;
  o.ret = r < 0 ? -1 : r;
  o.err = r < 0 ? errno : 0;
  return o;
}

Outcome Rename2(const std::string& from, const std::string& to, unsigned flags) {
  return Syscall(::syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
}

// mkdir -p: each component made unless it is a directory already (a symlink
// to one counts, as for mkdir -p). The failing prefix goes in `data`.
Outcome MkdirP(const std::string& root, const std::string& rel, uint32_t mode) {
  size_t from = 0;
  for (;;) {
    size_t slash = rel.find('/', from);
    const std::string prefix = rel.substr(0, slash);
    const std::string path = root + "/" + prefix;
    if (::mkdir(path.c_str(), mode) != 0) {
      const int err = errno;
      struct stat st {};
      if (err != EEXIST || ::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        return Outcome{-1, err, prefix};
      }
    }
    if (slash == std::string::npos) return Outcome{};
    from = slash + 1;
  }
}

// rm -rf: a directory's children first (in name order), then the directory;
// goes on past failures as rm does. `o` gets the first errno and every
// failure, named, in `data`.
void RemoveTree(const std::string& root, const std::string& rel, Outcome* o) {
  auto fail = [&](int err) {
    if (o->err == 0) *o = Outcome{-1, err, {}};
    o->data += rel + ": " + std::strerror(err) + "; ";
  };
  const std::string path = root + "/" + rel;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return fail(errno);
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0) fail(errno);
    return;
  }
  int err = 0;
  for (const std::string& name : Names(path, &err)) RemoveTree(root, rel + "/" + name, o);
  if (err != 0) fail(err);
  if (::rmdir(path.c_str()) != 0) fail(errno);
}

Outcome Run(const Operation& op, Side* side) {
  const std::string p = side->root + "/" + op.path;
  const std::string p2 = side->root + "/" + op.path2;
  switch (op.kind) {
    case Kind::kCreate: {
      int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (op.offset != 0 ? O_EXCL : 0);
      int fd = ::open(p.c_str(), flags, op.mode);
      if (fd < 0) return Syscall(-1);
      return Syscall(::close(fd));
    }
    case Kind::kWrite: {
      int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) return Syscall(-1);
      std::string data = Data(op.data_seed, op.length);
      Outcome o = Syscall(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(op.offset)));
      if (::close(fd) != 0 && o.err == 0) o = Syscall(-1);
      return o;
    }
    case Kind::kRead: {
      int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return Syscall(-1);
      std::string buf(op.length, '\0');
      Outcome o = Syscall(::pread(fd, buf.data(), buf.size(), static_cast<off_t>(op.offset)));
      if (o.ret > 0) o.data = buf.substr(0, static_cast<size_t>(o.ret));
      ::close(fd);
      return o;
    }
    case Kind::kTruncate:
      return Syscall(::truncate(p.c_str(), static_cast<off_t>(op.length)));
    case Kind::kRename:
      return Syscall(::rename(p.c_str(), p2.c_str()));
    case Kind::kLink:
      return Syscall(::link(p.c_str(), p2.c_str()));
    case Kind::kUnlink:
      return Syscall(::unlink(p.c_str()));
    case Kind::kMkdir:
      return Syscall(::mkdir(p.c_str(), op.mode));
    case Kind::kRmdir:
      return Syscall(::rmdir(p.c_str()));
    case Kind::kSymlink:
      return Syscall(::symlink(op.path2.c_str(), p.c_str()));
    case Kind::kChmod:
      return Syscall(::chmod(p.c_str(), op.mode));
    case Kind::kUtimens: {
      const timespec times[2] = {{op.seconds, 0}, {op.seconds, 500}};
      Outcome o = Syscall(::utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW));
      struct stat st {};
      if (o.err == 0 && ::lstat(p.c_str(), &st) == 0) {
        o.data = std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
      }
      return o;
    }
    case Kind::kFsync: {
      int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return Syscall(-1);
      Outcome o = Syscall(::fsync(fd));
      ::close(fd);
      return o;
    }
    case Kind::kStat: {
      struct stat st {};
      Outcome o = Syscall(::lstat(p.c_str(), &st));
      // A directory's link count of 1 means "not counted" (btrfs, overlays):
      // compare directories without it.
      if (S_ISDIR(st.st_mode)) st.st_nlink = 0;
      if (o.err == 0) o.data = StatLine(st);
      return o;
    }
    case Kind::kList: {
      Outcome o;
      std::vector<std::string> names = Names(p, &o.err);
      o.ret = o.err != 0 ? -1 : static_cast<long long>(names.size());  // NOLINT
      for (const std::string& n : names) o.data += n + " ";
      return o;
    }
    case Kind::kHoldOpen: {
      int& fd = side->fds[op.slot];
      if (fd >= 0) ::close(fd);
      fd = ::open(p.c_str(), O_RDWR | O_CLOEXEC);
      return Syscall(fd < 0 ? -1 : 0);
    }
    case Kind::kHoldWrite: {
      int fd = side->fds[op.slot];
      if (fd < 0) return Outcome{-1, EBADF, {}};
      std::string data = Data(op.data_seed, op.length);
      return Syscall(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(op.offset)));
    }
    case Kind::kHoldRead: {
      int fd = side->fds[op.slot];
      if (fd < 0) return Outcome{-1, EBADF, {}};
      std::string buf(op.length, '\0');
      Outcome o = Syscall(::pread(fd, buf.data(), buf.size(), static_cast<off_t>(op.offset)));
      if (o.ret > 0) o.data = buf.substr(0, static_cast<size_t>(o.ret));
      return o;
    }
    case Kind::kHoldClose: {
      int& fd = side->fds[op.slot];
      if (fd < 0) return Outcome{-1, EBADF, {}};
      Outcome o = Syscall(::close(fd));
      fd = -1;
      return o;
    }
    case Kind::kRenameNoreplace:
      return Rename2(p, p2, RENAME_NOREPLACE);
    case Kind::kRenameExchange:
      return Rename2(p, p2, RENAME_EXCHANGE);
    case Kind::kRenameWhiteout:
      return Rename2(p, p2, RENAME_WHITEOUT);
    case Kind::kMkdirP:
      return MkdirP(side->root, op.path, op.mode);
    case Kind::kRemoveTree: {
      Outcome o;
      RemoveTree(side->root, op.path, &o);
      return o;
    }
    case Kind::kCount:
      break;
  }
  return Outcome{-1, EINVAL, {}};
}

}  // namespace

Side::~Side() {
  for (int& fd : fds) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

const char* KindName(Kind kind) { return kNames[static_cast<size_t>(kind)]; }

bool KindFromName(const std::string& name, Kind* kind) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (name == kNames[i]) {
      *kind = static_cast<Kind>(i);
      return true;
    }
  }
  return false;
}

Operation SkippingSource::Next() {
  Operation op = inner_->Next();
  while (skip_.count(op.kind) != 0) op = inner_->Next();
  return op;
}

std::string Operation::Describe() const {
  std::ostringstream out;
  if (volume) out << "on the volume: ";
  out << kNames[static_cast<size_t>(kind)] << " ";
  bool held = kind == Kind::kHoldWrite || kind == Kind::kHoldRead || kind == Kind::kHoldClose;
  if (!held) out << path;
  switch (kind) {
    case Kind::kRename:
    case Kind::kRenameNoreplace:
    case Kind::kRenameExchange:
    case Kind::kRenameWhiteout:
    case Kind::kLink:
      out << " -> " << path2;
      break;
    case Kind::kSymlink:
      out << " (target '" << path2 << "')";
      break;
    case Kind::kCreate:
      out << " mode " << std::oct << mode << std::dec << (offset != 0 ? " O_EXCL" : "");
      break;
    case Kind::kMkdir:
    case Kind::kMkdirP:
    case Kind::kChmod:
      out << " mode " << std::oct << mode << std::dec;
      break;
    case Kind::kWrite:
    case Kind::kRead:
      out << " at " << offset << " len " << length;
      break;
    case Kind::kTruncate:
      out << " to " << length;
      break;
    case Kind::kUtimens:
      out << " to " << seconds;
      break;
    case Kind::kHoldOpen:
      out << " as fd#" << slot;
      break;
    case Kind::kHoldWrite:
    case Kind::kHoldRead:
      out << "fd#" << slot << " at " << offset << " len " << length;
      break;
    case Kind::kHoldClose:
      out << "fd#" << slot;
      break;
    default:
      break;
  }
  return out.str();
}

std::string Generator::RandomPath(bool dir_only) {
  static constexpr std::array<const char*, 3> kDirs = {"d0", "d1", "d2"};
  static constexpr std::array<const char*, 9> kLeaves = {"f0", "f1", "f2", "f3", "f4",
                                                         "f5", "d0", "d1", "d2"};
  std::string path;
  uint64_t depth = Below(3);
  for (uint64_t i = 0; i < depth; ++i) path += std::string(kDirs[Below(kDirs.size())]) + "/";
  path += dir_only ? kDirs[Below(kDirs.size())] : kLeaves[Below(kLeaves.size())];
  return path;
}

Operation Generator::Next() {
  int total = 0;
  for (int w : kWeights) total += w;
  int pick = static_cast<int>(Below(static_cast<uint64_t>(total)));
  size_t k = 0;
  while (pick >= kWeights[k]) pick -= kWeights[k++];
  Operation op;
  op.kind = static_cast<Kind>(k);
  bool dir = op.kind == Kind::kMkdir || op.kind == Kind::kRmdir || op.kind == Kind::kList;
  op.path = RandomPath(dir);
  op.path2 = RandomPath(false);
  op.mode = kModes[Below(kModes.size())];
  op.slot = static_cast<int>(Below(Side::kSlots));
  op.data_seed = static_cast<uint32_t>(Below(1U << 30U));
  op.offset = Below(4) == 0 ? 0 : Below(256 * 1024);
  op.length = Below(4) == 0 ? Below(64) : Below(64 * 1024);
  op.seconds = 1000000000 + static_cast<int64_t>(Below(100000000));
  if (op.kind == Kind::kCreate) op.offset = Below(2);
  if (op.kind == Kind::kMkdir) op.mode = 0755;
  if (op.kind == Kind::kSymlink) op.path2 = Below(2) == 0 ? "f0" : "../" + op.path2;
  return op;
}

std::string ApplyBoth(const Operation& op, Side* test, Side* ref, int* test_errno, int* ref_errno,
                      bool may_refuse_exdev) {
  Outcome t = Run(op, test);
  if (may_refuse_exdev && t.err == EXDEV) {
    if (test_errno != nullptr) *test_errno = EXDEV;
    if (ref_errno != nullptr) *ref_errno = EXDEV;
    return {};
  }
  Outcome r = Run(op, ref);
  if (test_errno != nullptr) *test_errno = t.err;
  if (ref_errno != nullptr) *ref_errno = r.err;
  if (t == r) return {};
  return "under test: " + t.Describe() + "; reference: " + r.Describe();
}

}  // namespace detourfs::stress
