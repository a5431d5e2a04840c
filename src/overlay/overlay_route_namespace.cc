// Overlay: removing and renaming names in routed directories — whiteouts for
// what the volume still has, merged emptiness for rmdir, and renames within a
// tier or (for files) across layers.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "detourfs/overlay.h"
#include "inodes/resolver.h"
#include "overlay/markers.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

// Removes the whiteouts in the upper directory `dirfd` (they only hid volume
// entries of a directory about to go); fails ENOTEMPTY on anything else.
Result<void> ClearWhiteouts(int dirfd) {
  Result<UniqueFd> dir = sys::Reopen(dirfd, O_RDONLY | O_DIRECTORY);
  if (!dir.ok()) return Errno{dir.error()};
  DIR* d = ::fdopendir(dir->get());
  if (d == nullptr) return Errno{errno};
  (void)dir->Release();  // the DIR owns it now
  Result<void> result;
  while (dirent* e = ::readdir(d)) {
    std::string_view name(e->d_name);
    if (name == "." || name == "..") continue;
    Result<struct stat> st = sys::StatAt(dirfd, e->d_name);
    Result<bool> w = st.ok() ? markers::IsWhiteout(dirfd, e->d_name, *st) : Errno{st.error()};
    if (!w.ok() || !*w) {
      result = Errno{w.ok() ? ENOTEMPTY : w.error()};
      break;
    }
    if (Result<void> r = sys::UnlinkAt(dirfd, e->d_name, 0); !r.ok()) {
      result = r;
      break;
    }
  }
  ::closedir(d);
  return result;
}

}  // namespace

Result<void> Overlay::RemoveRouted(Node* parent, std::string_view name, int flags, int route,
                                   Layer tier) {
  const std::string n(name);
  Result<Entry> found = LookupRouted(parent, name, route, tier);
  if (!found.ok()) return Errno{found.error()};
  Node* node = found->node;
  struct ForgetOnExit {
    Overlay* o;
    Node* n;
    ~ForgetOnExit() { o->Forget(n->id(), 1); }
  } forget{this, node};
  const bool rmdir = (flags & AT_REMOVEDIR) != 0;
  if (rmdir && !node->is_dir()) return Errno{ENOTDIR};
  if (!rmdir && node->is_dir()) return Errno{EISDIR};
  if (rmdir) {
    bool merged = false;
    std::vector<MergedName> names;
    DETOURFS_TRY(ListMerged(node, &merged, &names));
    if (!merged) {
      // Only on the volume so far: its own listing decides.
      Result<SharedFd> vol = resolver_->Fd(node, Layer::kVolume);
      if (!vol.ok()) return Errno{vol.error()};
      Result<UniqueFd> d = sys::Reopen((*vol)->get(), O_RDONLY | O_DIRECTORY);
      if (!d.ok()) return Errno{d.error()};
      DIR* dir = ::fdopendir(d->Release());
      bool empty = true;
      while (dirent* e = ::readdir(dir)) {
        std::string_view en(e->d_name);
        if (en != "." && en != "..") empty = false;
      }
      ::closedir(dir);
      if (!empty) return Errno{ENOTEMPTY};
    } else if (!names.empty()) {
      return Errno{ENOTEMPTY};
    }
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

Result<void> Overlay::RenameRouted(Node* parent, std::string_view name, Node* new_parent,
                                   std::string_view new_name, unsigned int flags) {
  if (flags & RENAME_EXCHANGE) return Errno{EXDEV};  // not across layers; see docs/overlay.md
  const int src_route = ChildRoute(parent, name, true);
  const Layer src_tier = TierOf(src_route);
  Result<Entry> src = src_tier == Layer::kVolume ? Lookup(parent->id(), name)
                                                 : LookupRouted(parent, name, src_route, src_tier);
  if (!src.ok()) return Errno{src.error()};
  Node* node = src->node;
  struct ForgetOnExit {
    Overlay* o;
    Node* n;
    ~ForgetOnExit() { o->Forget(n->id(), 1); }
  } forget{this, node};
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
  struct ForgetDst {
    Overlay* o;
    std::optional<Entry>* d;
    ~ForgetDst() {
      if (*d) o->Forget((*d)->node->id(), 1);
    }
  } forget_dst{this, &dst};
  if (dst) {
    if (flags & RENAME_NOREPLACE) return Errno{EEXIST};
    if (dst->node == node) return {};  // two links to one file
    if (dst->node->is_dir() && !node->is_dir()) return Errno{EISDIR};
    if (!dst->node->is_dir() && node->is_dir()) return Errno{ENOTDIR};
    if (dst->node->is_dir()) {
      bool merged = false;
      std::vector<MergedName> names;
      DETOURFS_TRY(ListMerged(dst->node, &merged, &names));
      if (!names.empty()) return Errno{ENOTEMPTY};
    }
  }
  if (src_tier != dst_tier || node->layer() != src_tier) {
    // Across layers (or a directory still on the volume): not yet moved as
    // a rename. EXDEV makes mv and package managers copy and delete instead.
    if (node->is_dir() || src_tier != dst_tier) return Errno{EXDEV};
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
  bool dst_on_volume = false;
  bool needs_opaque = false;
  if (Result<struct stat> dst_st = sys::StatAt((*to)->get(), nn.c_str()); dst_st.ok()) {
    Result<bool> w = markers::IsWhiteout((*to)->get(), nn.c_str(), *dst_st);
    if (!w.ok()) return Errno{w.error()};
    if (*w) {
      DETOURFS_TRY(sys::UnlinkAt((*to)->get(), nn.c_str(), 0));
      needs_opaque = node->is_dir();
    } else if (S_ISDIR(dst_st->st_mode)) {
      Result<UniqueFd> d = sys::OpenBeneath((*to)->get(), nn.c_str(), O_PATH | O_DIRECTORY);
      if (!d.ok()) return Errno{d.error()};
      DETOURFS_TRY(ClearWhiteouts(d->get()));
    }
  }
  if (dst && dst->node->layer() == Layer::kVolume) {
    dst_on_volume = true;
    needs_opaque = node->is_dir();
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
  Result<Victim> victim = OpenVictim((*to)->get(), nn.c_str());
  Result<struct stat> st = sys::StatAt((*from)->get(), n.c_str());
  if (!st.ok()) return Errno{st.error()};
  DETOURFS_TRY(sys::RenameAt((*from)->get(), n.c_str(), (*to)->get(), nn.c_str(),
                             flags & RENAME_NOREPLACE));
  if (needs_opaque) {
    Result<UniqueFd> d = sys::OpenBeneath((*to)->get(), nn.c_str(), O_PATH | O_DIRECTORY);
    if (d.ok()) DETOURFS_TRY(markers::SetOpaque(d->get()));
  }
  if (src_on_volume) DETOURFS_TRY(markers::MakeWhiteout((*from)->get(), n.c_str()));
  if (victim.ok() && !dst_on_volume) KeepIfLastLink(new_parent, new_name, std::move(*victim));
  table_->Renamed(*st, parent, name, new_parent, new_name);
  if (dst_route != node->route()) table_->SetRoute(node, dst_route);
  return {};
}

}  // namespace detourfs
