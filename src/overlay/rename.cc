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

#include "overlay/overlay_impl.h"
#include "store/as_caller.h"
#include "store/tree_walk.h"
#include "sys/sys.h"

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
      if (!more.exclusive && !more.freeze && !more.staged && !more.staged2) return r;
      if (more.staged) needs.staged = std::move(more.staged);
      if (more.staged2) needs.staged2 = std::move(more.staged2);
      needs.exclusive = needs.exclusive || more.exclusive;
      if (more.freeze && !needs.freeze) {
        frozen = std::move(more.freeze_roots);
        needs.freeze = true;
      }
    }
    if (round >= 5) return Errno{EAGAIN};
    if (needs.freeze && freezes.empty()) {
      // Trees moving between layers: nothing changes inside them while they
      // are copied (requests inside wait at the gate).
      (void)pass;
      for (NodePin& root : frozen) freezes.push_back(gate_.Begin(root.get()));
    }
  }
}

Result<void> OverlayImpl::RenameLocked(Node* d1, std::string_view n1, Node* d2,
                                       std::string_view n2, unsigned int flags,
                                       const Caller& caller, RenameNeeds& have,
                                       RenameNeeds* need) {
  // Both parents' entries: the ancestor's first, unrelated ones by id.
  Node* first = d1;
  Node* second = d2 == d1 ? nullptr : d2;
  if (second != nullptr &&
      (table_.IsWithin(d1, d2) || (!table_.IsWithin(d2, d1) && d2->id() < d1->id()))) {
    std::swap(first, second);
  }
  WriteLock l1(&first->dir_mu);
  std::optional<WriteLock> l2;
  if (second != nullptr) l2.emplace(&second->dir_mu);

  Result<Slot> s1 = Probe(d1, n1);
  if (!s1.ok()) return Errno{s1.error()};
  if (!s1->exists) return Errno{ENOENT};
  Result<Slot> s2 = Probe(d2, n2);
  if (!s2.ok()) return Errno{s2.error()};
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
  std::optional<WriteLock> x2_dir;
  if (!exchange && x2 != nullptr) {
    if (S_ISDIR(s1->type) && !S_ISDIR(s2->type)) return Errno{ENOTDIR};
    if (!S_ISDIR(s1->type) && S_ISDIR(s2->type)) return Errno{EISDIR};
    if (S_ISDIR(s2->type)) {
      x2_dir.emplace(&x2->dir_mu);
      Result<bool> empty = IsEmpty(x2);
      if (!empty.ok()) return Errno{empty.error()};
      if (!*empty) return Errno{ENOTEMPTY};
    }
  }
  RenameArgs a{d1, n1, *s1, x1, d2, n2, *s2, x2, flags, caller, nullptr, {}};
  if (exchange) return Exchange(a, have, need);
  return Move(a, have, need);
}

Result<void> OverlayImpl::Move(RenameArgs& a, RenameNeeds& have, RenameNeeds* need) {
  Node* x1 = a.x1;
  const Layer to = a.s2.route.LayerFor(a.s1.type);
  const Binding b1 = x1->Snapshot();
  if (x1->is_dir()) {
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
    if (have.staged && (have.staged->src_pid != x1->pid() || have.staged->layer != to ||
                        have.staged->dst_pid != (a.x2 ? a.x2->pid() : 0))) {
      have.staged.reset();  // things changed between the rounds: copy again
    }
    if (!have.staged) {
      // Copied with the renames lock held shared only (a rename that needed
      // it exclusively first may already hold it: then it copies under it).
      Result<std::shared_ptr<StagedTree>> staged = StageTree(x1, a.d1, a.n1, a.x2, to);
      if (!staged.ok()) return Errno{staged.error()};
      if (have.exclusive) return PublishTree(a, **staged);
      need->staged = *staged;
      need->exclusive = true;
      return Errno{EAGAIN};
    }
    if (!have.exclusive) {
      need->exclusive = true;
      return Errno{EAGAIN};
    }
    return PublishTree(a, *have.staged);
  }
  if (b1.index) {
    // One name of a hard-linked file's index entry: within its layer only.
    const Layer name_layer = a.s1.at[Index(b1.layer)].has ? b1.layer : Layer::kVolume;
    if (name_layer == Layer::kVolume && to == Layer::kVolume) return RenameOnVolume(a, have, need);
    if (name_layer == b1.layer && to == b1.layer) return RenameOnTier(a, to);
    return Errno{EXDEV};
  }
  if (b1.layer == Layer::kVolume) {
    const Layer from = a.s1.route.LayerFor(a.s1.type);
    if (to == Layer::kVolume) return RenameOnVolume(a, have, need);
    if (to == from) {
      WriteLock lock(&x1->content_mu);
      if (x1->binding().layer == Layer::kVolume) DETOURFS_TRY(CopyUp(x1, to));
    } else {
      if (!have.exclusive) {
        need->exclusive = true;
        return Errno{EAGAIN};
      }
      return MoveFile(a, to);
    }
    return RenameOnTier(a, to);
  }
  if (b1.layer == to) return RenameOnTier(a, to);
  if (!have.exclusive) {
    need->exclusive = true;
    return Errno{EAGAIN};
  }
  return MoveFile(a, to);
}

void OverlayImpl::Renamed(RenameArgs& a, bool exchanged) {
  if (exchanged) {
    table_.Renamed(a.x1, a.d1, a.n1, a.d2, a.n2);
    table_.Renamed(a.x2, a.d2, a.n2, a.d1, a.n1);
  } else {
    if (a.x2 != nullptr) {
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

Result<void> OverlayImpl::HoldVictim(RenameArgs& a) {
  // A file a rename replaces loses its name: keep an fd for its open
  // handles and the kernel, as an unlink would.
  if (a.x2 == nullptr || a.x2->is_dir()) return {};
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

Result<void> OverlayImpl::RenameOnVolume(RenameArgs& a, RenameNeeds& have,
                                         RenameNeeds* need) {
  Result<SharedFd> v1 = resolver_.DirFd(a.d1, Layer::kVolume);
  if (!v1.ok()) return Errno{v1.error()};
  Result<SharedFd> v2 = resolver_.DirFd(a.d2, Layer::kVolume);
  if (!v2.ok()) return Errno{v2.error()};
  const std::string p1 = Join(PathOf(a.d1), a.n1);
  const std::string p2 = Join(PathOf(a.d2), a.n2);
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
  // The replaced directory may still hold entries the tiers hide.
  bool dst_full = false;
  if (a.x2 != nullptr && a.x2->is_dir() && b2.parts[Index(Layer::kVolume)].present()) {
    Result<SharedFd> dfd = resolver_.DirFd(a.x2, Layer::kVolume);
    if (dfd.ok()) {
      Result<std::vector<WalkItem>> items = ListDir((*dfd)->get());
      dst_full = items.ok() && !items->empty();
    }
  }
  WriteLock lock(&a.x1->content_mu);
  if (a.x1->is_dir() && !a.x1->binding().parts[Index(Layer::kVolume)].present()) return Errno{EIO};
  DETOURFS_TRY(HoldVictim(a));
  const bool routed = a.s1.route.For(a.s1.type) >= 0 || a.s2.route.For(a.s1.type) >= 0;
  if (carried.empty() && dropped.empty() && !dst_full) {
    if (hidden_dst) {
      DETOURFS_TRY(changes_->Trash(At{Layer::kVolume, (*v2)->get(), a.n2, p2, true}));
    }
    unsigned int flags = a.flags & (RENAME_NOREPLACE | RENAME_WHITEOUT);
    if (flags & RENAME_WHITEOUT) {
      // The whiteout left behind is the caller's, as ext4 makes it.
      AsCaller as(a.caller);
      DETOURFS_TRY(as.status());
      DETOURFS_TRY(changes_->Rename(At{Layer::kVolume, (*v1)->get(), a.n1, p1, routed},
                                    At{Layer::kVolume, (*v2)->get(), a.n2, p2, routed}, flags,
                                    a.x1->pid()));
    } else {
      DETOURFS_TRY(changes_->Rename(At{Layer::kVolume, (*v1)->get(), a.n1, p1, routed},
                                    At{Layer::kVolume, (*v2)->get(), a.n2, p2, routed}, flags,
                                    a.x1->pid()));
    }
    Renamed(a, false);
    return {};
  }
  // Several layers at once: one recorded change (intent_log.h).
  if (!have.exclusive) {
    need->exclusive = true;
    return Errno{EAGAIN};
  }
  if (a.flags & RENAME_WHITEOUT) return Errno{EINVAL};  // not for directories with tier parts
  for (Layer t : carried) DETOURFS_TRY(EnsureTierDir(a.d2, t));
  Intent intent;
  auto tree = [](Layer l, const std::string& p) { return IntentPath{l, Area::kTree, p}; };
  if (dst_full || hidden_dst) {
    intent.steps.push_back({StepKind::kTrash, tree(Layer::kVolume, p2), {}});
  }
  intent.steps.push_back({StepKind::kRename, tree(Layer::kVolume, p1), tree(Layer::kVolume, p2)});
  for (Layer t : dropped) intent.steps.push_back({StepKind::kTrash, tree(t, p2), {}});
  for (Layer t : carried) {
    if (std::find(dropped.begin(), dropped.end(), t) == dropped.end()) {
      intent.steps.push_back({StepKind::kTrash, tree(t, p2), {}});  // anything stale there
    }
    intent.steps.push_back({StepKind::kRenameNoReplace, tree(t, p1), tree(t, p2)});
  }
  DETOURFS_TRY(changes_->Run(intent));
  changes_->Record(ChangeKind::kRename, At{Layer::kVolume, -1, "", p1, true}, a.x1->pid());
  if (a.x2 != nullptr) {
    // The replaced directory's parts are gone.
    WriteLock l2(&a.x2->content_mu);
    Binding& b = a.x2->mutable_binding();
    for (Layer l : kAllLayers) b.parts[Index(l)] = Part::Absent();
  }
  Renamed(a, false);
  // Descendants whose routes the new path changes are handled by the next
  // lookups: the rules apply to paths, the parts moved as they were.
  return {};
}

Result<void> OverlayImpl::RenameOnTier(RenameArgs& a, Layer tier) {
  Result<SharedFd> t1 = EnsureTierDir(a.d1, tier);
  if (!t1.ok()) return Errno{t1.error()};
  Result<SharedFd> t2 = EnsureTierDir(a.d2, tier);
  if (!t2.ok()) return Errno{t2.error()};
  const std::string p1 = Join(PathOf(a.d1), a.n1);
  const std::string p2 = Join(PathOf(a.d2), a.n2);
  WriteLock lock(&a.x1->content_mu);
  DETOURFS_TRY(HoldVictim(a));
  const Binding& b1 = a.x1->binding();
  // The volume's entry at the old name stays hidden: a whiteout takes the
  // name in the same renameat2.
  const bool whiteout_src = a.s1.volume_visible && a.s1.at[Index(Layer::kVolume)].has;
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
    }
    if (a.x2 != nullptr && dst_tier.has && !dst_tier.whiteout) {
      // The empty directory replaced may hold whiteouts: hide the volume's
      // part of it whole (opaque), then drop them, so it can be replaced.
      Result<SharedFd> fd = resolver_.DirFd(a.x2, tier);
      if (fd.ok()) {
        DETOURFS_TRY(changes_->SetOpaque(At{tier, (*t2)->get(), a.n2, p2, true}, (*fd)->get(),
                                         true, a.x2->pid()));
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
  unsigned int flags = a.flags & RENAME_NOREPLACE;
  const bool dir_over_whiteout = a.x1->is_dir() && dst_tier.whiteout;
  if (dir_over_whiteout) {
    // A directory cannot replace a whiteout: they swap, and the whiteout
    // ends at the old name — where one is wanted, or else removed.
    flags = RENAME_EXCHANGE;
  } else if (whiteout_src) {
    flags |= RENAME_WHITEOUT;
  }
  DETOURFS_TRY(changes_->Rename(At{tier, (*t1)->get(), a.n1, p1, true},
                                At{tier, (*t2)->get(), a.n2, p2, true}, flags, a.x1->pid()));
  if (dir_over_whiteout && !whiteout_src) {
    (void)changes_->Remove(At{tier, (*t1)->get(), a.n1, p1, true}, false, false, false, 0);
  }
  Renamed(a, false);
  if (a.flags & RENAME_WHITEOUT) {
    // The caller's own whiteout: a 0:0 device anyone sees, marked so the
    // tier does not take it for one of its whiteouts (a second step).
    MakeSpec spec;
    spec.type = S_IFCHR;
    spec.mode = 0;
    spec.rdev = makedev(0, 0);
    spec.id = ids_->Next();
    spec.replace_whiteout = whiteout_src;
    Result<Made> made = changes_->Make(At{tier, (*t1)->get(), a.n1, p1, true}, spec, a.caller,
                                       (*t1)->get());
    if (!made.ok()) return Errno{made.error()};
  }
  return {};
}

Result<void> OverlayImpl::Exchange(RenameArgs& a, RenameNeeds& have, RenameNeeds* need) {
  Node* x1 = a.x1;
  Node* x2 = a.x2;
  // Where each must live at the other's name.
  const Layer to1 = a.s2.route.LayerFor(a.s1.type);
  const Layer to2 = a.s1.route.LayerFor(a.s2.type);
  auto physical = [](Node* x) {
    const Binding b = x->Snapshot();
    if (x->is_dir()) return b.layer;
    return b.index ? Layer::kVolume : b.layer;
  };
  if (to1 != to2 || (!IsTier(to1) && (physical(x1) != Layer::kVolume ||
                                      physical(x2) != Layer::kVolume))) {
    return ExchangeAcross(a, to1, to2, have, need);
  }
  const Layer layer = to1;
  if (!IsTier(layer)) {
    // Unrouted directories carry their tier parts: not in one step.
    for (Node* x : {x1, x2}) {
      const Binding b = x->Snapshot();
      for (Layer t : kTiers) {
        if (x->is_dir() && b.parts[Index(t)].present()) {
          return ExchangeAcross(a, to1, to2, have, need);
        }
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
        return Errno{EXDEV};  // one name of a hard-linked file: stays in its layer
      } else if (b.layer == Layer::kVolume) {
        WriteLock lock(&x->content_mu);
        if (x->binding().layer == Layer::kVolume) DETOURFS_TRY(CopyUp(x, layer));
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
    // Directories landing where the volume has one are opaque.
    for (auto [x, s_to, dirfd, name, path] :
         {std::tuple{x1, &a.s2, (*f1)->get(), a.n1, p1}, std::tuple{x2, &a.s1, (*f2)->get(), a.n2, p2}}) {
      const LayerHit& vol = s_to->at[Index(Layer::kVolume)];
      if (!x->is_dir() || x->binding().opaque || !s_to->volume_visible || !vol.has ||
          !S_ISDIR(vol.st.st_mode)) {
        continue;
      }
      Result<SharedFd> fd = resolver_.Fd(x, x->binding(), layer);
      if (!fd.ok()) return Errno{fd.error()};
      DETOURFS_TRY(changes_->SetOpaque(At{layer, dirfd, name, path, true}, (*fd)->get(), true,
                                       x->pid()));
      x->mutable_binding().opaque = true;
    }
  }
  const bool routed = a.s1.route.For(a.s1.type) >= 0 || a.s2.route.For(a.s2.type) >= 0;
  DETOURFS_TRY(changes_->Rename(At{layer, (*f1)->get(), a.n1, p1, routed},
                                At{layer, (*f2)->get(), a.n2, p2, routed}, RENAME_EXCHANGE,
                                x1->pid()));
  Renamed(a, true);
  return {};
}

}  // namespace detourfs
