// Overlay: moving a whole directory between layers (`mv node_modules
// node_modules.old`, a volume directory renamed into a routed path, memory to
// disk). No filesystem can rename across layers, so the tree is copied: built
// complete under a temporary name on the destination layer, renamed into
// place in one step, then the source removed. Other processes see the new
// name appear whole, and for a moment both names; a crash in between leaves
// both, never neither.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "detourfs/overlay.h"
#include "detourfs/status.h"
#include "inodes/resolver.h"
#include "overlay/backing_tree.h"
#include "overlay/markers.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

// A name in `dirfd` that does not exist yet, for building something unseen.
Result<std::string> FreshName(int dirfd, uint64_t id) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string name = ".detourfs-move." + std::to_string(id) + "." + std::to_string(attempt);
    Result<struct stat> st = sys::StatAt(dirfd, name.c_str());
    if (!st.ok() && st.error() == ENOENT) return name;
    if (!st.ok()) return Errno{st.error()};
  }
  return Errno{EEXIST};
}

}  // namespace

// What a tree copy made: each node copied with its parent, name and new
// backing stat (parents before children), and the files with several links,
// so a second link is linked rather than copied again.
struct Overlay::TreeCopy {
  struct Moved {
    Node* node = nullptr;
    Node* parent = nullptr;
    std::string name;
    struct stat st {};
  };
  std::vector<Moved> moved;
  std::unordered_map<uint64_t, UniqueFd> links;  // node id → O_PATH fd of its copy
  HeldHandles held;  // open files in the tree: still until they follow their copy
};

Result<std::vector<std::string>> Overlay::ChildNames(Node* dir) {
  bool merged = false;
  std::vector<MergedName> listing;
  DETOURFS_TRY(ListMerged(dir, &merged, &listing));
  if (merged) {
    std::vector<std::string> names;
    for (MergedName& m : listing) names.push_back(std::move(m.name));
    return names;
  }
  Result<SharedFd> fd = resolver_->Fd(dir);
  if (!fd.ok()) return Errno{fd.error()};
  return EntryNames((*fd)->get());
}

Result<void> Overlay::CopyTreeInto(Node* dir, int dirfd, const char* name, TreeCopy* copy) {
  Result<SharedFd> src = resolver_->Fd(dir);
  if (!src.ok()) return Errno{src.error()};
  Result<struct stat> st = sys::Fstat((*src)->get());
  if (!st.ok()) return Errno{st.error()};
  DETOURFS_TRY(sys::MkdirAt(dirfd, name, 0700));
  Result<UniqueFd> out = sys::OpenBeneath(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW);
  if (!out.ok()) return Errno{out.error()};
  DETOURFS_TRY(sys::ChownFd(out->get(), st->st_uid, st->st_gid));
  DETOURFS_TRY(CopyXattrs((*src)->get(), out->get()));
  Result<std::vector<std::string>> names = ChildNames(dir);
  if (!names.ok()) return Errno{names.error()};
  for (const std::string& n : *names) {
    Result<Entry> child = Lookup(dir->id(), n);
    if (!child.ok()) {
      if (child.error() == ENOENT) continue;  // gone meanwhile
      return Errno{child.error()};
    }
    Node* node = child->node;  // the reference is the copy's until it is done
    copy->moved.push_back({node, dir, n, {}});
    if (!node->is_dir()) HoldHandles(node, &copy->held);
    const size_t at = copy->moved.size() - 1;
    if (node->is_dir()) {
      DETOURFS_TRY(CopyTreeInto(node, out->get(), n.c_str(), copy));
    } else {
      Result<SharedFd> cfd = resolver_->Fd(node);
      if (!cfd.ok()) return Errno{cfd.error()};
      Result<struct stat> cst = sys::Fstat((*cfd)->get());
      if (!cst.ok()) return Errno{cst.error()};
      auto linked = copy->links.find(node->id());
      if (linked != copy->links.end()) {
        DETOURFS_TRY(sys::LinkFd(linked->second.get(), out->get(), n.c_str()));
      } else {
        DETOURFS_TRY(CopyNodeInto((*cfd)->get(), *cst, out->get(), n.c_str()));
        if (cst->st_nlink > 1 && !S_ISDIR(cst->st_mode)) {
          Result<UniqueFd> made = sys::OpenBeneath(out->get(), n.c_str(), O_PATH | O_NOFOLLOW);
          if (!made.ok()) return Errno{made.error()};
          copy->links.emplace(node->id(), std::move(*made));
        }
      }
    }
    Result<struct stat> made = sys::StatAt(out->get(), n.c_str());
    if (!made.ok()) return Errno{made.error()};
    copy->moved[at].st = *made;
  }
  // Mode and times last: the entries made above would have changed them.
  DETOURFS_TRY(sys::ChmodPath(out->get(), st->st_mode & 07777));
  const struct timespec times[2] = {st->st_atim, st->st_mtim};
  return sys::UtimensPath(out->get(), times);
}

Result<void> Overlay::RemoveEverywhere(Node* parent, std::string_view name, int route) {
  const std::string n(name);
  for (Layer tier : {Layer::kMemory, Layer::kDisk}) {
    if (!resolver_->HasLayer(tier)) continue;
    Result<SharedFd> up = resolver_->Fd(parent, tier);
    if (!up.ok()) {
      if (up.error() == ENOENT) continue;
      return Errno{up.error()};
    }
    if (sys::StatAt((*up)->get(), n.c_str()).ok())
      DETOURFS_TRY(RemoveTreeAt((*up)->get(), n.c_str(), SpilledDataDropper()));
  }
  Result<SharedFd> low = resolver_->Fd(parent, Layer::kVolume);
  if (!low.ok()) return low.error() == ENOENT ? Result<void>() : Errno{low.error()};
  if (!sys::StatAt((*low)->get(), n.c_str()).ok()) return {};
  const Layer tier = TierOf(route);
  if (tier == Layer::kVolume) return RemoveTreeAt((*low)->get(), n.c_str());
  // A routed name: the volume's copy is hidden by a whiteout until a flush
  // removes it (an opaque parent hides it already).
  Result<SharedFd> up = EnsureUpperDir(parent, tier);
  if (!up.ok()) return Errno{up.error()};
  Result<bool> opaque = markers::IsOpaque((*up)->get());
  if (opaque.ok() && *opaque) return {};
  return markers::MakeWhiteout((*up)->get(), n.c_str());
}

Result<void> Overlay::MoveDirAcross(Node* node, Node* parent, std::string_view name,
                                    Node* new_parent, std::string_view new_name, int dst_route,
                                    Layer dst_tier, const Entry* dst) {
  const int src_route = node->route();
  const std::string nn(new_name);
  Result<SharedFd> to = dst_tier == Layer::kVolume ? resolver_->Fd(new_parent, Layer::kVolume)
                                                   : EnsureUpperDir(new_parent, dst_tier);
  if (!to.ok()) return Errno{to.error()};
  const int tofd = (*to)->get();
  Result<std::string> tmp = FreshName(tofd, node->id());
  if (!tmp.ok()) return Errno{tmp.error()};
  // Recorded while the hidden copy exists, so a crash does not leave it.
  struct Record {
    Overlay* overlay;
    std::string name;
    ~Record() { overlay->EndMove(name); }
  } record{this, BeginMove(new_parent, dst_tier, *tmp)};
  std::lock_guard handles_lock(handles_mu_);
  TreeCopy copy;
  copy.moved.push_back({node, parent, std::string(name), {}});
  // The references the copy took (all but the moved directory's, which is
  // the caller's) go however the move ends.
  struct Release {
    Overlay* overlay;
    TreeCopy* copy;
    ~Release() {
      for (size_t i = 1; i < copy->moved.size(); ++i) overlay->Forget(copy->moved[i].node->id(), 1);
    }
  } release{this, &copy};
  Result<void> built = CopyTreeInto(node, tofd, tmp->c_str(), &copy);
  if (built.ok()) {
    Result<struct stat> top = sys::StatAt(tofd, tmp->c_str());
    built = top.ok() ? Result<void>() : Errno{top.error()};
    if (top.ok()) copy.moved[0].st = *top;
  }
  // Whatever the volume has at the new path must not show through.
  if (built.ok() && dst_tier != Layer::kVolume) {
    Result<SharedFd> low = resolver_->Fd(new_parent, Layer::kVolume);
    if (low.ok() && sys::StatAt((*low)->get(), nn.c_str()).ok()) {
      Result<UniqueFd> d = sys::OpenBeneath(tofd, tmp->c_str(), O_PATH | O_DIRECTORY);
      built = d.ok() ? markers::SetOpaque(d->get()) : Result<void>(Errno{d.error()});
      Result<UniqueFd> v =
          sys::OpenBeneath((*low)->get(), nn.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
      if (built.ok() && d.ok() && v.ok()) built = HideVolumeBeneath(d->get(), v->get());
    }
  }
  // The destination, an empty directory in the merged view, goes first.
  if (built.ok() && dst != nullptr) built = Remove(new_parent->id(), new_name, AT_REMOVEDIR);
  if (built.ok()) {
    if (Result<struct stat> there = sys::StatAt(tofd, nn.c_str()); there.ok()) {
      Result<bool> w = markers::IsWhiteout(tofd, nn.c_str(), *there);
      if (w.ok() && *w) built = sys::UnlinkAt(tofd, nn.c_str(), 0);
    }
  }
  if (built.ok()) built = sys::RenameAt(tofd, tmp->c_str(), tofd, nn.c_str(), RENAME_NOREPLACE);
  if (!built.ok()) {
    if (Result<void> r = RemoveTreeAt(tofd, tmp->c_str()); !r.ok() && r.error() != ENOENT) {
      spdlog::warn("move of a directory across layers: leftover {} not removed: {}", *tmp,
                   ErrnoText(r.error()));
    }
    return built;
  }
  // The new tree is in place: the old one goes, then the nodes follow their
  // data (parents before children, so each route is the new path's).
  LayerLock::Hold layers = layers_.Exclusive();
  DETOURFS_TRY(RemoveEverywhere(parent, name, src_route));
  for (const TreeCopy::Moved& m : copy.moved) {
    table_->Rebind(m.node, m.st, dst_tier);
    table_->KeepIno(m.node, 0);  // a new file, as mv across filesystems makes
    resolver_->Drop(m.node->id());
  }
  table_->Renamed(node, parent, name, new_parent, new_name);
  table_->SetRoute(node, dst_route);
  for (size_t i = 1; i < copy.moved.size(); ++i) {
    const TreeCopy::Moved& m = copy.moved[i];
    table_->SetRoute(m.node, ChildRoute(m.parent, m.name, m.node->is_dir()));
  }
  // Paths below the moved tree changed on every layer.
  resolver_->DropOtherLayers();
  // Open files follow their copies.
  for (size_t i = 1; i < copy.moved.size(); ++i) {
    if (!copy.moved[i].node->is_dir()) DETOURFS_TRY(RepointHandles(copy.moved[i].node, copy.held));
  }
  return {};
}

}  // namespace detourfs
