// ChangeLayer (change_layer.h).
#include "store/change_layer.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <vector>

#include "store/as_caller.h"
#include "store/file_copy.h"
#include "store/id_source.h"
#include "store/markers.h"
#include "store/tree_walk.h"
#include "sys/sys.h"
#include "sys/tmp_file.h"
#include "util/random_token.h"
#include "util/session_signals.h"

namespace detourfs {
namespace {

constexpr auto kSyncInterval = std::chrono::seconds(5);
// In the volume's private directory (adopted_numbers.h).
constexpr const char* kAdoptedName = "adopted";
constexpr const char* kDefaultAcl = "system.posix_acl_default";

bool IsWhiteoutDevice(const MakeSpec& spec) {
  return spec.type == S_IFCHR && spec.rdev == makedev(0, 0);
}

// Creates `name` in `dirfd` as `spec` says (the caller's credentials are in
// effect); a regular file is opened with spec.open_flags.
Result<UniqueFd> CreateEntry(int dirfd, const char* name, const MakeSpec& spec, mode_t mode) {
  switch (spec.type) {
    case S_IFREG: {
      const int flags = spec.open_flags >= 0 ? spec.open_flags : O_RDONLY;
      Result<UniqueFd> fd = sys::OpenBeneath(dirfd, name, flags | O_CREAT | O_EXCL, mode);
      if (!fd.ok() || spec.open_flags >= 0) return fd;
      return sys::OpenBeneath(dirfd, name, O_PATH);  // opened only to create it
    }
    case S_IFDIR:
      DETOURFS_TRY(sys::MkdirAt(dirfd, name, mode));
      break;
    case S_IFLNK:
      DETOURFS_TRY(sys::SymlinkAt(std::string(spec.target).c_str(), dirfd, name));
      break;
    default:
      DETOURFS_TRY(sys::MknodAt(dirfd, name, spec.type | mode, spec.rdev));
      break;
  }
  return sys::OpenBeneath(dirfd, name, O_PATH);
}

// A name in held/ for an inode held for `id`: the id, then a random tail
// (an id may be held more than once).
std::string HeldName(uint64_t id) {
  return TokenName(id) + "." + TokenName(NewRandomToken()).substr(0, 8);
}

// fsync of the directory `name` in `dirfd`.
Result<void> SyncDirAt(int dirfd, const char* name) {
  Result<UniqueFd> dir = sys::OpenBeneath(dirfd, name, O_RDONLY | O_DIRECTORY);
  if (!dir.ok()) return Errno{dir.error()};
  return sys::Fsync(dir->get(), false);
}

// fsync of every directory in the tree `name` in `dirfd`, deepest first:
// before the tree leaves users' sight (held/, kept/), where no fsync of
// theirs could make what changed in it durable any more.
Result<void> SyncTreeDirsAt(int dirfd, const char* name) {
  Result<UniqueFd> root = sys::OpenBeneath(dirfd, name, O_RDONLY | O_DIRECTORY);
  if (!root.ok()) return Errno{root.error()};
  WalkCallbacks cb;
  cb.visit = [](const WalkDir&, const WalkItem& item) -> Result<bool> {
    return S_ISDIR(item.type);
  };
  cb.leave = [](const WalkDir& parent, const WalkItem& item) -> Result<void> {
    return SyncDirAt(parent.fds[0], item.name.c_str());
  };
  DETOURFS_TRY(WalkTrees({root->get(), -1, -1, -1}, cb));
  return sys::Fsync(root->get(), false);
}

// Unlinks, in the held entry `name` of `held`, every file that has a name
// elsewhere as well (st_nlink > 1): the other name keeps its inode number
// reserved, and the held link would be counted in the st_nlink users see.
// Directories and single-link files stay: they are what holds numbers.
Result<void> PruneHeld(int held, const char* name) {
  Result<struct stat> top = sys::StatAt(held, name);
  if (!top.ok()) return top.error() == ENOENT ? Result<void>() : Result<void>(Errno{top.error()});
  if (!S_ISDIR(top->st_mode)) {
    if (top->st_nlink > 1) return sys::UnlinkAt(held, name, 0);
    return {};
  }
  Result<UniqueFd> root = sys::OpenBeneath(held, name, O_RDONLY | O_DIRECTORY);
  if (!root.ok()) return Errno{root.error()};
  // Each directory something left is synced once its walk is done: later
  // changes to these inodes (a trash, a release) build on the unlinks.
  WalkCallbacks cb;
  std::set<std::string> changed;
  cb.visit = [&changed](const WalkDir& parent, const WalkItem& item) -> Result<bool> {
    if (S_ISDIR(item.type)) return true;
    const int dir = parent.fds[0];
    Result<struct stat> st = sys::StatAt(dir, item.name.c_str());
    if (st.ok() && st->st_nlink > 1) {
      DETOURFS_TRY(sys::UnlinkAt(dir, item.name.c_str(), 0));
      changed.insert(*parent.path);
    }
    return false;
  };
  cb.leave = [&changed](const WalkDir& parent, const WalkItem& item) -> Result<void> {
    const std::string path = parent.path->empty() ? item.name : *parent.path + "/" + item.name;
    if (changed.erase(path) == 0) return {};
    return SyncDirAt(parent.fds[0], item.name.c_str());
  };
  DETOURFS_TRY(WalkTrees({root->get(), -1, -1, -1}, cb));
  if (changed.count("") != 0) return sys::Fsync(root->get(), false);
  return {};
}

}  // namespace

ChangeLayer::ChangeLayer(std::array<LayerDirs, kLayerCount> layers,
                         std::unique_ptr<Failpoints> failpoints, std::unique_ptr<ChangeSink> sink)
    : dirs_(std::move(layers)), failpoints_(std::move(failpoints)), sink_(std::move(sink)) {
  // Records of multi-step changes: on the disk tier when there is one (it
  // outlives a reboot), else the memory tier.
  for (Layer l : {Layer::kDisk, Layer::kMemory}) {
    if (dirs_[Index(l)].intents && !intents_) {
      intents_ = std::make_unique<IntentLog>(dirs_[Index(l)].intents);
    }
  }
}

ChangeLayer::~ChangeLayer() { Stop(); }

std::string ChangeLayer::WorkName(std::string_view what) {
  return std::string(what) + "." + TokenName(NewRandomToken());
}

void ChangeLayer::Emit(ChangeKind kind, const At& at, uint64_t id, std::string_view path2,
                       uint64_t offset, uint64_t length) {
  spdlog::debug("change: {} on the {}: '{}'{}{} (id {})", ChangeKindName(kind), LayerName(at.layer),
                at.path, path2.empty() ? "" : " -> ", path2, id);
  if (IsTier(at.layer)) dirty_[Index(at.layer)].store(true, std::memory_order_release);
  // Names made, moved or removed may have passed through the private
  // directories (work/, the trash); data and attributes do not.
  if (kind != ChangeKind::kWrite && kind != ChangeKind::kTruncate && kind != ChangeKind::kSetattr &&
      kind != ChangeKind::kXattr) {
    AreasChanged(at.layer);
  }
  if (!sink_ || (!IsTier(at.layer) && !at.routed)) return;
  ChangeRecord r;
  r.kind = kind;
  r.layer = at.layer;
  r.path = std::string(at.path);
  r.path2 = std::string(path2);
  r.id = id;
  r.offset = offset;
  r.length = length;
  MutexLock lock(&record_mu_);
  r.seq = ++seq_;
  sink_->Append(r);
}

void ChangeLayer::Record(ChangeKind kind, const At& at, uint64_t id, uint64_t offset,
                         uint64_t length) {
  Emit(kind, at, id, {}, offset, length);
}

Result<Made> ChangeLayer::Make(const At& at, const MakeSpec& spec, const Caller& caller,
                               int parent_fd) {
  const std::string name(at.name);
  const bool aside = spec.replace_whiteout || (IsTier(at.layer) && IsWhiteoutDevice(spec));
  int dirfd = at.dir;
  std::string aside_name;
  UniqueFd aside_dir;
  if (aside) {
    const int work = dirs(at.layer).work->get();
    aside_name = WorkName("make");
    DETOURFS_TRY(sys::MkdirAt(work, aside_name.c_str(), 0700));
    Result<UniqueFd> d = sys::OpenBeneath(work, aside_name.c_str(), O_PATH | O_DIRECTORY);
    if (!d.ok()) return Errno{d.error()};
    aside_dir = std::move(*d);
    Result<struct stat> pst = sys::Fstat(parent_fd);
    if (!pst.ok()) return Errno{pst.error()};
    const mode_t setgid = pst->st_mode & S_ISGID;
    DETOURFS_TRY(sys::ChownFd(aside_dir.get(), 0, setgid ? pst->st_gid : 0));
    DETOURFS_TRY(sys::ChmodPath(aside_dir.get(), 01777 | setgid));
    Result<std::string> acl = markers::GetBytes(parent_fd, kDefaultAcl);
    if (acl.ok() && !acl->empty()) {
      DETOURFS_TRY(sys::SetXattr(aside_dir.get(), kDefaultAcl, acl->data(), acl->size(), 0));
    }
    dirfd = aside_dir.get();
  }
  Result<UniqueFd> fd = Errno{EIO};
  {
    AsCaller as(caller);
    DETOURFS_TRY(as.status());
    fd = CreateEntry(dirfd, name.c_str(), spec, as.Mode(spec.mode));
  }
  auto undo = [&] {
    (void)sys::UnlinkAt(dirfd, name.c_str(), spec.type == S_IFDIR ? AT_REMOVEDIR : 0);
    if (aside) (void)sys::UnlinkAt(dirs(at.layer).work->get(), aside_name.c_str(), AT_REMOVEDIR);
  };
  if (!fd.ok()) {
    if (aside) (void)sys::UnlinkAt(dirs(at.layer).work->get(), aside_name.c_str(), AT_REMOVEDIR);
    return Errno{fd.error()};
  }
  Result<void> marked;
  if (IsTier(at.layer) && (spec.id != 0 || spec.opaque)) {
    markers::IdRecord rec{spec.id, spec.opaque, {}};
    marked = Adopt(spec.id);
    if (marked.ok()) marked = markers::SetIdRecordAt(dirfd, name.c_str(), rec);
  }
  if (marked.ok() && IsTier(at.layer) && IsWhiteoutDevice(spec)) {
    marked = markers::SetFlag(fd->get(), markers::kDeviceXattr);
  }
  if (!marked.ok()) {
    undo();  // never leave an entry the caller is told was not made
    return Errno{marked.error()};
  }
  if (aside) {
    if (Result<void> hit = Hit("make.built"); !hit.ok()) {
      undo();
      return Errno{hit.error()};
    }
    // One rename publishes it: over the whiteout (a file replaces it; a
    // directory swaps places with it), or at a free name.
    unsigned int flags = RENAME_NOREPLACE;
    if (spec.replace_whiteout) flags = spec.type == S_IFDIR ? RENAME_EXCHANGE : 0;
    Result<void> put = sys::RenameAt(dirfd, name.c_str(), at.dir, name.c_str(), flags);
    if (!put.ok()) {
      undo();
      return Errno{put.error()};
    }
    const int work = dirs(at.layer).work->get();
    if (flags == RENAME_EXCHANGE) (void)sys::UnlinkAt(dirfd, name.c_str(), 0);  // the whiteout
    (void)sys::UnlinkAt(work, aside_name.c_str(), AT_REMOVEDIR);
  }
  Result<struct stat> st = sys::Fstat(fd->get());
  if (!st.ok()) return Errno{st.error()};
  Emit(spec.type == S_IFDIR ? ChangeKind::kMkdir : ChangeKind::kCreate, at, spec.id);
  if (spec.opaque) Emit(ChangeKind::kOpaque, at, spec.id);
  return Made{std::move(*fd), *st};
}

Result<void> ChangeLayer::Link(int src, const At& at, bool replace_whiteout, uint64_t id) {
  const std::string name(at.name);
  if (!replace_whiteout) {
    DETOURFS_TRY(sys::LinkFd(src, at.dir, name.c_str()));
  } else {
    const int work = dirs(at.layer).work->get();
    const std::string tmp = WorkName("link");
    DETOURFS_TRY(sys::LinkFd(src, work, tmp.c_str()));
    Result<void> put = sys::RenameAt(work, tmp.c_str(), at.dir, name.c_str(), 0);
    if (!put.ok()) {
      (void)sys::UnlinkAt(work, tmp.c_str(), 0);
      return put;
    }
  }
  Emit(ChangeKind::kLink, at, id);
  return {};
}

Result<void> ChangeLayer::Remove(const At& at, bool is_dir, bool whiteout, bool stub, uint64_t id) {
  const std::string name(at.name);
  if (whiteout) {
    DETOURFS_TRY(Hit("remove.whiteout"));
    const std::string gone = WorkName("removed");
    const int trash = dirs(at.layer).trash->get();
    // One step: the entry goes to the trash and a whiteout takes its name.
    DETOURFS_TRY(sys::RenameAt(at.dir, name.c_str(), trash, gone.c_str(), RENAME_WHITEOUT));
    // A file goes at once: a name of it in the trash would go on counting in
    // its other names' link count. A directory (it may still hold
    // whiteouts) and a stub (its data goes first) wait for the drain, as
    // does a file whose unlink fails here.
    if (is_dir || stub || !sys::UnlinkAt(trash, gone.c_str(), 0).ok()) NoteTrash();
    Emit(ChangeKind::kWhiteout, at, id);
    return {};
  }
  if (is_dir) {
    Result<void> r = sys::UnlinkAt(at.dir, name.c_str(), AT_REMOVEDIR);
    if (!r.ok() && (r.error() == ENOTEMPTY || r.error() == EEXIST)) {
      // It still holds whiteouts (or an opaque leftover): to the trash, whole.
      const std::string gone = WorkName("removed");
      r = sys::RenameAt(at.dir, name.c_str(), dirs(at.layer).trash->get(), gone.c_str(),
                        RENAME_NOREPLACE);
      if (r.ok()) NoteTrash();
    }
    DETOURFS_TRY(r);
    Emit(ChangeKind::kRmdir, at, id);
    return {};
  }
  if (stub && IsTier(at.layer)) {
    const std::string gone = WorkName("removed");
    DETOURFS_TRY(sys::RenameAt(at.dir, name.c_str(), dirs(at.layer).trash->get(), gone.c_str(),
                               RENAME_NOREPLACE));
    NoteTrash();
  } else {
    DETOURFS_TRY(sys::UnlinkAt(at.dir, name.c_str(), 0));
  }
  Emit(ChangeKind::kUnlink, at, id);
  return {};
}

Result<void> ChangeLayer::Whiteout(const At& at) {
  // A 0:0 device without the device mark is a whiteout from its first
  // instant: made in place in one syscall.
  DETOURFS_TRY(sys::MknodAt(at.dir, std::string(at.name).c_str(), S_IFCHR | 0000, makedev(0, 0)));
  Emit(ChangeKind::kWhiteout, at, 0);
  return {};
}

std::string ChangeLayer::LinkReplacedStub(Layer layer, int dirfd, const char* name) {
  if (!IsTier(layer)) return {};
  Result<struct stat> st = sys::StatAt(dirfd, name);
  if (!st.ok() || !S_ISREG(st->st_mode) || st->st_nlink != 1) return {};
  Result<markers::IdRecord> rec = markers::GetIdRecordAt(dirfd, name);
  if (!rec.ok() || rec->spill.token == 0) return {};
  std::string gone = WorkName("replaced");
  Result<UniqueFd> fd = sys::OpenBeneath(dirfd, name, O_PATH);
  Result<void> r = fd.ok() ? sys::LinkFd(fd->get(), dirs(layer).trash->get(), gone.c_str())
                           : Result<void>(Errno{fd.error()});
  if (!r.ok()) {
    spdlog::warn("'{}' on the {}: a replaced file's spilled data stays in the spill store: {}",
                 name, LayerName(layer), ErrnoText(r.error()));
    return {};
  }
  return gone;
}

Result<void> ChangeLayer::Rename(const At& from, const At& to, unsigned int flags, uint64_t id,
                                 bool replaced_stub_goes) {
  const std::string to_name(to.name);
  std::string linked;
  if (replaced_stub_goes && (flags & (RENAME_EXCHANGE | RENAME_NOREPLACE)) == 0) {
    linked = LinkReplacedStub(to.layer, to.dir, to_name.c_str());
  }
  Result<void> r =
      sys::RenameAt(from.dir, std::string(from.name).c_str(), to.dir, to_name.c_str(), flags);
  if (!linked.empty()) {
    if (r.ok()) {
      NoteTrash();  // now its last name: the drain drops its data with it
    } else {
      (void)sys::UnlinkAt(dirs(to.layer).trash->get(), linked.c_str(), 0);
    }
  }
  DETOURFS_TRY(r);
  Emit(ChangeKind::kRename, from, id, to.path);
  if (flags & RENAME_WHITEOUT) Emit(ChangeKind::kWhiteout, from, 0);
  if (from.layer != to.layer) Dirty(to.layer);
  if (from.layer == Layer::kVolume && to.layer == Layer::kVolume && from.routed &&
      from.dir != to.dir) {
    // Routed content leaving a directory on the volume: the mount may hide
    // that directory later (rm -rf of a routed tree leaves the volume's
    // part behind a whiteout), out of reach of any fsync through it, so
    // the move is made durable now (an exchange moves both ways).
    SyncMoveOnVolume(from, to.dir);
  }
  return {};
}

Result<UniqueFd> ChangeLayer::EnsureDir(const At& at, int model, const struct stat& model_st,
                                        uint64_t id) {
  const std::string name(at.name);
  Result<UniqueFd> existing = sys::OpenBeneath(at.dir, name.c_str(), O_PATH | O_DIRECTORY);
  if (existing.ok()) return existing;
  if (existing.error() != ENOENT)
    return Errno{existing.error() == ELOOP ? ENOTDIR : existing.error()};
  const int work = dirs(at.layer).work->get();
  const std::string tmp = WorkName("dir");
  DETOURFS_TRY(sys::MkdirAt(work, tmp.c_str(), 0700));
  auto undo = [&] { (void)sys::UnlinkAt(work, tmp.c_str(), AT_REMOVEDIR); };
  Result<UniqueFd> fd = sys::OpenBeneath(work, tmp.c_str(), O_PATH | O_DIRECTORY);
  Result<void> r = fd.ok() ? Result<void>() : Result<void>(Errno{fd.error()});
  if (r.ok() && model >= 0) r = CopyXattrs(model, fd->get());
  if (r.ok()) r = sys::ChownFd(fd->get(), model_st.st_uid, model_st.st_gid);
  if (r.ok()) r = sys::ChmodPath(fd->get(), model_st.st_mode & 07777);
  if (r.ok() && IsTier(at.layer) && id != 0) r = Adopt(id);
  if (r.ok() && IsTier(at.layer) && id != 0) {
    r = markers::SetIdRecord(fd->get(), markers::IdRecord{id, false, {}});
  }
  if (r.ok()) {
    const struct timespec times[2] = {model_st.st_atim, model_st.st_mtim};
    r = sys::UtimensPath(fd->get(), times);
  }
  // On the disk tier a part made on the way to routed content is durable
  // at once (itself, then its name): the user's fsyncs below it reach only
  // the parts they name, and the tier's own syncs come seconds later.
  const bool durable = at.layer == Layer::kDisk && !at.batch;
  if (r.ok() && durable) r = sys::SyncDir(fd->get());
  if (r.ok()) r = Hit("dir.built");
  if (r.ok()) r = sys::RenameAt(work, tmp.c_str(), at.dir, name.c_str(), RENAME_NOREPLACE);
  if (!r.ok()) {
    undo();
    if (r.error() == EEXIST) {  // made meanwhile by someone else: theirs
      Result<UniqueFd> again = sys::OpenBeneath(at.dir, name.c_str(), O_PATH | O_DIRECTORY);
      if (again.ok()) return again;
    }
    return Errno{r.error()};
  }
  if (durable) {
    // Both directories of the rename (POSIX asks for both; on ext4 the
    // second costs nothing: one journal commit holds the rename).
    Result<void> s = sys::SyncDir(at.dir);
    if (s.ok()) s = sys::SyncDir(work);
    if (!s.ok()) {
      // Made and in place, only not yet durable: the tier's next sync.
      spdlog::warn("'{}' on the {}: its new directory part could not be synced: {}", at.path,
                   LayerName(at.layer), ErrnoText(s.error()));
      Dirty(at.layer);
    }
  }
  Emit(ChangeKind::kMkdir, at, id);
  return std::move(*fd);
}

Result<void> ChangeLayer::SetOpaque(const At& at, int dirfd, bool opaque, uint64_t id) {
  DETOURFS_TRY(Adopt(id));
  DETOURFS_TRY(markers::SetIdRecord(dirfd, markers::IdRecord{id, opaque, {}}));
  if (opaque) Emit(ChangeKind::kOpaque, at, id);
  return {};
}

Result<Made> ChangeLayer::CopyIn(const At& at, int src, int data, const struct stat& st,
                                 uint64_t id, const IndexInfo* index,
                                 const markers::SpillRef* stub) {
  const std::string name(at.name);
  const int work = dirs(at.layer).work->get();
  if (S_ISREG(st.st_mode)) {
    Result<sys::TmpFile> tmp = Errno{EIO};
    if (stub != nullptr) {
      tmp = sys::OpenTmpfile(work, 0600);
      if (tmp.ok()) {
        Result<void> meta = CopyXattrs(src, tmp->get());
        if (meta.ok()) meta = CopyOwnerModeTimes(tmp->get(), st);
        if (!meta.ok()) return Errno{meta.error()};
      }
    } else {
      tmp = CopyToTmpfile(src, data, st, work);
    }
    if (!tmp.ok()) return Errno{tmp.error()};
    if (IsTier(at.layer) && id != 0) {
      markers::IdRecord rec{id, false, {}};
      if (stub != nullptr) rec.spill = *stub;
      DETOURFS_TRY(Adopt(id));
      DETOURFS_TRY(markers::SetIdRecord(tmp->get(), rec));
    }
    if (index) {
      DETOURFS_TRY(markers::SetBytes(tmp->get(), markers::kHandleXattr, index->handle));
      DETOURFS_TRY(markers::SetNumber(tmp->get(), markers::kLinksXattr, index->links));
      if (index->metacopy) DETOURFS_TRY(markers::SetFlag(tmp->get(), markers::kMetacopyXattr));
    }
    if (!IsTier(at.layer) && !at.batch) {
      // The volume: synced before it is linked in (the number it carries
      // recorded durably first).
      DETOURFS_TRY(adopted_.Sync());
      DETOURFS_TRY(sys::Fsync(tmp->get(), true));
    }
    DETOURFS_TRY(Hit("copyup.copied"));
    DETOURFS_TRY(tmp->Link(at.dir, name.c_str()));
    Result<UniqueFd> fd = sys::OpenBeneath(at.dir, name.c_str(), O_PATH);
    if (!fd.ok()) return Errno{fd.error()};
    Result<struct stat> now = sys::Fstat(fd->get());
    if (!now.ok()) return Errno{now.error()};
    Emit(ChangeKind::kCopyUp, at, id);
    return Made{std::move(*fd), *now};
  }
  const std::string tmp = WorkName("copy");
  DETOURFS_TRY(CopySpecial(src, st, work, tmp.c_str()));
  Result<void> r;
  if (IsTier(at.layer) && id != 0) r = Adopt(id);
  if (r.ok() && IsTier(at.layer) && id != 0) {
    r = markers::SetIdRecordAt(work, tmp.c_str(), markers::IdRecord{id, false, {}});
  }
  if (r.ok() && IsTier(at.layer) && markers::MaybeWhiteout(st)) {
    r = sys::SetXattrAt(work, tmp.c_str(), markers::kDeviceXattr, "y", 1, 0);
  }
  if (r.ok() && index) {
    // By name: a symlink's O_PATH fd takes no xattr calls.
    r = sys::SetXattrAt(work, tmp.c_str(), markers::kHandleXattr, index->handle.data(),
                        index->handle.size(), 0);
    if (r.ok()) r = markers::SetNumberAt(work, tmp.c_str(), markers::kLinksXattr, index->links);
  }
  if (r.ok()) r = Hit("copyup.copied");
  if (r.ok()) r = sys::RenameAt(work, tmp.c_str(), at.dir, name.c_str(), RENAME_NOREPLACE);
  if (!r.ok()) {
    (void)sys::UnlinkAt(work, tmp.c_str(), 0);
    return Errno{r.error()};
  }
  Result<UniqueFd> fd = sys::OpenBeneath(at.dir, name.c_str(), O_PATH);
  if (!fd.ok()) return Errno{fd.error()};
  Result<struct stat> now = sys::Fstat(fd->get());
  if (!now.ok()) return Errno{now.error()};
  Emit(ChangeKind::kCopyUp, at, id);
  return Made{std::move(*fd), *now};
}

Result<void> ChangeLayer::SetIdRecordAt(int dirfd, const char* name, const markers::IdRecord& rec,
                                        int flags) {
  DETOURFS_TRY(Adopt(rec.id));
  return markers::SetIdRecordAt(dirfd, name, rec, flags);
}

Result<void> ChangeLayer::SetIdRecord(int fd, const markers::IdRecord& rec) {
  DETOURFS_TRY(Adopt(rec.id));
  return markers::SetIdRecord(fd, rec);
}

Result<void> ChangeLayer::SetFlag(int fd, const char* xattr) { return markers::SetFlag(fd, xattr); }

Result<void> ChangeLayer::SetNumber(int fd, const char* xattr, uint64_t value) {
  return markers::SetNumber(fd, xattr, value);
}

Result<void> ChangeLayer::Hold(const At& at, uint64_t id) {
  const LayerDirs& v = dirs(Layer::kVolume);
  if (!v.held) return Errno{ENOTSUP};
  const std::string name = HeldName(id);
  // What changed in a directory is durable before it leaves users' sight.
  Result<struct stat> st = sys::StatAt(at.dir, std::string(at.name).c_str());
  if (st.ok() && S_ISDIR(st->st_mode)) SyncVolumeWhole();
  DETOURFS_TRY(sys::RenameAt(at.dir, std::string(at.name).c_str(), v.held->get(), name.c_str(),
                             RENAME_NOREPLACE));
  Emit(ChangeKind::kUnlink, at, id);
  if (Result<void> p = PruneHeld(v.held->get(), name.c_str()); !p.ok()) {
    spdlog::warn("held '{}' on the volume: its linked files could not be let go: {}", name,
                 ErrnoText(p.error()));
  }
  SyncMoveOnVolume(at, v.held->get());
  return {};
}

Result<void> ChangeLayer::LetGoOfLinked(const std::string& held_name) {
  const LayerDirs& v = dirs(Layer::kVolume);
  if (!v.held) return Errno{ENOTSUP};
  Result<void> p = PruneHeld(v.held->get(), held_name.c_str());
  if (!p.ok()) {
    spdlog::warn("held '{}' on the volume: its linked files could not be let go: {}", held_name,
                 ErrnoText(p.error()));
  }
  return p;
}

Result<void> ChangeLayer::HoldInode(int fd, uint64_t id) {
  const LayerDirs& v = dirs(Layer::kVolume);
  if (!v.held) return Errno{ENOTSUP};
  const std::string name = HeldName(id);
  spdlog::debug("change: the volume inode of id {} held as {}", id, name);
  DETOURFS_TRY(sys::LinkFd(fd, v.held->get(), name.c_str()));
  Dirty(Layer::kVolume);
  SyncMoveOnVolume(At{Layer::kVolume, -1, "", "", true}, v.held->get());
  return {};
}

void ChangeLayer::SyncVolumeWhole() {
  (void)SyncWhole(Layer::kVolume, "before a directory leaves users' sight");
}

Result<void> ChangeLayer::SyncWhole(Layer layer, const char* when) {
  const LayerDirs& d = dirs(layer);
  const int fd = IsTier(layer) ? d.root->get() : d.tree->get();
  // What the sync covers: every change counted before it starts.
  const uint64_t gen = areas_gen_[Index(layer)].load(std::memory_order_acquire);
  Result<void> r = sys::Syncfs(fd);
  // A syncfs reaches no FUSE filesystem (the kernel sends it to virtiofs
  // only); an fsync of the root is what stands in for it there (flakyfs,
  // when the layer is its root).
  if (r.ok()) r = sys::SyncDir(fd);
  if (!r.ok()) {
    spdlog::warn("cannot sync the {} {}: {}", LayerName(layer), when, ErrnoText(r.error()));
    AreasChanged(layer);
    return r;
  }
  // A tier's private directories are synced with it (the volume's are
  // still synced on their own).
  if (IsTier(layer)) {
    MutexLock lock(&areas_sync_mu_);
    areas_synced_[Index(layer)] = std::max(areas_synced_[Index(layer)], gen);
  }
  return {};
}

void ChangeLayer::SyncMoveOnVolume(const At& from, int to_dir) {
  // The volume's entries a change moves into held/ or the trash (or routed
  // ones out of their directory) are synced at once, on both sides: the directory they left may
  // itself be hidden from users later (moved into held/ whole), and then no fsync of theirs could
  // make the move durable, nor anything that builds on it.
  for (int dir : {from.dir, to_dir}) {
    if (dir < 0) continue;
    // No second try: an fsync's error is reported once, and a retry that
    // succeeds proves nothing. The layer is marked changed, so the next
    // fsync of a directory there syncs the private ones again.
    if (Result<void> r = sys::SyncDir(dir); !r.ok()) {
      spdlog::warn("cannot sync a change on the volume ('{}' into the private area): {}", from.path,
                   ErrnoText(r.error()));
    }
  }
}

Result<void> ChangeLayer::Adopt(uint64_t id) {
  if (id == 0 || id >= kIdBase) return {};  // not a volume inode's number
  return adopted_.Add(id);
}

bool ChangeLayer::IndexedAnywhere(uint64_t id) const {
  const std::string name = markers::IndexName(id);
  for (Layer t : kTiers) {
    if (!has(t) || !dirs(t).index) continue;
    if (::faccessat(dirs(t).index->get(), name.c_str(), F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
      return true;
    }
  }
  return false;
}

Result<void> ChangeLayer::Trash(const At& at) {
  const std::string name(at.name);
  const std::string gone = WorkName("trashed");
  spdlog::debug("change: '{}' on the {} to the trash as {}", at.path, LayerName(at.layer), gone);
  Result<struct stat> st = sys::StatAt(at.dir, name.c_str());
  if (!st.ok()) return Errno{st.error()};
  const int trash = dirs(at.layer).trash->get();
  DETOURFS_TRY(sys::RenameAt(at.dir, name.c_str(), trash, gone.c_str(), RENAME_NOREPLACE));
  DropLinkedName(trash, gone, *st);
  Dirty(at.layer);
  if (at.layer == Layer::kVolume) SyncMoveOnVolume(at, trash);
  return {};
}

const SharedFd& ChangeLayer::AsideDir(Layer layer) const {
  const LayerDirs& d = dirs(layer);
  return IsTier(layer) ? d.kept : d.held;
}

Result<void> ChangeLayer::SetAside(const At& at) {
  const SharedFd& aside = AsideDir(at.layer);
  if (!aside) return Errno{ENOTSUP};
  const std::string name(at.name);
  const std::string kept = WorkName("kept");
  DETOURFS_TRY(sys::RenameAt(at.dir, name.c_str(), aside->get(), kept.c_str(), RENAME_NOREPLACE));
  Dirty(at.layer);
  LogSetAside(at.layer, at.path, kept);
  return {};
}

void ChangeLayer::LogSetAside(Layer layer, std::string_view path, std::string_view kept) {
  spdlog::warn(
      "the {} held '{}', which had to make way and which nothing may delete: kept as {}/{} "
      "in the {}'s private directory (move it back by hand if it is wanted)",
      LayerName(layer), path, IsTier(layer) ? "kept" : "held", kept, LayerName(layer));
}

void ChangeLayer::DropLinkedName(int trash, const std::string& gone, const struct stat& st) {
  // A name of a file with other names goes at once: in the trash it would
  // go on counting in their link count until the drain. Nothing of the
  // file's data goes with it (its other names keep it; a stub's spilled
  // data is dropped only with its last name). The rest waits for the drain.
  if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 && sys::UnlinkAt(trash, gone.c_str(), 0).ok()) {
    return;
  }
  NoteTrash();
}

Result<UniqueFd> ChangeLayer::OpenSpilled(const markers::SpillRef& ref, int flags) {
  const LayerDirs& d = dirs(ref.layer);
  if (!d.spill) return Errno{ENOENT};
  return sys::OpenBeneath(d.spill->get(), TokenName(ref.token).c_str(), flags);
}

Result<uint64_t> ChangeLayer::SpillIn(Layer layer, int data) {
  const LayerDirs& d = dirs(layer);
  if (!d.spill) return Errno{ENOSPC};
  Result<struct stat> st = sys::Fstat(data);
  if (!st.ok()) return Errno{st.error()};
  Result<sys::TmpFile> tmp = sys::OpenTmpfile(d.spill->get(), 0600);
  if (!tmp.ok()) return Errno{tmp.error()};
  DETOURFS_TRY(CopyData(data, tmp->get(), st->st_size));
  // Durable before the stub points at it and lets go of its own copy.
  DETOURFS_TRY(sys::Fsync(tmp->get(), true));
  const uint64_t token = NewRandomToken();
  DETOURFS_TRY(tmp->Link(d.spill->get(), TokenName(token).c_str()));
  DETOURFS_TRY(sys::SyncDir(d.spill->get()));
  return token;
}

void ChangeLayer::DropSpilled(const markers::SpillRef& ref) {
  const LayerDirs& d = dirs(ref.layer);
  if (!d.spill || ref.token == 0) return;
  Result<void> r = sys::UnlinkAt(d.spill->get(), TokenName(ref.token).c_str(), 0);
  if (!r.ok() && r.error() != ENOENT) {
    spdlog::warn("spilled data {} on the {} could not be removed: {}", TokenName(ref.token),
                 LayerName(ref.layer), ErrnoText(r.error()));
  }
}

int ChangeLayer::AreaFd(Layer layer, Area area) const {
  const LayerDirs& d = dirs(layer);
  const SharedFd* fd = nullptr;
  switch (area) {
    case Area::kTree:
      fd = &d.tree;
      break;
    case Area::kWork:
      fd = &d.work;
      break;
    case Area::kTrash:
      fd = &d.trash;
      break;
    case Area::kHeld:
      fd = &d.held;
      break;
    case Area::kIndex:
      fd = &d.index;
      break;
    case Area::kKept:
      fd = &d.kept;
      break;
  }
  return fd && *fd ? (*fd)->get() : -1;
}

Result<UniqueFd> ChangeLayer::OpenAreaParent(const IntentPath& p, std::string* leaf) {
  const int area = AreaFd(p.layer, p.area);
  if (area < 0) return Errno{ENOENT};
  const size_t slash = p.path.rfind('/');
  *leaf = slash == std::string::npos ? p.path : p.path.substr(slash + 1);
  if (slash == std::string::npos) return sys::Dup(area);
  return sys::OpenBeneath(area, p.path.substr(0, slash).c_str(), O_PATH | O_DIRECTORY);
}

Result<void> ChangeLayer::RunStep(const IntentStep& step, bool served) {
  std::string a_leaf;
  Result<UniqueFd> a = OpenAreaParent(step.a, &a_leaf);
  if (!a.ok()) return a.error() == ENOENT ? Result<void>() : Result<void>(Errno{a.error()});
  Result<struct stat> ast = sys::StatAt(a->get(), a_leaf.c_str());
  const bool a_there = ast.ok();
  if (!ast.ok() && ast.error() != ENOENT) return Errno{ast.error()};
  // Where what a step clears goes: the trash; for a record whose change
  // the mount went on serving, set aside (kept/ on a tier, held/ on the
  // volume), never deleted — it may be what the user wrote since.
  const SharedFd& aside = AsideDir(step.a.layer);
  const bool setting_aside = served && aside;
  const int clear_to = setting_aside ? aside->get() : dirs(step.a.layer).trash->get();
  switch (step.kind) {
    case StepKind::kRename:
    case StepKind::kRenameNoReplace:
    case StepKind::kHold:
    case StepKind::kHoldWhole: {
      if (!a_there) return {};  // done before the crash
      std::string b_leaf;
      Result<UniqueFd> b = OpenAreaParent(step.b, &b_leaf);
      if (!b.ok()) return Errno{b.error()};
      // A directory going where no user can fsync it any more: what
      // changed in it is made durable first. Into the volume's held/ to
      // stay (a tree part published elsewhere): the whole volume, one
      // syncfs; into a tier's kept/ (rare): every directory in it. A swap's
      // stop in held/ comes back within the change and needs neither.
      if (S_ISDIR(ast->st_mode) && IsHold(step.kind)) {
        SyncVolumeWhole();
      } else if (S_ISDIR(ast->st_mode) && step.b.area == Area::kKept) {
        if (Result<void> r = SyncTreeDirsAt(a->get(), a_leaf.c_str()); !r.ok()) {
          spdlog::warn("cannot sync '{}' before it is set aside: {}", step.a.path,
                       ErrnoText(r.error()));
        }
      }
      // Replaying a served record replaces nothing.
      const unsigned flags = step.kind == StepKind::kRename && !served ? 0 : RENAME_NOREPLACE;
      Result<void> r = sys::RenameAt(a->get(), a_leaf.c_str(), b->get(), b_leaf.c_str(), flags);
      std::string held = b_leaf;
      if (!r.ok() && r.error() == EEXIST && IsHold(step.kind)) {
        held = b_leaf + "." + TokenName(NewRandomToken());
        r = sys::RenameAt(a->get(), a_leaf.c_str(), b->get(), held.c_str(), RENAME_NOREPLACE);
      }
      if (!r.ok()) return r;
      Dirty(step.b.layer);
      if (step.b.area == Area::kKept) LogSetAside(step.a.layer, step.a.path, step.b.path);
      if (step.kind == StepKind::kHold) {
        if (Result<void> p = PruneHeld(b->get(), held.c_str()); !p.ok()) {
          spdlog::warn("held '{}' on the volume: its linked files could not be let go: {}", held,
                       ErrnoText(p.error()));
        }
      }
      return {};
    }
    case StepKind::kWhiteout: {
      if (a_there) {
        Result<bool> wh = markers::IsWhiteout(a->get(), a_leaf.c_str(), *ast);
        if (!wh.ok()) return Errno{wh.error()};
        if (*wh) return {};
        const std::string gone = WorkName(setting_aside ? "kept" : "removed");
        DETOURFS_TRY(
            sys::RenameAt(a->get(), a_leaf.c_str(), clear_to, gone.c_str(), RENAME_WHITEOUT));
        if (setting_aside) {
          LogSetAside(step.a.layer, step.a.path, gone);
        } else {
          NoteTrash();
        }
      } else {
        DETOURFS_TRY(sys::MknodAt(a->get(), a_leaf.c_str(), S_IFCHR | 0000, makedev(0, 0)));
      }
      Dirty(step.a.layer);
      return {};
    }
    case StepKind::kDropWhiteout: {
      if (!a_there) return {};
      Result<bool> wh = markers::IsWhiteout(a->get(), a_leaf.c_str(), *ast);
      if (!wh.ok()) return Errno{wh.error()};
      if (!*wh) return {};  // a name made since: not this step's to clear
      const std::string gone = WorkName("trashed");
      DETOURFS_TRY(sys::RenameAt(a->get(), a_leaf.c_str(), dirs(step.a.layer).trash->get(),
                                 gone.c_str(), RENAME_NOREPLACE));
      NoteTrash();
      Dirty(step.a.layer);
      return {};
    }
    case StepKind::kTrash: {
      if (!a_there) return {};
      const std::string gone = WorkName(setting_aside ? "kept" : "trashed");
      DETOURFS_TRY(
          sys::RenameAt(a->get(), a_leaf.c_str(), clear_to, gone.c_str(), RENAME_NOREPLACE));
      if (setting_aside) {
        LogSetAside(step.a.layer, step.a.path, gone);
      } else {
        DropLinkedName(clear_to, gone, *ast);
      }
      Dirty(step.a.layer);
      return {};
    }
  }
  return {};
}

Result<void> ChangeLayer::SyncAreas(Layer layer) {
  if (!has(layer)) return {};
  // What the caller needs covered: every change counted before now.
  const uint64_t want = areas_gen_[Index(layer)].load(std::memory_order_acquire);
  MutexLock lock(&areas_sync_mu_);
  if (areas_synced_[Index(layer)] >= want) return {};
  for (Area area : {Area::kWork, Area::kTrash, Area::kHeld, Area::kKept, Area::kIndex}) {
    const int fd = AreaFd(layer, area);
    if (fd < 0) continue;
    if (Result<void> r = sys::SyncDir(fd); !r.ok()) {
      spdlog::warn("cannot sync the private directories of the {}: {}", LayerName(layer),
                   ErrnoText(r.error()));
      return r;
    }
  }
  areas_synced_[Index(layer)] = want;
  return {};
}

Result<void> ChangeLayer::SyncStep(const IntentStep& step) {
  // The record's progress line is synced after each step: the step must be
  // durable first, or a power cut could leave "done" for a rename the
  // filesystem lost (and start-up would clear its staged copy from work/).
  // Synced even when the step was found done (a replay, a retry after the
  // sync failed). No second try on an error: an fsync reports it once, and
  // the record stays.
  //
  // On a tier, the whole tier (syncfs, and an fsync of its root): a step's
  // rename may build on earlier changes no fsync of its own directories
  // covers (a user's removal in a directory nobody syncs, moved through
  // the trash that the step's rename also goes through), and a filesystem
  // that keeps changes in order keeps the step only with them. Steps are
  // few (moves between layers, exchanges); the tiers' own data is not.
  // On the volume, both directories of the step's rename (POSIX promises
  // a rename nothing before both are), and the trash or aside directory
  // for a step that clears.
  bool tier_synced[kLayerCount] = {};
  for (const IntentPath* p : {&step.a, &step.b}) {
    if (p == &step.b && !IsMove(step.kind)) continue;
    if (!IsTier(p->layer) || tier_synced[Index(p->layer)]) continue;
    DETOURFS_TRY(SyncWhole(p->layer, "after a step of a multi-step change"));
    tier_synced[Index(p->layer)] = true;
  }
  for (const IntentPath* p : {&step.a, &step.b}) {
    if (IsTier(p->layer) || AreaFd(p->layer, p->area) < 0) continue;
    if (p == &step.b && !IsMove(step.kind)) continue;
    std::string leaf;
    Result<UniqueFd> parent = OpenAreaParent(*p, &leaf);
    if (!parent.ok()) {
      if (parent.error() == ENOENT) continue;
      return Errno{parent.error()};
    }
    DETOURFS_TRY(sys::SyncDir(parent->get()));
  }
  if (!IsTier(step.a.layer) && (step.kind == StepKind::kTrash || step.kind == StepKind::kWhiteout ||
                                step.kind == StepKind::kDropWhiteout)) {
    // What the step cleared went to the trash (or aside).
    for (const SharedFd* d : {&dirs(step.a.layer).trash, &AsideDir(step.a.layer)}) {
      if (*d != nullptr) DETOURFS_TRY(sys::SyncDir((*d)->get()));
    }
  }
  return {};
}

Result<void> ChangeLayer::RunStepRetrying(const IntentStep& step, bool served) {
  // The volume is flaky: an I/O error is tried again twice (10 ms, then
  // 100 ms later) before a change is left half-made. A step is idempotent,
  // so one that did happen before its error is found done.
  Result<void> r = RunStep(step, served);
  for (int delay_ms : {10, 100}) {
    if (r.ok() ||
        (r.error() != EIO && r.error() != EAGAIN && r.error() != EINTR && r.error() != ETIMEDOUT)) {
      break;
    }
    spdlog::warn("a step of a multi-step change failed ({}); trying again", ErrnoText(r.error()));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    r = RunStep(step, served);
  }
  return r;
}

Result<void> ChangeLayer::SetAsideStepSource(const IntentStep& step, const std::string& record) {
  std::string leaf;
  Result<UniqueFd> parent = OpenAreaParent(step.a, &leaf);
  if (!parent.ok()) return Errno{parent.error()};
  const SharedFd& to = AsideDir(step.a.layer);
  if (!to) return Errno{EEXIST};
  const std::string kept = WorkName("kept");
  DETOURFS_TRY(
      sys::RenameAt(parent->get(), leaf.c_str(), to->get(), kept.c_str(), RENAME_NOREPLACE));
  spdlog::error(
      "the change recorded in '{}' could not put '{}' in place: the name was taken "
      "meanwhile",
      record, step.b.path);
  LogSetAside(step.a.layer, step.b.path, kept);
  return {};
}

Result<void> ChangeLayer::Run(const Intent& intent, bool* kept, std::string* held_whole) {
  if (!intents_) return Errno{ENOTSUP};
  Result<std::string> record = Errno{EIO};
  {
    MutexLock lock(&intent_mu_);
    record = intents_->Write(intent);
  }
  if (!record.ok()) return Errno{record.error()};
  if (Result<void> hit = Hit("intent.written"); !hit.ok()) {
    (void)intents_->Remove(*record);  // nothing done: the old state
    return hit;
  }
  for (size_t i = 0; i < intent.steps.size(); ++i) {
    Result<void> r = RunStepRetrying(intent.steps[i], false);
    if (!r.ok() && i == 0) {
      // The first step failed: nothing visible changed; the old state.
      (void)intents_->Remove(*record);
      return r;
    }
    // (A sync that fails after its step was made keeps the record, even
    // at the first step: the change has begun.)
    if (r.ok()) r = SyncStep(intent.steps[i]);
    bool recording = false;
    if (r.ok() && i + 1 < intent.steps.size()) {
      // Progress recorded after each step: a replay starts after the last
      // one recorded, and only the one step after it may have run already
      // (each step alone is idempotent; a sequence is not: a swap's three
      // renames replayed after they all ran swap back).
      recording = true;
      r = Hit("intent.step");
      if (r.ok()) {
        MutexLock lock(&intent_mu_);
        r = intents_->MarkDone(*record, i + 1);
      }
    }
    if (!r.ok()) {
      // Part of it is done, and no further step runs unrecorded: the record
      // stays, and so do the copies its steps publish (they are in work/,
      // which start-up clears only after the records are carried out); the
      // next start finishes it. The caller keeps its staged copies (`kept`).
      // The mount goes on serving meanwhile: the record is marked so, and
      // its replay sets aside what its steps would clear.
      Result<std::string> served = intents_->MarkServed(*record);
      spdlog::error(
          "{} {} of a multi-step change failed ({}); record '{}' kept: it is finished "
          "at the next start",
          recording ? "recording the progress of step" : "step", i + 1, ErrnoText(r.error()),
          served.ok() ? *served : *record);
      if (kept != nullptr) *kept = true;
      return r;
    }
  }
  // Every step ran: the change is made whatever happens to its record. It
  // says so first, so one left behind replays nothing (its last step, run
  // again against what the mount served since, could set aside a name made
  // since).
  Result<void> all_done;
  if (intent.steps.size() > 1) {
    MutexLock lock(&intent_mu_);
    all_done = intents_->MarkDone(*record, intent.steps.size());
  }
  if (Result<void> hit = Hit("intent.done"); !hit.ok()) return {};
  if (held_whole != nullptr && all_done.ok() && intent.steps.size() > 1) {
    *held_whole = *record;  // ended by SettleHold, or at the next start
    return {};
  }
  if (Result<void> r = intents_->Remove(*record); !r.ok()) {
    spdlog::warn(
        "a multi-step change is done but its record '{}' could not be removed ({}); the "
        "next start finds {}",
        *record, ErrnoText(r.error()),
        all_done.ok() ? "every step done" : "its last step not marked done, and runs it again");
    // A record that may run a step again: the caller undoes nothing.
    if (!all_done.ok() && kept != nullptr) *kept = true;
  }
  return {};
}

void ChangeLayer::SettleHold(const std::string& record, const std::vector<std::string>& held) {
  for (const std::string& h : held) (void)LetGoOfLinked(h);
  if (Result<void> r = intents_->Remove(record); !r.ok()) {
    spdlog::warn(
        "the record '{}' of a change made whole could not be removed ({}); the next start "
        "removes it",
        record, ErrnoText(r.error()));
  }
}

void ChangeLayer::LetGoIfPublished(const Intent& intent) {
  std::vector<std::string> held;
  for (const IntentStep& step : intent.steps) {
    if (step.kind == StepKind::kHoldWhole) held.push_back(step.b.path);
  }
  if (held.empty()) return;
  for (const IntentStep& step : intent.steps) {
    if (!IsMove(step.kind) || IsHold(step.kind) || step.a.layer != Layer::kVolume ||
        step.a.area != Area::kWork || step.b.layer != Layer::kVolume ||
        step.b.area != Area::kTree) {
      continue;
    }
    // Published: gone from work/, and shown at its name once synced.
    std::string copy_leaf;
    std::string leaf;
    Result<UniqueFd> work = OpenAreaParent(step.a, &copy_leaf);
    Result<UniqueFd> dir = OpenAreaParent(step.b, &leaf);
    const Result<struct stat> wst =
        work.ok() ? sys::StatAt(work->get(), copy_leaf.c_str()) : Result<struct stat>(Errno{EIO});
    const bool in_work = wst.ok() || wst.error() != ENOENT;
    if (dir.ok()) (void)sys::SyncDir(dir->get());
    if (in_work || !dir.ok() || !sys::StatAt(dir->get(), leaf.c_str()).ok()) {
      spdlog::warn(
          "the volume does not show '{}', which a change published: the files it links "
          "stay held",
          step.b.path);
      return;
    }
  }
  for (const std::string& h : held) (void)LetGoOfLinked(h);
}

Status ChangeLayer::Recover() {
  if (const LayerDirs& v = dirs(Layer::kVolume); v.root) {
    if (Status s = adopted_.Open(v.root->get(), kAdoptedName); !s.ok()) return s;
  }
  if (intents_) {
    Result<std::vector<std::pair<std::string, Intent>>> pending = intents_->Pending();
    if (!pending.ok()) {
      return Status::FromErrno(pending.error(), "cannot read the records of unfinished changes");
    }
    for (const auto& [name, intent] : *pending) {
      const bool served = IntentLog::Served(name);
      for (size_t i = intent.done; i < intent.steps.size(); ++i) {
        const IntentStep& step = intent.steps[i];
        Result<void> r = RunStepRetrying(step, served);
        if (!r.ok() && IsMove(step.kind) &&
            (r.error() == EEXIST || r.error() == ENOTEMPTY || r.error() == EISDIR ||
             r.error() == ENOTDIR)) {
          // The name was taken meanwhile (the mount went on serving after
          // the change stopped): what was to go there is set aside, never
          // deleted, and the change goes on.
          r = SetAsideStepSource(step, name);
        }
        if (r.ok()) r = SyncStep(step);
        if (!r.ok()) {
          return Status::FromErrno(r.error(),
                                   "cannot finish the change recorded in '" + name + "'");
        }
        // Progress recorded as in Run: a replay cut short (a later step
        // failing, a crash) is taken up after it, never from an earlier step
        // that would clear a name a step since has published to.
        if (i + 1 < intent.steps.size()) {
          if (Result<void> m = intents_->MarkDone(name, i + 1); !m.ok()) {
            return Status::FromErrno(m.error(),
                                     "cannot record the progress of the change "
                                     "recorded in '" +
                                         name + "'");
          }
        }
      }
      LetGoIfPublished(intent);
      (void)intents_->Remove(name);
      if (intent.done >= intent.steps.size()) {
        spdlog::info("removed the record '{}' of a change that was made whole", name);
      } else {
        spdlog::info("finished a change a crash interrupted (record '{}', steps {} to {} of {})",
                     name, intent.done + 1, intent.steps.size(), intent.steps.size());
      }
      spdlog::debug("the change recorded in '{}': {}", name, EncodeIntent(intent));
    }
  }
  // What work/ holds was never published: it goes. But a tier's copy of
  // what a move published on the volume (leaving.*, left by a crash before
  // the volume's copy was looked at) is kept aside: nothing checked that
  // the volume kept it.
  for (Layer l : kAllLayers) {
    const LayerDirs& d = dirs(l);
    if (!d.work) continue;
    Result<std::vector<WalkItem>> items = ListDir(d.work->get());
    if (!items.ok()) return Status::FromErrno(items.error(), "cannot list a work directory");
    for (const WalkItem& item : *items) {
      const bool leaving = item.name.rfind("leaving.", 0) == 0 && AsideDir(l) != nullptr;
      Result<void> r = sys::RenameAt(d.work->get(), item.name.c_str(),
                                     leaving ? AsideDir(l)->get() : d.trash->get(),
                                     item.name.c_str(), RENAME_NOREPLACE);
      if (r.ok() && leaving) {
        spdlog::warn(
            "a move to the volume was cut short before the volume's copy was checked: "
            "the {}'s copy is kept as kept/{} (remove it once the volume's is found whole)",
            LayerName(l), item.name);
      }
      if (!r.ok()) {
        spdlog::warn("cannot clear '{}' from the {}'s work directory: {}", item.name, LayerName(l),
                     ErrnoText(r.error()));
      }
    }
  }
  return Status::OK();
}

void ChangeLayer::NoteTrash() {
  MutexLock lock(&bg_mu_);
  trash_pending_ = true;
  bg_cv_.notify_all();
}

Result<void> ChangeLayer::EmptyTrash(Layer layer) {
  const LayerDirs& d = dirs(layer);
  if (!d.trash) return {};
  Result<std::vector<WalkItem>> items = ListDir(d.trash->get());
  if (!items.ok()) return Errno{items.error()};
  for (const WalkItem& item : *items) {
    auto drop_data = [&](int dirfd, const char* name, const struct stat& st) -> bool {
      if (!S_ISDIR(st.st_mode) && st.st_nlink != 1) {
        // A stub with another name: linked here before a rename over it
        // that is not done yet (or that a crash cut short). Kept until this
        // is its last name, so that its data goes with it.
        if (!IsTier(layer) || !S_ISREG(st.st_mode)) return false;
        Result<markers::IdRecord> rec = markers::GetIdRecordAt(dirfd, name);
        return rec.ok() && rec->spill.token != 0;
      }
      if (layer == Layer::kVolume) {
        // A volume inode whose number a file elsewhere reports (an index
        // entry, a copy on a tier; its names went with a directory, hidden
        // behind the tier) is held, not freed: the volume would give its
        // number to a new file. If it cannot be held it stays in the trash
        // (tried again next round), never freed. A directory is held
        // emptied: RemoveTree asks once its contents are gone.
        const uint64_t ino = static_cast<uint64_t>(st.st_ino);
        const bool reported = adopted_.Has(ino) || (in_use_ && in_use_(ino)) ||
                              (!S_ISDIR(st.st_mode) && IndexedAnywhere(ino));
        if (!reported) return false;
        if (!dirs(layer).held) return true;
        const std::string held = HeldName(ino);
        spdlog::debug("volume trash: '{}' (number {}) held: a {} reports its number", name, ino,
                      adopted_.Has(ino) ? "copy" : "node the mount knows");
        if (S_ISDIR(st.st_mode)) {
          // Emptied, and kept: what left it is durable before it moves (a
          // later change to it builds on those removals).
          if (Result<void> synced = SyncDirAt(dirfd, name); !synced.ok()) {
            spdlog::warn("volume trash: '{}' cannot be synced before it is held: {}", name,
                         ErrnoText(synced.error()));
            return true;  // stays in the trash, tried again next round
          }
        }
        if (Result<void> r =
                sys::RenameAt(dirfd, name, dirs(layer).held->get(), held.c_str(), RENAME_NOREPLACE);
            !r.ok()) {
          spdlog::warn("volume trash: '{}', whose number a file reports, cannot be held yet: {}",
                       name, ErrnoText(r.error()));
        }
        return true;
      }
      // A stub's data goes before the stub itself: a crash in between leaves
      // the stub in the trash, deleted next time, never data nothing names.
      if (!S_ISREG(st.st_mode) || !IsTier(layer)) return false;
      Result<UniqueFd> fd = sys::OpenBeneath(dirfd, name, O_PATH);
      if (!fd.ok()) return false;
      Result<markers::IdRecord> rec = markers::GetIdRecord(fd->get());
      if (rec.ok() && rec->spill.token != 0) DropSpilled(rec->spill);
      return false;
    };
    Result<void> r = RemoveTree(d.trash->get(), item.name.c_str(), drop_data);
    if (!r.ok() && r.error() != ENOENT) {
      spdlog::warn("cannot delete '{}' from the {}'s trash: {}", item.name, LayerName(layer),
                   ErrnoText(r.error()));
    }
  }
  // What this round moved and removed is durable before anything builds on
  // it: later changes to the same inodes wait for it on a strict
  // filesystem.
  if (items->empty()) return {};
  for (const SharedFd* dir : {&d.trash, &d.held}) {
    if (*dir == nullptr) continue;
    if (Result<void> r = sys::SyncDir((*dir)->get()); !r.ok()) {
      AreasChanged(layer);  // the next fsync of a directory there tries again
      spdlog::warn("cannot sync the {}'s trash or held entries: {}", LayerName(layer),
                   ErrnoText(r.error()));
    }
  }
  return {};
}

void ChangeLayer::Start() {
  MutexLock lock(&bg_mu_);
  if (bg_.joinable()) return;
  stop_ = false;
  SessionSignalsBlocked blocked;  // the signals that end the session are the loop's
  bg_ = std::thread([this] { Background(); });
  // Its own thread: emptying a large trash (rm -rf of a project on the
  // volume) never holds back the tiers' syncs (review 2026-12-07 #9).
  sync_ = std::thread([this] { SyncLoop(); });
  // Named for top -H and for the tests that look for them in the served process.
  (void)pthread_setname_np(bg_.native_handle(), "detourfs-bg");
  (void)pthread_setname_np(sync_.native_handle(), "detourfs-sync");
}

void ChangeLayer::Background() {
  for (;;) {
    {
      MutexLock lock(&bg_mu_);
      bg_cv_.wait(bg_mu_, [&]() NO_THREAD_SAFETY_ANALYSIS { return stop_ || trash_pending_; });
      if (stop_) return;
      trash_pending_ = false;
    }
    for (Layer l : kAllLayers) (void)EmptyTrash(l);
    MutexLock lock(&bg_mu_);
    ++trash_rounds_;
    bg_cv_.notify_all();
  }
}

void ChangeLayer::SyncLoop() {
  for (;;) {
    {
      MutexLock lock(&bg_mu_);
      if (bg_cv_.wait_for(bg_mu_, kSyncInterval,
                          [&]() NO_THREAD_SAFETY_ANALYSIS { return stop_; })) {
        return;
      }
    }
    // The numbers the tiers' copies carry are durable before the copies.
    if (Result<void> r = adopted_.Sync(); !r.ok()) {
      spdlog::warn("cannot sync the record of adopted numbers: {}", ErrnoText(r.error()));
    }
    for (Layer l : kTiers) {
      if (has(l) && dirty_[Index(l)].exchange(false)) {
        if (Result<void> r = sys::Syncfs(dirs(l).tree->get()); !r.ok()) {
          spdlog::warn("cannot sync the {}: {}", LayerName(l), ErrnoText(r.error()));
          Dirty(l);
        }
      }
    }
  }
}

void ChangeLayer::DrainTrash() {
  MutexLock lock(&bg_mu_);
  if (!bg_.joinable()) return;
  // Two rounds: the first may have begun before this call.
  const uint64_t want = trash_rounds_ + 2;
  while (trash_rounds_ < want && !stop_) {
    trash_pending_ = true;
    bg_cv_.notify_all();
    const uint64_t seen = trash_rounds_;
    bg_cv_.wait(bg_mu_, [&]() NO_THREAD_SAFETY_ANALYSIS { return trash_rounds_ > seen || stop_; });
  }
}

void ChangeLayer::Stop() {
  {
    MutexLock lock(&bg_mu_);
    stop_ = true;
    bg_cv_.notify_all();
  }
  if (bg_.joinable()) bg_.join();
  if (sync_.joinable()) sync_.join();
  in_use_ = nullptr;  // its owner may go before this layer does
  (void)adopted_.Sync();
  for (Layer l : kTiers) {
    if (has(l) && dirty_[Index(l)].exchange(false)) (void)sys::Syncfs(dirs(l).tree->get());
  }
}

}  // namespace detourfs
