// Overlay: removing and renaming names in routed directories — whiteouts for
// what the volume still has, merged emptiness for rmdir, renames within a
// tier and across layers (files here; whole trees in overlay_move_tree.cc),
// and RENAME_EXCHANGE.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "detourfs/overlay.h"
#include "detourfs/status.h"
#include "inodes/resolver.h"
#include "overlay/backing_tree.h"
#include "overlay/markers.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

// Removes the whiteouts in the upper directory `dirfd` (they only hid volume
// entries of a directory about to go); fails ENOTEMPTY on anything else.
Result<void> ClearWhiteouts(int dirfd) {
  Result<std::vector<std::string>> names = EntryNames(dirfd);
  if (!names.ok()) return Errno{names.error()};
  for (const std::string& n : *names) {
    Result<struct stat> st = sys::StatAt(dirfd, n.c_str());
    if (!st.ok()) return Errno{st.error()};
    Result<bool> w = markers::IsWhiteout(dirfd, n.c_str(), *st);
    if (!w.ok()) return Errno{w.error()};
    if (!*w) return Errno{ENOTEMPTY};
    DETOURFS_TRY(sys::UnlinkAt(dirfd, n.c_str(), 0));
  }
  return {};
}

// ClearWhiteouts of the directory `name` in `dirfd`: a replaced directory's
// tier part, which the kernel has seen empty.
Result<void> ClearWhiteoutsAt(int dirfd, const char* name) {
  Result<UniqueFd> d = sys::OpenBeneath(dirfd, name, O_PATH | O_DIRECTORY);
  if (!d.ok()) return Errno{d.error()};
  return ClearWhiteouts(d->get());
}

// Drops, on scope exit, the lookup reference an operation took on a node.
class LookupRef {
 public:
  LookupRef(Overlay* overlay, Node* node) : overlay_(overlay), node_(node) {}
  ~LookupRef() {
    if (node_ != nullptr) overlay_->Forget(node_->id(), 1);
  }
  LookupRef(const LookupRef&) = delete;
  LookupRef& operator=(const LookupRef&) = delete;

 private:
  Overlay* overlay_;
  Node* node_;
};

}  // namespace

Result<bool> Overlay::IsEmptyDir(Node* dir) {
  bool merged = false;
  std::vector<MergedName> names;
  DETOURFS_TRY(ListMerged(dir, &merged, &names));
  if (merged) return names.empty();
  // On one layer only: its own listing decides.
  Result<SharedFd> fd = resolver_->Fd(dir);
  if (!fd.ok()) return Errno{fd.error()};
  bool empty = true;
  DETOURFS_TRY(ForEachEntry((*fd)->get(), [&](std::string_view, ino_t, mode_t) -> Result<void> {
    empty = false;
    return {};
  }));
  return empty;
}

Result<void> Overlay::RemoveRouted(Node* parent, std::string_view name, int flags, int route,
                                   Layer tier) {
  const std::string n(name);
  Result<Entry> found = LookupRouted(parent, name, route, tier);
  if (!found.ok()) return Errno{found.error()};
  Node* node = found->node;
  LookupRef ref(this, node);
  const bool rmdir = (flags & AT_REMOVEDIR) != 0;
  if (rmdir && !node->is_dir()) return Errno{ENOTDIR};
  if (!rmdir && node->is_dir()) return Errno{EISDIR};
  if (rmdir) {
    Result<bool> empty = IsEmptyDir(node);
    if (!empty.ok()) return Errno{empty.error()};
    if (!*empty) return Errno{ENOTEMPTY};
  } else {
    Result<bool> dropped = DropVolumeLink(node, parent, name);
    if (!dropped.ok()) return Errno{dropped.error()};
    if (*dropped) return {};
  }
  // Does the volume still have the name (not hidden by an opaque parent)?
  bool on_volume = node->layer() == Layer::kVolume;
  Result<SharedFd> low = resolver_->Fd(parent, Layer::kVolume);
  Result<SharedFd> up = resolver_->Fd(parent, tier);
  if (!on_volume && low.ok()) {
    bool opaque = false;
    if (up.ok() && parent->route() != kNotRouted) {
      Result<bool> o = markers::IsOpaque((*up)->get());
      opaque = o.ok() && *o;
    }
    on_volume = !opaque && sys::StatAt((*low)->get(), n.c_str()).ok();
  }
  if (node->layer() == tier) {
    if (!up.ok()) return Errno{up.error()};
    Result<Victim> victim = OpenVictim((*up)->get(), n.c_str());
    if (!victim.ok()) return Errno{victim.error()};
    if (rmdir) DETOURFS_TRY(ClearWhiteouts(victim->fd.get()));
    DETOURFS_TRY(sys::UnlinkAt((*up)->get(), n.c_str(), rmdir ? AT_REMOVEDIR : 0));
    KeepIfLastLink(parent, name, std::move(*victim));
  }
  if (on_volume) {
    Result<SharedFd> wup = EnsureUpperDir(parent, tier);
    if (!wup.ok()) return Errno{wup.error()};
    std::optional<Victim> victim;
    if (node->layer() == Layer::kVolume && low.ok()) {
      Result<Victim> v = OpenVictim((*low)->get(), n.c_str());
      if (v.ok()) victim = std::move(*v);
    }
    DETOURFS_TRY(markers::MakeWhiteout((*wup)->get(), n.c_str()));
    if (victim) KeepIfLastLink(parent, name, std::move(*victim));
  }
  return {};
}

Result<void> Overlay::HideVolumeAt(Node* parent, const std::string& name, int upper_parent) {
  Result<SharedFd> low = resolver_->Fd(parent, Layer::kVolume);
  if (!low.ok()) return low.error() == ENOENT ? Result<void>() : Errno{low.error()};
  Result<UniqueFd> v =
      sys::OpenBeneath((*low)->get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
  if (!v.ok()) return {};  // no volume directory there
  Result<UniqueFd> up =
      sys::OpenBeneath(upper_parent, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
  if (!up.ok()) return Errno{up.error()};
  return HideVolumeBeneath(up->get(), v->get());
}

Result<bool> Overlay::DropVolumeLink(Node* node, Node* parent, std::string_view name) {
  if (!NeedsCopyUp(node)) return false;
  // One name of a volume file with several goes: its other names must see
  // the link count drop, which a whiteout alone would not show. Up to the
  // tier with all its names first; with the tier full, the name goes from
  // the volume itself (as every change to such a file does then).
  Result<SharedFd> vfd = resolver_->Fd(node, Layer::kVolume);
  Result<struct stat> vst = vfd.ok() ? sys::Fstat((*vfd)->get()) : Errno{vfd.error()};
  if (!vst.ok() || vst->st_nlink <= 1) return false;
  DETOURFS_TRY(PrepareChange(node));
  if (node->layer() != Layer::kVolume) return false;
  Result<SharedFd> low = resolver_->Fd(parent, Layer::kVolume);
  if (!low.ok()) return Errno{low.error()};
  const std::string n(name);
  Result<Victim> victim = OpenVictim((*low)->get(), n.c_str());
  if (!victim.ok()) return Errno{victim.error()};
  DETOURFS_TRY(sys::UnlinkAt((*low)->get(), n.c_str(), 0));
  KeepIfLastLink(parent, name, std::move(*victim));
  return true;
}

Result<void> Overlay::RenameRouted(Node* parent, std::string_view name, Node* new_parent,
                                   std::string_view new_name, unsigned int flags) {
  if (flags & RENAME_EXCHANGE) return ExchangeRouted(parent, name, new_parent, new_name);
  const int src_route = ChildRoute(parent, name, true);
  const Layer src_tier = TierOf(src_route);
  Result<Entry> src = src_tier == Layer::kVolume ? Lookup(parent->id(), name)
                                                 : LookupRouted(parent, name, src_route, src_tier);
  if (!src.ok()) return Errno{src.error()};
  Node* node = src->node;
  LookupRef ref(this, node);
  const int dst_route = ChildRoute(new_parent, new_name, node->is_dir());
  const Layer dst_tier = TierOf(dst_route);
  if (parent == new_parent && name == new_name) return {};

  // The destination in the merged view.
  std::optional<Entry> dst;
  {
    Result<Entry> d = dst_tier == Layer::kVolume
                          ? Lookup(new_parent->id(), new_name)
                          : LookupRouted(new_parent, new_name, dst_route, dst_tier);
    if (d.ok()) {
      dst = *d;
    } else if (d.error() != ENOENT) {
      return Errno{d.error()};
    }
  }
  LookupRef dst_ref(this, dst ? dst->node : nullptr);
  if (dst) {
    if (flags & RENAME_NOREPLACE) return Errno{EEXIST};
    if (dst->node == node) return {};  // two links to one file
    if (dst->node->is_dir() && !node->is_dir()) return Errno{EISDIR};
    if (!dst->node->is_dir() && node->is_dir()) return Errno{ENOTDIR};
    if (dst->node->is_dir()) {
      Result<bool> empty = IsEmptyDir(dst->node);
      if (!empty.ok()) return Errno{empty.error()};
      if (!*empty) return Errno{ENOTEMPTY};
    }
  }
  // A replaced volume file with other names must see its link count drop
  // (a name shadowed on the tier would not): as when that name is removed.
  if (dst && !dst->node->is_dir() && src_tier == dst_tier && dst_tier != Layer::kVolume) {
    DETOURFS_TRY(DropVolumeLink(dst->node, new_parent, new_name));
  }
  if (src_tier != dst_tier) {
    // Across layers the data moves.
    if (node->is_dir()) {
      return MoveDirAcross(node, parent, name, new_parent, new_name, dst_route, dst_tier,
                           dst ? &*dst : nullptr);
    }
    return MoveAcross(node, parent, name, new_parent, new_name, dst_route, dst_tier,
                      dst ? &*dst : nullptr);
  }
  // Within one tier: what the volume has of the source comes up first, so
  // that the rename is one rename in the tier. A directory whose volume part
  // does not fit on the tier moves on both layers instead.
  if (node->is_dir()) {
    Result<void> up = DeepCopyUp(node);
    if (!up.ok() && IsFull(up.error())) {
      return RenameDirOnBothLayers(node, parent, name, new_parent, new_name, src_tier, dst_route);
    }
    DETOURFS_TRY(up);
  } else if (node->layer() != src_tier) {
    DETOURFS_TRY(CopyUp(node));
  }
  // Both names on one tier, the file or directory in its upper tree.
  Result<SharedFd> from = resolver_->Fd(parent, src_tier);
  if (!from.ok()) return Errno{from.error()};
  Result<SharedFd> to = EnsureUpperDir(new_parent, dst_tier);
  if (!to.ok()) return Errno{to.error()};
  const std::string n(name), nn(new_name);
  // What the destination name holds on the tier: a whiteout goes, a
  // directory loses its whiteouts so the kernel sees it empty.
  bool needs_opaque = false;
  if (Result<struct stat> dst_st = sys::StatAt((*to)->get(), nn.c_str()); dst_st.ok()) {
    Result<bool> w = markers::IsWhiteout((*to)->get(), nn.c_str(), *dst_st);
    if (!w.ok()) return Errno{w.error()};
    if (*w) {
      DETOURFS_TRY(sys::UnlinkAt((*to)->get(), nn.c_str(), 0));
      needs_opaque = node->is_dir();
    } else if (S_ISDIR(dst_st->st_mode)) {
      DETOURFS_TRY(ClearWhiteoutsAt((*to)->get(), nn.c_str()));
    }
  }
  if (node->is_dir() && !needs_opaque) {
    // Whatever the volume has at the new path must not show through.
    Result<SharedFd> low = resolver_->Fd(new_parent, Layer::kVolume);
    needs_opaque = low.ok() && sys::StatAt((*low)->get(), nn.c_str()).ok();
  }
  // Does the source name exist on the volume too (it will need a whiteout)?
  bool src_on_volume = false;
  if (Result<SharedFd> low = resolver_->Fd(parent, Layer::kVolume); low.ok()) {
    bool opaque = false;
    if (parent->route() != kNotRouted) {
      Result<bool> o = markers::IsOpaque((*from)->get());
      opaque = o.ok() && *o;
    }
    src_on_volume = !opaque && sys::StatAt((*low)->get(), n.c_str()).ok();
  }
  Result<Victim> victim = OpenReplaced(dst ? &*dst : nullptr, new_parent, nn, (*to)->get());
  Result<struct stat> st = sys::StatAt((*from)->get(), n.c_str());
  if (!st.ok()) return Errno{st.error()};
  DETOURFS_TRY(
      sys::RenameAt((*from)->get(), n.c_str(), (*to)->get(), nn.c_str(), flags & RENAME_NOREPLACE));
  if (needs_opaque) {
    Result<UniqueFd> d = sys::OpenBeneath((*to)->get(), nn.c_str(), O_PATH | O_DIRECTORY);
    if (d.ok()) DETOURFS_TRY(markers::SetOpaque(d->get()));
  }
  if (node->is_dir()) DETOURFS_TRY(HideVolumeAt(new_parent, nn, (*to)->get()));
  if (src_on_volume) DETOURFS_TRY(markers::MakeWhiteout((*from)->get(), n.c_str()));
  if (victim.ok()) KeepIfLastLink(new_parent, new_name, std::move(*victim));
  Renamed(node, parent, name, new_parent, new_name, dst_route);
  return {};
}

Result<Overlay::Victim> Overlay::OpenReplaced(const Entry* dst, Node* new_parent,
                                              const std::string& new_name, int dirfd) {
  if (dst == nullptr) return Errno{ENOENT};
  if (dst->node->layer() != Layer::kVolume) return OpenVictim(dirfd, new_name.c_str());
  Result<SharedFd> low = resolver_->Fd(new_parent, Layer::kVolume);
  if (!low.ok()) return Errno{low.error()};
  return OpenVictim((*low)->get(), new_name.c_str());
}

void Overlay::Renamed(Node* node, Node* parent, std::string_view name, Node* new_parent,
                      std::string_view new_name, int dst_route) {
  table_->Renamed(node, parent, name, new_parent, new_name);
  if (dst_route != node->route()) table_->SetRoute(node, dst_route);
  // Paths below a moved directory changed on every layer.
  if (node->is_dir()) resolver_->DropOtherLayers();
}

Result<void> Overlay::ExchangeRouted(Node* parent, std::string_view name, Node* new_parent,
                                     std::string_view new_name) {
  Result<Entry> a = Lookup(parent->id(), name);
  if (!a.ok()) return Errno{a.error()};
  LookupRef a_ref(this, a->node);
  Result<Entry> b = Lookup(new_parent->id(), new_name);
  if (!b.ok()) return Errno{b.error()};
  LookupRef b_ref(this, b->node);
  if (a->node == b->node) return {};
  Node* x = a->node;
  Node* y = b->node;
  const Layer x_tier = TierOf(ChildRoute(parent, name, x->is_dir()));
  const Layer y_tier = TierOf(ChildRoute(new_parent, new_name, y->is_dir()));
  const int x_route = ChildRoute(new_parent, new_name, x->is_dir());
  const int y_route = ChildRoute(parent, name, y->is_dir());
  if (x_tier == y_tier && x_tier != Layer::kVolume && TierOf(x_route) == x_tier &&
      TierOf(y_route) == x_tier) {
    // Both names on one tier, before and after: bring both up, swap there.
    for (Node* n : {x, y}) {
      Result<void> up = n->is_dir()            ? DeepCopyUp(n)
                        : n->layer() != x_tier ? CopyUp(n)
                                               : Result<void>();
      if (!up.ok()) return up;
    }
    Result<SharedFd> from = EnsureUpperDir(parent, x_tier);
    if (!from.ok()) return Errno{from.error()};
    Result<SharedFd> to = EnsureUpperDir(new_parent, x_tier);
    if (!to.ok()) return Errno{to.error()};
    const std::string n(name), nn(new_name);
    Result<struct stat> xst = sys::StatAt((*from)->get(), n.c_str());
    if (!xst.ok()) return Errno{xst.error()};
    Result<struct stat> yst = sys::StatAt((*to)->get(), nn.c_str());
    if (!yst.ok()) return Errno{yst.error()};
    DETOURFS_TRY(
        sys::RenameAt((*from)->get(), n.c_str(), (*to)->get(), nn.c_str(), RENAME_EXCHANGE));
    table_->Renamed(x, parent, name, new_parent, new_name);
    table_->Renamed(y, new_parent, new_name, parent, name);
    table_->SetRoute(x, x_route);
    table_->SetRoute(y, y_route);
    if (x->is_dir() || y->is_dir()) resolver_->DropOtherLayers();
    return {};
  }
  // Across layers no single call swaps: x steps aside under a hidden name, y
  // takes its place, x takes y's. Each step moves data as rename does; for a
  // moment the hidden name shows instead of `name`.
  const std::string aside = ".detourfs-exchange." + std::to_string(x->id());
  DETOURFS_TRY(RenameHeld(parent->id(), name, parent->id(), aside, RENAME_NOREPLACE));
  if (Result<void> r = RenameHeld(new_parent->id(), new_name, parent->id(), name, RENAME_NOREPLACE);
      !r.ok()) {
    if (Result<void> back = RenameHeld(parent->id(), aside, parent->id(), name, RENAME_NOREPLACE);
        !back.ok()) {
      spdlog::error("exchange across layers: {} left as {}: {}", std::string(name), aside,
                    ErrnoText(back.error()));
    }
    return r;
  }
  if (Result<void> r =
          RenameHeld(parent->id(), aside, new_parent->id(), new_name, RENAME_NOREPLACE);
      !r.ok()) {
    spdlog::error("exchange across layers: {} left as {}: {}", std::string(new_name), aside,
                  ErrnoText(r.error()));
    return r;
  }
  return {};
}

Result<void> Overlay::CarryTierParts(Node* parent, std::string_view name, Node* new_parent,
                                     std::string_view new_name, unsigned int flags) {
  const std::string n(name), nn(new_name);
  for (Layer tier : {Layer::kMemory, Layer::kDisk}) {
    if (!resolver_->HasLayer(tier)) continue;
    Result<SharedFd> from = resolver_->Fd(parent, tier);
    if (!from.ok()) {
      if (from.error() == ENOENT) continue;
      return Errno{from.error()};
    }
    const bool here = sys::StatAt((*from)->get(), n.c_str()).ok();
    Result<SharedFd> to_existing = resolver_->Fd(new_parent, tier);
    const bool there = to_existing.ok() && sys::StatAt((*to_existing)->get(), nn.c_str()).ok();
    if (!here && !(there && (flags & RENAME_EXCHANGE))) continue;
    if (!here) {
      // An exchange with nothing here: the other side's part comes over.
      DETOURFS_TRY(sys::RenameAt((*to_existing)->get(), nn.c_str(), (*from)->get(), n.c_str(), 0));
      continue;
    }
    Result<SharedFd> to = EnsureUpperDir(new_parent, tier);
    if (!to.ok()) return Errno{to.error()};
    if (there && !(flags & RENAME_EXCHANGE)) {
      // The replaced directory's tier part: only whiteouts may be left in it.
      DETOURFS_TRY(ClearWhiteoutsAt((*to)->get(), nn.c_str()));
    }
    DETOURFS_TRY(sys::RenameAt((*from)->get(), n.c_str(), (*to)->get(), nn.c_str(),
                               there && (flags & RENAME_EXCHANGE) ? RENAME_EXCHANGE : 0));
  }
  return {};
}

Result<void> Overlay::RenameDirOnBothLayers(Node* node, Node* parent, std::string_view name,
                                            Node* new_parent, std::string_view new_name, Layer tier,
                                            int dst_route) {
  const std::string n(name), nn(new_name);
  DETOURFS_TRY(EnsureUpperDir(node, tier));
  Result<SharedFd> from = resolver_->Fd(parent, tier);
  if (!from.ok()) return Errno{from.error()};
  Result<SharedFd> low_from = resolver_->Fd(parent, Layer::kVolume);
  if (!low_from.ok()) return Errno{low_from.error()};
  Result<struct stat> low_st = sys::StatAt((*low_from)->get(), n.c_str());
  if (!low_st.ok()) return Errno{low_st.error()};
  if (!S_ISDIR(low_st->st_mode)) return Errno{ENOSPC};  // no volume directory to move
  // The destination on the volume: parents made, nothing on the tier hiding
  // it, a stale or empty directory there removed (the merged view has the
  // destination empty or absent, checked by the caller).
  Result<SharedFd> low_to = VolumeSideOf(new_parent, nn, tier);
  if (!low_to.ok()) return Errno{low_to.error()};
  Result<SharedFd> to = EnsureUpperDir(new_parent, tier);
  if (!to.ok()) return Errno{to.error()};
  if (Result<struct stat> there = sys::StatAt((*to)->get(), nn.c_str());
      there.ok() && S_ISDIR(there->st_mode)) {
    DETOURFS_TRY(ClearWhiteoutsAt((*to)->get(), nn.c_str()));
  }
  Result<struct stat> st = sys::StatAt((*from)->get(), n.c_str());
  if (!st.ok()) return Errno{st.error()};
  DETOURFS_TRY(sys::RenameAt((*from)->get(), n.c_str(), (*to)->get(), nn.c_str(), 0));
  if (Result<void> r =
          sys::RenameAt((*low_from)->get(), n.c_str(), (*low_to)->get(), nn.c_str(), 0);
      !r.ok()) {
    // Put the tier's part back: the directory stays whole where it was.
    if (!sys::RenameAt((*to)->get(), nn.c_str(), (*from)->get(), n.c_str(), 0).ok()) {
      spdlog::error(
          "rename of directory node {}: the volume part stayed (error {}), the tier "
          "part could not come back; its content shows at both names",
          node->id(), r.error());
    }
    return r;
  }
  Renamed(node, parent, name, new_parent, new_name, dst_route);
  return {};
}

Result<void> Overlay::DeepCopyUp(Node* dir) {
  const Layer tier = TierOf(dir->route());
  Result<SharedFd> up = EnsureUpperDir(dir, tier);
  if (!up.ok()) return Errno{up.error()};
  if (!resolver_->Fd(dir, Layer::kVolume).ok()) return {};  // nothing beneath
  Result<bool> opaque = markers::IsOpaque((*up)->get());
  if (opaque.ok() && *opaque) return {};
  bool merged = false;
  std::vector<MergedName> names;
  DETOURFS_TRY(ListMerged(dir, &merged, &names));
  for (const MergedName& m : names) {
    Result<Entry> child = Lookup(dir->id(), m.name);
    if (!child.ok()) {
      if (child.error() == ENOENT) continue;
      return Errno{child.error()};
    }
    Node* node = child->node;
    Result<void> r = node->is_dir() ? DeepCopyUp(node) : CopyUpWithin(node, tier);
    Forget(node->id(), 1);
    if (!r.ok()) return r;
  }
  // Everything is in the tier now: the volume's part must stay hidden, as it
  // will not follow the directory's rename.
  return markers::SetOpaque((*up)->get());
}

Result<void> Overlay::MoveAcross(Node* node, Node* parent, std::string_view name, Node* new_parent,
                                 std::string_view new_name, int dst_route, Layer dst_tier,
                                 const Entry* dst) {
  const Layer src_layer = node->layer();
  const uint64_t spilled = node->spilled();  // its data, once copied, goes
  Result<SharedFd> to = dst_tier == Layer::kVolume ? resolver_->Fd(new_parent, Layer::kVolume)
                                                   : EnsureUpperDir(new_parent, dst_tier);
  if (!to.ok()) return Errno{to.error()};
  const int tofd = (*to)->get();
  Result<SharedFd> src = resolver_->Fd(node);
  if (!src.ok()) return Errno{src.error()};
  Result<struct stat> st = sys::Fstat((*src)->get());
  if (!st.ok()) return Errno{st.error()};
  const std::string nn(new_name);
  // A whiteout at the destination goes; a file there is replaced atomically.
  if (Result<struct stat> there = sys::StatAt(tofd, nn.c_str()); there.ok()) {
    Result<bool> w = markers::IsWhiteout(tofd, nn.c_str(), *there);
    if (w.ok() && *w) DETOURFS_TRY(sys::UnlinkAt(tofd, nn.c_str(), 0));
  }
  // Open handles wait while the data moves, then follow it.
  std::lock_guard handles_lock(handles_mu_);
  HeldHandles held;
  HoldHandles(node, &held);
  LayerLock::Hold layers = layers_.Exclusive();
  const std::string tmp_name = ".detourfs-move." + std::to_string(node->id());
  Result<Victim> victim = OpenReplaced(dst, new_parent, nn, tofd);
  DETOURFS_TRY(CopyNodeInto((*src)->get(), *st, tofd, tmp_name.c_str()));
  Result<void> placed = sys::RenameAt(tofd, tmp_name.c_str(), tofd, nn.c_str(), 0);
  if (!placed.ok()) {
    (void)sys::UnlinkAt(tofd, tmp_name.c_str(), 0);
    return placed;
  }
  Result<UniqueFd> fd = sys::OpenBeneath(tofd, nn.c_str(), O_PATH);
  if (!fd.ok()) return Errno{fd.error()};
  Result<struct stat> nst = sys::Fstat(fd->get());
  if (!nst.ok()) return Errno{nst.error()};
  // The node is the moved file now; then the source name goes.
  table_->Rebind(node, *nst, dst_tier);
  table_->KeepIno(node, 0);  // a new file, as mv across filesystems makes
  resolver_->Drop(node->id());
  resolver_->Prime(node, dst_tier, std::move(*fd));
  const std::string n(name);
  if (src_layer == Layer::kVolume) {
    Result<SharedFd> from = resolver_->Fd(parent, Layer::kVolume);
    if (!from.ok()) return Errno{from.error()};
    const int src_route = ChildRoute(parent, name, false);
    const Layer src_tier = TierOf(src_route);
    if (src_tier == Layer::kVolume) {
      DETOURFS_TRY(sys::UnlinkAt((*from)->get(), n.c_str(), 0));
    } else {
      // A routed name still on the volume: hidden by a whiteout until a flush.
      Result<SharedFd> wup = EnsureUpperDir(parent, src_tier);
      if (!wup.ok()) return Errno{wup.error()};
      DETOURFS_TRY(markers::MakeWhiteout((*wup)->get(), n.c_str()));
    }
  } else {
    Result<SharedFd> from = resolver_->Fd(parent, src_layer);
    if (!from.ok()) return Errno{from.error()};
    DETOURFS_TRY(sys::UnlinkAt((*from)->get(), n.c_str(), 0));
    Result<SharedFd> low = resolver_->Fd(parent, Layer::kVolume);
    if (low.ok() && sys::StatAt((*low)->get(), n.c_str()).ok()) {
      DETOURFS_TRY(markers::MakeWhiteout((*from)->get(), n.c_str()));
    }
  }
  if (victim.ok()) KeepIfLastLink(new_parent, new_name, std::move(*victim));
  Renamed(node, parent, name, new_parent, new_name, dst_route);
  Result<void> repointed = RepointHandles(node, held);
  if (spilled != 0) DropSpilledData(spilled);
  return repointed;
}

}  // namespace detourfs
