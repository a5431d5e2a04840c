// Overlay: routing — which layer a name lives on, lookups through a tier's
// upper tree and the volume beneath it, directory and file copy-up, and the
// merged listing of directories that span layers.
#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <unordered_set>

#include "detourfs/overlay.h"
#include "inodes/resolver.h"
#include "overlay/backing_tree.h"
#include "overlay/markers.h"
#include "store/spill_store.h"
#include "sys/sys.h"

namespace detourfs {

Result<void> CopyXattrs(int from, int to) {
  Result<size_t> need = sys::ListXattr(from, nullptr, 0);
  if (!need.ok()) return need.error() == ENOTSUP ? Result<void>() : Errno{need.error()};
  std::vector<char> list(*need);
  Result<size_t> got = sys::ListXattr(from, list.data(), list.size());
  if (!got.ok()) return Errno{got.error()};
  for (size_t i = 0; i < *got;) {
    const char* name = list.data() + i;
    i += std::strlen(name) + 1;
    if (markers::IsReservedXattr(name)) continue;
    Result<size_t> vlen = sys::GetXattr(from, name, nullptr, 0);
    if (!vlen.ok()) return Errno{vlen.error()};
    std::vector<char> value(*vlen);
    Result<size_t> v = sys::GetXattr(from, name, value.data(), value.size());
    if (!v.ok()) return Errno{v.error()};
    Result<void> set = sys::SetXattr(to, name, value.data(), *v, 0);
    if (!set.ok() && set.error() != ENOTSUP) return set;
  }
  return {};
}

Result<void> CopyData(int in, int out) {
  for (;;) {
    ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, size_t{1} << 30, 0);
    if (n == 0) return {};
    if (n > 0) continue;
    if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
      return Errno{errno};
    }
    break;  // no cross-filesystem copy here: plain reads and writes
  }
  std::vector<char> buf(size_t{1} << 20);
  for (;;) {
    Result<size_t> n = sys::Read(in, buf.data(), buf.size());
    if (!n.ok()) return Errno{n.error()};
    if (*n == 0) return {};
    DETOURFS_TRY(sys::WriteAll(out, buf.data(), *n));
  }
}

Result<void> CopyNodeInto(int src, const struct stat& st, int dirfd, const char* name) {
  if (S_ISREG(st.st_mode)) {
    // Built unnamed (O_TMPFILE) and linked into place complete: a crash or
    // failure never leaves a partial copy under the name.
    int tmp = ::openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (tmp < 0) return Errno{errno};
    UniqueFd out(tmp);
    Result<UniqueFd> in = sys::Reopen(src, O_RDONLY);
    if (!in.ok()) return Errno{in.error()};
    DETOURFS_TRY(CopyData(in->get(), out.get()));
    DETOURFS_TRY(sys::ChownFd(out.get(), st.st_uid, st.st_gid));
    DETOURFS_TRY(sys::Fchmod(out.get(), st.st_mode & 07777));
    DETOURFS_TRY(CopyXattrs(src, out.get()));
    const struct timespec times[2] = {st.st_atim, st.st_mtim};
    DETOURFS_TRY(sys::Futimens(out.get(), times));
    return sys::LinkFd(out.get(), dirfd, name);
  }
  if (S_ISLNK(st.st_mode)) {
    Result<std::string> target = sys::ReadlinkFd(src);
    if (!target.ok()) return Errno{target.error()};
    DETOURFS_TRY(sys::SymlinkAt(target->c_str(), dirfd, name));
  } else {
    DETOURFS_TRY(sys::MknodAt(dirfd, name, st.st_mode, st.st_rdev));
  }
  Result<UniqueFd> fd = sys::OpenBeneath(dirfd, name, O_PATH);
  if (!fd.ok()) return Errno{fd.error()};
  DETOURFS_TRY(sys::ChownFd(fd->get(), st.st_uid, st.st_gid));
  if (!S_ISLNK(st.st_mode)) DETOURFS_TRY(sys::ChmodPath(fd->get(), st.st_mode & 07777));
  return {};
}

int Overlay::ChildRoute(Node* parent, std::string_view name, bool is_dir) {
  if (router_.empty()) return kNotRouted;
  if (int route = parent->route(); route != kNotRouted) return route;
  bool ok = false;
  std::string path = table_->PathOf(parent, &ok);
  if (!ok) return kNotRouted;
  std::vector<std::string_view> components = SplitPath(path);
  components.push_back(name);
  size_t rule = 0;
  if (router_.MatchExact(components, is_dir, &rule, nullptr) == nullptr) return kNotRouted;
  return static_cast<int>(rule);
}

Layer Overlay::TierOf(int route) const {
  if (route == kNotRouted) return Layer::kVolume;
  switch (router_.rules()[static_cast<size_t>(route)].tier) {
    case TierId::kMemory:
      return Layer::kMemory;
    case TierId::kDisk:
      return Layer::kDisk;
    case TierId::kVolume:
      break;
  }
  return Layer::kVolume;
}

void Overlay::MergedDirLinks(Node* node, struct stat& st) {
  // A directory spanning layers has subdirectories on both: its link count
  // is not known without listing it. Like overlayfs and btrfs, report 1
  // ("not counted"), which tools such as find take as "do not optimise by
  // link count" rather than a wrong count they would trust.
  if (!S_ISDIR(st.st_mode) || node->layer() == Layer::kVolume) return;
  if (TierOf(node->route()) == Layer::kVolume) return;
  if (resolver_->Fd(node, Layer::kVolume).ok()) st.st_nlink = 1;
}

bool Overlay::NeedsCopyUp(Node* node) const {
  return node->layer() == Layer::kVolume && TierOf(node->route()) != Layer::kVolume;
}

Result<Entry> Overlay::LookupRouted(Node* parent, std::string_view name, int route, Layer tier,
                                    bool* whiteout) {
  const std::string n(name);
  LayerLock::Hold layers = layers_.Shared();
  Result<SharedFd> up = resolver_->Fd(parent, tier);
  bool check_opaque = false;
  if (up.ok()) {
    Result<struct stat> st = sys::StatAt((*up)->get(), n.c_str());
    if (st.ok()) {
      Result<bool> is_whiteout = markers::IsWhiteout((*up)->get(), n.c_str(), *st);
      if (!is_whiteout.ok()) return Errno{is_whiteout.error()};
      if (*is_whiteout) {
        if (whiteout != nullptr) *whiteout = true;
        return Errno{ENOENT};
      }
      if (markers::MaybeSpilled(*st)) {
        Result<std::optional<Entry>> spilled =
            LookupSpilled(parent, name, (*up)->get(), *st, tier, route);
        if (!spilled.ok()) return Errno{spilled.error()};
        if (*spilled) return **spilled;
      }
      bool created = false;
      Entry e{table_->Remember(parent, name, *st, tier, route, &created), *st};
      // A file copied up before the kernel last forgot it: its volume number.
      if (created && S_ISREG(st->st_mode)) KeepOrigin(e.node, (*up)->get(), n.c_str());
      Report(e.node, e.attr);
      MergedDirLinks(e.node, e.attr);
      return e;
    }
    if (st.error() != ENOENT) return Errno{st.error()};
    check_opaque = parent->route() != kNotRouted;
  } else if (up.error() != ENOENT) {
    return Errno{up.error()};
  }
  Result<SharedFd> low = resolver_->Fd(parent, Layer::kVolume);
  // An opaque directory hides what the volume has under it. Asked only when
  // the volume may have a directory there: a directory made on the tier has
  // none (the resolver remembers that), and nothing is left to hide.
  if (check_opaque && (low.ok() || low.error() != ENOENT)) {
    Result<bool> opaque = markers::IsOpaque((*up)->get());
    if (opaque.ok() && *opaque) return Errno{ENOENT};
  }
  if (!low.ok()) return Errno{low.error()};
  Result<struct stat> st = sys::StatAt((*low)->get(), n.c_str());
  if (!st.ok()) return Errno{st.error()};
  // Directory-only rules ("dist/") do not cover a file of that name.
  const int actual = S_ISDIR(st->st_mode) ? route : ChildRoute(parent, name, false);
  Entry e{table_->Remember(parent, name, *st, Layer::kVolume, actual), *st};
  Report(e.node, e.attr);
  return e;
}

uint64_t OriginIno(int fd) {
  uint64_t ino = 0;
  Result<size_t> got = sys::GetXattr(fd, markers::kOriginXattr, &ino, sizeof(ino));
  return got.ok() && *got == sizeof(ino) ? ino : 0;
}

void Overlay::KeepOrigin(Node* node, int dirfd, const char* name) {
  Result<UniqueFd> fd = sys::OpenBeneath(dirfd, name, O_PATH | O_NOFOLLOW);
  if (!fd.ok()) return;
  if (uint64_t ino = OriginIno(fd->get()); ino != 0) table_->KeepIno(node, ino);
  resolver_->Prime(node, std::move(*fd));
}

Result<SharedFd> Overlay::EnsureUpperDir(Node* dir, Layer tier) {
  Result<SharedFd> up = resolver_->Fd(dir, tier);
  if (up.ok() || up.error() != ENOENT || dir == table_->root()) return up;
  std::vector<Location> locs = table_->Locations(dir);
  if (locs.empty()) return Errno{ESTALE};
  Location& loc = locs.front();
  Result<SharedFd> parent_up = EnsureUpperDir(loc.parent.get(), tier);
  if (!parent_up.ok()) return parent_up;
  Result<SharedFd> vol = resolver_->Fd(dir, Layer::kVolume);
  if (!vol.ok()) return Errno{vol.error()};
  Result<struct stat> vst = sys::Fstat((*vol)->get());
  if (!vst.ok()) return Errno{vst.error()};
  const int pfd = (*parent_up)->get();
  // A routed directory moves to its tier here: no lookup may see the new
  // directory before the node is rebound to it.
  const bool moves = dir->layer() == Layer::kVolume && TierOf(dir->route()) == tier;
  std::optional<LayerLock::Hold> layers;
  if (moves) layers.emplace(layers_.Exclusive());
  Result<void> made = sys::MkdirAt(pfd, loc.name.c_str(), 0700);
  if (!made.ok() && made.error() != EEXIST) return Errno{made.error()};
  Result<UniqueFd> fd = sys::OpenBeneath(pfd, loc.name.c_str(), O_PATH | O_DIRECTORY);
  if (!fd.ok()) return Errno{fd.error()};
  if (made.ok()) {
    resolver_->NewPaths();  // `dir` has a side on the tier now
    // The copy looks like the volume's directory: owner, mode (setgid and
    // sticky bits included), xattrs (default ACLs keep applying).
    DETOURFS_TRY(sys::ChownFd(fd->get(), vst->st_uid, vst->st_gid));
    DETOURFS_TRY(sys::ChmodPath(fd->get(), vst->st_mode & 07777));
    DETOURFS_TRY(CopyXattrs((*vol)->get(), fd->get()));
  }
  Result<struct stat> ust = sys::Fstat(fd->get());
  if (!ust.ok()) return Errno{ust.error()};
  // A routed directory now lives on its tier (its volume part stays visible
  // beneath it); a directory above a routed subtree is only scaffolding.
  if (moves) table_->Rebind(dir, *ust, tier);
  auto shared = std::make_shared<const UniqueFd>(std::move(*fd));
  resolver_->Prime(dir, tier, UniqueFd(::dup(shared->get())));
  return shared;
}

Result<void> Overlay::LinkUpOtherNames(Node* node, const std::vector<Location>& locs, int first_dir,
                                       const char* first_name, Layer tier) {
  for (size_t i = 1; i < locs.size(); ++i) {
    if (TierOf(ChildRoute(locs[i].parent.get(), locs[i].name, false)) != tier) return {};
  }
  Result<UniqueFd> copy = sys::OpenBeneath(first_dir, first_name, O_PATH | O_NOFOLLOW);
  if (!copy.ok()) return Errno{copy.error()};
  for (size_t i = 1; i < locs.size(); ++i) {
    Result<SharedFd> dir = EnsureUpperDir(locs[i].parent.get(), tier);
    if (!dir.ok()) return Errno{dir.error()};
    const char* n = locs[i].name.c_str();
    // A name already on the tier is another file's: leave it be.
    if (sys::StatAt((*dir)->get(), n).ok()) continue;
    DETOURFS_TRY(sys::LinkFd(copy->get(), (*dir)->get(), n));
  }
  (void)node;
  return {};
}

Result<void> Overlay::CopyUp(Node* node, bool data_to_store) {
  std::lock_guard lock(copy_up_mu_);
  if (!NeedsCopyUp(node)) return {};
  const Layer tier = TierOf(node->route());
  if (node->is_dir()) {
    Result<SharedFd> up = EnsureUpperDir(node, tier);
    return up.ok() ? Result<void>() : Errno{up.error()};
  }
  std::vector<Location> locs = table_->Locations(node);
  if (locs.empty()) return Errno{ESTALE};
  Location& loc = locs.front();
  // Handles open on the volume file (opened while the tier was full, or
  // read-only) wait while the data is copied, then follow it: a write
  // through one must not land in the file the mount no longer shows.
  std::lock_guard handles_lock(handles_mu_);
  HeldHandles held;
  HoldHandles(node, &held);
  LayerLock::Hold layers = layers_.Exclusive();
  Result<SharedFd> parent_up = EnsureUpperDir(loc.parent.get(), tier);
  if (!parent_up.ok()) return Errno{parent_up.error()};
  const int pfd = (*parent_up)->get();
  Result<SharedFd> src = resolver_->Fd(node, Layer::kVolume);
  if (!src.ok()) return Errno{src.error()};
  Result<struct stat> st = sys::Fstat((*src)->get());
  if (!st.ok()) return Errno{st.error()};
  const char* name = loc.name.c_str();
  uint64_t token = 0;  // the copy's data in the spill store, its file a stub
  std::optional<UniqueFd> data;
  if (data_to_store) {
    Result<uint64_t> stored = CopyUpToStore((*src)->get(), *st, pfd, name);
    if (!stored.ok()) return Errno{stored.error()};
    token = *stored;
    // Opened now: past the rebinding below, nothing may fail before the
    // handles follow.
    Result<UniqueFd> opened = spill_store_->Open(token, O_PATH);
    if (!opened.ok()) return Errno{opened.error()};
    data = std::move(*opened);
  } else {
    DETOURFS_TRY(CopyNodeInto((*src)->get(), *st, pfd, name));
  }
  // A file with several names on the volume keeps them linked when the table
  // knows them all and all are routed to this tier: each becomes a link to
  // the copy (the volume's names stay, hidden). Otherwise the copy is this
  // name's alone, as in overlayfs without an index.
  if (st->st_nlink > 1 && locs.size() >= st->st_nlink) {
    DETOURFS_TRY(LinkUpOtherNames(node, locs, pfd, name, tier));
  }
  Result<UniqueFd> fd = sys::OpenBeneath(pfd, name, O_PATH);
  if (!fd.ok()) return Errno{fd.error()};
  Result<struct stat> ust = sys::Fstat(fd->get());
  if (!ust.ok()) return Errno{ust.error()};
  // The copy keeps the inode number the volume file had through the mount,
  // recorded on it for when the kernel has forgotten the node. The volume
  // file stays (until a flush replaces it), so no other file gets that
  // number — unless it has other links, which keep showing it.
  if (st->st_nlink == 1) {
    struct stat seen = *st;
    Report(node, seen);
    const uint64_t ino = seen.st_ino;
    if (Result<void> r = sys::SetXattr(fd->get(), markers::kOriginXattr, &ino, sizeof(ino), 0);
        !r.ok() && r.error() != ENOTSUP) {
      return r;
    }
    table_->KeepIno(node, ino);
  }
  table_->Rebind(node, *ust, tier);
  resolver_->Drop(node->id(), Layer::kVolume);
  if (token != 0) table_->SetSpilled(node, token);
  resolver_->Prime(node, tier, data ? std::move(*data) : std::move(*fd));
  return RepointHandles(node, held);
}

Result<void> Overlay::ListMerged(Node* dir, bool* merged, std::vector<MergedName>* names) {
  *merged = false;
  names->clear();
  if (router_.empty()) return {};
  const bool routed = TierOf(dir->route()) != Layer::kVolume;
  std::unordered_set<std::string> seen;  // listed, or hidden by a whiteout
  bool opaque = false;
  for (Layer tier : {Layer::kMemory, Layer::kDisk}) {
    if (!resolver_->HasLayer(tier)) continue;
    if (routed && TierOf(dir->route()) != tier) continue;
    Result<SharedFd> up = resolver_->Fd(dir, tier);
    if (!up.ok()) {
      if (up.error() == ENOENT) continue;
      return Errno{up.error()};
    }
    *merged = true;
    const int ufd = (*up)->get();
    if (routed) {
      Result<bool> o = markers::IsOpaque(ufd);
      opaque = o.ok() && *o;
    }
    Result<struct stat> ust = sys::Fstat(ufd);
    if (!ust.ok()) return Errno{ust.error()};
    DETOURFS_TRY(
        ForEachEntry(ufd, [&](std::string_view name, ino_t ino, mode_t type) -> Result<void> {
          // Above a routed subtree the tier holds scaffolding: only names routed
          // to this tier count.
          if (!routed && TierOf(ChildRoute(dir, name, S_ISDIR(type) || type == 0)) != tier)
            return {};
          if (!seen.insert(std::string(name)).second) return {};
          if (S_ISCHR(type)) {
            const std::string n(name);
            Result<struct stat> st = sys::StatAt(ufd, n.c_str());
            if (!st.ok()) return st.error() == ENOENT ? Result<void>() : Errno{st.error()};
            Result<bool> w = markers::IsWhiteout(ufd, n.c_str(), *st);
            if (!w.ok()) return Errno{w.error()};
            if (*w) return {};  // hidden, and hides the volume's
          }
          struct stat fake {};
          fake.st_dev = ust->st_dev;
          fake.st_ino = ino;
          ReportIno(fake);
          names->push_back(MergedName{std::string(name), fake.st_ino, type});
          return {};
        }));
  }
  if (!*merged || opaque) return {};
  Result<SharedFd> low = resolver_->Fd(dir, Layer::kVolume);
  if (!low.ok()) return low.error() == ENOENT ? Result<void>() : Errno{low.error()};
  Result<struct stat> lst = sys::Fstat((*low)->get());
  if (!lst.ok()) return Errno{lst.error()};
  return ForEachEntry((*low)->get(),
                      [&](std::string_view name, ino_t ino, mode_t type) -> Result<void> {
                        if (seen.count(std::string(name)) != 0) return {};
                        struct stat fake {};
                        fake.st_dev = lst->st_dev;
                        fake.st_ino = ino;
                        ReportIno(fake);
                        names->push_back(MergedName{std::string(name), fake.st_ino, type});
                        return {};
                      });
}

Result<void> Overlay::ReadMerged(DirHandle& dh, off_t offset, bool plus,
                                 const std::function<bool(const DirEntry&)>& emit) {
  if (offset == 0 || dh.names.empty()) {
    bool merged = false;
    DETOURFS_TRY(ListMerged(dh.node, &merged, &dh.names));
    // "." and ".." first, as a local filesystem lists them, with a non-zero
    // inode number (readdir(3) skips entries with 0); ".." reports the
    // directory's own, as the parent is not looked up here.
    Result<struct stat> self = sys::Fstat(dh.fd.get());
    if (!self.ok()) return Errno{self.error()};
    ReportIno(*self);
    dh.names.insert(dh.names.begin(), {MergedName{".", self->st_ino, S_IFDIR},
                                       MergedName{"..", self->st_ino, S_IFDIR}});
  }
  bool emitted = false;
  for (size_t i = static_cast<size_t>(offset); i < dh.names.size(); ++i) {
    const MergedName& m = dh.names[i];
    DirEntry e;
    e.name = m.name;
    e.ino = m.ino;
    e.type = m.type;
    e.next_offset = static_cast<off_t>(i + 1);
    if (plus && i >= 2) {
      Result<Entry> entry = Lookup(dh.node->id(), m.name);
      if (!entry.ok()) {
        if (entry.error() == ENOENT) continue;  // removed since the snapshot
        // As the single-layer listing does: entries already handed over are
        // replied; the error comes with the next call.
        if (emitted) return {};
        return Errno{entry.error()};
      }
      e.entry = *entry;
      e.ino = entry->attr.st_ino;
    }
    if (!emit(e)) {
      if (e.entry) Forget(e.entry->node->id(), 1);
      return {};
    }
    emitted = true;
  }
  return {};
}

}  // namespace detourfs
