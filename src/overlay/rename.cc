// OverlayImpl: rename on the merged view, every flag (RENAME_NOREPLACE,
// RENAME_EXCHANGE, RENAME_WHITEOUT), every name routed or not.
//
// Within one layer a rename is a rename there: on the volume (an unrouted
// directory's tier parts move with it, as one recorded change); on a tier
// (a volume file copied up first, a directory with volume content made
// whole on the tier first), with RENAME_WHITEOUT leaving the whiteout that
// keeps the volume's old name hidden, in one syscall. Between layers the
// file or tree is copied to the destination layer and the source removed
// (move_across.cc).
#include <fcntl.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>
#include <sys/sysmacros.h>

#include <algorithm>

#include "overlay/overlay_impl.h"
#include "store/as_caller.h"
#include "store/tree_walk.h"
#include "sys/sys.h"
#include "util/write_lock_set.h"

namespace detourfs {
namespace {

constexpr unsigned int kKnownFlags = RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT;

}  // namespace

Result<void> OverlayImpl::Rename(uint64_t parent, std::string_view name, uint64_t new_parent,
                                 std::string_view new_name, unsigned int flags,
                                 const Caller& caller) {
  if ((flags & ~kKnownFlags) != 0) return Errno{EINVAL};
  if ((flags & RENAME_EXCHANGE) && (flags & (RENAME_NOREPLACE | RENAME_WHITEOUT))) {
    return Errno{EINVAL};
  }
  DETOURFS_TRY(ValidName(name));
  DETOURFS_TRY(ValidName(new_name));
  Result<NodePin> d1 = DirOf(parent);
  if (!d1.ok()) return Errno{d1.error()};
  Result<NodePin> d2 = DirOf(new_parent);
  if (!d2.ok()) return Errno{d2.error()};
  if (IsPrivateName(d1->get(), name)) return Errno{ENOENT};
  if (IsPrivateName(d2->get(), new_name)) return Errno{EPERM};
  RenameNeeds needs;
  std::vector<MoveGate::Freeze> freezes;
  std::vector<NodePin> frozen;
  for (int round = 0;; ++round) {
    MoveGate::Pass pass = gate_.Enter({d1->get(), d2->get()});
    Result<void> r = Errno{EIO};
    {
      // Renames that change several layers as one recorded change hold this
      // exclusively (a few renames long): paths in the record stay true.
      std::optional<WriteLock> excl;
      std::optional<ReadLock> shared;
      if (needs.exclusive) {
        excl.emplace(&renames_mu_);
      } else {
        shared.emplace(&renames_mu_);
      }
      RenameNeeds more;
      r = RenameLocked(d1->get(), name, d2->get(), new_name, flags, caller, needs, &more);
      if (r.ok() && more.routed) {
        // A write to the volume: not under the renames lock.
        excl.reset();
        shared.reset();
        TouchVolumePart(VolumePartToTouch(d1->get()));
        if (d2->get() != d1->get()) TouchVolumePart(VolumePartToTouch(d2->get()));
      }
      // Another round only when asked for one (EAGAIN with what it needs);
      // any other answer is the rename's.
      if (r.ok() || r.error() != EAGAIN) return r;
      if (!more.exclusive && !more.freeze && more.stage.empty()) {
        // EAGAIN is no answer of rename(2) (mv does not retry it).
        return r.error() == EAGAIN ? Result<void>(Errno{EBUSY}) : r;
      }
      needs.exclusive = needs.exclusive || more.exclusive;
      if (more.freeze && !needs.freeze) {
        frozen = std::move(more.freeze_roots);
        needs.freeze = true;
      }
      excl.reset();
      shared.reset();
      if (round >= 5) {
        // EBUSY, one of rename(2)'s own answers ("in use by another
        // process"); EAGAIN is not, and callers such as mv do not retry it.
        spdlog::warn("rename '{}' -> '{}': its layers kept changing under it; EBUSY", name,
                     new_name);
        return Errno{EBUSY};
      }
      DETOURFS_TRY(StageBetweenRounds(&more, &needs));
    }
    spdlog::debug("rename '{}' -> '{}' round {}: {} (freeze {}, staged {}/{}, exclusive {})", name,
                  new_name, round, r.ok() ? "ok" : ErrnoText(r.error()), needs.freeze,
                  needs.staged != nullptr, needs.staged2 != nullptr, needs.exclusive);
    if (needs.freeze && freezes.empty()) {
      // Trees moving between layers: nothing changes inside them while they
      // are copied (requests inside wait at the gate).
      (void)pass;
      for (NodePin& root : frozen) freezes.push_back(gate_.Begin(root.get()));
    }
  }
}

Result<void> OverlayImpl::StageBetweenRounds(RenameNeeds* more, RenameNeeds* needs) {
  for (const std::shared_ptr<StagedTree>& s : more->discard) Discard(s.get());
  // Copies bound for a tier before those bound for the volume (see
  // ExchangeAcross).
  std::stable_partition(more->stage.begin(), more->stage.end(),
                        [](const StageJob& job) { return IsTier(job.to); });
  for (StageJob& job : more->stage) {
    Result<std::shared_ptr<StagedTree>> s = StageJobCopy(job);
    if (!s.ok()) return Errno{s.error()};
    (job.second ? needs->staged2 : needs->staged) = std::move(*s);
  }
  return {};
}

Result<void> OverlayImpl::RenameLocked(Node* d1, std::string_view n1, Node* d2, std::string_view n2,
                                       unsigned int flags, const Caller& caller, RenameNeeds& have,
                                       RenameNeeds* need) {
  // Both parents' entries, and a directory the rename replaces. Taken as a
  // set, waiting only while holding none: no order among directories is
  // needed, so none is read from a tree that renames keep changing.
  // Replaced directories whose locks the set holds, kept alive until it has
  // let them go (declared first: destroyed last).
  std::vector<NodePin> locked;
  WriteLockSet locks;
  locks.LockAll({&d1->dir_mu, &d2->dir_mu});
  for (;;) {
    Result<Slot> s1 = Probe(d1, n1);
    if (!s1.ok()) return Errno{s1.error()};
    if (!s1->exists) return Errno{ENOENT};
    Result<Slot> s2 = Probe(d2, n2);
    if (!s2.ok()) return Errno{s2.error()};
    if (s2->removed_dir) return Errno{ENOENT};
    const bool exchange = (flags & RENAME_EXCHANGE) != 0;
    if ((flags & RENAME_NOREPLACE) && s2->exists) return Errno{EEXIST};
    if (exchange && !s2->exists) return Errno{ENOENT};
    Result<NodePin> p1 = NodeFor(d1, n1, *s1, false);
    if (!p1.ok()) return Errno{p1.error()};
    NodePin p2;
    if (s2->exists) {
      Result<NodePin> p = NodeFor(d2, n2, *s2, false);
      if (!p.ok()) return Errno{p.error()};
      p2 = std::move(*p);
    }
    Node* x1 = p1->get();
    Node* x2 = p2.get();
    if (x1 == x2) return {};  // two names of one file: nothing to do (POSIX)
    need->routed = IsTier(s1->route.LayerFor(s1->type)) ||
                   IsTier(s2->route.LayerFor(s2->exists ? s2->type : s1->type));
    if (!exchange && x2 != nullptr) {
      if (S_ISDIR(s1->type) && !S_ISDIR(s2->type)) return Errno{ENOTDIR};
      if (!S_ISDIR(s1->type) && S_ISDIR(s2->type)) return Errno{EISDIR};
      if (S_ISDIR(s2->type)) {
        // Nothing is made in it while the rename runs.
        locked.push_back(table_.Pin(x2));
        if (!locks.TryAdd(&x2->dir_mu)) {
          locks.LockAll({&x2->dir_mu});  // the parents were let go: look again
          continue;
        }
        Result<bool> empty = IsEmpty(x2);
        if (!empty.ok()) return Errno{empty.error()};
        if (!*empty) return Errno{ENOTEMPTY};
      }
    }
    RenameArgs a{d1, n1, *s1, x1, d2, n2, *s2, x2, flags, caller, nullptr, {}};
    Result<void> r = exchange ? Exchange(a, have, need) : Move(a, have, need);
    // (Also when a step after the rename itself failed: the name is gone.)
    if (a.replaced_index) DropReplacedIndexName(a);
    if (r.ok()) {
      Reroute(x1);
      if (exchange) Reroute(x2);
    }
    return r;
  }
}

bool OverlayImpl::VolumeOnly(Node* x, const Slot& s) {
  if (!s.at[Index(Layer::kVolume)].has) return false;
  for (Layer t : kTiers) {
    if (s.at[Index(t)].has && !s.at[Index(t)].whiteout) return false;
  }
  const Binding b = x->Snapshot();
  if (!b.parts[Index(Layer::kVolume)].present()) return false;
  for (Layer t : kTiers) {
    if (b.parts[Index(t)].present()) return false;
  }
  return x->is_dir() || (b.layer == Layer::kVolume && !b.index && b.spill.token == 0);
}

Result<void> OverlayImpl::ClearWhiteouts(Node* d, std::string_view name, const Slot& s) {
  for (Layer t : kTiers) {
    if (!s.at[Index(t)].has || !s.at[Index(t)].whiteout) continue;
    Result<SharedFd> fd = resolver_.DirFd(d, t);
    if (!fd.ok()) return Errno{fd.error()};
    DETOURFS_TRY(changes_->Trash(At{t, (*fd)->get(), name, Join(PathOf(d), name), true}));
  }
  return {};
}

void OverlayImpl::Reroute(Node* top) {
  if (!top->is_dir()) return;
  std::vector<NodePin> dirs = table_.NodesWithin(top);
  dirs.insert(dirs.begin(), table_.Pin(top));
  for (NodePin& n : dirs) {
    if (!n->is_dir()) continue;
    std::vector<Location> at = table_.Locations(n.get());
    if (at.empty()) continue;
    const Layer home = RouteOfChild(at.front().parent.get(), at.front().name).dir_layer;
    WriteLock lock(&n->content_mu);
    Binding& b = n->mutable_binding();
    if (b.layer == home) continue;
    bool on_tier = false;
    for (Layer t : kTiers) on_tier = on_tier || b.parts[Index(t)].present();
    // Parts on a tier stay what they are (an unrouted directory's
    // scaffolding, a routed one's content) unless the new route's tier is
    // the one they are on.
    if (on_tier && !(IsTier(home) && b.parts[Index(home)].present())) continue;
    b.layer = home;
    n->generation.fetch_add(1, std::memory_order_acq_rel);
  }
}

Result<OverlayImpl::VolumeSides> OverlayImpl::VolumeSidesOf(const RenameArgs& a) {
  Result<SharedFd> v1 = resolver_.DirFd(a.d1, Layer::kVolume);
  if (!v1.ok()) return Errno{v1.error()};
  Result<SharedFd> v2 = resolver_.DirFd(a.d2, Layer::kVolume);
  if (!v2.ok()) return Errno{v2.error()};
  const int fd1 = (*v1)->get();
  const int fd2 = (*v2)->get();
  return VolumeSides{*v1, *v2, fd1, fd2, Join(PathOf(a.d1), a.n1), Join(PathOf(a.d2), a.n2)};
}

Result<void> OverlayImpl::ExchangeOnVolume(RenameArgs& a) {
  Result<VolumeSides> sides = VolumeSidesOf(a);
  if (!sides.ok()) return Errno{sides.error()};
  const auto& [held1, held2, v1, v2, p1, p2] = *sides;
  Node* lo = a.x1->id() < a.x2->id() ? a.x1 : a.x2;
  Node* hi = lo == a.x1 ? a.x2 : a.x1;
  WriteLock l1(&lo->content_mu);
  WriteLock l2(&hi->content_mu);
  DETOURFS_TRY(ClearWhiteouts(a.d1, a.n1, a.s1));
  DETOURFS_TRY(ClearWhiteouts(a.d2, a.n2, a.s2));
  const bool routed = a.s1.route.For(a.s1.type) >= 0 || a.s2.route.For(a.s2.type) >= 0;
  DETOURFS_TRY(CarryIds(a.d1, v1, a.d2, v2));
  DETOURFS_TRY(CarryIds(a.d2, v2, a.d1, v1));
  DETOURFS_TRY(changes_->Rename(At{Layer::kVolume, v1, a.n1, p1, routed},
                                At{Layer::kVolume, v2, a.n2, p2, routed}, RENAME_EXCHANGE,
                                a.x1->pid()));
  Renamed(a, true);
  return {};
}

Result<void> OverlayImpl::ExchangeCarrying(RenameArgs& a, RenameNeeds& have, RenameNeeds* need) {
  // Two entries of the volume, at least one an unrouted directory with tier
  // parts (the scaffolding of routed content below it): the volume's
  // entries swap, and each tier's parts with them, in one recorded change
  // (intent_log.h). Nothing is copied: routed content stays on its tier.
  if (!have.exclusive) {
    need->exclusive = true;
    return Errno{EAGAIN};
  }
  Result<VolumeSides> sides = VolumeSidesOf(a);
  if (!sides.ok()) return Errno{sides.error()};
  // Plain references, not a structured binding: lambdas below use them and
  // clang before 16 cannot capture a binding.
  const std::string& p1 = sides->p1;
  const std::string& p2 = sides->p2;
  auto part = [](Node* x, const Binding& b, Layer t) {
    return x->is_dir() && b.parts[Index(t)].present();
  };
  // Each part's new parent on its tier, made before the entries' locks.
  for (Layer t : kTiers) {
    if (part(a.x1, a.x1->Snapshot(), t)) DETOURFS_TRY(EnsureTierDir(a.d2, t));
    if (part(a.x2, a.x2->Snapshot(), t)) DETOURFS_TRY(EnsureTierDir(a.d1, t));
  }
  Node* lo = a.x1->id() < a.x2->id() ? a.x1 : a.x2;
  Node* hi = lo == a.x1 ? a.x2 : a.x1;
  WriteLock l1(&lo->content_mu);
  WriteLock l2(&hi->content_mu);
  a.x1->content_mu.AssertHeld();  // as lo or hi
  a.x2->content_mu.AssertHeld();
  const Binding b1 = a.x1->binding();
  const Binding b2 = a.x2->binding();
  if (!b1.parts[Index(Layer::kVolume)].present() || !b2.parts[Index(Layer::kVolume)].present()) {
    return Errno{EIO};  // the volume's entries are what swaps
  }
  Intent intent;
  auto tree = [](Layer l, const std::string& p) { return IntentPath{l, Area::kTree, p}; };
  // Swapped through a name aside, each step a rename that cannot replace
  // anything and that is skipped when its source is gone (done before a
  // crash). On the volume the name aside is in held/, which a start never
  // clears: if the record were lost with its tier, the entry waits there,
  // never deleted. A tier's in its own work/.
  auto swap = [&](Layer l) {
    const IntentPath aside{l, IsTier(l) ? Area::kWork : Area::kHeld, ChangeLayer::WorkName("swap")};
    intent.steps.push_back({StepKind::kRenameNoReplace, tree(l, p1), aside});
    intent.steps.push_back({StepKind::kRenameNoReplace, tree(l, p2), tree(l, p1)});
    intent.steps.push_back({StepKind::kRenameNoReplace, aside, tree(l, p2)});
  };
  swap(Layer::kVolume);
  for (Layer t : kTiers) {
    if (!changes_->has(t)) continue;
    const bool h1 = part(a.x1, b1, t);
    const bool h2 = part(a.x2, b2, t);
    // A whiteout at either name goes first. Anything else there that is
    // not the entry's part (content the rules no longer route there) is
    // never removed: the exchange is refused.
    for (auto [s, has_part, p] : {std::tuple{&a.s1, h1, p1}, std::tuple{&a.s2, h2, p2}}) {
      const LayerHit& hit = s->at[Index(t)];
      if (!hit.has || has_part) continue;
      if (!hit.whiteout) {
        spdlog::warn("exchange of '{}' and '{}': the {} holds '{}' it does not serve; kept", p1, p2,
                     LayerName(t), p);
        return Errno{EBUSY};
      }
      intent.steps.push_back({StepKind::kDropWhiteout, tree(t, p), {}});
    }
    if (h1 && h2) {
      swap(t);
    } else if (h1) {
      DETOURFS_TRY(EnsureTierDir(a.d2, t));  // made above unless it just appeared
      intent.steps.push_back({StepKind::kRenameNoReplace, tree(t, p1), tree(t, p2)});
    } else if (h2) {
      DETOURFS_TRY(EnsureTierDir(a.d1, t));
      intent.steps.push_back({StepKind::kRenameNoReplace, tree(t, p2), tree(t, p1)});
    }
  }
  DETOURFS_TRY(CarryIds(a.d1, sides->v1, a.d2, sides->v2));
  DETOURFS_TRY(CarryIds(a.d2, sides->v2, a.d1, sides->v1));
  DETOURFS_TRY(changes_->Run(intent));
  // Both names changed (the flusher sees each).
  changes_->Record(ChangeKind::kRename, At{Layer::kVolume, -1, "", p1, true}, a.x1->pid());
  changes_->Record(ChangeKind::kRename, At{Layer::kVolume, -1, "", p2, true}, a.x2->pid());
  Renamed(a, true);
  return {};
}

Result<void> OverlayImpl::Move(RenameArgs& a, RenameNeeds& have, RenameNeeds* need) {
  Node* x1 = a.x1;
  const Layer to = a.s2.route.LayerFor(a.s1.type);
  const Binding b1 = x1->Snapshot();
  if (x1->is_dir()) {
    // (Into a directory whose volume part shows: else it would be hidden.)
    if (VolumeOnly(x1, a.s1) && a.s2.volume_visible) return RenameOnVolume(a, have, need);
    const Layer home = b1.layer;
    if (home == Layer::kVolume && to == Layer::kVolume) return RenameOnVolume(a, have, need);
    if (IsTier(home) && to == home) {
      if (b1.parts[Index(Layer::kVolume)].present() && !b1.opaque) {
        DETOURFS_TRY(DeepCopyUp(x1, home));
      } else if (!b1.parts[Index(home)].present()) {
        DETOURFS_TRY(EnsureTierDir(x1, home));
      }
      return RenameOnTier(a, home);
    }
    // Across layers: frozen, copied aside (renames go on meanwhile), then
    // published with the renames lock held exclusively.
    if (!have.freeze) {
      need->freeze = true;
      need->freeze_roots.push_back(table_.Pin(x1));
      return Errno{EAGAIN};
    }
    if (have.staged && (!StagedFor(*have.staged, x1, a.d1, a.n1, to) ||
                        have.staged->dst_pid != (a.x2 ? a.x2->pid() : 0))) {
      have.staged.reset();  // things changed between the rounds: copy again
    }
    // Copied between the rounds, never under the lock (also when a round
    // found its copy stale: a path above it was renamed meanwhile).
    if (!have.staged) return RequestStaging(a, to, need);  // the tree is frozen
    if (!have.exclusive) {
      need->exclusive = true;
      return Errno{EAGAIN};
    }
    return PublishTree(a, *have.staged);
  }
  if (b1.index) return RenameIndexed(a, to, have, need);
  if (b1.layer == Layer::kVolume) {
    const Layer from = a.s1.route.LayerFor(a.s1.type);
    if (to == Layer::kVolume) return RenameOnVolume(a, have, need);
    if (to == from) {
      {
        WriteLock lock(&x1->content_mu);
        if (x1->binding().layer == Layer::kVolume) DETOURFS_TRY(CopyUp(x1, to));
      }
      // A hard-linked one is now in the tier's index.
      if (x1->Snapshot().index) return RenameIndexed(a, to, have, need);
    } else {
      if (a.s1.st.st_nlink > 1) return MoveLinked(a, to, have, need);  // a copy would split it
      return MoveFileAcross(a, to, have, need);
    }
    return RenameOnTier(a, to);
  }
  if (b1.layer == to) return RenameOnTier(a, to);
  return MoveFileAcross(a, to, have, need);
}

void OverlayImpl::Renamed(RenameArgs& a, bool exchanged) {
  if (exchanged) {
    table_.Renamed(a.x1, a.d1, a.n1, a.d2, a.n2);
    table_.Renamed(a.x2, a.d2, a.n2, a.d1, a.n1);
  } else {
    if (a.x2 != nullptr) {
      // (Whether it is indexed is looked at after the move, under its own
      // lock: here the moved file's is held.)
      if (!a.x2->is_dir()) a.replaced_index = true;
      if (table_.Unlinked(a.x2, a.d2, a.n2)) {
        if (a.victim_fd) {
          table_.KeepOrphan(a.x2, a.victim_fd, a.victim_st);
        }
        resolver_.Drop(a.x2->id());
      }
    }
    table_.Renamed(a.x1, a.d1, a.n1, a.d2, a.n2);
  }
  if (a.x1->is_dir() || (a.x2 != nullptr && a.x2->is_dir())) table_.BumpNamespace();
}

void OverlayImpl::DropReplacedIndexName(RenameArgs& a) {
  // If its one name left is a link of the entry on the tier, the entry
  // goes and the node is unbound from it, as after an unlink. The count
  // changes only under the node's lock (a link raises it under the same).
  WriteLock lock(&a.x2->content_mu);
  const Binding b2 = a.x2->binding();
  if (b2.index && DropIndexName(a.x2, b2, a.d2, a.n2)) UnbindIndex(a.x2);
}

Result<void> OverlayImpl::HoldReplacedVolumeInode(const RenameArgs& a) {
  // The last volume name of an indexed file, replaced: its inode, whose
  // number the index entry reports, is held, or the rename would free it.
  // (Asked of the index sets, not the node: the rename holds x1's lock,
  // and taking x2's here would order the two against a rename the other
  // way.)
  if (a.x2 == nullptr || a.x2->is_dir() || !IndexedOnATier(a.x2->pid())) return {};
  const LayerHit& v = a.s2.at[Index(Layer::kVolume)];
  if (!v.has || v.st.st_nlink != 1 || static_cast<uint64_t>(v.st.st_ino) != a.x2->pid()) {
    return {};
  }
  Result<SharedFd> dir = resolver_.DirFd(a.d2, Layer::kVolume);
  if (!dir.ok()) return Errno{dir.error()};
  Result<UniqueFd> fd = sys::OpenBeneath((*dir)->get(), std::string(a.n2).c_str(), O_PATH);
  if (!fd.ok()) return Errno{fd.error()};
  return changes_->HoldInode(fd->get(), a.x2->pid());
}

Result<void> OverlayImpl::CopyVictimUp(const RenameArgs& a) {
  if (a.x2 == nullptr || a.x2->is_dir()) return {};
  WriteLock lock(&a.x2->content_mu);
  const Binding& b = a.x2->binding();
  const Layer home = a.s2.route.LayerFor(a.s2.type);
  if (b.layer == Layer::kVolume && !b.index && a.s2.st.st_nlink > 1 && IsTier(home)) {
    return CopyUp(a.x2, CopyUpTarget(a.x2, b).value_or(home), true);
  }
  return {};
}

Result<void> OverlayImpl::HoldVictim(RenameArgs& a, bool on_tier) {
  // A file a rename replaces loses its name: keep an fd for its open
  // handles and the kernel, as an unlink would.
  if (a.x2 == nullptr || a.x2->is_dir()) return {};
  if (!on_tier) {
    DETOURFS_TRY(HoldReplacedVolumeInode(a));
  } else {
    DETOURFS_TRY(CopyVictimUp(a));  // done already when called ahead
  }
  ReadLock lock(&a.x2->content_mu);
  const Binding& b = a.x2->binding();
  Result<SharedFd> fd = resolver_.Fd(a.x2, b);
  if (!fd.ok()) return {};
  Result<struct stat> st = sys::Fstat((*fd)->get());
  if (!st.ok()) return {};
  a.victim_fd = *fd;
  a.victim_st = *st;
  return {};
}

Result<void> OverlayImpl::RenameOnVolume(RenameArgs& a, RenameNeeds& have, RenameNeeds* need) {
  Result<VolumeSides> sides = VolumeSidesOf(a);
  if (!sides.ok()) return Errno{sides.error()};
  const auto& [held1, held2, v1, v2, p1, p2] = *sides;
  const Binding b1 = a.x1->Snapshot();
  const Binding b2 = a.x2 != nullptr ? a.x2->Snapshot() : Binding{};
  // Tier parts that move with the volume's directory (an unrouted one's
  // scaffolding), and the replaced directory's, which go.
  std::vector<Layer> carried;
  std::vector<Layer> dropped;
  for (Layer t : kTiers) {
    if (a.x1->is_dir() && b1.parts[Index(t)].present()) carried.push_back(t);
    if (a.x2 != nullptr && a.x2->is_dir() && b2.parts[Index(t)].present()) dropped.push_back(t);
  }
  // A name the volume holds but the merged view hides (a directory removed
  // through the mount under a directory-only rule's name) makes way first.
  const LayerHit& hidden = a.s2.at[Index(Layer::kVolume)];
  const bool hidden_dst = !a.s2.exists && hidden.has;
  // The replaced directory may still hold entries the tiers hide; or the
  // volume's entry at its name is hidden whole (an opaque directory made
  // there on a tier after an rm -rf, as the probe finds it now): it goes
  // first.
  bool dst_full = a.x2 != nullptr && a.x2->is_dir() && hidden.has && a.s2.binding.opaque;
  if (a.x2 != nullptr && a.x2->is_dir() && b2.parts[Index(Layer::kVolume)].present()) {
    Result<SharedFd> dfd = resolver_.DirFd(a.x2, Layer::kVolume);
    if (dfd.ok()) {
      Result<std::vector<WalkItem>> items = ListDir((*dfd)->get());
      dst_full = items.ok() && !items->empty();
    }
  }
  // Several layers at once: one recorded change (intent_log.h), with the
  // renames lock held exclusively.
  const bool recorded = !carried.empty() || !dropped.empty() || dst_full;
  if (recorded && !have.exclusive) {
    need->exclusive = true;
    return Errno{EAGAIN};
  }
  // The destination's parts on the tiers, made before x1's lock is taken:
  // EnsureTierDir reads its ancestors' bindings under their locks, and no
  // node's lock is held while another's is waited for.
  if (recorded) {
    for (Layer t : carried) DETOURFS_TRY(EnsureTierDir(a.d2, t));
  }
  DETOURFS_TRY(HoldVictim(a, false));  // before x1's lock (MoveFile)
  std::optional<WriteLock> lock(std::in_place, &a.x1->content_mu);
  a.x1->content_mu.AssertHeld();  // (the analysis does not see through optional)
  if (a.x1->is_dir() && !a.x1->binding().parts[Index(Layer::kVolume)].present()) return Errno{EIO};
  DETOURFS_TRY(CarryIds(a.d1, v1, a.d2, v2));
  const bool routed = a.s1.route.For(a.s1.type) >= 0 || a.s2.route.For(a.s1.type) >= 0;
  if (!recorded) {
    if (hidden_dst) {
      DETOURFS_TRY(changes_->Trash(At{Layer::kVolume, v2, a.n2, p2, true}));
    }
    DETOURFS_TRY(ClearWhiteouts(a.d2, a.n2, a.s2));
    unsigned int flags = a.flags & (RENAME_NOREPLACE | RENAME_WHITEOUT);
    if (flags & RENAME_WHITEOUT) {
      // The whiteout left behind is the caller's, as ext4 makes it.
      AsCaller as(a.caller);
      DETOURFS_TRY(as.status());
      DETOURFS_TRY(changes_->Rename(At{Layer::kVolume, v1, a.n1, p1, routed},
                                    At{Layer::kVolume, v2, a.n2, p2, routed}, flags, a.x1->pid()));
    } else {
      DETOURFS_TRY(changes_->Rename(At{Layer::kVolume, v1, a.n1, p1, routed},
                                    At{Layer::kVolume, v2, a.n2, p2, routed}, flags, a.x1->pid()));
    }
    Renamed(a, false);
    return {};
  }
  Intent intent;
  auto tree = [](Layer l, const std::string& p) { return IntentPath{l, Area::kTree, p}; };
  if (dst_full || hidden_dst) {
    intent.steps.push_back({StepKind::kTrash, tree(Layer::kVolume, p2), {}});
  }
  for (Layer t : kTiers) {
    // A whiteout there would hide what arrives.
    if (a.s2.at[Index(t)].whiteout) {
      intent.steps.push_back({StepKind::kDropWhiteout, tree(t, p2), {}});
    }
  }
  intent.steps.push_back({StepKind::kRename, tree(Layer::kVolume, p1), tree(Layer::kVolume, p2)});
  for (Layer t : dropped) {
    // The replaced directory was empty in the merged view: anything its
    // part there holds but whiteouts is content no rule serves, set aside.
    Result<SharedFd> tfd = resolver_.DirFd(a.d2, t);
    if (tfd.ok() && HoldsUnservedContent((*tfd)->get(), std::string(a.n2))) {
      intent.steps.push_back({StepKind::kRenameNoReplace, tree(t, p2),
                              IntentPath{t, Area::kKept, ChangeLayer::WorkName("kept")}});
    } else {
      intent.steps.push_back({StepKind::kTrash, tree(t, p2), {}});
    }
  }
  for (Layer t : carried) {
    if (std::find(dropped.begin(), dropped.end(), t) == dropped.end()) {
      // Anything there is content no rule serves: set aside, never deleted.
      intent.steps.push_back({StepKind::kRenameNoReplace, tree(t, p2),
                              IntentPath{t, Area::kKept, ChangeLayer::WorkName("kept")}});
    }
    intent.steps.push_back({StepKind::kRenameNoReplace, tree(t, p1), tree(t, p2)});
  }
  DETOURFS_TRY(changes_->Run(intent));
  changes_->Record(ChangeKind::kRename, At{Layer::kVolume, -1, "", p1, true}, a.x1->pid());
  if (a.flags & RENAME_WHITEOUT) {
    // The caller's whiteout, as ext4 leaves it (a step of its own here).
    DETOURFS_TRY(LeaveUserWhiteout(a, Layer::kVolume, v1, false));
  }
  if (a.x2 != nullptr) {
    // The replaced directory's parts are gone. x1's lock goes first: never
    // one node's lock taken under another's (an exchange takes two in id
    // order; TSan saw the inversion).
    lock.reset();
    WriteLock l2(&a.x2->content_mu);
    Binding& b = a.x2->mutable_binding();
    for (Layer l : kAllLayers) b.parts[Index(l)] = Part::Absent();
  }
  Renamed(a, false);
  // Descendants whose routes the new path changes are handled by the next
  // lookups: the rules apply to paths, the parts moved as they were.
  return {};
}

bool OverlayImpl::HoldOrigin(Node* d, std::string_view n, const Slot& s, Node* x, bool any_file) {
  const LayerHit& v = s.at[Index(Layer::kVolume)];
  if (!s.volume_visible || !v.has) return false;
  const bool origin = x->pid() == static_cast<uint64_t>(v.st.st_ino);
  // A directory's own volume part (copied up whole before a rename on its
  // tier) is what persisted of its content: held, never left hidden where
  // a file made at the name later would clear it.
  const bool own_dir =
      x->is_dir() && S_ISDIR(v.st.st_mode) && s.binding.parts[Index(Layer::kVolume)].present();
  if (!origin && !own_dir && !(any_file && !S_ISDIR(v.st.st_mode))) return false;
  Result<SharedFd> vfd = resolver_.DirFd(d, Layer::kVolume);
  if (!vfd.ok()) return false;
  return changes_->Hold(At{Layer::kVolume, (*vfd)->get(), n, Join(PathOf(d), n), true}, x->pid())
      .ok();
}

Result<void> OverlayImpl::RenameOnTier(RenameArgs& a, Layer tier) {
  Result<SharedFd> t1 = EnsureTierDir(a.d1, tier);
  if (!t1.ok()) return Errno{t1.error()};
  Result<SharedFd> t2 = EnsureTierDir(a.d2, tier);
  if (!t2.ok()) return Errno{t2.error()};
  const std::string p1 = Join(PathOf(a.d1), a.n1);
  const std::string p2 = Join(PathOf(a.d2), a.n2);
  DETOURFS_TRY(HoldVictim(a, true));  // before x1's lock (MoveFile)
  WriteLock lock(&a.x1->content_mu);
  const Binding& b1 = a.x1->binding();
  // The volume's entry at the old name stays hidden: a whiteout takes the
  // name in the same renameat2 — unless it is held instead (HoldOrigin).
  const bool whiteout_src = a.s1.volume_visible && a.s1.at[Index(Layer::kVolume)].has &&
                            !HoldOrigin(a.d1, a.n1, a.s1, a.x1);
  const LayerHit& dst_tier = a.s2.at[Index(tier)];
  const LayerHit& dst_vol = a.s2.at[Index(Layer::kVolume)];
  if (a.x1->is_dir()) {
    // Landing where the volume has a directory: opaque, so none of the
    // volume's content there shows through.
    if (a.s2.volume_visible && dst_vol.has && S_ISDIR(dst_vol.st.st_mode) && !b1.opaque) {
      Result<SharedFd> fd = resolver_.Fd(a.x1, b1, tier);
      if (!fd.ok()) return Errno{fd.error()};
      DETOURFS_TRY(changes_->SetOpaque(At{tier, (*t1)->get(), a.n1, p1, true}, (*fd)->get(), true,
                                       a.x1->pid()));
      a.x1->mutable_binding().opaque = true;
      a.x1->generation.fetch_add(1, std::memory_order_acq_rel);
    }
    if (a.x2 != nullptr && dst_tier.has && !dst_tier.whiteout) {
      // The empty directory replaced may hold whiteouts: hide the volume's
      // part of it whole (opaque), then drop them, so it can be replaced.
      Result<SharedFd> fd = resolver_.DirFd(a.x2, tier);
      if (fd.ok()) {
        DETOURFS_TRY(changes_->SetOpaque(At{tier, (*t2)->get(), a.n2, p2, true}, (*fd)->get(), true,
                                         a.x2->pid()));
        Result<std::vector<WalkItem>> items = ListDir((*fd)->get());
        if (items.ok()) {
          for (const WalkItem& item : *items) {
            (void)changes_->Remove(At{tier, (*fd)->get(), item.name, Join(p2, item.name), true},
                                   S_ISDIR(item.type), false, false, 0);
          }
        }
      }
    }
  }
  // (A whiteout there is no entry of the merged view: replaced.)
  unsigned int flags = dst_tier.whiteout ? 0 : a.flags & RENAME_NOREPLACE;
  const bool dir_over_whiteout = a.x1->is_dir() && dst_tier.whiteout;
  if (dir_over_whiteout) {
    // A directory cannot replace a whiteout: they swap, and the whiteout
    // ends at the old name — where one is wanted, or else removed.
    flags = RENAME_EXCHANGE;
  } else if (whiteout_src) {
    flags |= RENAME_WHITEOUT;
  }
  // A spilled file replaced here, open nowhere, takes its data along; one
  // still open keeps it (set aside at the next start: its data outlives it).
  bool replaced_goes = false;
  if (a.x2 != nullptr && !a.x2->is_dir()) {
    MutexLock lock(&a.x2->handles_mu);
    replaced_goes = a.x2->open_handles.empty();
  }
  DETOURFS_TRY(changes_->Rename(At{tier, (*t1)->get(), a.n1, p1, true},
                                At{tier, (*t2)->get(), a.n2, p2, true}, flags, a.x1->pid(),
                                replaced_goes));
  if (dir_over_whiteout && !whiteout_src) {
    (void)changes_->Remove(At{tier, (*t1)->get(), a.n1, p1, true}, false, false, false, 0);
  }
  Renamed(a, false);
  if (a.flags & RENAME_WHITEOUT) return LeaveUserWhiteout(a, tier, (*t1)->get(), whiteout_src);
  return {};
}

Result<void> OverlayImpl::LinkIndexedUp(Node* d, std::string_view n, const Slot& s, Node* x) {
  const Layer tier = x->Snapshot().layer;
  const LayerHit& up = s.at[Index(tier)];
  if (up.has && !up.whiteout) return {};
  // The volume name gets its link on the tier (the same file either way:
  // nothing changes for anyone); the volume's entry stays behind it.
  Result<SharedFd> t = EnsureTierDir(d, tier);
  if (!t.ok()) return Errno{t.error()};
  ReadLock lock(&x->content_mu);
  Result<SharedFd> entry = resolver_.Fd(x, x->binding());
  if (!entry.ok()) return Errno{entry.error()};
  return changes_->Link((*entry)->get(), At{tier, (*t)->get(), n, Join(PathOf(d), n), true}, false,
                        x->pid());
}

Result<void> OverlayImpl::RenameIndexed(RenameArgs& a, Layer to, RenameNeeds& have,
                                        RenameNeeds* need) {
  // A name of a hard-linked file whose copy is in a tier's index: a volume
  // name (the file's own, hidden behind the index) or a link on the tier
  // to the index entry. The file stays one inode on each layer.
  const Layer tier = a.x1->Snapshot().layer;
  const LayerHit& up = a.s1.at[Index(tier)];
  const bool upper = up.has && !up.whiteout;
  const Layer from = a.s1.route.LayerFor(a.s1.type);
  if (to == tier && (upper || from == tier)) {
    DETOURFS_TRY(LinkIndexedUp(a.d1, a.n1, a.s1, a.x1));
    return RenameOnTier(a, tier);
  }
  if (to == Layer::kVolume && !upper) return RenameOnVolume(a, have, need);
  if (upper) {
    // Its one name left is this link on the tier: an ordinary tier file
    // from now on, which moves as any (looked at again in the next round).
    WriteLock lock(&a.x1->content_mu);
    if (LeaveIndexIfLone(a.x1)) {
      need->exclusive = true;
      return Errno{EAGAIN};
    }
  }
  return MoveLinked(a, to, have, need);
}

Result<void> OverlayImpl::MoveLinked(RenameArgs& a, Layer to, RenameNeeds& have,
                                     RenameNeeds* need) {
  // One recorded change: the new name published (a link of the same inode,
  // staged aside), the old one hidden or gone. What the link needs copied
  // first is copied before, with the renames lock held shared.
  if (!have.exclusive) {
    DETOURFS_TRY(CopyLinkedAhead(a.x1, to));
    if (IsTier(to)) DETOURFS_TRY(CopyVictimUp(a));
    need->exclusive = true;
    return Errno{EAGAIN};
  }
  const std::string p1 = Join(PathOf(a.d1), a.n1);
  const std::string p2 = Join(PathOf(a.d2), a.n2);
  const Layer from = a.s1.route.LayerFor(a.s1.type);
  if (IsTier(to)) {
    Result<SharedFd> t2 = EnsureTierDir(a.d2, to);
    if (!t2.ok()) return Errno{t2.error()};
  }
  if (IsTier(from)) {
    Result<SharedFd> t1 = EnsureTierDir(a.d1, from);
    if (!t1.ok()) return Errno{t1.error()};
  }
  DETOURFS_TRY(HoldVictim(a, IsTier(to)));  // before x1's lock (MoveFile)
  WriteLock lock(&a.x1->content_mu);
  Result<std::shared_ptr<StagedTree>> staged = StageLink(a.x1, to);
  if (!staged.ok()) return Errno{staged.error()};
  if (!IsTier(to)) {
    // An inode that keeps an id of its own (moved to the volume from a
    // tier, the id recorded on it): the new name's directory is marked, so
    // the name reports that id once the kernel forgets it (as Link does).
    Result<struct stat> vst = sys::StatAt(changes_->work(to), (*staged)->name.c_str());
    if (!vst.ok()) return Errno{vst.error()};
    if (a.x1->pid() != static_cast<uint64_t>(vst->st_ino)) {
      Result<SharedFd> v2 = resolver_.DirFd(a.d2, Layer::kVolume);
      if (!v2.ok()) return Errno{v2.error()};
      DETOURFS_TRY(MarkIds(a.d2, (*v2)->get()));
    }
  }
  Intent intent;
  auto tree = [](Layer l, const std::string& p) { return IntentPath{l, Area::kTree, p}; };
  AddPublishSteps(a.s2,
                  {StepKind::kRename, IntentPath{to, Area::kWork, (*staged)->name}, tree(to, p2)},
                  &intent.steps);
  const LayerHit& vol = a.s1.at[Index(Layer::kVolume)];
  const bool volume_shows = a.s1.volume_visible && vol.has;
  if (IsTier(from) && a.s1.at[Index(from)].has && !a.s1.at[Index(from)].whiteout) {
    // Its link on the tier: replaced by a whiteout if the volume has the
    // name too, else gone.
    intent.steps.push_back(
        {volume_shows ? StepKind::kWhiteout : StepKind::kTrash, tree(from, p1), {}});
  } else if (IsTier(from)) {
    intent.steps.push_back({StepKind::kWhiteout, tree(from, p1), {}});  // hides the volume's
  } else if (a.x1->pid() == static_cast<uint64_t>(vol.st.st_ino)) {
    // The volume inode whose number is the file's id: held, not freed.
    intent.steps.push_back({StepKind::kHold, tree(Layer::kVolume, p1),
                            IntentPath{Layer::kVolume, Area::kHeld, ChangeLayer::WorkName("x")}});
  } else {
    intent.steps.push_back({StepKind::kTrash, tree(Layer::kVolume, p1), {}});
  }
  bool kept = false;
  Result<void> ran = changes_->Run(intent, &kept);
  (*staged)->published = ran.ok() || kept;
  if (!ran.ok()) return ran;
  Renamed(a, false);
  if (a.flags & RENAME_WHITEOUT) {
    Result<SharedFd> d1 =
        IsTier(from) ? resolver_.DirFd(a.d1, from) : resolver_.DirFd(a.d1, Layer::kVolume);
    if (!d1.ok()) return Errno{d1.error()};
    return LeaveUserWhiteout(a, from, (*d1)->get(), IsTier(from));
  }
  return {};
}

Result<void> OverlayImpl::LeaveUserWhiteout(RenameArgs& a, Layer layer, int dirfd,
                                            bool replace_whiteout) {
  // The caller's own whiteout: a 0:0 device anyone sees, marked on a tier
  // so it is not taken for one of the tier's whiteouts (a second step).
  // It goes where a device at that name is looked for, which is not where
  // the entry that left was when a rule routes only directories there
  // (`**/build/`).
  const Layer home = a.s1.route.LayerFor(S_IFCHR);
  const std::string n1(a.n1);
  const std::string p1 = Join(PathOf(a.d1), a.n1);
  SharedFd home_fd;
  if (home != layer) {
    Result<SharedFd> fd =
        IsTier(home) ? EnsureTierDir(a.d1, home) : resolver_.DirFd(a.d1, Layer::kVolume);
    if (!fd.ok()) return Errno{fd.error()};
    home_fd = *fd;
    dirfd = home_fd->get();
    layer = home;
  }
  if (IsTier(layer)) {
    // A whiteout there (the rename's, or one hiding the volume's entry) is
    // replaced.
    Result<struct stat> st = sys::StatAt(dirfd, n1.c_str());
    Result<bool> wh = st.ok() ? markers::IsWhiteout(dirfd, n1.c_str(), *st) : Result<bool>(false);
    if (!wh.ok()) return Errno{wh.error()};
    replace_whiteout = *wh;
  } else {
    // On the volume the moved entry's name may still hold what a tier
    // whiteout hid (a directory's volume part, the only persisted copy of
    // what moved): it goes to held/, never deleted, and the tiers'
    // whiteouts at the name go, so the device shows.
    replace_whiteout = false;
    if (Result<struct stat> there = sys::StatAt(dirfd, n1.c_str()); there.ok()) {
      DETOURFS_TRY(changes_->Hold(At{Layer::kVolume, dirfd, a.n1, p1, true},
                                  static_cast<uint64_t>(there->st_ino)));
    }
    for (Layer t : kTiers) {
      Result<SharedFd> tfd = resolver_.DirFd(a.d1, t);
      if (!tfd.ok()) continue;
      Result<struct stat> st = sys::StatAt((*tfd)->get(), n1.c_str());
      if (!st.ok()) continue;
      Result<bool> wh = markers::IsWhiteout((*tfd)->get(), n1.c_str(), *st);
      if (wh.ok() && *wh) DETOURFS_TRY(changes_->Trash(At{t, (*tfd)->get(), a.n1, p1, true}));
    }
  }
  MakeSpec spec;
  spec.type = S_IFCHR;
  spec.mode = 0;
  spec.rdev = makedev(0, 0);
  spec.id = ids_->Next();
  spec.replace_whiteout = replace_whiteout;
  Result<Made> made =
      changes_->Make(At{layer, dirfd, a.n1, p1, IsTier(layer)}, spec, a.caller, dirfd);
  if (!made.ok()) return Errno{made.error()};
  return {};
}

Result<void> OverlayImpl::Exchange(RenameArgs& a, RenameNeeds& have, RenameNeeds* need) {
  Node* x1 = a.x1;
  Node* x2 = a.x2;
  if (VolumeOnly(x1, a.s1) && VolumeOnly(x2, a.s2)) return ExchangeOnVolume(a);
  // Where each must live at the other's name.
  const Layer to1 = a.s2.route.LayerFor(a.s1.type);
  const Layer to2 = a.s1.route.LayerFor(a.s2.type);
  // The layer each name's entry is on now: a directory with no tier part
  // and a hard-linked file's volume name are on the volume.
  auto physical = [](Node* x, const Slot& s) {
    const Binding b = x->Snapshot();
    if (VolumeOnly(x, s)) return Layer::kVolume;
    if (x->is_dir() || !b.index) return b.layer;
    const LayerHit& up = s.at[Index(b.layer)];
    return up.has && !up.whiteout ? b.layer : Layer::kVolume;
  };
  if (to1 != to2 || (!IsTier(to1) && (physical(x1, a.s1) != Layer::kVolume ||
                                      physical(x2, a.s2) != Layer::kVolume))) {
    return ExchangeAcross(a, to1, to2, have, need);
  }
  const Layer layer = to1;
  if (!IsTier(layer)) {
    // Unrouted directories carry their tier parts: not in one step.
    for (Node* x : {x1, x2}) {
      const Binding b = x->Snapshot();
      for (Layer t : kTiers) {
        if (x->is_dir() && b.parts[Index(t)].present()) return ExchangeCarrying(a, have, need);
      }
    }
  } else {
    // Both brought up to the tier first, whole.
    for (Node* x : {x1, x2}) {
      const Binding b = x->Snapshot();
      if (x->is_dir()) {
        if (b.layer != layer) return ExchangeAcross(a, to1, to2, have, need);
        if (b.parts[Index(Layer::kVolume)].present() && !b.opaque) {
          DETOURFS_TRY(DeepCopyUp(x, layer));
        } else if (!b.parts[Index(layer)].present()) {
          DETOURFS_TRY(EnsureTierDir(x, layer));
        }
      } else if (b.index) {
        // One name of a hard-linked file: on the tier of its index it is a
        // link to the index entry (made now for a volume name of it).
        if (b.layer != layer) return ExchangeAcross(a, to1, to2, have, need);
        const bool x_is_1 = x == x1;
        DETOURFS_TRY(
            LinkIndexedUp(x_is_1 ? a.d1 : a.d2, x_is_1 ? a.n1 : a.n2, x_is_1 ? a.s1 : a.s2, x));
      } else if (b.layer == Layer::kVolume) {
        // Copied up at its own name: only where that name routes a file to
        // the tier (not under a directory-only rule's name, `build/`).
        const bool x_is_1 = x == x1;
        const Slot& s = x_is_1 ? a.s1 : a.s2;
        if (s.route.LayerFor(s.type) != layer) return ExchangeAcross(a, to1, to2, have, need);
        {
          WriteLock lock(&x->content_mu);
          if (x->binding().layer == Layer::kVolume) DETOURFS_TRY(CopyUp(x, layer));
        }
        // A hard-linked file is copied into the tier's index: its name on
        // the tier is a link to the entry, made now (the exchange found
        // none, and the volume name behind it is held: the name was lost).
        if (x->Snapshot().index) {
          DETOURFS_TRY(LinkIndexedUp(x_is_1 ? a.d1 : a.d2, x_is_1 ? a.n1 : a.n2, s, x));
        }
      } else if (b.layer != layer) {
        return ExchangeAcross(a, to1, to2, have, need);
      }
    }
  }
  Result<SharedFd> f1 = IsTier(layer) ? EnsureTierDir(a.d1, layer) : resolver_.DirFd(a.d1, layer);
  if (!f1.ok()) return Errno{f1.error()};
  Result<SharedFd> f2 = IsTier(layer) ? EnsureTierDir(a.d2, layer) : resolver_.DirFd(a.d2, layer);
  if (!f2.ok()) return Errno{f2.error()};
  const std::string p1 = Join(PathOf(a.d1), a.n1);
  const std::string p2 = Join(PathOf(a.d2), a.n2);
  Node* lo = x1->id() < x2->id() ? x1 : x2;
  Node* hi = lo == x1 ? x2 : x1;
  WriteLock l1(&lo->content_mu);
  WriteLock l2(&hi->content_mu);
  if (IsTier(layer)) {
    // The volume entries the two take their ids from are held (HoldOrigin):
    // apart from them they would stay hidden where they are, and be freed
    // with an unrouted directory above them. So is any other file the
    // volume has behind either name (a volume name of a hard-linked file
    // linked up to the tier): no whiteout is left at either name, and
    // where a directory-only rule serves a file from the volume, removing
    // what the tier now holds there would bring that file back.
    (void)HoldOrigin(a.d1, a.n1, a.s1, x1, true);
    (void)HoldOrigin(a.d2, a.n2, a.s2, x2, true);
    // Directories landing where the volume has one are opaque.
    for (auto [x, s_to, dirfd, name, path] : {std::tuple{x1, &a.s2, (*f1)->get(), a.n1, p1},
                                              std::tuple{x2, &a.s1, (*f2)->get(), a.n2, p2}}) {
      x->content_mu.AssertHeld();  // as lo or hi
      const LayerHit& vol = s_to->at[Index(Layer::kVolume)];
      if (!x->is_dir() || x->binding().opaque || !s_to->volume_visible || !vol.has ||
          !S_ISDIR(vol.st.st_mode)) {
        continue;
      }
      Result<SharedFd> fd = resolver_.Fd(x, x->binding(), layer);
      if (!fd.ok()) return Errno{fd.error()};
      DETOURFS_TRY(
          changes_->SetOpaque(At{layer, dirfd, name, path, true}, (*fd)->get(), true, x->pid()));
      x->mutable_binding().opaque = true;
    }
  }
  if (!IsTier(layer)) {
    // An entry that keeps an id of its own reports it at its new name too.
    DETOURFS_TRY(CarryIds(a.d1, (*f1)->get(), a.d2, (*f2)->get()));
    DETOURFS_TRY(CarryIds(a.d2, (*f2)->get(), a.d1, (*f1)->get()));
  }
  const bool routed = a.s1.route.For(a.s1.type) >= 0 || a.s2.route.For(a.s2.type) >= 0;
  DETOURFS_TRY(changes_->Rename(At{layer, (*f1)->get(), a.n1, p1, routed},
                                At{layer, (*f2)->get(), a.n2, p2, routed}, RENAME_EXCHANGE,
                                x1->pid()));
  Renamed(a, true);
  return {};
}

}  // namespace detourfs
