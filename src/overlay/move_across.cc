// OverlayImpl: files and trees moving between layers (`mv node_modules
// node_modules.old` to the volume, a file from the volume into a routed
// directory, memory to disk). The copy is built aside in the destination
// layer's work/ — a tree with the source frozen (MoveGate), never holding
// an fd per file — then one recorded change publishes it by rename and
// removes the source, so a crash leaves the old state or, after recovery,
// the new one. Ids stay: a moved file reports the inode number it had.
// Copies to the volume are synced and checked before the source goes.
#include <fcntl.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>

#include <array>
#include <cinttypes>
#include <cstdio>
#include <unordered_map>
#include <unordered_set>

#include "overlay/overlay_impl.h"
#include "route/glob.h"
#include "store/file_copy.h"
#include "store/markers.h"
#include "store/tree_walk.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

constexpr size_t kDest = 3;  // the walk's tree index of the copy being built

// WalkItem tags: the layer the entry is taken from, and its route + 1.
uint64_t Tag(Layer from, int route) {
  return Index(from) | (static_cast<uint64_t>(route + 1) << 8);
}
Layer TagLayer(uint64_t tag) { return static_cast<Layer>(tag & 0xff); }
int TagRoute(uint64_t tag) { return static_cast<int>(tag >> 8) - 1; }

}  // namespace

OverlayImpl::StagedTree::~StagedTree() {
  if (!published && changes != nullptr && !name.empty()) {
    // Never published (the rename failed or changed its mind): away.
    (void)changes->Trash(At{layer, changes->work(layer), name, "", false});
  }
}

void OverlayImpl::Discard(StagedTree* s) {
  if (s->published || s->name.empty()) return;
  Result<void> removed = RemoveTree(changes_->work(s->layer), s->name.c_str());
  if (removed.ok()) {
    s->name.clear();
  } else {
    spdlog::warn(
        "a copy no longer wanted in the {}'s work/ goes to the trash instead (until it is "
        "emptied, files it links count one name more): {}",
        LayerName(s->layer), ErrnoText(removed.error()));
  }
}

ChildRoute OverlayImpl::RouteOfPath(const std::string& dir_path, int dir_route,
                                    std::string_view name) {
  ChildRoute r;
  if (dir_route >= 0) {
    r.dir = r.file = dir_route;
  } else if (!router_.empty()) {
    std::vector<std::string_view> components = SplitPath(dir_path);
    components.push_back(name);
    size_t rule = 0;
    if (router_.MatchExact(components, true, &rule, nullptr)) r.dir = static_cast<int>(rule);
    if (router_.MatchExact(components, false, &rule, nullptr)) r.file = static_cast<int>(rule);
  }
  r.dir_layer = TierOf(r.dir);
  r.file_layer = TierOf(r.file);
  return r;
}

Result<void> OverlayImpl::MoveFileAcross(RenameArgs& a, Layer to, RenameNeeds& have,
                                         RenameNeeds* need) {
  Node* x = a.x1;
  // A file with other names is refused by MoveFile (EXDEV): no copy.
  const bool copied = a.s1.st.st_nlink <= 1;
  if (copied && !have.freeze) {
    // Nothing writes to it while it is copied (writes wait at the gate).
    need->freeze = true;
    need->freeze_roots.push_back(table_.Pin(x));
    return Errno{EAGAIN};
  }
  if (have.staged && !StagedFor(*have.staged, x, a.d1, a.n1, to)) {
    have.staged.reset();  // things changed between the rounds: copy again
  }
  // Copied between the rounds, never under the lock (also when a round
  // found its copy stale).
  if (copied && !have.staged) {
    // What HoldVictim would copy under the lock, copied now.
    if (IsTier(to)) DETOURFS_TRY(CopyVictimUp(a));
    return RequestStaging(a, to, need);  // the file is frozen
  }
  if (!have.exclusive) {
    need->exclusive = true;
    return Errno{EAGAIN};
  }
  return MoveFile(a, to, have.staged);
}

Result<void> OverlayImpl::RequestStaging(const RenameArgs& a, Layer to, RenameNeeds* need) {
  need->stage.push_back({table_.Pin(a.x1), table_.Pin(a.d1), std::string(a.n1),
                         a.x2 != nullptr ? table_.Pin(a.x2) : NodePin(), to, false});
  need->exclusive = true;
  return Errno{EAGAIN};
}

Result<std::shared_ptr<OverlayImpl::StagedTree>> OverlayImpl::StageJobCopy(const StageJob& job) {
  Node* x = job.x.get();
  if (x->is_dir()) return StageTree(x, job.d.get(), job.n, job.replaced.get(), job.to);
  Result<std::shared_ptr<StagedTree>> s = Errno{EIO};
  {
    // Shared: the file is frozen (no link, write or attribute change gets
    // past the gate), so it keeps its one name and binding, and reads and
    // stats of it go on during the copy.
    ReadLock lock(&x->content_mu);
    s = StageFileCopy(x, job.to);
  }
  if (s.ok()) (*s)->src_path = Join(PathOf(job.d.get()), job.n);
  return s;
}

void OverlayImpl::AddPublishSteps(const Slot& s2, const IntentStep& publish,
                                  std::vector<IntentStep>* steps) {
  const bool to_volume = !IsTier(publish.b.layer);
  const std::string& p2 = publish.b.path;
  if (to_volume && !s2.exists && s2.at[Index(Layer::kVolume)].has) {
    // What the volume holds there, hidden (a directory removed through the
    // mount under a directory-only rule's name), makes way.
    steps->push_back({StepKind::kTrash, IntentPath{Layer::kVolume, Area::kTree, p2}, {}});
  }
  steps->push_back(publish);
  if (!to_volume) return;
  // Whiteouts of the name on the tiers would hide the file now there.
  for (Layer t : kTiers) {
    if (s2.at[Index(t)].whiteout) {
      steps->push_back({StepKind::kDropWhiteout, IntentPath{t, Area::kTree, p2}, {}});
    }
  }
}

Result<void> OverlayImpl::MoveFile(RenameArgs& a, Layer to,
                                   const std::shared_ptr<StagedTree>& staged) {
  Node* x = a.x1;
  // No copy: it had other names when the rename looked (one went since, or
  // it has them still). Never copied here, under the renames lock: EXDEV
  // (mv copies, as across filesystems) — before anything changes.
  if (!staged) return Errno{EXDEV};
  // The replaced file first, before the moved file's lock: never one node's
  // lock taken under another's (a rename the other way would invert them).
  DETOURFS_TRY(HoldVictim(a, IsTier(to)));
  Result<SharedFd> dst_dir = IsTier(to) ? EnsureTierDir(a.d2, to) : resolver_.DirFd(a.d2, to);
  if (!dst_dir.ok()) return Errno{dst_dir.error()};
  WriteLock lock(&x->content_mu);
  Binding& b = x->mutable_binding();
  Result<SharedFd> src = resolver_.Fd(x, b);
  if (!src.ok()) return Errno{src.error()};
  Result<struct stat> st = sys::Fstat((*src)->get());
  if (!st.ok()) return Errno{st.error()};
  // One name of several moving to another filesystem would split the file
  // in two: refused, as across filesystems (mv copies then, as it must).
  if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) return Errno{EXDEV};
  const std::string p1 = Join(PathOf(a.d1), a.n1);
  const std::string p2 = Join(PathOf(a.d2), a.n2);
  const int work = changes_->work(to);
  // The copy's inode, which becomes the file's at p2.
  Result<UniqueFd> copy = sys::OpenBeneath(work, staged->name.c_str(), O_PATH);
  if (!copy.ok()) return Errno{copy.error()};
  Result<struct stat> copy_st = sys::Fstat(copy->get());
  if (!copy_st.ok()) return Errno{copy_st.error()};
  if (!IsTier(to)) {
    // On the volume the file keeps its id (its new inode number differs):
    // recorded on it (StageFile), and its directory marked as holding such
    // files.
    DETOURFS_TRY(MarkIds(a.d2, (*dst_dir)->get()));
  }
  Intent intent;
  AddPublishSteps(a.s2,
                  {StepKind::kRename, IntentPath{to, Area::kWork, staged->name},
                   IntentPath{to, Area::kTree, p2}},
                  &intent.steps);
  // Moving to the volume, the tier's copy waits in the tier's work/ until
  // the volume shows the published copy (SettleLeaving); a whiteout takes
  // its name where the volume still has one.
  std::vector<Leaving> leaving;
  if (IsTier(b.layer)) {
    const bool whiteout = a.s1.volume_visible && a.s1.at[Index(Layer::kVolume)].has;
    if (!IsTier(to)) {
      leaving.push_back({b.layer, ChangeLayer::WorkName("leaving"), whiteout});
      intent.steps.push_back({StepKind::kRenameNoReplace, IntentPath{b.layer, Area::kTree, p1},
                              IntentPath{b.layer, Area::kWork, leaving.back().name}});
    }
    if (IsTier(to) || whiteout) {
      intent.steps.push_back({whiteout ? StepKind::kWhiteout : StepKind::kTrash,
                              IntentPath{b.layer, Area::kTree, p1},
                              {}});
    }
  } else if (x->pid() == static_cast<uint64_t>(st->st_ino)) {
    // The volume file's inode number is the id the moved file keeps: the
    // old inode is held (hidden) so the volume never gives it to another.
    intent.steps.push_back({StepKind::kHold, IntentPath{Layer::kVolume, Area::kTree, p1},
                            IntentPath{Layer::kVolume, Area::kHeld, markers::IndexName(x->pid())}});
  } else {
    intent.steps.push_back({StepKind::kTrash, IntentPath{Layer::kVolume, Area::kTree, p1}, {}});
  }
  bool kept = false;
  Result<void> ran = changes_->Run(intent, &kept);
  // Published, or kept in work/ for the next start to publish.
  staged->published = ran.ok() || kept;
  if (!ran.ok()) return ran;
  if (!IsTier(to)) {
    Result<bool> shown =
        SettleLeaving(a, (*dst_dir)->get(), *copy_st, Settle{!kept, staged->name}, leaving);
    if (!shown.ok()) return Errno{shown.error()};
  }
  const markers::SpillRef old_spill = b.spill;
  b.layer = to;
  b.spill = {};
  b.index = false;
  b.metacopy = false;
  for (Layer l : kAllLayers) b.parts[Index(l)] = Part::Absent();
  b.parts[Index(to)] = Part::Of(*copy_st);
  x->generation.fetch_add(1, std::memory_order_acq_rel);
  resolver_.Drop(x->id());
  resolver_.Prime(x, to, std::make_shared<const UniqueFd>(std::move(*copy)));
  RepointHandles(x, b);
  (void)old_spill;  // a stub's data goes with the stub, from the trash
  changes_->RecordMove(At{to, -1, "", p2, true}, p1, x->pid());
  Renamed(a, false);
  DETOURFS_TRY(UserWhiteoutAfterMove(a));
  return {};
}

Result<bool> OverlayImpl::SettleLeaving(const RenameArgs& a, int dst_dir,
                                        const struct stat& published, const Settle& how,
                                        const std::vector<Leaving>& leaving) {
  const std::string p1 = Join(PathOf(a.d1), a.n1);
  const std::string p2 = Join(PathOf(a.d2), a.n2);
  // Synced where it lives now, and looked up again: the tiers' copies go
  // only once the volume shows it. Lost only when the volume says so (no
  // such name, or another inode there); a check that failed proves
  // nothing, and then the tiers' copies are kept aside.
  if (Result<void> synced = sys::SyncDir(dst_dir); !synced.ok()) {
    spdlog::warn("'{}': cannot sync its directory on the volume: {}", p2,
                 ErrnoText(synced.error()));
  }
  Result<struct stat> now = sys::StatAt(dst_dir, std::string(a.n2).c_str());
  const bool shown = now.ok() && now->st_ino == published.st_ino &&
                     now->st_dev == published.st_dev &&
                     (S_ISDIR(published.st_mode) || now->st_size == published.st_size);
  const bool lost = !shown && (now.ok() || now.error() == ENOENT);
  // Undone only when nothing else moved with the copy (a tree's volume
  // part is in held/) and no record of the move is left to replay it.
  const bool undo = lost && how.undoable;
  for (const Leaving& l : leaving) {
    const At left{l.layer, changes_->work(l.layer), l.name, p1, true};
    if (shown) {
      if (Result<void> gone = changes_->Trash(left); !gone.ok()) {
        spdlog::warn("'{}': the {}'s copy, moved out, stays in its work directory: {}", p1,
                     LayerName(l.layer), ErrnoText(gone.error()));
      }
      continue;
    }
    if (undo && PutBack(a, l)) {
      spdlog::error(
          "the volume lost '{}' right after it was published there: the {}'s copy is "
          "back at '{}'",
          p2, LayerName(l.layer), p1);
      continue;
    }
    if (Result<void> aside = changes_->SetAside(left); !aside.ok()) {
      spdlog::error(
          "'{}': the {}'s copy stays in its work directory as {} (the next start keeps "
          "it aside): {}",
          p1, LayerName(l.layer), l.name, ErrnoText(aside.error()));
    }
  }
  if (shown) return true;
  if (!lost) {
    spdlog::warn(
        "'{}': cannot tell whether the volume kept it ({}); the tiers' copies are kept "
        "aside",
        p2, ErrnoText(now.error()));
    return false;  // published, as far as anything shows
  }
  // The volume's copy, if the publishing rename left it in work/: kept too.
  if (!how.staged.empty()) {
    const int vwork = changes_->work(Layer::kVolume);
    if (sys::StatAt(vwork, how.staged.c_str()).ok()) {
      (void)changes_->SetAside(At{Layer::kVolume, vwork, how.staged, p2, true});
    }
  }
  spdlog::error("the volume lost '{}' right after it was published there{}", p2,
                undo ? "" : "; what it was made from is kept aside (see above)");
  return Errno{EIO};
}

bool OverlayImpl::PutBack(const RenameArgs& a, const Leaving& l) {
  const int work = changes_->work(l.layer);
  const std::string n1(a.n1);
  Result<SharedFd> dir = resolver_.DirFd(a.d1, l.layer);
  if (!dir.ok()) return false;
  if (!l.whiteout) {
    return sys::RenameAt(work, l.name.c_str(), (*dir)->get(), n1.c_str(), RENAME_NOREPLACE).ok();
  }
  // In place of the whiteout the move left: swapped, and what came out is
  // removed only if it is that whiteout (else it is kept aside).
  if (!sys::RenameAt(work, l.name.c_str(), (*dir)->get(), n1.c_str(), RENAME_EXCHANGE).ok()) {
    return false;
  }
  Result<struct stat> out = sys::StatAt(work, l.name.c_str());
  Result<bool> wh =
      out.ok() ? markers::IsWhiteout(work, l.name.c_str(), *out) : Result<bool>(Errno{out.error()});
  if (wh.ok() && *wh) {
    (void)sys::UnlinkAt(work, l.name.c_str(), 0);
  } else {
    (void)changes_->SetAside(At{l.layer, work, l.name, Join(PathOf(a.d1), a.n1), true});
  }
  return true;
}

Result<void> OverlayImpl::UserWhiteoutAfterMove(RenameArgs& a) {
  if (!(a.flags & RENAME_WHITEOUT)) return {};
  // Where a device at the old name lives: its route's tier, or the volume.
  const Layer at = a.s1.route.LayerFor(S_IFCHR);
  if (!IsTier(at)) {
    Result<SharedFd> v = resolver_.DirFd(a.d1, Layer::kVolume);
    if (!v.ok()) return Errno{v.error()};
    return LeaveUserWhiteout(a, Layer::kVolume, (*v)->get(), false);
  }
  Result<SharedFd> t = EnsureTierDir(a.d1, at);
  if (!t.ok()) return Errno{t.error()};
  const bool whiteout = sys::StatAt((*t)->get(), std::string(a.n1).c_str()).ok();
  return LeaveUserWhiteout(a, at, (*t)->get(), whiteout);
}

Result<std::shared_ptr<OverlayImpl::StagedTree>> OverlayImpl::StageTree(Node* x, Node* d,
                                                                        std::string_view n,
                                                                        Node* replaced, Layer to) {
  const Binding b = x->Snapshot();
  const std::string src_path = Join(PathOf(d), n);
  const int src_route = RouteOf(x);
  std::array<int, kWalkTrees> roots{-1, -1, -1, -1};
  std::array<SharedFd, kLayerCount> parts;
  for (Layer l : kAllLayers) {
    if (!b.parts[Index(l)].present()) continue;
    if (l == Layer::kVolume && IsTier(b.layer) && b.opaque) continue;
    Result<SharedFd> fd = resolver_.DirFd(x, l);
    if (!fd.ok()) return Errno{fd.error()};
    parts[Index(l)] = *fd;
    roots[Index(l)] = (*fd)->get();
  }
  auto staged = std::make_shared<StagedTree>();
  staged->layer = to;
  staged->src_pid = x->pid();
  staged->dst_pid = replaced != nullptr ? replaced->pid() : 0;
  staged->src_path = src_path;
  const int work = changes_->work(to);
  const std::string name = ChangeLayer::WorkName("tree");
  // Files copied to the volume, read back once synced: path in the copy,
  // the source's digest.
  std::vector<std::pair<std::string, DataDigest>> to_check;
  {
    const Layer primary = Primary(b);
    Result<struct stat> mst = sys::Fstat(parts[Index(primary)]->get());
    if (!mst.ok()) return Errno{mst.error()};
    Result<UniqueFd> root =
        changes_->EnsureDir(At{to, work, name, "", false, true}, parts[Index(primary)]->get(), *mst,
                            IsTier(to) ? x->pid() : 0);
    if (!root.ok()) return Errno{root.error()};
    staged->name = name;
    staged->changes = changes_.get();
    if (!IsTier(to)) {
      DETOURFS_TRY(
          changes_->SetIdRecordAt(work, name.c_str(), markers::IdRecord{x->pid(), false, {}}));
    }
    roots[kDest] = root->get();
    // The walk dups the roots it is given.
    WalkCallbacks cb;
    // Hard links within the tree: the first copy's path, never an fd.
    std::unordered_map<std::string, std::string> links;
    // Hard-linked files copied, not linked: their link count, names seen.
    std::unordered_map<uint64_t, std::pair<nlink_t, nlink_t>> copied;
    // On the volume a copy keeps the id it had (its inode number differs):
    // recorded on it, and its directory marked as holding such entries.
    auto keep_id = [&](int dfd, const char* n, uint64_t pid) -> Result<void> {
      if (IsTier(to)) return {};
      DETOURFS_TRY(changes_->SetIdRecordAt(dfd, n, markers::IdRecord{pid, false, {}}));
      return changes_->SetFlag(dfd, markers::kIdsXattr);
    };
    // A link on the volume to an inode that keeps an id of its own (moved
    // there from a tier, the id recorded on it): its directory is marked,
    // or the name would report the inode's number once the kernel forgets
    // it.
    auto mark_own_id = [&](int dfd, const char* n, uint64_t pid) -> Result<void> {
      if (IsTier(to)) return {};
      Result<struct stat> lst = sys::StatAt(dfd, n);
      if (!lst.ok()) return Errno{lst.error()};
      if (pid == static_cast<uint64_t>(lst->st_ino)) return {};
      return changes_->SetFlag(dfd, markers::kIdsXattr);
    };
    // Directories (paths in the tree) whose volume part is hidden, by an
    // opaque tier part of their own or of a directory above: the walk still
    // opens the volume's directories beneath them, which must not show.
    std::unordered_set<std::string> volume_hidden;
    cb.list = [&](const WalkDir& d) -> Result<std::vector<WalkItem>> {
      const std::string dir_path = d.path->empty() ? src_path : Join(src_path, *d.path);
      const int dir_route = d.self == nullptr ? src_route : TagRoute(d.self->tag);
      // This level's parts: a tier part that is opaque hides the volume's.
      std::array<int, kLayerCount> fds{d.fds[0], d.fds[1], d.fds[2]};
      bool hidden = false;
      if (d.self != nullptr) {
        const size_t slash = d.path->rfind('/');
        hidden = volume_hidden.count(slash == std::string::npos ? std::string()
                                                                : d.path->substr(0, slash)) != 0;
      }
      for (Layer t : kTiers) {
        if (hidden || fds[Index(t)] < 0) continue;
        Result<markers::IdRecord> rec = markers::GetIdRecord(fds[Index(t)]);
        hidden = rec.ok() && rec->opaque && (dir_route >= 0 && TierOf(dir_route) == t);
      }
      if (hidden) {
        fds[Index(Layer::kVolume)] = -1;
        volume_hidden.insert(*d.path);
      }
      std::vector<WalkItem> out;
      std::unordered_set<std::string> seen;
      std::array<std::unordered_set<std::string>, kLayerCount> whited;
      // Tier entries not served here: set aside unless a directory of the
      // same name is served (a directory spans layers: the walk goes into
      // every part of it).
      std::vector<std::pair<Layer, WalkItem>> passed_over;
      for (Layer t : kTiers) {
        if (fds[Index(t)] < 0) continue;
        Result<std::vector<WalkItem>> items = ListDir(fds[Index(t)]);
        if (!items.ok()) return Errno{items.error()};
        for (WalkItem& item : *items) {
          const ChildRoute r = RouteOfPath(dir_path, dir_route, item.name);
          if (item.type == S_IFCHR) {
            Result<struct stat> st = sys::StatAt(fds[Index(t)], item.name.c_str());
            if (!st.ok()) continue;
            Result<bool> wh = markers::IsWhiteout(fds[Index(t)], item.name.c_str(), *st);
            if (wh.ok() && *wh) {
              whited[Index(t)].insert(item.name);
              continue;
            }
          }
          if (r.LayerFor(item.type) != t || seen.count(item.name)) {
            passed_over.emplace_back(t, item);
            continue;
          }
          seen.insert(item.name);
          item.tag = Tag(t, r.For(item.type));
          out.push_back(std::move(item));
        }
      }
      if (fds[Index(Layer::kVolume)] >= 0) {
        Result<std::vector<WalkItem>> items = ListDir(fds[Index(Layer::kVolume)]);
        if (!items.ok()) return Errno{items.error()};
        for (WalkItem& item : *items) {
          if (seen.count(item.name)) continue;
          const ChildRoute r = RouteOfPath(dir_path, dir_route, item.name);
          const Layer home = r.LayerFor(item.type);
          if (IsTier(home) && whited[Index(home)].count(item.name)) continue;
          item.tag = Tag(Layer::kVolume, r.For(item.type));
          out.push_back(std::move(item));
        }
      }
      for (const auto& over : passed_over) {
        const Layer t = over.first;
        const WalkItem& item = over.second;
        auto served = std::find_if(out.begin(), out.end(),
                                   [&](const WalkItem& o) { return o.name == item.name; });
        const bool dir = served != out.end() && S_ISDIR(served->type);
        if (dir && S_ISDIR(item.type) && PartOfServedDir(fds, dir_path, dir_route, *served, t)) {
          continue;  // the walk goes into it with the rest of the directory
        }
        if (dir) served->apart |= 1U << Index(t);
        staged->unserved.emplace_back(t, d.path->empty() ? item.name : Join(*d.path, item.name));
      }
      return out;
    };
    cb.visit = [&](const WalkDir& d, const WalkItem& item) -> Result<bool> {
      const Layer from = TagLayer(item.tag);
      const int sfd = d.fds[Index(from)];
      const char* n = item.name.c_str();
      Result<struct stat> st = sys::StatAt(sfd, n);
      if (!st.ok()) return st.error() == ENOENT ? Result<bool>(false) : Errno{st.error()};
      uint64_t pid = static_cast<uint64_t>(st->st_ino);
      markers::IdRecord rec;
      if (IsTier(from)) {
        Result<markers::IdRecord> r = markers::GetIdRecordAt(sfd, n);
        if (r.ok()) rec = *r;
        if (rec.id != 0) pid = rec.id;
      } else {
        Result<markers::IdRecord> r = markers::GetIdRecordAt(sfd, n);
        if (r.ok() && r->id != 0) pid = r->id;
      }
      const int dfd = d.fds[kDest];
      if (S_ISDIR(st->st_mode)) {
        Result<UniqueFd> model = sys::OpenBeneath(sfd, n, O_PATH | O_DIRECTORY);
        if (!model.ok()) return Errno{model.error()};
        Result<UniqueFd> made = changes_->EnsureDir(At{to, dfd, item.name, "", false, true},
                                                    model->get(), *st, IsTier(to) ? pid : 0);
        if (!made.ok()) return Errno{made.error()};
        DETOURFS_TRY(keep_id(dfd, n, pid));
        return true;
      }
      // A volume name with one link may stand for an index entry too (its
      // other names removed since): its data and attributes are the
      // entry's, never the volume file's.
      if (st->st_nlink > 1 || (!IsTier(from) && IndexedVolumeName(sfd, n, *st, pid))) {
        if (!IsTier(to)) staged->links_volume_files = true;
        // Names of one file (a volume name and a tier link to its index
        // entry alike) are keyed by its id.
        const std::string here = d.path->empty() ? item.name : Join(*d.path, item.name);
        auto [it, first] = links.emplace(std::to_string(pid), here);
        if (!first) {
          DETOURFS_TRY(sys::LinkAt(roots[kDest], it->second.c_str(), dfd, n));
          DETOURFS_TRY(mark_own_id(dfd, n, pid));
          if (auto c = copied.find(pid); c != copied.end()) c->second.second++;
          return false;
        }
        // Its other names may be outside the tree: the copy is a link to
        // the same inode, never a second file.
        Result<bool> linked = LinkIntoCopy(sfd, n, *st, from, pid, to, dfd);
        if (!linked.ok()) return Errno{linked.error()};
        if (*linked) {
          DETOURFS_TRY(mark_own_id(dfd, n, pid));
          staged->files++;
          return false;
        }
        st = sys::StatAt(sfd, n);  // its link count may have dropped (LoneTierLink)
        if (!st.ok()) return Errno{st.error()};
        // Copied: every name must be in the tree, or the file would split.
        if (!(from == to && !IsTier(to))) copied.emplace(pid, std::make_pair(st->st_nlink, 1));
      }
      if (from == to && !IsTier(to)) {
        // A volume file moving within the volume's filesystem: a link,
        // no copy (the source's name goes when the move is published). One
        // that keeps an id of its own keeps it where it lands.
        DETOURFS_TRY(sys::LinkAt(sfd, n, dfd, n));
        if (pid != static_cast<uint64_t>(st->st_ino)) {
          DETOURFS_TRY(changes_->SetFlag(dfd, markers::kIdsXattr));
        }
        staged->files++;
        return false;
      }
      Result<UniqueFd> src = sys::OpenBeneath(sfd, n, O_PATH);
      if (!src.ok()) return Errno{src.error()};
      UniqueFd data;
      if (S_ISREG(st->st_mode) && rec.spill.token != 0) {
        Result<UniqueFd> sd = changes_->OpenSpilled(rec.spill, O_RDONLY);
        if (!sd.ok()) return Errno{EIO};
        data = std::move(*sd);
      }
      // A file the kernel knows, being written through a name outside the
      // tree, is copied whole: its node's lock keeps writes out meanwhile.
      NodePin node = table_.FindByPid(pid, st->st_mode);
      std::optional<ReadLock> hold;
      if (node) hold.emplace(&node->content_mu);
      Result<Made> made =
          changes_->CopyIn(At{to, dfd, item.name, "", false, true}, src->get(),
                           data.valid() ? data.get() : -1, *st, IsTier(to) ? pid : 0);
      if (!made.ok()) return Errno{made.error()};
      if (!IsTier(to) && S_ISREG(st->st_mode)) {
        // Read back from the volume once the copy is synced (below): the
        // source's digest now, under its lock.
        if (!data.valid()) {
          Result<UniqueFd> opened = sys::Reopen(src->get(), O_RDONLY);
          if (!opened.ok()) return Errno{opened.error()};
          data = std::move(*opened);
        }
        Result<DataDigest> digest = DigestOf(data.get());
        if (!digest.ok()) return Errno{digest.error()};
        to_check.emplace_back(d.path->empty() ? item.name : Join(*d.path, item.name), *digest);
      }
      DETOURFS_TRY(keep_id(dfd, n, pid));
      staged->files++;
      staged->bytes += static_cast<uint64_t>(st->st_size);
      return false;
    };
    DETOURFS_TRY(WalkTrees(roots, cb));
    for (const auto& [pid, count] : copied) {
      if (count.second < count.first) {
        // A name outside the tree: the moved copy would be another file.
        spdlog::debug("'{}': file {} has names outside the tree; EXDEV", src_path, pid);
        return Errno{EXDEV};
      }
    }
  }
  DETOURFS_TRY(changes_->Hit("move.copied"));
  if (to != Layer::kMemory) {
    // On the volume or the disk tier: durable before it is published and
    // its source goes (the disk tier's own syncs come in batches, seconds
    // later). The numbers its ids adopted first: they are on the volume.
    if (to == Layer::kDisk) DETOURFS_TRY(changes_->SyncAdopted());
    DETOURFS_TRY(sys::Syncfs(work));
  }
  if (!to_check.empty()) DETOURFS_TRY(ReadBackTree(work, name, src_path, to_check));
  return staged;
}

Result<void> OverlayImpl::ReadBackTree(
    int work, const std::string& name, const std::string& src_path,
    const std::vector<std::pair<std::string, DataDigest>>& files) {
  Result<UniqueFd> root = sys::OpenBeneath(work, name.c_str(), O_PATH | O_DIRECTORY);
  if (!root.ok()) return Errno{root.error()};
  for (const auto& [rel, want] : files) {
    DETOURFS_TRY(ReadBackAgainst(root->get(), rel, want, Join(src_path, rel), "the tree"));
  }
  return {};
}

bool OverlayImpl::IndexedVolumeName(int dirfd, const char* name, const struct stat& st,
                                    uint64_t pid) {
  if (st.st_nlink > 1 || !IndexedOnATier(pid)) {
    return false;
  }
  SharedFd entry;  // (by handle: the number may belong to a new file now)
  return IndexOf(dirfd, name, st, Layer::kVolume, pid, &entry).has_value();
}

std::optional<Layer> OverlayImpl::IndexOf(int dirfd, const char* name, const struct stat& st,
                                          Layer from, uint64_t pid, SharedFd* entry) {
  for (Layer t : kTiers) {
    if (!changes_->has(t) || !Indexed(t, pid)) continue;
    const std::string e = markers::IndexName(pid);
    Result<UniqueFd> fd = sys::OpenBeneath(changes_->dirs(t).index->get(), e.c_str(), O_PATH);
    if (!fd.ok()) continue;
    if (IsTier(from)) {
      // A tier link of it: the same inode.
      Result<struct stat> est = sys::Fstat(fd->get());
      if (!est.ok() || est->st_ino != st.st_ino || est->st_dev != st.st_dev) continue;
    } else {
      // A volume name of it: the inode the entry was made for.
      Result<std::string> want =
          markers::GetBytesAt(changes_->dirs(t).index->get(), e.c_str(), markers::kHandleXattr);
      Result<std::string> have = sys::NameToHandle(dirfd, name);
      if (!want.ok() || !have.ok() || *want != *have) continue;
    }
    *entry = std::make_shared<const UniqueFd>(std::move(*fd));
    return t;
  }
  return std::nullopt;
}

Result<bool> OverlayImpl::LinkIntoCopy(int sfd, const char* n, const struct stat& st, Layer from,
                                       uint64_t pid, Layer to, int dfd) {
  if (S_ISDIR(st.st_mode)) return false;
  SharedFd entry;
  const std::optional<Layer> index = IndexOf(sfd, n, st, from, pid, &entry);
  if (IsTier(to)) {
    if (index && *index != to && IsTier(from) && LoneTierLink(pid, *index, st, entry)) {
      return false;  // its one name, this one: an ordinary file now, copied
    }
    if (index && *index != to) {
      // Its copy is in the other tier's index: it moves along when no tier
      // name links it (every name of it on the volume, this one too).
      Result<void> moved = MoveIndexEntryInto(pid, *index, to, entry, dfd, n);
      if (!moved.ok()) {
        spdlog::debug("'{}': its one copy is in the {}'s index, not the {}'s: {}", n,
                      LayerName(*index), LayerName(to), ErrnoText(moved.error()));
        return Errno{EXDEV};
      }
      return true;
    }
    if (!index) {
      if (IsTier(from)) return false;  // links among the tier's own names: within the tree
      // A volume file with names elsewhere: copied once, into the tier's
      // index, which its volume names resolve to from now on. A file the
      // kernel knows is copied up as its node (its binding follows).
      if (NodePin node = table_.FindByPid(pid, st.st_mode)) {
        WriteLock lock(&node->content_mu);
        if (node->binding().layer == Layer::kVolume) DETOURFS_TRY(CopyUp(node.get(), to, true));
        const Binding& nb = node->binding();
        if (!nb.index || nb.layer != to) return Errno{EXDEV};
        Result<SharedFd> fd = resolver_.Fd(node.get(), nb);
        if (!fd.ok()) return Errno{fd.error()};
        DETOURFS_TRY(sys::LinkFd((*fd)->get(), dfd, n));
        return true;
      }
      Result<UniqueFd> src = sys::OpenBeneath(sfd, n, O_PATH);
      if (!src.ok()) return Errno{src.error()};
      UniqueFd data;
      if (S_ISREG(st.st_mode)) {
        Result<UniqueFd> d = sys::OpenBeneath(sfd, n, O_RDONLY);
        if (!d.ok()) return Errno{d.error()};
        data = std::move(*d);
      }
      IndexInfo info;
      Result<std::string> handle = sys::NameToHandle(src->get(), "");
      if (!handle.ok()) return Errno{handle.error()};
      info.handle = *handle;
      info.links = st.st_nlink;
      const std::string e = markers::IndexName(pid);
      Result<Made> made =
          changes_->CopyIn(At{to, changes_->dirs(to).index->get(), e, "index/" + e, true},
                           src->get(), data.valid() ? data.get() : -1, st, pid, &info);
      if (!made.ok()) return Errno{made.error()};
      {
        MutexLock lock(&index_mu_);
        indexed_[Index(to)].insert(pid);
      }
      entry = std::make_shared<const UniqueFd>(std::move(made->fd));
    }
    DETOURFS_TRY(sys::LinkFd(entry->get(), dfd, n));
    return true;
  }
  // To the volume: the volume inode an index entry stands for.
  if (!index) return false;  // a volume file is linked as every volume file is
  if (IsTier(from) && LoneTierLink(pid, *index, st, entry)) {
    return false;  // its one name, this one: an ordinary file now, copied
  }
  Result<UniqueFd> v = VolumeInodeOf(*index, pid);
  if (!v.ok()) return Errno{v.error()};  // gone from the volume: a copy would split it
  DETOURFS_TRY(sys::LinkFd(v->get(), dfd, n));
  return true;
}

bool OverlayImpl::LoneTierLink(uint64_t pid, Layer tier, const struct stat& st,
                               const SharedFd& entry) {
  // This name is a link of the entry (IndexOf matched the inode): with two
  // links and a count of one name, it is the file's only name.
  Result<struct stat> est = sys::Fstat(entry->get());
  if (!est.ok() || est->st_nlink != 2 || st.st_nlink != 2) return false;
  const IndexAt e = IndexEntryAt(tier, pid);
  Result<uint64_t> links = markers::GetNumberAt(e.dir, e.name.c_str(), markers::kLinksXattr);
  if (!links.ok() || *links != 1) return false;
  // The count again, under the node's lock when the kernel knows the file
  // (a link raises it under the same).
  auto still_one = [&] {
    links = markers::GetNumberAt(e.dir, e.name.c_str(), markers::kLinksXattr);
    return links.ok() && *links == 1;
  };
  NodePin node = table_.FindByPid(pid, st.st_mode);
  if (!node) return still_one() && TrashLoneEntry(tier, pid, *est);
  if (!node->content_mu.TryLock()) return false;
  const bool gone = still_one() && node->binding().index && node->binding().layer == tier &&
                    TrashLoneEntry(tier, pid, *est);
  if (gone) UnbindIndex(node.get());
  node->content_mu.Unlock();
  return gone;
}

Result<void> OverlayImpl::MoveIndexEntryInto(uint64_t pid, Layer from, Layer to,
                                             const SharedFd& entry, int dfd, const char* n) {
  Result<struct stat> st = sys::Fstat(entry->get());
  if (!st.ok()) return Errno{st.error()};
  if (st->st_nlink > 1) return Errno{EXDEV};
  // Only through its node, locked: a lookup of another name of it finds
  // that node (by id) and waits, so nothing is bound to, written to or
  // linked to the entry while it moves. A file the kernel does not know,
  // or whose lock is held (by another request, or by this rename itself),
  // stays where it is: EXDEV, as before the move existed.
  NodePin node = table_.FindByPid(pid, st->st_mode);
  if (!node || !node->content_mu.TryLock()) return Errno{EXDEV};
  Result<void> r = [&]() -> Result<void> {
    node->content_mu.AssertHeld();  // taken above (TryLock)
    const Binding& b = node->binding();
    if (!b.index || b.layer != from) return Errno{EXDEV};  // moved meanwhile
    DETOURFS_TRY(MoveIndexEntry(node.get(), to));
    Result<SharedFd> fd = resolver_.Fd(node.get(), node->binding());
    if (!fd.ok()) return Errno{fd.error()};
    return sys::LinkFd((*fd)->get(), dfd, n);  // linked before anything can move it again
  }();
  node->content_mu.Unlock();
  return r;
}

Result<UniqueFd> OverlayImpl::VolumeInodeOf(Layer index, uint64_t pid) {
  const IndexAt e = IndexEntryAt(index, pid);
  Result<std::string> handle = markers::GetBytesAt(e.dir, e.name.c_str(), markers::kHandleXattr);
  if (!handle.ok() || handle->empty()) return Errno{EXDEV};
  Result<UniqueFd> v =
      sys::OpenByHandle(changes_->dirs(Layer::kVolume).tree->get(), *handle, O_PATH);
  if (!v.ok()) {
    spdlog::debug("index entry {}: its volume inode: {}", e.name, ErrnoText(v.error()));
    return Errno{EXDEV};
  }
  return v;
}

bool OverlayImpl::StagedFor(const StagedTree& s, Node* x, Node* d, std::string_view n, Layer to) {
  // A linked file is the inode itself, wherever its name went; a tree's
  // routes were decided by the path it was copied from.
  const std::string now = Join(PathOf(d), n);
  if (s.src_pid == x->pid() && s.layer == to && (s.linked || s.src_path == now)) return true;
  spdlog::info("the copy of '{}' made for a rename went stale ('{}' now): copying it again",
               s.src_path, now);
  return false;
}

Result<void> OverlayImpl::PublishTree(RenameArgs& a, StagedTree& staged) {
  Node* x = a.x1;
  const Layer to = staged.layer;
  const std::string p1 = Join(PathOf(a.d1), a.n1);
  const std::string p2 = Join(PathOf(a.d2), a.n2);
  const Binding b = x->Snapshot();
  Result<SharedFd> dst_dir = IsTier(to) ? EnsureTierDir(a.d2, to) : resolver_.DirFd(a.d2, to);
  if (!dst_dir.ok()) return Errno{dst_dir.error()};
  const int work = changes_->work(to);
  // Landing where the volume has a directory (hidden, or the one replaced):
  // opaque, so none of the volume's content there shows.
  const LayerHit& vol = a.s2.at[Index(Layer::kVolume)];
  if (IsTier(to) && a.s2.volume_visible && vol.has && S_ISDIR(vol.st.st_mode)) {
    Result<UniqueFd> root = sys::OpenBeneath(work, staged.name.c_str(), O_PATH | O_DIRECTORY);
    if (!root.ok()) return Errno{root.error()};
    DETOURFS_TRY(
        changes_->SetOpaque(At{to, work, staged.name, "", false}, root->get(), true, x->pid()));
  }
  if (!IsTier(to)) {
    // Marked before the copy shows: its entries' st_ino is the id they carry.
    DETOURFS_TRY(MarkIds(a.d2, (*dst_dir)->get()));
  }
  Intent intent;
  auto tree = [](Layer l, const std::string& p) { return IntentPath{l, Area::kTree, p}; };
  if (a.x2 != nullptr) {
    // The empty directory replaced: its parts go first (on the destination
    // layer it may still hold whiteouts, or hidden volume entries).
    // A tier part holding anything but whiteouts holds content no rule
    // serves (the directory was empty in the merged view): set aside.
    const Binding b2 = a.x2->Snapshot();
    for (Layer l : kAllLayers) {
      if (!b2.parts[Index(l)].present() || (l != to && !IsTier(l))) continue;
      Result<SharedFd> pfd = IsTier(l) ? resolver_.DirFd(a.d2, l) : Result<SharedFd>(Errno{ENOENT});
      if (pfd.ok() && HoldsUnservedContent((*pfd)->get(), std::string(a.n2))) {
        intent.steps.push_back({StepKind::kRenameNoReplace, tree(l, p2),
                                IntentPath{l, Area::kKept, ChangeLayer::WorkName("kept")}});
      } else {
        intent.steps.push_back({StepKind::kTrash, tree(l, p2), {}});
      }
    }
  } else if (!IsTier(to) && vol.has) {
    intent.steps.push_back({StepKind::kTrash, tree(Layer::kVolume, p2), {}});
  } else if (IsTier(to) && a.s2.at[Index(to)].whiteout) {
    // A directory cannot be renamed over a whiteout (ENOTDIR): it goes
    // first (the copy is opaque where the volume has a directory).
    intent.steps.push_back({StepKind::kTrash, tree(to, p2), {}});
  }
  intent.steps.push_back(
      {StepKind::kRename, IntentPath{to, Area::kWork, staged.name}, tree(to, p2)});
  // The source goes from every layer.
  const bool volume_has = a.s1.volume_visible && a.s1.at[Index(Layer::kVolume)].has;
  // Its own volume part is held below when the move takes it off the
  // volume's name; anything else the volume has there (a directory an
  // opaque one hid) stays hidden by a whiteout.
  const bool volume_part_held = b.parts[Index(Layer::kVolume)].present() &&
                                (b.layer == Layer::kVolume || to == Layer::kVolume);
  // Moving to the volume, the tiers' parts wait in their work/ until the
  // volume shows the published tree (SettleLeaving, as MoveFile's).
  SetAsideUnserved(staged, p1, &intent);
  std::vector<Leaving> leaving;
  for (Layer t : kTiers) {
    if (!b.parts[Index(t)].present()) continue;
    const bool whiteout = t == b.layer && volume_has && !volume_part_held;
    if (!IsTier(to)) {
      leaving.push_back({t, ChangeLayer::WorkName("leaving"), whiteout});
      intent.steps.push_back({StepKind::kRenameNoReplace, tree(t, p1),
                              IntentPath{t, Area::kWork, leaving.back().name}});
      if (!whiteout) continue;
    }
    intent.steps.push_back({whiteout ? StepKind::kWhiteout : StepKind::kTrash, tree(t, p1), {}});
  }
  const std::string held = ChangeLayer::WorkName("tree");
  if (b.parts[Index(Layer::kVolume)].present()) {
    if (volume_part_held) {
      // Its entries' volume numbers are the ids their copies keep (st_ino):
      // held, not freed, so the volume never gives a new entry one of them.
      // Files linked into the copy leave the held tree (PruneHeld): at
      // once when the copy is on a tier; when it is on the volume, once
      // the volume shows it (SettleLeaving), as until then their names in
      // the copy may be all they have.
      intent.steps.push_back({IsTier(to) ? StepKind::kHold : StepKind::kHoldWhole,
                              tree(Layer::kVolume, p1),
                              IntentPath{Layer::kVolume, Area::kHeld, held}});
    } else if (!b.home().present()) {
      // Only on the volume until now: a whiteout on its tier hides it.
      Result<SharedFd> t1 = EnsureTierDir(a.d1, b.layer);
      if (!t1.ok()) return Errno{t1.error()};
      intent.steps.push_back({StepKind::kWhiteout, tree(b.layer, p1), {}});
    }
  }
  // What the published tree's root must be.
  Result<struct stat> staged_st = sys::StatAt(work, staged.name.c_str());
  if (!staged_st.ok()) return Errno{staged_st.error()};
  bool kept = false;
  // (A record left for the hold-whole step, ended below.)
  const bool whole = volume_part_held && !IsTier(to);
  std::string record;
  Result<void> ran = changes_->Run(intent, &kept, whole ? &record : nullptr);
  // Published, or to be published by the next start: no longer ours to drop.
  staged.published = ran.ok() || kept;
  if (!ran.ok()) return ran;
  DETOURFS_TRY(changes_->Hit("move.published"));
  if (!IsTier(to)) {
    // A tree whose volume part went to held/ (its files linked into the
    // copy leave it) is not put back: all of it is kept aside instead.
    const Settle how{!kept && !volume_part_held, staged.name};
    Result<bool> shown = SettleLeaving(a, (*dst_dir)->get(), *staged_st, how, leaving);
    // (Nothing to tell by: the record stays for the next start to decide.)
    if (!record.empty() && !(shown.ok() && !*shown)) {
      changes_->SettleHold(
          record, shown.ok() ? std::vector<std::string>{held} : std::vector<std::string>{});
    }
    if (!shown.ok()) return Errno{shown.error()};
  }
  Result<UniqueFd> root =
      sys::OpenBeneath((*dst_dir)->get(), std::string(a.n2).c_str(), O_PATH | O_DIRECTORY);
  if (!root.ok()) return Errno{root.error()};
  // The table follows the rename, then the nodes the kernel holds.
  Renamed(a, false);
  DETOURFS_TRY(RebindMoved(x, to, root->get()));
  changes_->RecordMove(At{to, -1, "", p2, true}, p1, x->pid());
  spdlog::info("moved '{}' to '{}' ({} to {}: {} files, {} bytes)", p1, p2, LayerName(b.layer),
               LayerName(to), staged.files, staged.bytes);
  return UserWhiteoutAfterMove(a);
}

bool OverlayImpl::PartOfServedDir(const std::array<int, kLayerCount>& fds,
                                  const std::string& dir_path, int dir_route,
                                  const WalkItem& served, Layer tier) {
  // As Probe decides: an unrouted directory's scaffolding on a tier, made
  // for the volume directory with that id (or before ids were kept); a
  // routed directory has no part on another tier.
  if (TagLayer(served.tag) != Layer::kVolume) return false;
  if (RouteOfPath(dir_path, dir_route, served.name).LayerFor(S_IFDIR) != Layer::kVolume) {
    return false;
  }
  const int vfd = fds[Index(Layer::kVolume)];
  Result<markers::IdRecord> rec = markers::GetIdRecordAt(fds[Index(tier)], served.name.c_str());
  if (!rec.ok()) return false;
  if (rec->id == 0) return true;
  Result<struct stat> vst = sys::StatAt(vfd, served.name.c_str());
  if (!vst.ok()) return false;
  uint64_t pid = static_cast<uint64_t>(vst->st_ino);
  Result<markers::IdRecord> vrec = markers::GetIdRecordAt(vfd, served.name.c_str());
  if (vrec.ok() && vrec->id != 0) pid = vrec->id;
  return rec->id == pid;
}

void OverlayImpl::SetAsideUnserved(const StagedTree& staged, const std::string& path,
                                   Intent* intent) {
  for (const auto& [tier, in_tree] : staged.unserved) {
    intent->steps.push_back({StepKind::kRenameNoReplace,
                             IntentPath{tier, Area::kTree, Join(path, in_tree)},
                             IntentPath{tier, Area::kKept, ChangeLayer::WorkName("kept")}});
  }
}

Result<void> OverlayImpl::RebindMoved(Node* x, Layer to, int root_fd) {
  {
    WriteLock lock(&x->content_mu);
    DETOURFS_TRY(RebindRoot(x, to, root_fd));
  }
  return RebindWithin(x, to, root_fd);
}

Result<void> OverlayImpl::RebindRoot(Node* x, Layer to, int root_fd) {
  Result<struct stat> st = sys::Fstat(root_fd);
  if (!st.ok()) return Errno{st.error()};
  Result<markers::IdRecord> rec =
      IsTier(to) ? markers::GetIdRecord(root_fd) : Result<markers::IdRecord>(markers::IdRecord{});
  Binding& xb = x->mutable_binding();
  for (Layer l : kAllLayers) xb.parts[Index(l)] = Part::Absent();
  xb.parts[Index(to)] = Part::Of(*st);
  xb.layer = to;
  xb.spill = {};
  xb.index = false;
  xb.metacopy = false;
  xb.opaque = rec.ok() && rec->opaque;
  if (x->is_dir()) x->volume_ids.store(IsTier(to) ? 0 : -1, std::memory_order_release);
  x->generation.fetch_add(1, std::memory_order_acq_rel);
  resolver_.Drop(x->id());
  if (!x->is_dir()) RepointHandles(x, xb);
  return {};
}

Result<void> OverlayImpl::RebindWithin(Node* x, Layer to, int root_fd) {
  // The root is bound already (its descendants resolve through it); then
  // open handles, which resolve through the bindings.
  if (!x->is_dir()) return {};
  const std::string top = PathOf(x);
  const size_t prefix = top.empty() ? 0 : top.size() + 1;
  std::vector<NodePin> moved = table_.NodesWithin(x);
  for (NodePin& n : moved) {
    std::optional<std::string> path = table_.PathOf(n.get());
    if (!path || path->size() <= prefix) continue;
    const std::string rel = path->substr(prefix);
    Result<UniqueFd> fd = sys::OpenBeneath(root_fd, rel.c_str(), O_PATH);
    WriteLock lock(&n->content_mu);
    Binding& nb = n->mutable_binding();
    if (!fd.ok()) continue;  // gone, or a link split off outside the tree
    Result<struct stat> st = sys::Fstat(fd->get());
    if (!st.ok()) continue;
    // A hard-linked file whose copy is an index's keeps that binding: its
    // new name is one more link of the same inode.
    if (!n->is_dir() && nb.index && Indexed(nb.layer, n->pid()) &&
        (to == nb.layer || to == Layer::kVolume)) {
      continue;
    }
    const bool indexed = !n->is_dir() && IsTier(to) && st->st_nlink > 1 && Indexed(to, n->pid());
    for (Layer l : kAllLayers) nb.parts[Index(l)] = Part::Absent();
    nb.parts[Index(to)] = Part::Of(*st);
    nb.layer = to;
    nb.spill = {};
    nb.index = indexed;
    nb.metacopy = false;
    nb.opaque = false;
    // A directory copied to the volume records its entries' ids.
    if (n->is_dir()) n->volume_ids.store(IsTier(to) ? 0 : -1, std::memory_order_release);
    n->generation.fetch_add(1, std::memory_order_acq_rel);
    resolver_.Drop(n->id());
  }
  for (NodePin& n : moved) {
    if (n->is_dir()) continue;
    WriteLock lock(&n->content_mu);
    RepointHandles(n.get(), n->binding());
  }
  return {};
}

bool OverlayImpl::LinkedFile(Node* x) {
  const Binding& b = x->binding();
  if (b.index) return true;
  Result<SharedFd> src = resolver_.Fd(x, b);
  if (!src.ok()) return false;  // the copy will say why
  Result<struct stat> st = sys::Fstat((*src)->get());
  return st.ok() && st->st_nlink > 1;
}

Result<std::shared_ptr<OverlayImpl::StagedTree>> OverlayImpl::StageFileCopy(Node* x, Layer to) {
  const Binding& b = x->binding();
  Result<SharedFd> src = resolver_.Fd(x, b);
  if (!src.ok()) return Errno{src.error()};
  Result<struct stat> st = sys::Fstat((*src)->get());
  if (!st.ok()) return Errno{st.error()};
  if (st->st_nlink > 1 || b.index) return Errno{EXDEV};  // a copy would split it
  UniqueFd data;
  if (S_ISREG(st->st_mode)) {
    Result<UniqueFd> d = resolver_.OpenData(x, b, O_RDONLY);
    if (!d.ok()) return Errno{d.error()};
    data = std::move(*d);
  }
  auto staged = std::make_shared<StagedTree>();
  staged->layer = to;
  staged->src_pid = x->pid();
  staged->name = ChangeLayer::WorkName("moving");
  const int work = changes_->work(to);
  // Not one of a batch: synced on its own before it is published, since its
  // source goes in the same change (CopyIn syncs what goes to the volume;
  // the disk tier syncs in batches, so this one now). On the volume it is
  // read back too, and copied once more if it does not match.
  for (int attempt = 1;; ++attempt) {
    Result<Made> made = changes_->CopyIn(At{to, work, staged->name, "", false}, (*src)->get(),
                                         data.valid() ? data.get() : -1, *st, x->pid());
    if (!made.ok()) return Errno{made.error()};
    staged->changes = changes_.get();
    if (IsTier(to) || !S_ISREG(st->st_mode)) break;
    Result<void> same = ReadBack(data.get(), work, staged->name, PathOf(x));
    if (same.ok()) break;
    (void)changes_->Trash(At{to, work, staged->name, "", false});
    if (attempt == 2) return Errno{same.error()};
    staged->name = ChangeLayer::WorkName("moving");
  }
  if (to == Layer::kDisk && S_ISREG(st->st_mode)) {
    Result<UniqueFd> synced = sys::OpenBeneath(work, staged->name.c_str(), O_RDONLY);
    if (!synced.ok()) return Errno{synced.error()};
    DETOURFS_TRY(changes_->SyncAdopted());
    DETOURFS_TRY(sys::Fsync(synced->get(), true));
  }
  if (!IsTier(to)) {
    DETOURFS_TRY(changes_->SetIdRecordAt(work, staged->name.c_str(),
                                         markers::IdRecord{x->pid(), false, {}}));
  }
  staged->files = 1;
  staged->bytes = static_cast<uint64_t>(st->st_size);
  return staged;
}

Result<UniqueFd> OverlayImpl::OpenForReadBack(int dirfd, const std::string& name) {
  Result<UniqueFd> copy = sys::OpenBeneath(dirfd, name.c_str(), O_RDONLY | O_NOATIME);
  if (!copy.ok() && copy.error() == EPERM) {
    copy = sys::OpenBeneath(dirfd, name.c_str(), O_RDONLY);  // not its owner, no CAP_FOWNER
  }
  if (!copy.ok()) return copy;
  // Synced (again: cheap after a syncfs, and what a FUSE volume sees), so
  // its pages are clean: dropped, and the read goes to the volume. A FUSE
  // or network volume's own cache is its own.
  DETOURFS_TRY(sys::Fsync(copy->get(), false));
  if (const int r = ::posix_fadvise(copy->get(), 0, 0, POSIX_FADV_DONTNEED); r != 0) {
    spdlog::debug("'{}': cannot drop its cached pages before reading it back: {}", name,
                  ErrnoText(r));
  }
  return copy;
}

Result<void> OverlayImpl::ReadBack(int data, int dirfd, const std::string& name,
                                   const std::string& path) {
  Result<DataDigest> want = DigestOf(data);
  if (!want.ok()) return Errno{want.error()};
  return ReadBackAgainst(dirfd, name, *want, path, "its source");
}

Result<void> OverlayImpl::ReadBackAgainst(int dirfd, const std::string& name,
                                          const DataDigest& want, const std::string& path,
                                          std::string_view stays) {
  Result<UniqueFd> copy = OpenForReadBack(dirfd, name);
  Result<DataDigest> got =
      copy.ok() ? DigestOf(copy->get()) : Result<DataDigest>(Errno{copy.error()});
  if (got.ok() && *got == want) return {};
  spdlog::error(
      "the volume did not keep the copy of '{}' written to it just now ({}): {} stays where it is",
      path, got.ok() ? "its data reads back different" : ErrnoText(got.error()), stays);
  return Errno{EIO};
}

Result<void> OverlayImpl::CopyLinkedAhead(Node* x, Layer to) {
  if (!IsTier(to)) return {};
  WriteLock lock(&x->content_mu);
  if (x->is_dir() || x->binding().layer == to) return {};
  // An index entry whose one name left is its link on its tier leaves the
  // index (an ordinary file, copied between the rounds); any other moves
  // its entry now.
  if (x->binding().index) return LeaveIndexIfLone(x) ? Result<void>{} : MoveIndexEntry(x, to);
  if (x->binding().layer == Layer::kVolume) return CopyUp(x, to, true);
  return {};  // StageLink answers
}

Result<std::shared_ptr<OverlayImpl::StagedTree>> OverlayImpl::StageLink(Node* x, Layer to) {
  if (IsTier(to) && x->binding().layer != to) {
    const Binding& now = x->binding();
    if (now.index) {
      // Its entry moves along when no tier name links it.
      DETOURFS_TRY(MoveIndexEntry(x, to));
    } else if (now.layer == Layer::kVolume) {
      DETOURFS_TRY(CopyUp(x, to, true));
    } else {
      return Errno{EXDEV};  // a tier file whose other names stay on its tier
    }
  }
  const Binding& b = x->binding();
  Result<SharedFd> inode = Errno{EXDEV};
  if (to == b.layer) {
    inode = resolver_.Fd(x, b);
  } else if (to == Layer::kVolume && b.index) {
    // The volume inode the index entry stands for, if it is still there.
    Result<UniqueFd> v = VolumeInodeOf(b.layer, x->pid());
    if (!v.ok()) return Errno{v.error()};
    inode = std::make_shared<const UniqueFd>(std::move(*v));
  }
  if (!inode.ok()) return Errno{inode.error()};
  auto staged = std::make_shared<StagedTree>();
  staged->layer = to;
  staged->src_pid = x->pid();
  staged->name = ChangeLayer::WorkName("moving");
  staged->linked = true;
  DETOURFS_TRY(sys::LinkFd((*inode)->get(), changes_->work(to), staged->name.c_str()));
  staged->changes = changes_.get();
  staged->files = 1;
  return staged;
}

Result<void> OverlayImpl::ExchangeAcross(RenameArgs& a, Layer to1, Layer to2, RenameNeeds& have,
                                         RenameNeeds* need) {
  Node* x1 = a.x1;
  Node* x2 = a.x2;
  // Both are frozen and copied between the rounds with no lock held
  // (trees, and files with one name); files with other names are linked,
  // not copied, in the publishing round. Nothing is copied under a lock.
  if (!have.freeze) {
    need->freeze = true;
    for (Node* x : {x1, x2}) need->freeze_roots.push_back(table_.Pin(x));
    return Errno{EAGAIN};
  }
  if (have.staged && !StagedFor(*have.staged, x1, a.d1, a.n1, to1)) {
    need->discard.push_back(std::move(have.staged));
  }
  if (have.staged2 && !StagedFor(*have.staged2, x2, a.d2, a.n2, to2)) {
    need->discard.push_back(std::move(have.staged2));
  }
  // Asks for the copies still missing (`copied(x)`: whether x is copied);
  // false when none is.
  auto request_copies = [&](auto copied) {
    bool asked = false;
    bool to_tier = false;
    const std::array sides{std::tuple{x1, a.d1, a.n1, x2, to1, false},
                           std::tuple{x2, a.d2, a.n2, x1, to2, true}};
    for (auto [x, d, n, other, to, second] : sides) {
      if ((second ? have.staged2 : have.staged) || !copied(x, second)) continue;
      need->stage.push_back(
          {table_.Pin(x), table_.Pin(d), std::string(n), table_.Pin(other), to, second});
      asked = true;
      to_tier = to_tier || (IsTier(to) && x->is_dir());
    }
    // A copy bound for the volume links the volume files it holds, so a
    // file the two share has one name more until the exchange is published;
    // a tree bound for a tier, copied meanwhile, would count it in its
    // index entry's names. So the tier's copy comes first (Rename runs the
    // jobs bound for a tier first), and a volume copy made before it with
    // such links is removed (Discard: in the trash its links would still
    // count) and made again after it.
    for (auto [x, d, n, other, to, second] : sides) {
      std::shared_ptr<StagedTree>& slot = second ? have.staged2 : have.staged;
      if (!to_tier || IsTier(to) || !slot || !slot->links_volume_files) continue;
      need->discard.push_back(std::move(slot));
      need->stage.push_back(
          {table_.Pin(x), table_.Pin(d), std::string(n), table_.Pin(other), to, second});
    }
    if (asked) need->exclusive = true;
    return asked;
  };
  if (!have.exclusive) {
    // As the rename found them (a file's names and index entry are
    // looked at again under its lock below).
    auto copied = [&](Node* x, bool second) {
      return x->is_dir() || ((second ? a.s2 : a.s1).st.st_nlink <= 1 && !x->Snapshot().index);
    };
    request_copies(copied);
    // A file with other names is linked in the publishing round; what that
    // needs copied first is copied now.
    for (auto [x, to, second] : {std::tuple{x1, to1, false}, std::tuple{x2, to2, true}}) {
      if (!copied(x, second)) DETOURFS_TRY(CopyLinkedAhead(x, to));
    }
    need->exclusive = true;
    return Errno{EAGAIN};
  }
  // Parents on the destination layers, made before the two nodes' locks
  // are taken: EnsureTierDir reads the ancestors' bindings under their
  // locks, and no node's lock is held while another's is waited for.
  Result<SharedFd> at2 = IsTier(to1) ? EnsureTierDir(a.d2, to1) : resolver_.DirFd(a.d2, to1);
  if (!at2.ok()) return Errno{at2.error()};
  Result<SharedFd> at1 = IsTier(to2) ? EnsureTierDir(a.d1, to2) : resolver_.DirFd(a.d1, to2);
  if (!at1.ok()) return Errno{at1.error()};
  Node* lo = x1->id() < x2->id() ? x1 : x2;
  Node* hi = lo == x1 ? x2 : x1;
  ReleasableWriteLock l1(&lo->content_mu);
  ReleasableWriteLock l2(&hi->content_mu);
  // An index entry whose one name left is its link on its tier: an
  // ordinary tier file from now on, which moves as any (looked at again in
  // the next round; a link cannot leave its tier). Both before either is
  // copied, so no copy is made twice.
  bool left_index = false;
  for (auto [x, slot] : {std::pair{x1, &have.staged}, std::pair{x2, &have.staged2}}) {
    x->content_mu.AssertHeld();  // as lo or hi
    if (!*slot && !x->is_dir() && LeaveIndexIfLone(x)) left_index = true;
  }
  if (left_index) {
    need->exclusive = true;
    return Errno{EAGAIN};
  }
  // A copy still missing (stale: a path above was renamed meanwhile; or
  // a file that lost its other names) is made between the rounds.
  const bool asked = request_copies([&](Node* x, bool) {
    x->content_mu.AssertHeld();  // as lo or hi
    return x->is_dir() || !LinkedFile(x);
  });
  if (asked) return Errno{EAGAIN};
  for (auto [x, to, slot] :
       {std::tuple{x1, to1, &have.staged}, std::tuple{x2, to2, &have.staged2}}) {
    if (*slot) continue;
    x->content_mu.AssertHeld();                                // as lo or hi
    Result<std::shared_ptr<StagedTree>> s = StageLink(x, to);  // a file with other names
    if (!s.ok()) return Errno{s.error()};
    *slot = *s;
  }
  const std::string p1 = Join(PathOf(a.d1), a.n1);
  const std::string p2 = Join(PathOf(a.d2), a.n2);
  if (!IsTier(to1)) DETOURFS_TRY(MarkIds(a.d2, (*at2)->get()));
  if (!IsTier(to2)) DETOURFS_TRY(MarkIds(a.d1, (*at1)->get()));
  // One recorded change: both names cleared on every layer (what the
  // volume held under either goes too, so no whiteout is needed), then both
  // copies published.
  Intent intent;
  auto tree = [](Layer l, const std::string& p) { return IntentPath{l, Area::kTree, p}; };
  SetAsideUnserved(*have.staged, p1, &intent);
  SetAsideUnserved(*have.staged2, p2, &intent);
  // What goes to the volume leaves its tiers' parts in their work/ until
  // the volume shows it (SettleLeaving, as a move's).
  std::array<std::vector<Leaving>, 2> leaving;
  // The volume parts of what goes to the volume (both sides may: a tier
  // directory and a volume file exchanged at unrouted names), in held/.
  std::vector<std::string> held;
  for (auto [x, s, p, to, left] :
       {std::tuple{x1, &a.s1, p1, to1, &leaving[0]}, std::tuple{x2, &a.s2, p2, to2, &leaving[1]}}) {
    x->content_mu.AssertHeld();  // as lo or hi
    const Binding& b = x->binding();
    for (Layer t : kTiers) {
      if (!changes_->has(t)) continue;
      const LayerHit& hit = s->at[Index(t)];
      if (hit.has && !hit.whiteout && !b.parts[Index(t)].present()) {
        // Not its part: content no rule serves there, set aside.
        intent.steps.push_back({StepKind::kRenameNoReplace, tree(t, p),
                                IntentPath{t, Area::kKept, ChangeLayer::WorkName("kept")}});
      } else if (!IsTier(to) && hit.has && !hit.whiteout) {
        // (A part of an indexed file may be its entry alone: no name here.)
        left->push_back({t, ChangeLayer::WorkName("leaving"), false});
        intent.steps.push_back({StepKind::kRenameNoReplace, tree(t, p),
                                IntentPath{t, Area::kWork, left->back().name}});
      } else if (hit.has || b.parts[Index(t)].present()) {
        intent.steps.push_back({StepKind::kTrash, tree(t, p), {}});
      }
    }
    if (s->at[Index(Layer::kVolume)].has) {
      // The volume entry whose number is the id of what moves (its own, or
      // the origin a copy on a tier reports) is held, never freed. What
      // goes to the volume holds its volume part whole: the copy links its
      // files, which leave held/ only once the volume shows it (SettleHold).
      if (!IsTier(to)) {
        held.push_back(ChangeLayer::WorkName("tree"));
        intent.steps.push_back({StepKind::kHoldWhole, tree(Layer::kVolume, p),
                                IntentPath{Layer::kVolume, Area::kHeld, held.back()}});
      } else if (x->pid() == static_cast<uint64_t>(s->at[Index(Layer::kVolume)].st.st_ino) ||
                 (x->is_dir() && s->binding.parts[Index(Layer::kVolume)].present())) {
        // (A directory's own volume part too: what persisted of the
        // content the tier copy took, never freed.)
        intent.steps.push_back(
            {StepKind::kHold, tree(Layer::kVolume, p),
             IntentPath{Layer::kVolume, Area::kHeld, ChangeLayer::WorkName("x")}});
      } else {
        intent.steps.push_back({StepKind::kTrash, tree(Layer::kVolume, p), {}});
      }
    }
  }
  intent.steps.push_back(
      {StepKind::kRenameNoReplace, IntentPath{to1, Area::kWork, have.staged->name}, tree(to1, p2)});
  intent.steps.push_back({StepKind::kRenameNoReplace,
                          IntentPath{to2, Area::kWork, have.staged2->name}, tree(to2, p1)});
  // What each copy published on the volume must be.
  std::array<struct stat, 2> copies{};
  DETOURFS_TRY(StatVolumeCopies({to1, to2}, have, &copies));
  bool kept = false;
  std::string record;  // left for the hold-whole step (SettleHold)
  Result<void> ran = changes_->Run(intent, &kept, held.empty() ? nullptr : &record);
  have.staged->published = have.staged2->published = ran.ok() || kept;
  if (!ran.ok()) return ran;
  Renamed(a, true);
  // Each follows its copy (their names have swapped in the table), before
  // the tier copies of one on the volume may go: the two roots before
  // their locks are let go (no call on either inode sees the old binding
  // under the new name), what lies within after. One the volume lost is
  // not there to follow: its node goes stale.
  Result<UniqueFd> r1 = sys::OpenBeneath((*at2)->get(), std::string(a.n2).c_str(), O_PATH);
  Result<UniqueFd> r2 = sys::OpenBeneath((*at1)->get(), std::string(a.n1).c_str(), O_PATH);
  const bool follow1 = r1.ok() && !have.staged->linked;
  const bool follow2 = r2.ok() && !have.staged2->linked;
  x1->content_mu.AssertHeld();  // as lo or hi
  x2->content_mu.AssertHeld();
  Result<void> root1 = follow1 ? RebindRoot(x1, to1, r1->get()) : Result<void>();
  Result<void> root2 = follow2 ? RebindRoot(x2, to2, r2->get()) : Result<void>();
  l2.Unlock();
  l1.Unlock();
  DETOURFS_TRY(root1);
  DETOURFS_TRY(root2);
  if (follow1) DETOURFS_TRY(RebindWithin(x1, to1, r1->get()));
  if (follow2) DETOURFS_TRY(RebindWithin(x2, to2, r2->get()));
  // The exchange stands whatever the volume shows: a copy it lost (logged,
  // what it was made from kept aside) cannot be undone, the other took its
  // name. The caller is told it is done, as the kernel's names then agree
  // with the mount's.
  const std::array<int, 2> followed{r1.ok() ? 0 : r1.error(), r2.ok() ? 0 : r2.error()};
  const Shown shown = SettleExchanged(a, {to1, to2}, {(*at2)->get(), (*at1)->get()}, have, copies,
                                      leaving, followed);
  if (!record.empty() && shown != Shown::kUnknown) {
    changes_->SettleHold(record, shown == Shown::kYes ? held : std::vector<std::string>{});
  }
  return {};
}

Result<void> OverlayImpl::StatVolumeCopies(std::array<Layer, 2> to, const RenameNeeds& have,
                                           std::array<struct stat, 2>* copies) {
  for (auto [t, staged, copy] : {std::tuple{to[0], have.staged.get(), &(*copies)[0]},
                                 std::tuple{to[1], have.staged2.get(), &(*copies)[1]}}) {
    if (IsTier(t)) continue;
    Result<struct stat> st = sys::StatAt(changes_->work(t), staged->name.c_str());
    if (!st.ok()) return Errno{st.error()};
    *copy = *st;
  }
  return {};
}

OverlayImpl::Shown OverlayImpl::SettleExchanged(const RenameArgs& a, std::array<Layer, 2> to,
                                                std::array<int, 2> dst_dirs,
                                                const RenameNeeds& have,
                                                const std::array<struct stat, 2>& copies,
                                                const std::array<std::vector<Leaving>, 2>& leaving,
                                                std::array<int, 2> followed) {
  // Never undone (the other copy took the old name): when the volume lost
  // one, what it was made from is kept aside (SettleLeaving logs it).
  // x2's move is seen as a rename of its own.
  const RenameArgs back{a.d2, a.n2,    a.s2,     a.x2, a.d1, a.n1, a.s1,
                        a.x1, a.flags, a.caller, {},   {},   false};
  Shown shown = Shown::kYes;
  for (size_t i = 0; i < 2; ++i) {
    if (IsTier(to[i])) continue;
    const std::string& staged = (i == 0 ? have.staged : have.staged2)->name;
    if (followed[i] != 0 && followed[i] != ENOENT) {
      // Its node could not follow the copy (no fd, an error): it still
      // reads the tier's copies, which must not go.
      for (const Leaving& l : leaving[i]) {
        const std::string path = Join(PathOf(i == 0 ? a.d1 : a.d2), i == 0 ? a.n1 : a.n2);
        (void)changes_->SetAside(At{l.layer, changes_->work(l.layer), l.name, path, true});
      }
      shown = Shown::kUnknown;
      continue;
    }
    Result<bool> r =
        SettleLeaving(i == 0 ? a : back, dst_dirs[i], copies[i], Settle{false, staged}, leaving[i]);
    shown = !r.ok() ? Shown::kNo : (*r ? shown : Shown::kUnknown);
  }
  return shown;
}

}  // namespace detourfs
