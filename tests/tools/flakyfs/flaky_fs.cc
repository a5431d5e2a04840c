// flakyfs operations: consult the plan, sleep, fail or lie, else pass through
// to the source directory with the *at() calls. Each change is made under the
// power-cut model's guard and reported to it (a no-op while durability is off).
#include "flaky_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace flakyfs {
namespace {

FlakyFs& Fs() { return *static_cast<FlakyFs*>(fuse_get_context()->private_data); }
PowerCutModel& Model() { return Fs().model; }

// "/a/b" -> "a/b"; "/" -> "" (the plan's name for the root). libfuse passes
// no path to an operation on an open file that was unlinked (hard_remove):
// that too is "", and the operation uses its handle.
std::string_view Rel(const char* path) {
  if (path == nullptr) return {};
  std::string_view p(path);
  while (!p.empty() && p.front() == '/') p.remove_prefix(1);
  return p;
}

// The *at() name for a relative path: "." for the root.
std::string AtName(std::string_view rel) { return rel.empty() ? "." : std::string(rel); }

int Neg(int r) { return r < 0 ? -errno : r; }

// Asks the plan, sleeps the delay; returns the decision.
Decision Gate(Op op, std::string_view rel, size_t size = 0) {
  Decision d = Fs().plan.Decide(op, rel, size);
  if (d.delay.count() > 0) std::this_thread::sleep_for(d.delay);
  return d;
}

// The power-cut model's state directory is not there for clients.
#define FLAKY_GATE(op, rel)                \
  Decision gate = Gate(op, rel);           \
  if (gate.error != 0) return -gate.error; \
  if (Model().Hidden(rel)) return -ENOENT;

#define FLAKY_NOT_HIDDEN(rel) \
  if (Model().Hidden(rel)) return -EPERM;

using Handle = FileHandle;

Handle* HandleOf(const fuse_file_info* fi) {
  return reinterpret_cast<Handle*>(fi->fh);  // NOLINT: the FUSE fh carries our pointer
}

DirHandle* DirHandleOf(const fuse_file_info* fi) {
  return reinterpret_cast<DirHandle*>(fi->fh);  // NOLINT
}

// Opened before the last power cut: the process that held it died with the power.
bool Dead(uint64_t epoch) { return epoch != Model().epoch(); }
bool Dead(const fuse_file_info* fi) { return fi != nullptr && Dead(HandleOf(fi)->epoch); }

void GiveToCaller(int dirfd, const std::string& name) {
  const fuse_context* ctx = fuse_get_context();
  if (ctx->uid == 0 && ctx->gid == 0) return;
  // Best effort: the file exists either way; a test tool need not undo it.
  (void)fchownat(dirfd, name.c_str(), ctx->uid, ctx->gid, AT_SYMLINK_NOFOLLOW);
}

void* Init(fuse_conn_info* /*conn*/, fuse_config* cfg) {
  FlakyFs* fs = static_cast<FlakyFs*>(fuse_get_context()->private_data);
  cfg->use_ino = 1;
  cfg->attr_timeout = fs->cache_timeout;
  cfg->entry_timeout = fs->cache_timeout;
  cfg->negative_timeout = fs->cache_timeout;
  cfg->hard_remove = 1;  // no .fuse_hidden files: an unlinked open file stays readable by fh
  return fs;
}

int GetAttr(const char* path, struct stat* st, fuse_file_info* fi) {
  std::string_view rel = Rel(path);
  FLAKY_GATE(Op::kGetattr, rel);
  auto vanished = Fs().plan.Vanished(rel);
  if (vanished && vanished->mode == VanishMode::kEnoent) return -ENOENT;
  if (Dead(fi)) return -EIO;
  int r = fi != nullptr ? fstat(HandleOf(fi)->fd, st)
                        : fstatat(Fs().source_fd, AtName(rel).c_str(), st,
                                  AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH);
  if (r != 0) return -errno;
  Model().AdjustStat(st);
  if (vanished && vanished->mode == VanishMode::kSize) {
    st->st_size = 0;
    st->st_blocks = 0;
  }
  return 0;
}

int ReadLink(const char* path, char* buf, size_t size) {
  std::string_view rel = Rel(path);
  FLAKY_GATE(Op::kReadlink, rel);
  ssize_t n = readlinkat(Fs().source_fd, AtName(rel).c_str(), buf, size - 1);
  if (n < 0) return -errno;
  buf[n] = '\0';
  return 0;
}

int MkNod(const char* path, mode_t mode, dev_t rdev) {
  std::string_view rel = Rel(path);
  FLAKY_NOT_HIDDEN(rel);
  FLAKY_GATE(Op::kMknod, rel);
  Fs().plan.Forget(rel);
  PowerCutModel::Guard g = Model().Lock();
  if (mknodat(Fs().source_fd, AtName(rel).c_str(), mode, rdev) != 0) return -errno;
  GiveToCaller(Fs().source_fd, AtName(rel));
  Model().Created(g, rel, true);
  return 0;
}

int MkDir(const char* path, mode_t mode) {
  std::string_view rel = Rel(path);
  FLAKY_NOT_HIDDEN(rel);
  FLAKY_GATE(Op::kMkdir, rel);
  PowerCutModel::Guard g = Model().Lock();
  if (mkdirat(Fs().source_fd, AtName(rel).c_str(), mode) != 0) return -errno;
  GiveToCaller(Fs().source_fd, AtName(rel));
  Model().Created(g, rel, true);
  return 0;
}

int Unlink(const char* path) {
  std::string_view rel = Rel(path);
  FLAKY_GATE(Op::kUnlink, rel);
  if (gate.lie) return 0;
  PowerCutModel::Guard g = Model().Lock();
  if (int r = Model().Remove(g, rel, false); r != 0) return r;
  Fs().plan.Forget(rel);
  return 0;
}

int RmDir(const char* path) {
  std::string_view rel = Rel(path);
  FLAKY_GATE(Op::kRmdir, rel);
  if (gate.lie) return 0;
  PowerCutModel::Guard g = Model().Lock();
  return Model().Remove(g, rel, true);
}

int SymLink(const char* target, const char* path) {
  std::string_view rel = Rel(path);
  FLAKY_NOT_HIDDEN(rel);
  FLAKY_GATE(Op::kSymlink, rel);
  PowerCutModel::Guard g = Model().Lock();
  if (symlinkat(target, Fs().source_fd, AtName(rel).c_str()) != 0) return -errno;
  GiveToCaller(Fs().source_fd, AtName(rel));
  Model().Created(g, rel, true);
  return 0;
}

int Rename(const char* from, const char* to, unsigned int flags) {
  std::string_view rel = Rel(from);
  FLAKY_NOT_HIDDEN(Rel(to));
  FLAKY_GATE(Op::kRename, rel);
  if (gate.lie) return 0;
  PowerCutModel::Guard g = Model().Lock();
  if (int r = Model().Rename(g, rel, Rel(to), flags); r != 0) return r;
  Fs().plan.Forget(rel);
  Fs().plan.Forget(Rel(to));
  return 0;
}

int Link(const char* from, const char* to) {
  std::string_view rel = Rel(to);
  FLAKY_NOT_HIDDEN(rel);
  FLAKY_GATE(Op::kLink, rel);
  if (Model().Hidden(Rel(from))) return -ENOENT;
  PowerCutModel::Guard g = Model().Lock();
  if (linkat(Fs().source_fd, AtName(Rel(from)).c_str(), Fs().source_fd, AtName(rel).c_str(), 0) !=
      0) {
    return -errno;
  }
  Model().Created(g, rel, false);
  return 0;
}

// The model's hooks for a change by handle (fi) or by path.
int BeforeAttrs(const PowerCutModel::Guard& g, std::string_view rel, fuse_file_info* fi) {
  if (fi != nullptr) return Model().BeforeAttrs(g, HandleOf(fi)->fd, &HandleOf(fi)->key);
  return Model().BeforeAttrsAt(g, rel);
}

int BeforeContent(const PowerCutModel::Guard& g, std::string_view rel, fuse_file_info* fi) {
  if (fi != nullptr) return Model().BeforeContent(g, HandleOf(fi)->fd, &HandleOf(fi)->key);
  return Model().BeforeContentAt(g, rel);
}

int ChMod(const char* path, mode_t mode, fuse_file_info* fi) {
  std::string_view rel = Rel(path);
  FLAKY_GATE(Op::kChmod, rel);
  if (Dead(fi)) return -EIO;
  PowerCutModel::Guard g = Model().Lock();
  if (int r = BeforeAttrs(g, rel, fi); r != 0) return r;
  if (fi != nullptr) return Neg(fchmod(HandleOf(fi)->fd, mode));
  return Neg(fchmodat(Fs().source_fd, AtName(rel).c_str(), mode, 0));
}

int ChOwn(const char* path, uid_t uid, gid_t gid, fuse_file_info* fi) {
  std::string_view rel = Rel(path);
  FLAKY_GATE(Op::kChown, rel);
  if (Dead(fi)) return -EIO;
  PowerCutModel::Guard g = Model().Lock();
  if (int r = BeforeAttrs(g, rel, fi); r != 0) return r;
  if (fi != nullptr) return Neg(fchown(HandleOf(fi)->fd, uid, gid));
  return Neg(
      fchownat(Fs().source_fd, AtName(rel).c_str(), uid, gid, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH));
}

int Truncate(const char* path, off_t size, fuse_file_info* fi) {
  std::string_view rel = Rel(path);
  FLAKY_GATE(Op::kTruncate, rel);
  if (Dead(fi)) return -EIO;
  PowerCutModel::Guard g = Model().Lock();
  if (int r = BeforeContent(g, rel, fi); r != 0) return r;
  Fs().plan.Forget(rel);
  if (fi != nullptr) return Neg(ftruncate(HandleOf(fi)->fd, size));
  int fd = openat(Fs().source_fd, AtName(rel).c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -errno;
  int r = Neg(ftruncate(fd, size));
  close(fd);
  return r;
}

// CREATE makes the file only when it is not there (a racing creator may have
// made it since the kernel's lookup): only then is it chowned to the caller
// and a creation for the model.
int OpenCommon(Op op, const char* path, mode_t mode, fuse_file_info* fi) {
  std::string_view rel = Rel(path);
  if (op == Op::kCreate && Model().Hidden(rel)) return -EPERM;
  FLAKY_GATE(op, rel);
  int flags = (fi->flags | O_NOFOLLOW | O_CLOEXEC) & ~(O_CREAT | O_EXCL);
  if (op == Op::kOpen) {
    auto vanished = Fs().plan.Vanished(rel);
    if (vanished && vanished->mode == VanishMode::kEnoent) return -ENOENT;
  }
  if (op == Op::kCreate || (flags & O_TRUNC) != 0) Fs().plan.Forget(rel);
  PowerCutModel::Guard g = Model().Lock();
  const std::string name = AtName(rel);
  int fd = -1;
  bool created = false;
  if (op == Op::kCreate) {
    fd = openat(Fs().source_fd, name.c_str(), flags | O_CREAT | O_EXCL, mode);
    created = fd >= 0;
    if (fd < 0 && (errno != EEXIST || (fi->flags & O_EXCL) != 0)) return -errno;
  }
  if (!created) {
    if ((flags & O_TRUNC) != 0) {
      if (int r = Model().BeforeContentAt(g, rel); r != 0) return r;
    }
    fd = openat(Fs().source_fd, name.c_str(), flags);
    if (fd < 0) return -errno;
  }
  if (created) {
    GiveToCaller(Fs().source_fd, name);
    Model().Created(g, rel, true);
  }
  auto h = std::make_unique<Handle>();
  h->fd = fd;
  h->epoch = Model().epoch();
  fi->fh = Fs().files.Add(std::move(h));
  return 0;
}

int Open(const char* path, fuse_file_info* fi) { return OpenCommon(Op::kOpen, path, 0, fi); }

int Create(const char* path, mode_t mode, fuse_file_info* fi) {
  return OpenCommon(Op::kCreate, path, mode, fi);
}

int Read(const char* path, char* buf, size_t size, off_t off, fuse_file_info* fi) {
  std::string_view rel = Rel(path);
  FLAKY_GATE(Op::kRead, rel);
  if (Dead(fi)) return -EIO;
  auto vanished = Fs().plan.Vanished(rel);
  if (vanished && vanished->mode == VanishMode::kSize) return 0;
  ssize_t n = pread(HandleOf(fi)->fd, buf, size, off);
  if (n < 0) return -errno;
  if (vanished && vanished->mode == VanishMode::kContent)
    std::memset(buf, 0, static_cast<size_t>(n));
  return static_cast<int>(n);
}

int Write(const char* path, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  std::string_view rel = Rel(path);
  Decision gate = Gate(Op::kWrite, rel, size);
  if (gate.error != 0) return -gate.error;
  if (gate.short_write != 0) size = gate.short_write;
  if (Dead(fi)) return -EIO;
  Handle* h = HandleOf(fi);
  PowerCutModel::Guard g = Model().Lock();
  if (int r = Model().BeforeContent(g, h->fd, &h->key); r != 0) return r;
  ssize_t n = pwrite(h->fd, buf, size, off);
  if (n < 0) return -errno;
  h->written = true;
  Fs().plan.Forget(rel);
  return static_cast<int>(n);
}

int StatFs(const char* path, struct statvfs* st) {
  FLAKY_GATE(Op::kStatfs, Rel(path));
  return Neg(fstatvfs(Fs().source_fd, st));
}

// Applies a "for good" vanish to the source itself.
void Damage(const PermanentDamage& damage) {
  int dir = Fs().source_fd;
  const std::string name = AtName(damage.path);
  // To the model, damage is one more change a power cut may undo.
  PowerCutModel::Guard g = Model().Lock();
  switch (damage.mode) {
    case VanishMode::kEnoent:
      (void)Model().Remove(g, damage.path, false);
      break;
    case VanishMode::kSize:
    case VanishMode::kContent: {
      if (Model().BeforeContentAt(g, damage.path) != 0) break;
      int fd = openat(dir, name.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) break;
      struct stat st {};
      if (damage.mode == VanishMode::kSize) {
        (void)ftruncate(fd, 0);
      } else if (fstat(fd, &st) == 0) {
        std::vector<char> zeros(static_cast<size_t>(st.st_size), '\0');
        (void)pwrite(fd, zeros.data(), zeros.size(), 0);
      }
      close(fd);
      break;
    }
  }
}

// close(2) sends FLUSH and waits for it (RELEASE comes later, asynchronously):
// a file written through this handle may vanish now, once close returns.
int Flush(const char* path, fuse_file_info* fi) {
  Handle* h = HandleOf(fi);
  if (path == nullptr || !h->written.exchange(false) || Dead(h->epoch)) return 0;
  if (auto damage = Fs().plan.OnClosedAfterWrite(Rel(path))) Damage(*damage);
  return 0;
}

int Release(const char* path, fuse_file_info* fi) {
  // path is null when the file was unlinked while open (hard_remove).
  if (path != nullptr) (void)Gate(Op::kRelease, Rel(path));
  Fs().files.Remove(fi->fh);
  return 0;
}

int Fsync(const char* path, int datasync, fuse_file_info* fi) {
  FLAKY_GATE(Op::kFsync, path != nullptr ? Rel(path) : std::string_view());
  if (Dead(fi)) return -EIO;
  Handle* h = HandleOf(fi);
  PowerCutModel::Guard g = Model().Lock();
  if ((datasync != 0 ? fdatasync(h->fd) : fsync(h->fd)) != 0) return -errno;
  Model().Synced(g, h->fd, datasync != 0, &h->key);
  return 0;
}

// Without it the kernel would stop sending directory fsyncs (ENOSYS), and the
// model would never see a directory made durable.
int FsyncDir(const char* path, int datasync, fuse_file_info* fi) {
  FLAKY_GATE(Op::kFsyncdir, path != nullptr ? Rel(path) : std::string_view());
  DirHandle* d = DirHandleOf(fi);
  if (Dead(d->epoch)) return -EIO;
  int fd = dirfd(d->dir);
  PowerCutModel::Guard g = Model().Lock();
  if ((datasync != 0 ? fdatasync(fd) : fsync(fd)) != 0) return -errno;
  Model().DirSynced(g, fd, datasync != 0);
  return 0;
}

// Xattrs through an O_PATH fd's /proc name: the magic link resolves to the
// inode itself, a symlink's included (its trusted.* xattrs, as ext4 and
// tmpfs keep them).
template <typename F>
int WithProcPath(std::string_view rel, F&& f) {
  int fd = openat(Fs().source_fd, AtName(rel).c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -errno;
  std::string proc = "/proc/self/fd/" + std::to_string(fd);
  int r = f(proc.c_str());
  close(fd);
  return r;
}

int SetXattr(const char* path, const char* name, const char* value, size_t size, int flags) {
  std::string_view rel = Rel(path);
  FLAKY_GATE(Op::kSetxattr, rel);
  PowerCutModel::Guard g = Model().Lock();
  if (int r = Model().BeforeAttrsAt(g, rel); r != 0) return r;
  return WithProcPath(rel,
                      [&](const char* p) { return Neg(setxattr(p, name, value, size, flags)); });
}

int GetXattr(const char* path, const char* name, char* value, size_t size) {
  std::string_view rel = Rel(path);
  FLAKY_GATE(Op::kGetxattr, rel);
  return WithProcPath(rel, [&](const char* p) {
    return static_cast<int>(Neg(static_cast<int>(getxattr(p, name, value, size))));
  });
}

int ListXattr(const char* path, char* list, size_t size) {
  std::string_view rel = Rel(path);
  FLAKY_GATE(Op::kListxattr, rel);
  return WithProcPath(rel, [&](const char* p) {
    return static_cast<int>(Neg(static_cast<int>(listxattr(p, list, size))));
  });
}

int RemoveXattr(const char* path, const char* name) {
  std::string_view rel = Rel(path);
  FLAKY_GATE(Op::kRemovexattr, rel);
  PowerCutModel::Guard g = Model().Lock();
  if (int r = Model().BeforeAttrsAt(g, rel); r != 0) return r;
  return WithProcPath(rel, [&](const char* p) { return Neg(removexattr(p, name)); });
}

int OpenDir(const char* path, fuse_file_info* fi) {
  std::string_view rel = Rel(path);
  FLAKY_GATE(Op::kOpendir, rel);
  int fd =
      openat(Fs().source_fd, AtName(rel).c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -errno;
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    int err = errno;
    close(fd);
    return -err;
  }
  auto d = std::make_unique<DirHandle>();
  d->dir = dir;
  d->epoch = Model().epoch();
  fi->fh = Fs().dirs.Add(std::move(d));
  return 0;
}

int ReadDir(const char* path, void* buf, fuse_fill_dir_t filler, off_t /*off*/, fuse_file_info* fi,
            fuse_readdir_flags /*flags*/) {
  std::string_view rel = Rel(path);
  FLAKY_GATE(Op::kReaddir, rel);
  if (Dead(DirHandleOf(fi)->epoch)) return -EIO;
  DIR* dir = DirHandleOf(fi)->dir;
  rewinddir(dir);
  std::string prefix = rel.empty() ? std::string() : std::string(rel) + "/";
  errno = 0;
  while (dirent* e = readdir(dir)) {
    std::string_view name(e->d_name);
    if (name != "." && name != "..") {
      if (rel.empty() && Model().Hidden(name)) continue;
      auto vanished = Fs().plan.Vanished(prefix + std::string(name));
      if (vanished && vanished->mode == VanishMode::kEnoent) continue;
    }
    struct stat st {};
    st.st_ino = e->d_ino;
    st.st_mode = static_cast<mode_t>(DTTOIF(e->d_type));
    if (filler(buf, e->d_name, &st, 0, static_cast<fuse_fill_dir_flags>(0)) != 0) break;
    errno = 0;
  }
  return -errno;
}

int ReleaseDir(const char* /*path*/, fuse_file_info* fi) {
  Fs().dirs.Remove(fi->fh);
  return 0;
}

int Utimens(const char* path, const timespec tv[2], fuse_file_info* fi) {
  std::string_view rel = Rel(path);
  FLAKY_GATE(Op::kUtimens, rel);
  if (Dead(fi)) return -EIO;
  PowerCutModel::Guard g = Model().Lock();
  if (int r = BeforeAttrs(g, rel, fi); r != 0) return r;
  if (fi != nullptr) return Neg(futimens(HandleOf(fi)->fd, tv));
  return Neg(utimensat(Fs().source_fd, AtName(rel).c_str(), tv, AT_SYMLINK_NOFOLLOW));
}

int Fallocate(const char* path, int mode, off_t off, off_t len, fuse_file_info* fi) {
  FLAKY_GATE(Op::kFallocate, Rel(path));
  if (Dead(fi)) return -EIO;
  Handle* h = HandleOf(fi);
  PowerCutModel::Guard g = Model().Lock();
  if (int r = Model().BeforeContent(g, h->fd, &h->key); r != 0) return r;
  return Neg(fallocate(h->fd, mode, off, len));
}

fuse_operations MakeOperations() {
  fuse_operations ops{};
  ops.init = Init;
  ops.getattr = GetAttr;
  ops.readlink = ReadLink;
  ops.mknod = MkNod;
  ops.mkdir = MkDir;
  ops.unlink = Unlink;
  ops.rmdir = RmDir;
  ops.symlink = SymLink;
  ops.rename = Rename;
  ops.link = Link;
  ops.chmod = ChMod;
  ops.chown = ChOwn;
  ops.truncate = Truncate;
  ops.open = Open;
  ops.read = Read;
  ops.write = Write;
  ops.statfs = StatFs;
  ops.flush = Flush;
  ops.release = Release;
  ops.fsync = Fsync;
  ops.setxattr = SetXattr;
  ops.getxattr = GetXattr;
  ops.listxattr = ListXattr;
  ops.removexattr = RemoveXattr;
  ops.opendir = OpenDir;
  ops.readdir = ReadDir;
  ops.releasedir = ReleaseDir;
  ops.fsyncdir = FsyncDir;
  ops.create = Create;
  ops.utimens = Utimens;
  ops.fallocate = Fallocate;
  return ops;
}

}  // namespace

const fuse_operations& FlakyOperations() {
  static const fuse_operations ops = MakeOperations();
  return ops;
}

}  // namespace flakyfs
