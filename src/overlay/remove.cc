// OverlayImpl: unlink and rmdir on the merged view. A directory is empty
// only when its merged listing is. What a tier holds goes from the tier
// (with a whiteout where the volume still has the name); a routed name
// still on the volume gets a whiteout; an unrouted name goes from the
// volume, and an unrouted directory takes its tier parts with it.
#include <fcntl.h>
#include <spdlog/spdlog.h>

#include "overlay/overlay_impl.h"
#include "store/markers.h"
#include "store/tree_walk.h"
#include "sys/sys.h"
#include "util/write_lock_set.h"

namespace detourfs {

bool OverlayImpl::HoldsUnservedContent(int dirfd, const std::string& name) {
  Result<UniqueFd> fd = sys::OpenBeneath(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY);
  if (!fd.ok()) return fd.error() != ENOENT;  // unknown: kept rather than deleted
  Result<std::vector<WalkItem>> items = ListDir(fd->get());
  if (!items.ok()) return true;  // unknown: kept rather than deleted
  for (const WalkItem& item : *items) {
    if (item.type != S_IFCHR && item.type != 0) return true;
    Result<struct stat> st = sys::StatAt(fd->get(), item.name.c_str());
    if (!st.ok()) return true;
    Result<bool> wh = markers::IsWhiteout(fd->get(), item.name.c_str(), *st);
    if (!wh.ok() || !*wh) return true;
  }
  return false;
}

Result<void> OverlayImpl::Unlink(uint64_t parent, std::string_view name) {
  return Remove(parent, name, false);
}

Result<void> OverlayImpl::Rmdir(uint64_t parent, std::string_view name) {
  return Remove(parent, name, true);
}

Result<void> OverlayImpl::Remove(uint64_t parent, std::string_view name, bool dir_op) {
  DETOURFS_TRY(ValidName(name));
  Result<NodePin> dpin = DirOf(parent);
  if (!dpin.ok()) return Errno{dpin.error()};
  Node* dir = dpin->get();
  if (IsPrivateName(dir, name)) return Errno{ENOENT};
  MoveGate::Pass pass = gate_.Enter({dir});
  // The directory's entries, and a directory removed: nothing is made in it
  // while we look. Taken as a set (util/write_lock_set.h).
  // Removed directories whose locks the set holds, kept alive until it has
  // let them go (declared first: destroyed last).
  std::vector<NodePin> locked;
  WriteLockSet locks;
  locks.LockAll({&dir->dir_mu});
  for (;;) {
    Result<Slot> s = Probe(dir, name);
    if (!s.ok()) return Errno{s.error()};
    if (!s->exists) return Errno{ENOENT};
    if (dir_op && !S_ISDIR(s->type)) return Errno{ENOTDIR};
    if (!dir_op && S_ISDIR(s->type)) return Errno{EISDIR};
    Result<NodePin> node = NodeFor(dir, name, *s, false);
    if (!node.ok()) return Errno{node.error()};
    Node* victim = node->get();
    if (dir_op) {
      locked.push_back(table_.Pin(victim));
      if (!locks.TryAdd(&victim->dir_mu)) {
        locks.LockAll({&victim->dir_mu});  // the parent was let go: look again
        continue;
      }
      Result<bool> empty = IsEmpty(victim);
      if (!empty.ok()) return Errno{empty.error()};
      if (!*empty) return Errno{ENOTEMPTY};
    }
    Result<void> r = Errno{EIO};
    {
      WriteLock lock(&victim->content_mu);
      r = RemoveEntry(dir, name, *s, victim);
    }
    // (After the removed node's lock: its parent's is taken.)
    if (r.ok() && s->route.LayerFor(s->type) != Layer::kVolume) {
      TouchVolumePart(VolumePartToTouch(dir));
    }
    return r;
  }
}

Result<void> OverlayImpl::RemoveEntry(Node* dir, std::string_view name, const Slot& s, Node* node) {
  const Binding& b = node->binding();
  const std::string path = Join(PathOf(dir), name);
  const LayerHit& vol = s.at[Index(Layer::kVolume)];
  // Whether the volume holds the name where the directory's volume part
  // shows: a tier entry leaving must leave a whiteout to keep it hidden.
  const bool volume_has = s.volume_visible && vol.has;
  const Layer home = s.route.LayerFor(s.type);
  // An fd on a file losing its name, for its open handles and the kernel.
  Result<SharedFd> keep = Errno{ENOENT};
  struct stat last {};
  {
    keep = resolver_.Fd(node, b, Primary(b));
    if (keep.ok()) {
      Result<struct stat> st = sys::Fstat((*keep)->get());
      if (st.ok()) last = *st;
    }
  }
  if (node->is_dir()) {
    if (home == Layer::kVolume) {
      // An unrouted directory: the volume's goes (a directory still holding
      // entries the tiers hid goes to the volume's trash whole: one rename),
      // then its tier parts, which nothing shows once it is gone.
      Result<SharedFd> vfd = resolver_.DirFd(dir, Layer::kVolume);
      if (!vfd.ok()) return Errno{vfd.error()};
      DETOURFS_TRY(changes_->Remove(At{Layer::kVolume, (*vfd)->get(), name, path, false}, true,
                                    false, false, node->pid()));
      // Anything there but whiteouts is content no rule serves (the
      // merged directory was empty): set aside, never deleted.
      for (Layer t : kTiers) {
        if (!b.parts[Index(t)].present()) continue;
        Result<SharedFd> tfd = resolver_.DirFd(dir, t);
        if (!tfd.ok()) continue;
        const At at{t, (*tfd)->get(), name, path, true};
        (void)(HoldsUnservedContent((*tfd)->get(), std::string(name)) ? changes_->SetAside(at)
                                                                      : changes_->Trash(at));
      }
    } else if (b.parts[Index(home)].present()) {
      Result<SharedFd> tfd = resolver_.DirFd(dir, home);
      if (!tfd.ok()) return Errno{tfd.error()};
      DETOURFS_TRY(changes_->Remove(At{home, (*tfd)->get(), name, path, true}, true, volume_has,
                                    false, node->pid()));
    } else {
      // Only on the volume: a whiteout on its tier hides it.
      Result<SharedFd> tfd = EnsureTierDir(dir, home);
      if (!tfd.ok()) return Errno{tfd.error()};
      DETOURFS_TRY(changes_->Whiteout(At{home, (*tfd)->get(), name, path, true}));
    }
  } else if (IsTier(b.layer) && !b.index) {
    Result<SharedFd> tfd = resolver_.DirFd(dir, b.layer);
    if (!tfd.ok()) return Errno{tfd.error()};
    const bool stub = b.spill.token != 0 && last.st_nlink <= 1;
    DETOURFS_TRY(changes_->Remove(At{b.layer, (*tfd)->get(), name, path, true}, false, volume_has,
                                  stub, node->pid()));
  } else if (home == Layer::kVolume) {
    // An unrouted name: it goes from the volume. The last volume name of a
    // file whose copy lives on in a tier's index is held, not freed: the
    // copy reports its inode number.
    Result<SharedFd> vfd = resolver_.DirFd(dir, Layer::kVolume);
    if (!vfd.ok()) return Errno{vfd.error()};
    const At at{Layer::kVolume, (*vfd)->get(), name, path, false};
    const LayerHit& v = s.at[Index(Layer::kVolume)];
    if (b.index && v.has && v.st.st_nlink <= 1) {
      DETOURFS_TRY(changes_->Hold(at, node->pid()));
    } else {
      DETOURFS_TRY(changes_->Remove(at, false, false, false, node->pid()));
    }
  } else {
    // A routed name of a volume file (or of a hard-linked one's index
    // entry): the tier hides it. If the tier holds the name itself (a link
    // to the index entry), that goes with a whiteout in one step.
    Result<SharedFd> tfd = EnsureTierDir(dir, home);
    if (!tfd.ok()) return Errno{tfd.error()};
    if (b.layer == Layer::kVolume && last.st_nlink > 1) {
      // Its other names would go on counting the hidden one: its copy in
      // an index counts the names it has through the mount.
      DETOURFS_TRY(CopyUp(node, CopyUpTarget(node, b).value_or(home), true));
    }
    const At at{home, (*tfd)->get(), name, path, true};
    if (s.at[Index(home)].has && !s.at[Index(home)].whiteout) {
      DETOURFS_TRY(changes_->Remove(at, false, volume_has, false, node->pid()));
    } else {
      Result<void> w = changes_->Whiteout(at);
      if (!w.ok() && w.error() == EEXIST) {
        // Copied up since the probe (a copy-up of a whole directory's
        // volume content does not take its subdirectories' locks): the
        // copy goes, a whiteout in its place (review 2026-12-07 #10).
        w = changes_->Remove(at, false, volume_has, false, node->pid());
      }
      DETOURFS_TRY(w);
    }
  }
  // Its one name left a link on the tier: an ordinary tier file now.
  if (b.index && DropIndexName(node, b, dir, name)) UnbindIndex(node);
  const bool last_name = table_.Unlinked(node, dir, name);
  if (node->is_dir()) table_.BumpNamespace();
  if (last_name && keep.ok()) {
    // Gone from every name: reachable only through its open files and the
    // kernel's references from now on.
    table_.KeepOrphan(node, *keep, last);
    resolver_.Drop(node->id());
  }
  return {};
}

bool OverlayImpl::DropIndexName(Node* node, const Binding& b, Node* unindex,
                                std::string_view gone) {
  // The index entry counts the names it has through the mount; with the
  // last one it goes (open files keep its inode).
  const IndexAt e = IndexEntryAt(b.layer, node->pid());
  Result<uint64_t> links = markers::GetNumberAt(e.dir, e.name.c_str(), markers::kLinksXattr);
  if (!links.ok()) {
    spdlog::warn("index entry {} on the {}: its link count: {}", e.name, LayerName(b.layer),
                 ErrnoText(links.error()));
    return false;
  }
  if (*links > 1) {
    Result<void> r = markers::SetNumberAt(e.dir, e.name.c_str(), markers::kLinksXattr, *links - 1);
    if (!r.ok()) {
      spdlog::warn("index entry {} on the {}: its link count: {}", e.name, LayerName(b.layer),
                   ErrnoText(r.error()));
      return false;
    }
    return unindex != nullptr && *links == 2 && Unindex(node, b, unindex, gone);
  }
  (void)changes_->Trash(At{b.layer, e.dir, e.name, "index/" + e.name, true});
  MutexLock lock(&index_mu_);
  indexed_[Index(b.layer)].erase(node->pid());
  return false;
}

bool OverlayImpl::Unindex(Node* node, const Binding& b, Node* dir, std::string_view gone) {
  // One name left: if it is a link of the entry on the tier that the
  // kernel knows (looked at now: the entry's st_nlink also counts links
  // still in trash/ or work/), the entry goes (one rename to the trash, its
  // link dropped at once) and that name keeps the inode, its data and its
  // id record. An entry whose data is still the volume file's stays, and
  // so does one whose last name the kernel does not know (harmless: it
  // stays a one-name index entry).
  const IndexAt e = IndexEntryAt(b.layer, node->pid());
  Result<struct stat> st = sys::StatAt(e.dir, e.name.c_str());
  if (!st.ok() || st->st_nlink != 2) return false;
  bool seen = false;
  for (const Location& loc : table_.Locations(node)) {
    if (loc.parent.get() == dir && loc.name == gone) continue;
    Result<SharedFd> pfd = resolver_.DirFd(loc.parent.get(), b.layer);
    if (!pfd.ok()) continue;
    Result<struct stat> lst = sys::StatAt((*pfd)->get(), loc.name.c_str());
    if (lst.ok() && lst->st_ino == st->st_ino && lst->st_dev == st->st_dev) {
      seen = true;
      break;
    }
  }
  if (!seen) return false;
  return TrashLoneEntry(b.layer, node->pid(), *st);
}

bool OverlayImpl::IndexEntryIsLone(Layer layer, uint64_t pid) {
  const IndexAt e = IndexEntryAt(layer, pid);
  Result<uint64_t> links = markers::GetNumberAt(e.dir, e.name.c_str(), markers::kLinksXattr);
  return links.ok() && *links == 1;
}

bool OverlayImpl::LeaveIndexIfLone(Node* node) {
  const Binding b = node->binding();
  if (!b.index || !IsTier(b.layer)) return false;
  if (!IndexEntryIsLone(b.layer, node->pid()) || !Unindex(node, b, nullptr, {})) return false;
  UnbindIndex(node);
  return true;
}

void OverlayImpl::UnbindIndex(Node* node) {
  Binding& b = node->mutable_binding();
  b.index = false;
  b.metacopy = false;
  node->generation.fetch_add(1, std::memory_order_acq_rel);
  resolver_.Drop(node->id());
}

bool OverlayImpl::TrashLoneEntry(Layer tier, uint64_t pid, const struct stat& st) {
  const IndexAt e = IndexEntryAt(tier, pid);
  // An entry whose data is still the volume file's stays.
  Result<bool> meta = markers::HasFlagAt(e.dir, e.name.c_str(), markers::kMetacopyXattr);
  if (!meta.ok() || *meta) return false;
  // The file goes on reporting the volume inode's number: that inode, if
  // it still is (its names hidden behind the tier, or in the trash), is
  // held first, so the volume never gives the number to a new file.
  if (Result<UniqueFd> v = VolumeInodeOf(tier, pid); v.ok()) {
    Result<struct stat> vst = sys::Fstat(v->get());
    if (vst.ok() && static_cast<uint64_t>(vst->st_ino) == pid) {
      if (Result<void> h = changes_->HoldInode(v->get(), pid); !h.ok()) {
        spdlog::warn("index entry {} on the {}: its volume inode cannot be held, so it stays: {}",
                     e.name, LayerName(tier), ErrnoText(h.error()));
        return false;
      }
    }
  }
  {
    // Out of the set first: a lookup meanwhile binds the name as an
    // ordinary tier file, never to the entry about to go.
    MutexLock lock(&index_mu_);
    indexed_[Index(tier)].erase(pid);
  }
  Result<UniqueFd> fd = sys::OpenBeneath(e.dir, e.name.c_str(), O_PATH);
  Result<void> r = changes_->Trash(At{tier, e.dir, e.name, "index/" + e.name, true});
  if (!r.ok()) {
    spdlog::warn("index entry {} on the {}: its one name left keeps it: {}", e.name,
                 LayerName(tier), ErrnoText(r.error()));
    MutexLock lock(&index_mu_);
    indexed_[Index(tier)].insert(pid);
    return false;
  }
  if (fd.ok() && !S_ISLNK(st.st_mode)) {
    // Its index marks go with it (by fd: the inode stays, under its name).
    (void)markers::ClearFlag(fd->get(), markers::kHandleXattr);
    (void)markers::ClearFlag(fd->get(), markers::kLinksXattr);
  }
  return true;
}

}  // namespace detourfs
