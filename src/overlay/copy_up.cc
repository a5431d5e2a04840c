// OverlayImpl: directory parts on tiers, copy-up of files, deep copy-up of
// directories, and the index of hard-linked volume files.
#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <cinttypes>
#include <cstdio>
#include <string>
#include <unordered_set>

#include "overlay/overlay_impl.h"
#include "store/file_copy.h"
#include "store/markers.h"
#include "store/tree_walk.h"
#include "sys/sys.h"

namespace detourfs {
Result<SharedFd> OverlayImpl::EnsureTierDir(Node* dir, Layer tier) {
  if (!changes_->has(tier)) return Errno{ENOENT};
  if (dir == table_.root()) return changes_->dirs(tier).tree;
  // The directories from the nearest one that has its part on the tier down
  // to `dir`: made top-down, each like its primary part.
  std::vector<NodePin> chain;
  int moved = 0;  // times a directory moved under us
  for (Node* d = dir; d != table_.root();) {
    {
      ReadLock lock(&d->content_mu);
      if (d->binding().parts[Index(tier)].present()) break;
    }
    chain.push_back(table_.Pin(d));
    std::vector<Location> locs = table_.Locations(d);
    if (locs.empty()) return Errno{ENOENT};  // removed meanwhile
    d = locs.front().parent.get();
  }
  for (size_t i = chain.size(); i-- > 0;) {
    Node* d = chain[i].get();
    std::vector<Location> locs = table_.Locations(d);
    if (locs.empty()) return Errno{ENOENT};
    Node* parent = locs.front().parent.get();
    const std::string name = locs.front().name;
    Result<SharedFd> pfd = resolver_.DirFd(parent, tier);
    if (!pfd.ok()) return Errno{pfd.error()};
    WriteLock lock(&d->content_mu);
    {
      // Where it is now: a rename (which holds this lock) may have moved it
      // meanwhile, and what is at its old name is another's part.
      std::vector<Location> now = table_.Locations(d);
      if (now.empty()) return Errno{ENOENT};
      if (now.front().parent.get() != parent || now.front().name != name) {
        if (++moved > 8) return Errno{EAGAIN};
        ++i;  // this one again
        continue;
      }
    }
    Binding& b = d->mutable_binding();
    if (b.parts[Index(tier)].present()) continue;
    Result<SharedFd> model = resolver_.Fd(d, b, Primary(b));
    if (!model.ok()) return Errno{model.error()};
    Result<struct stat> mst = sys::Fstat((*model)->get());
    if (!mst.ok()) return Errno{mst.error()};
    const std::string path = PathOf(d);
    const At at{tier, (*pfd)->get(), name, path, true};
    Result<UniqueFd> made = changes_->EnsureDir(at, (*model)->get(), *mst, d->pid());
    if (made.ok()) {
      // One that was there already must be this directory's (same id):
      // anything else is content no rule serves there (left by an earlier
      // config): set aside, never deleted.
      Result<markers::IdRecord> rec = markers::GetIdRecord(made->get());
      if (rec.ok() && rec->id != 0 && rec->id != d->pid()) {
        DETOURFS_TRY(changes_->SetAside(at));
        made = changes_->EnsureDir(at, (*model)->get(), *mst, d->pid());
      } else if (rec.ok() && rec->id == 0) {
        (void)changes_->SetIdRecord(made->get(), markers::IdRecord{d->pid(), false, {}});
      }
    }
    if (!made.ok()) return Errno{made.error()};
    Result<struct stat> st = sys::Fstat(made->get());
    if (!st.ok()) return Errno{st.error()};
    b.parts[Index(tier)] = Part::Of(*st);
    d->generation.fetch_add(1, std::memory_order_acq_rel);
    resolver_.Prime(d, tier, std::make_shared<const UniqueFd>(std::move(*made)));
  }
  return resolver_.DirFd(dir, tier);
}

std::optional<Layer> OverlayImpl::CopyUpTarget(Node* node, const Binding& b) {
  if (router_.empty()) return std::nullopt;
  if (node->is_dir()) {
    if (IsTier(b.layer) && !b.home().present()) return b.layer;
    return std::nullopt;
  }
  if (b.metacopy) return b.layer;  // an index entry without its data yet
  if (b.layer != Layer::kVolume) return std::nullopt;
  // A volume file changes on the tier a name of it is routed to.
  for (const Location& loc : table_.Locations(node)) {
    const Layer l = RouteOfChild(loc.parent.get(), loc.name).file_layer;
    if (IsTier(l)) return l;
  }
  return std::nullopt;
}

Result<void> OverlayImpl::PrepareChange(Node* node) {
  std::optional<Layer> tier;
  {
    ReadLock lock(&node->content_mu);
    tier = CopyUpTarget(node, node->binding());
  }
  if (!tier) return {};
  if (node->is_dir()) return EnsureTierDir(node, *tier).ok() ? Result<void>() : Errno{EIO};
  WriteLock lock(&node->content_mu);
  tier = CopyUpTarget(node, node->binding());  // again: it may have moved meanwhile
  if (!tier) return {};
  return CopyUp(node, *tier);
}

Result<void> OverlayImpl::CopyUp(Node* node, Layer tier, bool force_index) {
  Binding& b = node->mutable_binding();
  Result<SharedFd> src = resolver_.Fd(node, b, Layer::kVolume);
  if (b.metacopy) {
    Result<UniqueFd> data = resolver_.OpenData(node, b, O_RDONLY);
    if (!data.ok()) return Errno{data.error()};
    src = std::make_shared<const UniqueFd>(std::move(*data));
  }
  if (!src.ok()) return Errno{src.error()};
  Result<struct stat> st = sys::Fstat((*src)->get());
  if (!st.ok()) return Errno{st.error()};
  Result<Made> made = Errno{EIO};
  std::string where;
  const bool index = st->st_nlink > 1 || b.index || force_index;
  if (index) {
    // Several names: one copy for all of them, in the tier's index, which
    // every name of the file resolves to from now on.
    IndexInfo info;
    Result<std::string> handle = sys::NameToHandle((*src)->get(), "");
    if (!handle.ok()) return Errno{handle.error()};
    info.handle = *handle;
    info.links = st->st_nlink;  // the names it has now (a link adds its own)
    where = "index/" + markers::IndexName(node->pid());
    const int index = changes_->dirs(tier).index->get();
    const std::string entry = markers::IndexName(node->pid());  // At keeps a view of it
    const At at{tier, index, entry, where, true};
    if (b.metacopy) {
      (void)changes_->Trash(at);  // the data-less entry makes way for the copy
    }
    made = changes_->CopyIn(at, (*src)->get(), -1, *st, node->pid(), &info);
    if (made.ok()) {
      MutexLock lock(&index_mu_);
      indexed_[Index(tier)].insert(node->pid());
    }
  } else {
    std::vector<Location> locs = table_.Locations(node);
    const Location* routed = nullptr;
    for (const Location& loc : locs) {
      if (RouteOfChild(loc.parent.get(), loc.name).file_layer == tier) {
        routed = &loc;
        break;
      }
    }
    if (routed == nullptr) return Errno{ESTALE};
    Result<SharedFd> pfd = EnsureTierDir(routed->parent.get(), tier);
    if (!pfd.ok()) return Errno{pfd.error()};
    where = Join(PathOf(routed->parent.get()), routed->name);
    const At at{tier, (*pfd)->get(), routed->name, where, true};
    TierSpace* space = SpaceOf(tier);
    made = !space || space->Admit(static_cast<uint64_t>(st->st_size))
               ? changes_->CopyIn(at, (*src)->get(), -1, *st, node->pid())
               : Result<Made>(Errno{ENOSPC});
    if (!made.ok() && IsFull(made.error())) {
      // The tier is full: the data goes to the next store of the route's
      // chain, the file itself to the tier as a stub (tmpfs charges no
      // blocks for it), so the volume's copy stays as it was.
      for (std::optional<Layer> next = NextStore(node, tier); next; next = NextStore(node, *next)) {
        if (TierSpace* s = SpaceOf(*next); s && !s->Admit(static_cast<uint64_t>(st->st_size))) {
          continue;
        }
        Result<UniqueFd> data = sys::Reopen((*src)->get(), O_RDONLY);
        if (!data.ok()) return Errno{data.error()};
        Result<uint64_t> token = changes_->SpillIn(*next, data->get());
        if (!token.ok()) {
          if (IsFull(token.error())) continue;
          return Errno{token.error()};
        }
        const markers::SpillRef ref{*next, *token};
        made = changes_->CopyIn(at, (*src)->get(), -1, *st, node->pid(), nullptr, &ref);
        if (!made.ok()) {
          changes_->DropSpilled(ref);
          return Errno{made.error()};
        }
        b.spill = ref;
        spdlog::info("{} full: '{}' ({} bytes) copied up with its data on the {}", LayerName(tier),
                     where, st->st_size, LayerName(*next));
        break;
      }
    }
  }
  if (!made.ok()) return Errno{made.error()};
  b.layer = tier;
  b.index = index;
  b.metacopy = false;
  b.parts[Index(tier)] = Part::Of(made->st);
  node->generation.fetch_add(1, std::memory_order_acq_rel);
  resolver_.Drop(node->id());
  resolver_.Prime(node, tier, std::make_shared<const UniqueFd>(std::move(made->fd)));
  RepointHandles(node, b);
  return {};
}

Result<Made> OverlayImpl::RelocateIndexEntry(uint64_t pid, Layer from, Layer to, int src,
                                             const struct stat& st, int data) {
  if (!IsTier(from) || !IsTier(to) || from == to || !changes_->has(to)) return Errno{EXDEV};
  // A tier name links the entry: that name is on `from` and stays there.
  if (st.st_nlink > 1) return Errno{EXDEV};
  const IndexAt e = IndexEntryAt(from, pid);
  IndexInfo info;
  Result<std::string> handle = markers::GetBytesAt(e.dir, e.name.c_str(), markers::kHandleXattr);
  if (!handle.ok()) return Errno{handle.error()};
  info.handle = *handle;
  Result<uint64_t> links = markers::GetNumberAt(e.dir, e.name.c_str(), markers::kLinksXattr);
  info.links = links.ok() ? *links : 1;
  if (TierSpace* space = SpaceOf(to); space && !space->Admit(static_cast<uint64_t>(st.st_size))) {
    return Errno{EXDEV};  // no room there: it stays where it is
  }
  const std::string staged = ChangeLayer::WorkName("index");
  Result<Made> made =
      changes_->CopyIn(At{to, changes_->work(to), staged, "", true}, src, data, st, pid, &info);
  if (!made.ok()) return Errno{IsFull(made.error()) ? EXDEV : made.error()};
  // One recorded change: the copy published in `to`'s index, then the old
  // entry to the trash. A crash between leaves the record, which the next
  // start finishes before serving; a failure between leaves it too, and the
  // index set names only the new entry from here on.
  Intent intent;
  intent.steps.push_back({StepKind::kRenameNoReplace, IntentPath{to, Area::kWork, staged},
                          IntentPath{to, Area::kIndex, e.name}});
  intent.steps.push_back({StepKind::kTrash, IntentPath{from, Area::kIndex, e.name}, {}});
  // In `to`'s set before it is published, out of `from`'s after: a lookup
  // meanwhile finds one entry or the other, never falls back to the volume
  // file (the node, locked by the caller, is bound to it anyway).
  {
    MutexLock lock(&index_mu_);
    indexed_[Index(to)].insert(pid);
  }
  bool kept = false;
  Result<void> ran = changes_->Run(intent, &kept);
  // (Run may fail after its last step; the copy in place says it ran.)
  Result<struct stat> at = sys::StatAt(changes_->dirs(to).index->get(), e.name.c_str());
  const bool published = at.ok() && at->st_ino == made->st.st_ino && at->st_dev == made->st.st_dev;
  if (!ran.ok() && !kept && !published) {
    (void)changes_->Trash(At{to, changes_->work(to), staged, "", true});
    MutexLock lock(&index_mu_);
    indexed_[Index(to)].erase(pid);
    // (Not a link's or a rename's own error: EEXIST there would mislead.)
    return Errno{ran.error() == EEXIST ? EXDEV : ran.error()};
  }
  if (!ran.ok()) {
    spdlog::warn("index entry {}: moved to the {}, the {}'s copy left for the next start: {}",
                 e.name, LayerName(to), LayerName(from), ErrnoText(ran.error()));
  }
  {
    MutexLock lock(&index_mu_);
    indexed_[Index(from)].erase(pid);
  }
  changes_->Record(ChangeKind::kMove, At{to, -1, "", "index/" + e.name, true}, pid);
  spdlog::debug("index entry {} moved from the {} to the {}", e.name, LayerName(from),
                LayerName(to));
  // The published entry (made->fd names it, renamed since).
  Result<UniqueFd> fd = sys::OpenBeneath(changes_->dirs(to).index->get(), e.name.c_str(), O_PATH);
  if (!fd.ok()) return Errno{fd.error()};
  Result<struct stat> now = sys::Fstat(fd->get());
  if (!now.ok()) return Errno{now.error()};
  return Made{std::move(*fd), *now};
}

Result<void> OverlayImpl::MoveIndexEntry(Node* node, Layer to) {
  Binding& b = node->mutable_binding();
  const Layer from = b.layer;
  if (node->is_dir() || !b.index) return Errno{EXDEV};
  if (from == to) return {};
  Result<SharedFd> src = resolver_.Fd(node, b);
  if (!src.ok()) return Errno{src.error()};
  Result<struct stat> st = sys::Fstat((*src)->get());
  if (!st.ok()) return Errno{st.error()};
  UniqueFd data;
  if (S_ISREG(st->st_mode) && st->st_nlink == 1) {
    // Its data wherever it is (spilled, or still on the volume for a
    // metadata-only entry): the new entry holds all of it.
    Result<UniqueFd> d = resolver_.OpenData(node, b, O_RDONLY);
    if (!d.ok()) return Errno{d.error()};
    data = std::move(*d);
  }
  Result<Made> made =
      RelocateIndexEntry(node->pid(), from, to, (*src)->get(), *st, data.valid() ? data.get() : -1);
  if (!made.ok()) return Errno{made.error()};
  b.layer = to;
  b.spill = {};
  b.metacopy = false;
  b.parts[Index(from)] = Part::Absent();
  b.parts[Index(to)] = Part::Of(made->st);
  node->generation.fetch_add(1, std::memory_order_acq_rel);
  resolver_.Drop(node->id());
  RepointHandles(node, b);
  return {};
}

Result<void> OverlayImpl::DeepCopyUp(Node* dir, Layer tier) {
  Result<SharedFd> top = EnsureTierDir(dir, tier);
  if (!top.ok()) return Errno{top.error()};
  Binding b = dir->Snapshot();
  if (b.opaque || !b.parts[Index(Layer::kVolume)].present()) return {};
  Result<SharedFd> vol = resolver_.DirFd(dir, Layer::kVolume);
  if (!vol.ok()) return Errno{vol.error()};
  const std::string base = PathOf(dir);
  // Two trees: the tier part (fds[0]) and the volume part (fds[1]). Each
  // volume entry the tier does not hold (nor hide) is copied up; each
  // directory, once full, is marked opaque on the way back up.
  WalkCallbacks cb;
  cb.list = [](const WalkDir& d) -> Result<std::vector<WalkItem>> {
    if (d.fds[1] < 0) return std::vector<WalkItem>{};
    return ListDir(d.fds[1]);
  };
  cb.visit = [&](const WalkDir& d, const WalkItem& item) -> Result<bool> {
    const char* name = item.name.c_str();
    Result<struct stat> tst = sys::StatAt(d.fds[0], name);
    if (tst.ok()) {
      // Held on the tier already (a copy, a whiteout, something new): a
      // directory there is entered unless it hides the volume's already.
      if (!S_ISDIR(tst->st_mode) || !S_ISDIR(item.type)) return false;
      Result<markers::IdRecord> rec = markers::GetIdRecordAt(d.fds[0], name);
      return rec.ok() && !rec->opaque;
    }
    if (tst.error() != ENOENT) return Errno{tst.error()};
    Result<struct stat> vst = sys::StatAt(d.fds[1], name);
    if (!vst.ok()) return vst.error() == ENOENT ? Result<bool>(false) : Errno{vst.error()};
    const std::string path = Join(d.path->empty() ? base : Join(base, *d.path), item.name);
    // The id it has through the mount: the volume's number, or the id it
    // records where its directory is marked as holding such entries (a tree
    // moved to the volume keeps its ids, and may be renamed under a rule).
    uint64_t pid = static_cast<uint64_t>(vst->st_ino);
    if (Result<bool> marked = markers::HasFlag(d.fds[1], markers::kIdsXattr);
        marked.ok() && *marked) {
      Result<markers::IdRecord> rec = markers::GetIdRecordAt(d.fds[1], name);
      if (rec.ok() && rec->id != 0) pid = rec->id;
    }
    // One of a batch: the volume keeps the original; the tier's syncs
    // make the copy durable.
    const At at{tier, d.fds[0], item.name, path, true, true};
    if (S_ISDIR(vst->st_mode)) {
      Result<UniqueFd> model = sys::OpenBeneath(d.fds[1], name, O_PATH | O_DIRECTORY);
      if (!model.ok()) return Errno{model.error()};
      Result<UniqueFd> made = changes_->EnsureDir(at, model->get(), *vst, pid);
      if (!made.ok()) return Errno{made.error()};
      return true;
    }
    if (vst->st_nlink > 1 || IndexedVolumeName(d.fds[1], name, *vst, pid)) {
      // Hard-linked: its one copy is the tier's index entry (names of it
      // elsewhere resolve there), linked here.
      Result<bool> linked = LinkIntoCopy(d.fds[1], name, *vst, Layer::kVolume, pid, tier, d.fds[0]);
      if (!linked.ok()) return Errno{linked.error()};
      if (*linked) return false;
    }
    Result<UniqueFd> src = sys::OpenBeneath(d.fds[1], name, O_PATH);
    if (!src.ok()) return Errno{src.error()};
    Result<Made> made = changes_->CopyIn(at, src->get(), -1, *vst, pid);
    if (!made.ok() && made.error() != EEXIST) return Errno{made.error()};
    if (made.ok()) {
      // A node the kernel holds for it follows its copy.
      NodePin n = table_.FindByPid(pid, vst->st_mode);
      if (n) {
        WriteLock lock(&n->content_mu);
        Binding& nb = n->mutable_binding();
        if (nb.layer == Layer::kVolume && !nb.index) {
          nb.layer = tier;
          nb.parts[Index(tier)] = Part::Of(made->st);
          n->generation.fetch_add(1, std::memory_order_acq_rel);
          resolver_.Drop(n->id());
          RepointHandles(n.get(), nb);
        }
      }
    }
    return false;
  };
  // Once a directory is opaque its whiteouts hide nothing: they go (after,
  // never before, so a crash between leaves the volume's entries hidden).
  std::vector<std::string> opaque_dirs;  // paths below `base`, marked opaque by the walk
  auto drop_whiteouts = [&](int dirfd, const std::string& path) {
    Result<std::vector<WalkItem>> items = ListDir(dirfd);
    if (!items.ok()) return;
    for (const WalkItem& item : *items) {
      if (item.type != S_IFCHR) continue;
      Result<struct stat> st = sys::StatAt(dirfd, item.name.c_str());
      if (!st.ok()) continue;
      Result<bool> wh = markers::IsWhiteout(dirfd, item.name.c_str(), *st);
      if (!wh.ok() || !*wh) continue;
      (void)changes_->Remove(At{tier, dirfd, item.name, Join(path, item.name), true}, false, false,
                             false, 0);
    }
  };
  cb.leave = [&](const WalkDir& d, const WalkItem& item) -> Result<void> {
    Result<UniqueFd> fd = sys::OpenBeneath(d.fds[0], item.name.c_str(), O_PATH | O_DIRECTORY);
    if (!fd.ok()) return Errno{fd.error()};
    Result<markers::IdRecord> rec = markers::GetIdRecord(fd->get());
    if (!rec.ok()) return Errno{rec.error()};
    const std::string path = Join(d.path->empty() ? base : Join(base, *d.path), item.name);
    DETOURFS_TRY(
        changes_->SetOpaque(At{tier, d.fds[0], item.name, path, true}, fd->get(), true, rec->id));
    // Its whiteouts go only once its node knows it is opaque (below):
    // until then listings still merge the volume part, which they hide.
    opaque_dirs.push_back(path);
    return {};
  };
  const Result<void> walked = WalkTrees({(*top)->get(), (*vol)->get(), -1, -1}, cb);
  // Every directory the kernel holds below now lives on the tier alone:
  // its part there (made by the walk if it had none), opaque. After a
  // failure only those the walk finished are; the others it made a part
  // for merge it with their volume part (nodes must know every part there
  // is: a later rmdir or create goes by them).
  const std::unordered_set<std::string> finished(opaque_dirs.begin(), opaque_dirs.end());
  const size_t prefix = base.empty() ? 0 : base.size() + 1;
  for (NodePin& n : table_.NodesWithin(dir)) {
    if (!n->is_dir()) continue;
    std::optional<std::string> path = table_.PathOf(n.get());
    if (!path || path->size() <= prefix) continue;
    Result<UniqueFd> part =
        sys::OpenBeneath((*top)->get(), path->substr(prefix).c_str(), O_PATH | O_DIRECTORY);
    if (!part.ok()) continue;
    Result<struct stat> st = sys::Fstat(part->get());
    if (!st.ok()) continue;
    WriteLock lock(&n->content_mu);
    Binding& nb = n->mutable_binding();
    nb.parts[Index(tier)] = Part::Of(*st);
    if (walked.ok() || finished.count(*path) != 0) {
      nb.opaque = true;
      nb.parts[Index(Layer::kVolume)] = Part::Absent();
    }
    n->generation.fetch_add(1, std::memory_order_acq_rel);
  }
  if (!walked.ok()) {
    // The whiteouts of those it finished hide nothing now.
    for (const std::string& path : opaque_dirs) {
      const std::string rel = path.size() > prefix ? path.substr(prefix) : std::string();
      Result<UniqueFd> fd = sys::OpenBeneath((*top)->get(), rel.c_str(), O_PATH | O_DIRECTORY);
      if (fd.ok()) drop_whiteouts(fd->get(), path);
    }
    return Errno{walked.error()};
  }
  WriteLock lock(&dir->content_mu);
  Binding& db = dir->mutable_binding();
  Result<markers::IdRecord> rec = markers::GetIdRecord((*top)->get());
  if (!rec.ok()) return Errno{rec.error()};
  DETOURFS_TRY(changes_->SetOpaque(At{tier, -1, "", base, true}, (*top)->get(), true, dir->pid()));
  db.opaque = true;
  db.parts[Index(Layer::kVolume)] = Part::Absent();
  dir->generation.fetch_add(1, std::memory_order_acq_rel);
  drop_whiteouts((*top)->get(), base);
  for (const std::string& path : opaque_dirs) {
    const std::string rel = path.size() > prefix ? path.substr(prefix) : std::string();
    Result<UniqueFd> fd = sys::OpenBeneath((*top)->get(), rel.c_str(), O_PATH | O_DIRECTORY);
    if (fd.ok()) drop_whiteouts(fd->get(), path);
  }
  return {};
}

}  // namespace detourfs
