// OverlayImpl: directory listings. A directory on one layer is read with
// getdents64 as it is; one spanning layers (a routed directory over the
// volume's, an unrouted one with parts on the tiers) is listed merged: each
// name once, as Probe would find it — a tier's entry before the volume's,
// whiteouts and what they hide left out, content a rule no longer routes
// there not served.
#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <unordered_map>
#include <unordered_set>

#include "overlay/overlay_impl.h"
#include "route/glob.h"
#include "store/markers.h"
#include "store/tree_walk.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

constexpr size_t kDirBufSize = size_t{32} * 1024;

bool IsDot(std::string_view name) { return name == "." || name == ".."; }

}  // namespace

Result<std::vector<MergedName>> OverlayImpl::ListMerged(Node* dir) {
  if (dir != table_.root() && table_.AliasCount(dir) == 0) return std::vector<MergedName>{};
  const Binding b = dir->Snapshot();
  std::vector<MergedName> out;
  std::unordered_set<std::string> seen;
  std::array<std::unordered_set<std::string>, kLayerCount> whited;
  std::array<SharedFd, kLayerCount> fds;
  for (Layer l : kAllLayers) {
    if (!b.parts[Index(l)].present() || !changes_->has(l)) continue;
    Result<SharedFd> fd = resolver_.DirFd(dir, l);
    if (!fd.ok()) {
      if (fd.error() == ENOENT) continue;
      spdlog::debug("listing '{}' (node {}): its {} part: {}", PathOf(dir), dir->pid(),
                    LayerName(l), ErrnoText(fd.error()));
      return Errno{fd.error()};
    }
    fds[Index(l)] = *fd;
  }
  const bool volume_visible =
      b.parts[Index(Layer::kVolume)].present() && !(IsTier(b.layer) && b.opaque);
  const bool root = dir == table_.root();
  for (Layer t : kTiers) {
    if (!fds[Index(t)]) continue;
    const int tfd = fds[Index(t)]->get();
    Result<std::vector<WalkItem>> items = ListDir(tfd);
    if (!items.ok()) return Errno{items.error()};
    for (const WalkItem& item : *items) {
      const ChildRoute r = RouteOfChild(dir, item.name);
      const char* name = item.name.c_str();
      if (item.type == S_IFCHR) {
        Result<struct stat> st = sys::StatAt(tfd, name);
        if (!st.ok()) continue;
        Result<bool> wh = markers::IsWhiteout(tfd, name, *st);
        if (wh.ok() && *wh) {
          whited[Index(t)].insert(item.name);
          continue;
        }
      }
      if (r.LayerFor(item.type) != t || seen.count(item.name) != 0) continue;
      Result<markers::IdRecord> rec = markers::GetIdRecordAt(tfd, name);
      if (!rec.ok()) return Errno{rec.error()};
      uint64_t id = rec->id;
      if (id == 0) {
        Result<struct stat> st = sys::StatAt(tfd, name);
        if (!st.ok()) continue;
        Result<uint64_t> pid = TierPid(tfd, name, *st, &*rec, 0);
        if (!pid.ok()) return Errno{pid.error()};
        id = *pid;
      }
      seen.insert(item.name);
      out.push_back(MergedName{item.name, id, item.type});
    }
  }
  if (volume_visible && fds[Index(Layer::kVolume)]) {
    const int vfd = fds[Index(Layer::kVolume)]->get();
    Result<std::vector<WalkItem>> items = ListDir(vfd);
    if (!items.ok()) return Errno{items.error()};
    for (const WalkItem& item : *items) {
      if (seen.count(item.name) != 0) continue;
      if (root && item.name == kPrivateDirName && changes_->dirs(Layer::kVolume).root) continue;
      const Layer home = RouteOfChild(dir, item.name).LayerFor(item.type);
      if (IsTier(home) && whited[Index(home)].count(item.name) != 0) continue;
      Result<struct stat> st = sys::StatAt(vfd, item.name.c_str());
      if (!st.ok()) continue;  // gone since the listing
      Result<uint64_t> pid = VolumePid(dir, vfd, item.name.c_str(), *st);
      if (!pid.ok()) return Errno{pid.error()};
      seen.insert(item.name);
      out.push_back(MergedName{item.name, *pid, item.type});
    }
  }
  return out;
}

Result<bool> OverlayImpl::IsEmpty(Node* dir) {
  Result<std::vector<MergedName>> names = ListMerged(dir);
  if (!names.ok()) return Errno{names.error()};
  return names->empty();
}

Result<DirHandle*> OverlayImpl::OpenDir(uint64_t ino) {
  Result<NodePin> node = DirOf(ino);
  if (!node.ok()) return Errno{node.error()};
  auto* dh = new DirHandle();
  dh->node = std::move(*node);
  Track(dh);
  return dh;
}

void OverlayImpl::ReleaseDir(DirHandle* dh) {
  {
    MutexLock lock(&handles_mu_);
    dirs_.erase(dh);
  }
  delete dh;  // NOLINT: the kernel's handle, owned since OpenDir
}

Result<void> OverlayImpl::FsyncDir(DirHandle& dh, bool datasync) {
  Node* node = dh.node.get();
  const Binding b = node->Snapshot();
  for (Layer l : kAllLayers) {
    if (!b.parts[Index(l)].present() && !(node == table_.root() && changes_->has(l))) continue;
    Result<SharedFd> fd = resolver_.DirFd(node, l);
    if (!fd.ok()) continue;
    Result<UniqueFd> open = sys::Reopen((*fd)->get(), O_RDONLY | O_DIRECTORY);
    if (!open.ok()) return Errno{open.error()};
    DETOURFS_TRY(sys::Fsync(open->get(), datasync));
    // Where the layer's changes of these entries came from or went to.
    DETOURFS_TRY(changes_->SyncAreas(l));
  }
  return {};
}

Result<void> OverlayImpl::ReadDir(DirHandle& dh, off_t offset, bool plus,
                                  const std::function<bool(const DirEntry&)>& emit) {
  MutexLock lock(&dh.mu);
  Node* node = dh.node.get();
  if (offset == 0 || (!dh.merged && !dh.fd.valid())) {
    // Reading starts over: decide again how (a part may have appeared).
    const Binding b = node->Snapshot();
    dh.merged = SpansLayers(b) || (node == table_.root() && changes_->dirs(Layer::kVolume).root) ||
                (node != table_.root() && table_.AliasCount(node) == 0);
    dh.names.clear();
    dh.buf.clear();
    dh.fd.Reset();
    if (dh.merged) {
      ReadLock dl(&node->dir_mu);
      Result<std::vector<MergedName>> names = ListMerged(node);
      if (!names.ok()) return Errno{names.error()};
      dh.names = std::move(*names);
    } else {
      const Layer l = Primary(b);
      Result<SharedFd> fd = resolver_.DirFd(node, l);
      if (!fd.ok()) {
        spdlog::debug("reading '{}' (node {}): its {} part: {}", PathOf(node), node->pid(),
                      LayerName(l), ErrnoText(fd.error()));
        return Errno{fd.error()};
      }
      Result<UniqueFd> open = sys::Reopen((*fd)->get(), O_RDONLY | O_DIRECTORY);
      if (!open.ok()) return Errno{open.error()};
      dh.fd = std::move(*open);
      dh.layer = l;
      dh.ids = IsTier(l) || node->volume_ids.load(std::memory_order_acquire) == 1;
      dh.offset = 0;
    }
  }
  if (dh.merged) return ReadMerged(dh, offset, plus, emit);
  return ReadStream(dh, offset, plus, emit);
}

Result<void> OverlayImpl::ReadMerged(DirHandle& dh, off_t offset, bool plus,
                                     const std::function<bool(const DirEntry&)>& emit) {
  Node* node = dh.node.get();
  // Offsets: 1 and 2 follow "." and ".."; k + 3 follows names[k].
  for (off_t i = offset; i < static_cast<off_t>(dh.names.size()) + 2; ++i) {
    DirEntry e;
    std::optional<Entry> looked;
    if (i < 2) {
      e.name = i == 0 ? "." : "..";
      e.ino = node->pid();
      e.type = S_IFDIR;
    } else {
      const MergedName& m = dh.names[static_cast<size_t>(i - 2)];
      e.name = m.name;
      e.ino = m.ino;
      e.type = m.type;
      if (plus) {
        Result<Entry> entry = Lookup(node->id(), m.name);
        if (!entry.ok()) continue;  // removed since the snapshot
        e.ino = entry->attr.st_ino;
        e.type = entry->attr.st_mode & S_IFMT;
        looked = *entry;
      }
    }
    e.entry = looked;
    e.next_offset = i + 1;
    if (!emit(e)) {
      if (looked) Forget(looked->ino, 1);
      return {};
    }
  }
  return {};
}

Result<void> OverlayImpl::ReadStream(DirHandle& dh, off_t offset, bool plus,
                                     const std::function<bool(const DirEntry&)>& emit) {
  Node* node = dh.node.get();
  if (offset != dh.offset || dh.buf.empty()) {
    // A seek (or the first call): getdents64 offsets are the filesystem's
    // own cookies, stable while entries come and go.
    DETOURFS_TRY(sys::Lseek(dh.fd.get(), offset, SEEK_SET));
    dh.buf.resize(kDirBufSize);
    dh.buf_pos = dh.buf_len = 0;
    dh.offset = offset;
  }
  bool emitted = false;
  for (;;) {
    if (dh.buf_pos >= dh.buf_len) {
      Result<size_t> n = sys::Getdents(dh.fd.get(), dh.buf.data(), dh.buf.size());
      if (!n.ok()) {
        if (emitted) return {};
        return Errno{n.error()};
      }
      if (*n == 0) return {};
      dh.buf_len = *n;
      dh.buf_pos = 0;
    }
    auto* d = reinterpret_cast<struct dirent64*>(dh.buf.data() + dh.buf_pos);
    DirEntry e;
    e.name = d->d_name;
    e.ino = d->d_ino;
    e.type = static_cast<mode_t>(d->d_type) << 12;
    e.next_offset = d->d_off;
    bool skip = false;
    if (IsTier(dh.layer) && d->d_type == DT_CHR) {
      // A whiteout left where nothing is hidden any more (the volume's
      // entry went by a path the tier did not follow, or a power cut kept
      // one side only) is not a name, here as in a lookup.
      // (Gone since getdents: skipped too; a marker that cannot be read:
      // listed, and its lookup says why.)
      Result<struct stat> st = sys::StatAt(dh.fd.get(), d->d_name);
      Result<bool> wh = st.ok() ? markers::IsWhiteout(dh.fd.get(), d->d_name, *st)
                                : Result<bool>(Errno{st.error()});
      skip = wh.ok() ? *wh : wh.error() == ENOENT;
    }
    if (skip) {
      // not a name
    } else if (IsDot(e.name)) {
      e.ino = node->pid();
    } else if (plus) {
      Result<Entry> entry = Lookup(node->id(), e.name);
      if (!entry.ok()) {
        spdlog::debug("readdirplus of '{}': '{}': {}", PathOf(node), e.name,
                      ErrnoText(entry.error()));
        skip = entry.error() == ENOENT;  // removed since getdents
        if (!skip) {
          if (emitted) return {};
          return Errno{entry.error()};
        }
      } else {
        e.entry = *entry;
        e.ino = entry->attr.st_ino;
      }
    } else if (dh.ids) {
      // d_ino is the id st_ino reports.
      const std::string name(e.name);
      if (IsTier(dh.layer)) {
        Result<markers::IdRecord> rec = markers::GetIdRecordAt(dh.fd.get(), name.c_str());
        if (rec.ok() && rec->id != 0) e.ino = rec->id;
      } else {
        Result<struct stat> st = sys::StatAt(dh.fd.get(), name.c_str());
        if (st.ok()) {
          Result<uint64_t> pid = VolumePid(node, dh.fd.get(), name.c_str(), *st);
          if (pid.ok()) e.ino = *pid;
        }
      }
    }
    if (!skip && !emit(e)) {
      if (e.entry) Forget(e.entry->ino, 1);
      return {};
    }
    emitted = emitted || !skip;
    dh.buf_pos += d->d_reclen;
    dh.offset = d->d_off;
  }
}

}  // namespace detourfs
