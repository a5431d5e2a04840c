// OverlayImpl: probing a name on every layer, lookup, forget, and the
// persistent ids reported as inode numbers.
#include <fcntl.h>
#include <limits.h>
#include <spdlog/spdlog.h>
#include <sys/xattr.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>

#include "overlay/overlay_impl.h"
#include "store/markers.h"
#include "sys/sys.h"

namespace detourfs {
Result<NodePin> OverlayImpl::NodeOf(uint64_t ino) {
  NodePin pin = table_.Find(ino);
  if (!pin) return Errno{ESTALE};
  return pin;
}

Result<NodePin> OverlayImpl::DirOf(uint64_t ino) {
  Result<NodePin> pin = NodeOf(ino);
  if (!pin.ok()) return pin;
  if (!(*pin)->is_dir()) return Errno{ENOTDIR};
  return pin;
}

Result<void> OverlayImpl::ValidName(std::string_view name) {
  // The kernel sends single components, never "." or "..": refuse anything
  // else rather than resolve it.
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos) {
    return Errno{EINVAL};
  }
  if (name.size() > NAME_MAX) return Errno{ENAMETOOLONG};
  return {};
}

bool OverlayImpl::Indexed(Layer tier, uint64_t pid) {
  MutexLock lock(&index_mu_);
  return indexed_[Index(tier)].count(pid) != 0;
}

bool OverlayImpl::IdsMarked(Node* dir, int dirfd) {
  int marked = dir->volume_ids.load(std::memory_order_acquire);
  if (marked < 0) {
    Result<bool> flag = markers::HasFlag(dirfd, markers::kIdsXattr);
    marked = flag.ok() && *flag ? 1 : 0;
    dir->volume_ids.store(marked, std::memory_order_release);
  }
  return marked == 1;
}

Result<void> OverlayImpl::MarkIds(Node* dir, int dirfd) {
  if (IdsMarked(dir, dirfd)) return {};
  DETOURFS_TRY(changes_->SetFlag(dirfd, markers::kIdsXattr));
  dir->volume_ids.store(1, std::memory_order_release);
  return {};
}

Result<uint64_t> OverlayImpl::VolumePid(Node* dir, int dirfd, const char* name,
                                        const struct stat& st) {
  if (st.st_dev != volume_dev_ || st.st_ino >= kIdBase) {
    // A filesystem mounted inside the volume (its numbers may repeat the
    // volume's), or a number in the id range: an id of its own, for the run.
    const std::string key = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    MutexLock lock(&foreign_mu_);
    auto [it, inserted] = foreign_.emplace(key, 0);
    if (inserted) it->second = ids_->Next();
    return it->second;
  }
  if (IdsMarked(dir, dirfd)) {
    // Files detourfs placed here (moved from a tier) keep the id they had.
    Result<markers::IdRecord> rec = markers::GetIdRecordAt(dirfd, name);
    if (rec.ok() && rec->id != 0) return rec->id;
  }
  return static_cast<uint64_t>(st.st_ino);
}

Result<uint64_t> OverlayImpl::TierPid(int dirfd, const char* name, const struct stat& st,
                                      markers::IdRecord* rec, uint64_t volume_pid) {
  if (rec->id != 0) return rec->id;
  // No id recorded (made by hand, or a crash between a create and its id):
  // the volume's when this is that entry's tier part, else a new one, kept.
  // Only if none is there yet: lookups and listings of one directory run
  // side by side, and the first id given is the entry's (review 3 #6).
  (void)st;
  rec->id = volume_pid != 0 ? volume_pid : ids_->Next();
  Result<void> r = changes_->SetIdRecordAt(dirfd, name, *rec, XATTR_CREATE);
  if (!r.ok() && r.error() == EEXIST) {
    Result<markers::IdRecord> now = markers::GetIdRecordAt(dirfd, name);
    if (now.ok() && now->id != 0) {
      *rec = *now;
      return rec->id;
    }
    r = changes_->SetIdRecordAt(dirfd, name, *rec);  // a record without an id
  }
  if (!r.ok()) return Errno{r.error()};
  return rec->id;
}

void OverlayImpl::RecheckVolumePart(Node* dir) {
  if (dir == table_.root()) return;
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  const int64_t at = dir->volume_absent_at.load(std::memory_order_acquire);
  const auto ttl = static_cast<int64_t>(options_.negative_timeout * 1e9);
  if (at != 0 && now - at < ttl) return;
  {
    ReadLock lock(&dir->content_mu);
    const Binding& b = dir->binding();
    if (!IsTier(b.layer) || b.opaque || b.parts[Index(Layer::kVolume)].state != Part::kAbsent) {
      return;
    }
  }
  dir->volume_absent_at.store(now, std::memory_order_release);
  std::vector<Location> locs = table_.Locations(dir);
  if (locs.empty()) return;
  // Only where the parent's volume part shows (not under an opaque one),
  // and only if the parent's binding did not change until the part is set.
  Node* parent = locs.front().parent.get();
  const uint64_t parent_gen = parent->generation.load(std::memory_order_acquire);
  {
    ReadLock lock(&parent->content_mu);
    const Binding& pb = parent->binding();
    if (!pb.parts[Index(Layer::kVolume)].present() || (IsTier(pb.layer) && pb.opaque)) return;
  }
  Result<SharedFd> pfd = resolver_.DirFd(parent, Layer::kVolume);
  if (!pfd.ok()) return;
  Result<struct stat> st = sys::StatAt((*pfd)->get(), locs.front().name.c_str());
  if (!st.ok() || !S_ISDIR(st->st_mode)) return;
  WriteLock lock(&dir->content_mu);
  Binding& b = dir->mutable_binding();
  if (b.opaque || b.parts[Index(Layer::kVolume)].state != Part::kAbsent) return;
  if (parent->generation.load(std::memory_order_acquire) != parent_gen) return;
  b.parts[Index(Layer::kVolume)] = Part::Of(*st);
  dir->generation.fetch_add(1, std::memory_order_acq_rel);
}

Result<Slot> OverlayImpl::Probe(Node* dir, std::string_view name) {
  RecheckVolumePart(dir);
  Slot s;
  if (dir != table_.root() && table_.AliasCount(dir) == 0) {
    // A directory removed while a process still stands in it: empty, and
    // nothing can be made in it.
    s.removed_dir = true;
    return s;
  }
  s.route = RouteOfChild(dir, name);
  s.dir = dir->Snapshot();
  const std::string n(name);
  std::array<SharedFd, kLayerCount> fds;
  for (Layer l : kAllLayers) {
    if (!s.dir.parts[Index(l)].present() || !changes_->has(l)) continue;
    Result<SharedFd> fd = resolver_.DirFd(dir, l);
    if (!fd.ok()) {
      if (fd.error() == ENOENT) continue;
      spdlog::debug("probe '{}' in '{}' (node {}): its {} part: {}", name, PathOf(dir), dir->pid(),
                    LayerName(l), ErrnoText(fd.error()));
      return Errno{fd.error()};
    }
    fds[Index(l)] = *fd;
    LayerHit& hit = s.at[Index(l)];
    Result<struct stat> st = sys::StatAt((*fd)->get(), n.c_str());
    if (!st.ok()) {
      if (st.error() == ENOENT) continue;
      return Errno{st.error()};
    }
    hit.has = true;
    hit.st = *st;
    if (IsTier(l)) {
      if (markers::MaybeWhiteout(*st)) {
        Result<bool> wh = markers::IsWhiteout((*fd)->get(), n.c_str(), *st);
        if (!wh.ok()) return Errno{wh.error()};
        hit.whiteout = *wh;
      }
      if (!hit.whiteout) {
        Result<markers::IdRecord> rec = markers::GetIdRecordAt((*fd)->get(), n.c_str());
        if (!rec.ok()) return Errno{rec.error()};
        hit.rec = *rec;
      }
    }
  }
  // The directory's volume part shows through unless its tier part is
  // opaque (a routed directory made anew over the volume's).
  s.volume_visible =
      s.dir.parts[Index(Layer::kVolume)].present() && !(IsTier(s.dir.layer) && s.dir.opaque);

  // A routed name: its tier's entry, unless that is a whiteout.
  std::array<bool, kLayerCount> whited{};
  for (Layer l : {s.route.dir_layer, s.route.file_layer}) {
    if (!IsTier(l) || s.exists) continue;
    const LayerHit& hit = s.at[Index(l)];
    if (!hit.has) continue;
    if (hit.whiteout) {
      whited[Index(l)] = true;
      continue;
    }
    const mode_t type = hit.st.st_mode & S_IFMT;
    // Content a rule no longer routes here (another type under a
    // directory-only rule, or a changed config) is not served.
    if (s.route.LayerFor(type) != l) continue;
    s.exists = true;
    s.type = type;
    s.st = hit.st;
    s.binding.layer = l;
    s.binding.parts[Index(l)] = Part::Of(hit.st);
    for (Layer o : kAllLayers) {
      if (o != l) s.binding.parts[Index(o)] = Part::Absent();
    }
    const LayerHit& vol = s.at[Index(Layer::kVolume)];
    uint64_t volume_pid = 0;
    if (S_ISDIR(type)) {
      s.binding.opaque = hit.rec.opaque;
      if (s.volume_visible && !hit.rec.opaque && vol.has && S_ISDIR(vol.st.st_mode)) {
        s.binding.parts[Index(Layer::kVolume)] = Part::Of(vol.st);
        Result<uint64_t> vp = VolumePid(dir, fds[Index(Layer::kVolume)]->get(), n.c_str(), vol.st);
        if (!vp.ok()) return Errno{vp.error()};
        volume_pid = *vp;
      }
    } else {
      s.binding.spill = hit.rec.spill;
    }
    markers::IdRecord rec = hit.rec;
    Result<uint64_t> pid = TierPid(fds[Index(l)]->get(), n.c_str(), hit.st, &rec, volume_pid);
    if (!pid.ok()) return Errno{pid.error()};
    s.pid = *pid;
    // A link to an index entry: one name of a file with names elsewhere.
    if (!S_ISDIR(type) && hit.st.st_nlink > 1 && Indexed(l, s.pid)) s.binding.index = true;
  }
  if (s.exists) return s;

  // Else the volume's, when its directory part shows and no whiteout of the
  // name's tier hides it.
  const LayerHit& vol = s.at[Index(Layer::kVolume)];
  if (!vol.has || !s.volume_visible) return s;
  const mode_t type = vol.st.st_mode & S_IFMT;
  const Layer home = s.route.LayerFor(type);
  if (IsTier(home) && whited[Index(home)]) return s;
  const int vfd = fds[Index(Layer::kVolume)]->get();
  Result<uint64_t> pid = VolumePid(dir, vfd, n.c_str(), vol.st);
  if (!pid.ok()) return Errno{pid.error()};
  s.exists = true;
  s.type = type;
  s.st = vol.st;
  s.pid = *pid;
  s.binding.parts[Index(Layer::kVolume)] = Part::Of(vol.st);
  if (S_ISDIR(type)) {
    s.binding.layer = home;
    // Its parts on the tiers: an unrouted directory's scaffolding (made
    // for the volume directory with that id: anything else is stale), or
    // for a routed one nothing (a tier entry would have been found above).
    for (Layer t : kTiers) {
      const LayerHit& hit = s.at[Index(t)];
      s.binding.parts[Index(t)] = Part::Absent();
      if (home != Layer::kVolume || !hit.has || hit.whiteout || !S_ISDIR(hit.st.st_mode)) continue;
      if (hit.rec.id == 0) {
        // Scaffolding made before ids (format 1): it is this directory's.
        markers::IdRecord rec = hit.rec;
        rec.id = s.pid;
        if (!changes_->SetIdRecordAt(fds[Index(t)]->get(), n.c_str(), rec).ok()) continue;
      } else if (hit.rec.id != s.pid) {
        continue;  // left by a directory of that name since removed: stale
      }
      s.binding.parts[Index(t)] = Part::Of(hit.st);
    }
    return s;
  }
  s.binding.layer = Layer::kVolume;
  for (Layer t : kTiers) s.binding.parts[Index(t)] = Part::Absent();
  // A hard-linked volume file copied up lives in an index, which every name
  // of it resolves to.
  // (A file with one volume name may have been linked into a tier.)
  if (vol.st.st_nlink > 1 || IndexedOnATier(s.pid)) {
    for (Layer t : {home, Layer::kMemory, Layer::kDisk}) {
      if (!IsTier(t) || !changes_->has(t) || !Indexed(t, s.pid)) continue;
      const int index = changes_->dirs(t).index->get();
      const std::string entry = markers::IndexName(s.pid);
      Result<struct stat> ist = sys::StatAt(index, entry.c_str());
      if (!ist.ok()) continue;
      // The entry stands for one volume inode: the number alone may have
      // been given to a new file since that one went.
      Result<std::string> want = markers::GetBytesAt(index, entry.c_str(), markers::kHandleXattr);
      Result<std::string> have = sys::NameToHandle(vfd, n.c_str());
      if (!want.ok() || !have.ok() || *want != *have) continue;
      Result<bool> meta = markers::HasFlagAt(index, entry.c_str(), markers::kMetacopyXattr);
      s.binding.layer = t;
      s.binding.index = true;
      s.binding.metacopy = meta.ok() && *meta;
      s.binding.parts[Index(t)] = Part::Of(*ist);
      s.st = *ist;
      break;
    }
  }
  return s;
}

Result<NodePin> OverlayImpl::NodeFor(Node* dir, std::string_view name, const Slot& s, bool lookup) {
  // A volume file with one link found under a name its node does not have
  // is another file (deleted underneath, its number reused).
  const bool single = s.binding.layer == Layer::kVolume && !S_ISDIR(s.type) && s.st.st_nlink <= 1;
  return table_.Remember(dir, name, s.pid, s.type, s.binding, lookup, nullptr, single);
}

Result<Entry> OverlayImpl::EntryFor(Node* dir, std::string_view name, const Slot& s) {
  Result<NodePin> pin = NodeFor(dir, name, s, true);
  if (!pin.ok()) return Errno{pin.error()};
  Node* node = pin->get();
  Result<struct stat> st = Errno{EIO};
  {
    ReadLock lock(&node->content_mu);
    const Binding& b = node->binding();
    if (b.home().Is(s.st) && b.spill.token == 0 && !b.index) {
      struct stat copy = s.st;
      Report(node, b, &copy);
      st = copy;
    } else {
      st = StatOf(node, b, nullptr);
    }
  }
  if (!st.ok()) {
    Forget(node->id(), 1);
    return Errno{st.error()};
  }
  return Entry{node->id(), *st};
}

Result<Entry> OverlayImpl::Lookup(uint64_t parent, std::string_view name) {
  DETOURFS_TRY(ValidName(name));
  Result<NodePin> dir = DirOf(parent);
  if (!dir.ok()) return Errno{dir.error()};
  if (IsPrivateName(dir->get(), name)) return Errno{ENOENT};
  ReadLock lock(&(*dir)->dir_mu);
  Result<Slot> s = Probe(dir->get(), name);
  if (!s.ok()) return Errno{s.error()};
  if (!s->exists) return Errno{ENOENT};
  return EntryFor(dir->get(), name, *s);
}

void OverlayImpl::Forget(uint64_t ino, uint64_t nlookup) {
  // Node ids are never reused, so dropping the fds of a node a racing
  // lookup brought back only costs that node a re-resolve.
  if (table_.Forget(ino, nlookup)) resolver_.Drop(ino);
}

}  // namespace detourfs
