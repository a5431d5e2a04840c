// OverlayImpl: making names — mknod, mkdir, symlink, create, link. A new
// name goes where its route says for its type: the volume, or its tier
// (the parent's part there made first). The caller's credentials make it.
#include <fcntl.h>

#include <optional>

#include "overlay/overlay_impl.h"
#include "sys/sys.h"

namespace detourfs {

Result<Entry> OverlayImpl::Mknod(uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
                                 const Caller& caller) {
  MakeRequest req;
  req.spec.type = mode & S_IFMT;
  req.spec.mode = mode & 07777;
  req.spec.rdev = rdev;
  if (req.spec.type == 0) req.spec.type = S_IFREG;
  Result<std::pair<Entry, FileHandle*>> r = Make(parent, name, req, caller);
  if (!r.ok()) return Errno{r.error()};
  return r->first;
}

Result<Entry> OverlayImpl::Mkdir(uint64_t parent, std::string_view name, mode_t mode,
                                 const Caller& caller) {
  MakeRequest req;
  req.spec.type = S_IFDIR;
  req.spec.mode = mode & 07777;
  Result<std::pair<Entry, FileHandle*>> r = Make(parent, name, req, caller);
  if (!r.ok()) return Errno{r.error()};
  return r->first;
}

Result<Entry> OverlayImpl::Symlink(std::string_view target, uint64_t parent, std::string_view name,
                                   const Caller& caller) {
  MakeRequest req;
  req.spec.type = S_IFLNK;
  req.spec.mode = 0777;
  const std::string t(target);
  req.spec.target = t;
  Result<std::pair<Entry, FileHandle*>> r = Make(parent, name, req, caller);
  if (!r.ok()) return Errno{r.error()};
  return r->first;
}

Result<std::pair<Entry, FileHandle*>> OverlayImpl::Create(uint64_t parent, std::string_view name,
                                                          mode_t mode, int flags,
                                                          const Caller& caller, bool kill_suidgid) {
  MakeRequest req;
  req.spec.type = S_IFREG;
  req.spec.mode = mode & 07777;
  req.create_flags = flags;
  req.kill_suidgid = kill_suidgid;
  return Make(parent, name, req, caller);
}

Result<std::pair<Entry, FileHandle*>> OverlayImpl::Make(uint64_t parent, std::string_view name,
                                                        MakeRequest req, const Caller& caller) {
  DETOURFS_TRY(ValidName(name));
  Result<NodePin> dpin = DirOf(parent);
  if (!dpin.ok()) return Errno{dpin.error()};
  Node* dir = dpin->get();
  // The volume's private directory cannot be squatted.
  if (IsPrivateName(dir, name)) return Errno{EPERM};
  const bool is_create = req.create_flags >= 0;
  const int open_flags =
      is_create ? BackingFlags(req.create_flags, options_.writeback_cache) & ~O_TRUNC : -1;
  MoveGate::Pass pass = gate_.Enter({dir});
  std::optional<Slot> existing;
  {
    WriteLock dl(&dir->dir_mu);
    Result<Slot> s = Probe(dir, name);
    if (!s.ok()) return Errno{s.error()};
    if (s->removed_dir) return Errno{ENOENT};
    if (s->exists) {
      // Without O_EXCL an existing file is opened (the kernel's "no such
      // name" was stale); anything else is taken.
      if (!is_create || (req.create_flags & O_EXCL) || S_ISDIR(s->type)) return Errno{EEXIST};
      existing = *s;
    } else {
      const mode_t type = req.spec.type;
      const Layer layer = s->route.LayerFor(type);
      const std::string path = Join(PathOf(dir), name);
      const bool routed = s->route.For(type) >= 0;
      MakeSpec spec = req.spec;
      spec.open_flags = open_flags;
      SharedFd where;
      if (layer == Layer::kVolume) {
        Result<SharedFd> vfd = resolver_.DirFd(dir, Layer::kVolume);
        if (!vfd.ok()) return Errno{vfd.error() == ENOENT ? ENOENT : vfd.error()};
        where = *vfd;
        DETOURFS_TRY(ClearHiddenVolumeName(*s, where->get(), name, path));
      } else {
        Result<SharedFd> tfd = EnsureTierDir(dir, layer);
        if (!tfd.ok()) return Errno{tfd.error()};
        where = *tfd;
        spec.id = ids_->Next();
        spec.replace_whiteout = s->Whiteout(layer);
        // A directory where the volume still has one (hidden) must not show
        // the volume's content: it is opaque.
        const LayerHit& vol = s->at[Index(Layer::kVolume)];
        spec.opaque = type == S_IFDIR && vol.has && S_ISDIR(vol.st.st_mode);
      }
      Result<Made> made =
          changes_->Make(At{layer, where->get(), name, path, routed}, spec, caller, where->get());
      if (!made.ok()) return Errno{made.error()};
      if (layer == Layer::kVolume) DropTierWhiteouts(dir, name, *s, path);
      if (layer != Layer::kVolume) TouchVolumePart(VolumePartToTouch(dir));
      Binding b;
      b.layer = layer;
      for (Layer l : kAllLayers) b.parts[Index(l)] = Part::Absent();
      b.parts[Index(layer)] = Part::Of(made->st);
      b.opaque = spec.opaque;
      uint64_t pid = spec.id;
      if (layer == Layer::kVolume) {
        Result<uint64_t> vp = VolumePid(dir, where->get(), std::string(name).c_str(), made->st);
        if (!vp.ok()) return Errno{vp.error()};
        pid = *vp;
      }
      NodePin node = table_.Remember(dir, name, pid, type, b, true);
      struct stat st = made->st;
      Report(node.get(), b, &st);
      Entry entry{node->id(), st};
      if (!is_create) {
        if (type != S_IFLNK) {
          resolver_.Prime(node.get(), layer, std::make_shared<const UniqueFd>(std::move(made->fd)));
        }
        return std::make_pair(entry, static_cast<FileHandle*>(nullptr));
      }
      // The create's open file: not cached as the node's fd (a cached
      // writable fd would keep the file busy for exec after close).
      auto* fh = new FileHandle();
      {
        MutexLock fl(&fh->fd_mu);
        fh->fd = std::make_shared<const UniqueFd>(std::move(made->fd));
      }
      fh->flags = open_flags;
      fh->writable = true;
      {
        MutexLock hl(&node->handles_mu);
        node->open_handles.push_back(fh);
      }
      table_.AddHandle(node.get());
      fh->node = std::move(node);
      Track(fh);
      return std::make_pair(entry, fh);
    }
  }
  // Create of a file that exists: opened as Open would (copied up first if
  // it is a routed file on the volume).
  Result<Entry> found = EntryFor(dir, name, *existing);
  if (!found.ok()) return Errno{found.error()};
  Result<NodePin> node = NodeOf(found->ino);
  Result<FileHandle*> fh = node.ok() ? Open(found->ino, req.create_flags & ~O_CREAT)
                                     : Result<FileHandle*>(Errno{node.error()});
  if (!fh.ok()) {
    Forget(found->ino, 1);
    return Errno{fh.error()};
  }
  SetAttrRequest kill;
  kill.kill_suidgid = req.kill_suidgid;
  Result<struct stat> st =
      req.kill_suidgid ? SetAttr(found->ino, kill, *fh) : GetAttr(found->ino, *fh);
  if (!st.ok()) {
    Release(*fh);
    Forget(found->ino, 1);
    return Errno{st.error()};
  }
  found->attr = *st;
  return std::make_pair(*found, *fh);
}

Result<void> OverlayImpl::ClearHiddenVolumeName(const Slot& s, int vdirfd, std::string_view name,
                                                const std::string& path) {
  // A name a directory-only rule routes may still hold, hidden on the
  // volume, a directory removed through the mount: it goes (one rename to
  // the trash) before a file takes the name.
  if (!s.at[Index(Layer::kVolume)].has) return {};
  return changes_->Trash(At{Layer::kVolume, vdirfd, name, path, true});
}

void OverlayImpl::DropTierWhiteouts(Node* dir, std::string_view name, const Slot& s,
                                    const std::string& path) {
  // A whiteout of the tier a directory of this name would go to hides only
  // a volume directory: a file made on the volume shows through it. It goes.
  for (Layer t : kTiers) {
    if (!s.Whiteout(t)) continue;
    Result<SharedFd> tfd = resolver_.DirFd(dir, t);
    if (tfd.ok()) {
      (void)changes_->Remove(At{t, (*tfd)->get(), name, path, true}, false, false, false, 0);
    }
  }
}

Result<Entry> OverlayImpl::Link(uint64_t ino, uint64_t new_parent, std::string_view new_name) {
  DETOURFS_TRY(ValidName(new_name));
  Result<NodePin> pin = NodeOf(ino);
  if (!pin.ok()) return Errno{pin.error()};
  Node* node = pin->get();
  if (node->is_dir()) return Errno{EPERM};
  Result<NodePin> dpin = DirOf(new_parent);
  if (!dpin.ok()) return Errno{dpin.error()};
  Node* dir = dpin->get();
  if (IsPrivateName(dir, new_name)) return Errno{EPERM};
  MoveGate::Pass pass = gate_.Enter({dir, node});
  WriteLock dl(&dir->dir_mu);
  Result<Slot> s = Probe(dir, new_name);
  if (!s.ok()) return Errno{s.error()};
  if (s->removed_dir) return Errno{ENOENT};
  if (s->exists) return Errno{EEXIST};
  const Layer to = s->route.LayerFor(node->type());
  // A link is one inode under two names: both on one filesystem. A volume
  // file linked into a tier is copied up first, into the tier's index,
  // which every name of it (on the volume too) resolves to from then on
  // (a pnpm store on the volume linked into node_modules). A tier file
  // linked to a name on another layer is EXDEV, as across filesystems
  // (cp -l, pnpm and rsync -H fall back to copying), and so is a volume
  // file already bound for another tier by a name of it routed there. A
  // file in one tier's index whose names are all on the volume (the names
  // on a tier removed since) moves its entry to the new name's tier.
  {
    WriteLock lock(&node->content_mu);
    const Binding& b = node->binding();
    if (b.layer == Layer::kVolume && IsTier(to)) {
      const std::optional<Layer> target = CopyUpTarget(node, b);
      if (!target || *target == to) DETOURFS_TRY(CopyUp(node, to, true));
    } else if (b.index && IsTier(b.layer) && IsTier(to) && b.layer != to) {
      DETOURFS_TRY(MoveIndexEntry(node, to));
    }
    if (node->binding().layer != to && !(to == Layer::kVolume && node->binding().index)) {
      return Errno{EXDEV};
    }
  }
  // The new name's directory on its layer, and its volume part to touch:
  // before the file's lock (the directory's and its ancestors' are taken).
  Result<SharedFd> where = IsTier(to) ? EnsureTierDir(dir, to) : resolver_.DirFd(dir, to);
  if (!where.ok()) return Errno{where.error()};
  const SharedFd touch = to != Layer::kVolume ? VolumePartToTouch(dir) : nullptr;
  // Held for writing: an index entry's count of names changes only under
  // it (an unlink or a rename over a name lowers it under the same).
  WriteLock lock(&node->content_mu);
  const Binding& b = node->binding();
  // A file its tier's index holds keeps its volume inode (whose names
  // resolve to the entry): a new volume name is a link of that inode.
  const bool volume_name = to == Layer::kVolume && b.index;
  if (b.layer != to && !volume_name) return Errno{EXDEV};
  const std::string path = Join(PathOf(dir), new_name);
  Result<SharedFd> src = Errno{EXDEV};
  if (volume_name) {
    Result<UniqueFd> v = VolumeInodeOf(b.layer, node->pid());
    if (!v.ok()) return Errno{v.error()};
    src = std::make_shared<const UniqueFd>(std::move(*v));
  } else {
    src = resolver_.Fd(node, b);
  }
  if (!src.ok()) return Errno{src.error()};
  if (to == Layer::kVolume) {
    // A file that keeps an id of its own on the volume (moved there from a
    // tier, the id recorded on its inode): the new name's directory is
    // marked first, so that name reports the same number.
    Result<struct stat> vst = sys::Fstat((*src)->get());
    if (!vst.ok()) return Errno{vst.error()};
    if (node->pid() != static_cast<uint64_t>(vst->st_ino)) {
      DETOURFS_TRY(MarkIds(dir, (*where)->get()));
    }
    // (Only now that nothing else can fail before the link itself.)
    DETOURFS_TRY(ClearHiddenVolumeName(*s, (*where)->get(), new_name, path));
  }
  // An index entry counts the new name before it exists: a crash between
  // leaves the count one too high (the entry stays, harmless), never one
  // too low (the entry would go while a name still needs it).
  std::optional<IndexAt> counted;
  uint64_t count = 0;
  if (b.index) {
    const IndexAt e = IndexEntryAt(b.layer, node->pid());
    Result<uint64_t> links = markers::GetNumberAt(e.dir, e.name.c_str(), markers::kLinksXattr);
    if (links.ok() && *links != 0) {
      DETOURFS_TRY(markers::SetNumberAt(e.dir, e.name.c_str(), markers::kLinksXattr, *links + 1));
      counted = e;
      count = *links;
    }
  }
  Result<void> linked =
      changes_->Link((*src)->get(), At{to, (*where)->get(), new_name, path, s->route.file >= 0},
                     s->Whiteout(to), node->pid());
  if (!linked.ok()) {
    if (counted) {
      (void)markers::SetNumberAt(counted->dir, counted->name.c_str(), markers::kLinksXattr, count);
    }
    return Errno{linked.error()};
  }
  if (to == Layer::kVolume) DropTierWhiteouts(dir, new_name, *s, path);
  TouchVolumePart(touch);
  NodePin again = table_.Remember(dir, new_name, node->pid(), node->type(), b, true);
  Result<struct stat> st = StatOf(node, b, nullptr);
  if (!st.ok()) {
    Forget(node->id(), 1);
    return Errno{st.error()};
  }
  return Entry{node->id(), *st};
}

}  // namespace detourfs
