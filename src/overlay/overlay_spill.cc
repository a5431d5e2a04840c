// Overlay: capacity. A tier that is full, or at the capacity its config
// gives, never fails a write: the file being written moves on along its
// route's fallback chain — a memory file's data to the disk tier's spill
// store (overlay_spill_store.cc), else the file to the volume at the same
// path (its open handles follow) — and the write goes on there. A volume
// file that would be copied up into a full tier follows the same chain: its
// data to the spill store (a stub on the memory tier), else it is changed
// where it is. The volume is the last link of every route's fallback chain.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <shared_mutex>

#include "detourfs/overlay.h"
#include "detourfs/status.h"
#include "inodes/resolver.h"
#include "overlay/backing_tree.h"
#include "overlay/markers.h"
#include "store/spill_store.h"
#include "store/tier_space.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

// The open flags worth keeping when a handle is pointed at a new file.
int ReopenFlags(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return O_RDWR;
  return flags & (O_ACCMODE | O_APPEND | O_DIRECT | O_NOATIME | O_SYNC | O_DSYNC);
}

}  // namespace

RemovedFn Overlay::Unbinder() {
  return [this](int, const char*, const struct stat& st) { table_->Removed(st); };
}

TierSpace* Overlay::SpaceOf(Layer layer) const { return spaces_[static_cast<size_t>(layer)].get(); }

Result<size_t> Overlay::Write(FileHandle& fh, off_t off, size_t size, const WriteFn& write) {
  size_t done = 0;
  size_t spills = 0;  // at most one per link of the chain
  while (done < size) {
    std::shared_lock lock(fh.mu);
    const Layer layer = DataLayer(fh.node);
    TierSpace* space = SpaceOf(layer);
    int err = ENOSPC;
    if (space == nullptr || space->Admit(size - done)) {
      ssize_t n = write(fh.fd->get(), off + static_cast<off_t>(done), size - done);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n == 0) break;
      err = static_cast<int>(-n);
    }
    lock.unlock();
    if (!IsFull(err) || space == nullptr || spills == kLayerCount) {
      if (done > 0) return done;
      return Errno{err};
    }
    if (Result<void> r = Spill(fh.node, layer); !r.ok()) {
      spdlog::warn("tier full, and node {} cannot move on: {}", fh.node->id(),
                   ErrnoText(r.error()));
      if (done > 0) return done;
      return Errno{ENOSPC};
    }
    ++spills;
  }
  return done;
}

Result<SharedFd> Overlay::VolumeSideOf(Node* parent, const std::string& name, Layer tier) {
  Result<SharedFd> low = EnsureLowerDir(parent);
  if (!low.ok()) return low;
  // Nothing on the tier may hide the volume's entry: no opaque directory on
  // the way down (any ancestor's marker hides the whole volume subtree), no
  // whiteout under the name. Top down: unhiding a directory makes opaque
  // those of its subdirectories the volume has stale copies of.
  std::vector<Node*> chain;
  for (Node* dir = parent; dir != table_->root();) {
    chain.push_back(dir);
    std::vector<Location> locs = table_->Locations(dir);
    if (locs.empty()) return Errno{ESTALE};
    dir = locs.front().parent.get();
  }
  chain.push_back(table_->root());
  bool unhidden = false;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    Result<SharedFd> up = resolver_->Fd(*it, tier);
    if (!up.ok() && up.error() != ENOENT) return Errno{up.error()};
    if (!up.ok()) continue;
    if (Result<bool> opaque = markers::IsOpaque((*up)->get()); opaque.ok() && *opaque) {
      DETOURFS_TRY(UnhideVolume(*it, (*up)->get()));
      unhidden = true;
    }
  }
  if (unhidden) resolver_->DropOtherLayers();  // volume paths now reachable
  if (Result<SharedFd> up = resolver_->Fd(parent, tier); up.ok()) {
    const int upfd = (*up)->get();
    if (Result<struct stat> st = sys::StatAt(upfd, name.c_str()); st.ok()) {
      Result<bool> w = markers::IsWhiteout(upfd, name.c_str(), *st);
      if (w.ok() && *w) DETOURFS_TRY(sys::UnlinkAt(upfd, name.c_str(), 0));
    }
  } else if (up.error() != ENOENT) {
    return Errno{up.error()};
  }
  // A stale volume entry under the name was hidden by the tier: it goes.
  if (Result<struct stat> st = sys::StatAt((*low)->get(), name.c_str()); st.ok()) {
    DETOURFS_TRY(RemoveTreeAt((*low)->get(), name.c_str(), Unbinder()));
    if (S_ISDIR(st->st_mode)) resolver_->DropOtherLayers();  // fds found by its paths
  }
  return low;
}

Result<void> Overlay::Spill(Node* node, Layer full) {
  std::lock_guard names(names_mu_);  // no name of the file changes meanwhile
  std::lock_guard copy_lock(copy_up_mu_);
  const Layer tier = node->layer();
  // Another writer moved it meanwhile (concurrent writes find a tier full
  // together): try the new place first.
  if (DataLayer(node) != full || tier == Layer::kVolume) return {};
  if (node->is_dir()) return Errno{ENOSPC};
  if (node->spilled() == 0 && tier == Layer::kMemory && FallsBackToDisk(node->route())) {
    Result<void> stored = SpillToStore(node);
    if (stored.ok() || !IsFull(stored.error())) return stored;
  }
  // A spilled file's names are stubs on `tier`, its data (`src`) in the store.
  const uint64_t token = node->spilled();
  const BackingId identity = table_->Backing(node);
  Result<SharedFd> src = resolver_->Fd(node, tier);
  if (!src.ok()) return Errno{src.error()};
  Result<struct stat> st = sys::Fstat((*src)->get());
  if (!st.ok()) return Errno{st.error()};
  // Every name of the file moves with it; one the table does not know (the
  // kernel never looked it up) could not be found.
  std::vector<Location> locs = table_->Locations(node);
  if (locs.empty() && st->st_nlink == 0) return SpillUnnamed(node, **src, *st);
  if (locs.empty() || locs.size() < st->st_nlink) return Errno{ENOSPC};

  // Every open handle of the file waits while its data moves.
  std::lock_guard handles_lock(handles_mu_);
  HeldHandles held;
  HoldHandles(node, &held);
  LayerLock::Hold layers = layers_.Exclusive();
  const std::string tmp = ".detourfs-spill." + std::to_string(node->id());
  std::optional<UniqueFd> moved;  // the volume copy, once made
  for (const Location& loc : locs) {
    Result<SharedFd> low = VolumeSideOf(loc.parent.get(), loc.name, tier);
    if (!low.ok()) return Errno{low.error()};
    const int lowfd = (*low)->get();
    Result<void> made = moved ? sys::LinkFd(moved->get(), lowfd, tmp.c_str())
                              : CopyNodeInto((*src)->get(), *st, lowfd, tmp.c_str());
    if (made.ok()) made = sys::RenameAt(lowfd, tmp.c_str(), lowfd, loc.name.c_str(), 0);
    if (!made.ok()) {
      (void)sys::UnlinkAt(lowfd, tmp.c_str(), 0);
      return made;  // the tier's copy stays: nothing lost
    }
    if (!moved) {
      Result<UniqueFd> fd = sys::OpenBeneath(lowfd, loc.name.c_str(), O_PATH | O_NOFOLLOW);
      if (!fd.ok()) return Errno{fd.error()};
      moved = std::move(*fd);
    }
  }
  Result<struct stat> nst = sys::Fstat(moved->get());
  if (!nst.ok()) return Errno{nst.error()};
  // The volume has every name now: the tier's go — each only if it still
  // names this file (never another file's, whatever the table believed).
  for (const Location& loc : locs) {
    Result<SharedFd> up = resolver_->Fd(loc.parent.get(), tier);
    if (!up.ok()) return Errno{up.error()};
    Result<struct stat> now = sys::StatAt((*up)->get(), loc.name.c_str());
    if (!now.ok() || now->st_dev != identity.dev || now->st_ino != identity.ino) {
      spdlog::error("spill of node {}: '{}' on the tier is not the file being moved; left as is",
                    node->id(), loc.name);
      continue;
    }
    DETOURFS_TRY(sys::UnlinkAt((*up)->get(), loc.name.c_str(), 0));
  }
  table_->Rebind(node, *nst, Layer::kVolume);
  table_->KeepIno(node, 0);  // the tier's number is free for reuse now
  resolver_->Drop(node->id());
  resolver_->Prime(node, Layer::kVolume, std::move(*moved));
  DETOURFS_TRY(RepointHandles(node, held));
  if (token != 0) DropSpilledData(token);  // after the handles let go of it
  spdlog::info("tier full: '{}' ({} bytes) moved to the volume", locs.front().name, nst->st_size);
  return {};
}

Result<void> Overlay::SpillUnnamed(Node* node, const UniqueFd& src, const struct stat& st) {
  // Unlinked while open: its data moves to an unnamed file, which lives as
  // long as the handles do, on the disk tier if the route falls back to it
  // and it has room, else on the volume's filesystem.
  std::lock_guard handles_lock(handles_mu_);
  HeldHandles held;
  HoldHandles(node, &held);
  LayerLock::Hold layers = layers_.Exclusive();
  const bool to_disk = node->layer() == Layer::kMemory && FallsBackToDisk(node->route()) &&
                       SpaceOf(Layer::kDisk)->Admit(static_cast<uint64_t>(st.st_size));
  Result<UniqueFd> out = Errno{ENOSPC};
  Layer layer = Layer::kDisk;
  if (to_disk) out = CopyUnnamed(src, st, spill_store_->dir());
  if (!out.ok() && IsFull(out.error())) {
    layer = Layer::kVolume;
    out = CopyUnnamed(src, st, resolver_->root_fd()->get());
  }
  if (!out.ok()) return Errno{out.error()};
  Result<struct stat> nst = sys::Fstat(out->get());
  if (!nst.ok()) return Errno{nst.error()};
  table_->Rebind(node, *nst, layer);
  table_->KeepIno(node, 0);
  resolver_->Drop(node->id());
  // The node is reached through this fd now; the handles reopen it.
  table_->SetOrphanFd(node, std::make_shared<const UniqueFd>(std::move(*out)));
  DETOURFS_TRY(RepointHandles(node, held));
  spdlog::info("tier full: an unlinked open file ({} bytes) moved to the {}", st.st_size,
               layer == Layer::kDisk ? "disk tier" : "volume");
  return {};
}

Result<UniqueFd> Overlay::CopyUnnamed(const UniqueFd& src, const struct stat& st, int dirfd) {
  int tmp = ::openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (tmp < 0) return Errno{errno};
  UniqueFd out(tmp);
  Result<UniqueFd> in = sys::Reopen(src.get(), O_RDONLY);
  if (!in.ok()) return Errno{in.error()};
  DETOURFS_TRY(CopyData(in->get(), out.get()));
  DETOURFS_TRY(sys::Fchmod(out.get(), st.st_mode & 07777));
  DETOURFS_TRY(sys::ChownFd(out.get(), st.st_uid, st.st_gid));
  return out;
}

void Overlay::HoldHandles(Node* node, HeldHandles* held) {
  for (FileHandle* fh : files_) {
    if (fh->node != node) continue;
    if (std::find(held->handles.begin(), held->handles.end(), fh) != held->handles.end()) continue;
    held->handles.push_back(fh);
    held->locks.emplace_back(fh->mu);
  }
}

Result<void> Overlay::RepointHandles(Node* node, HeldHandles& held) {
  // The old fds go from the node first: the resolver would hand them back.
  std::vector<FileHandle*> mine;
  for (FileHandle* fh : held.handles) {
    if (fh->node != node) continue;
    mine.push_back(fh);
    table_->RemoveOpenFd(node, fh->fd);
  }
  if (mine.empty()) return {};
  Result<SharedFd> path = resolver_->Fd(node);
  Result<void> result;
  for (FileHandle* fh : mine) {
    Result<UniqueFd> f = path.ok() ? sys::Reopen((*path)->get(), ReopenFlags(fh->fd->get()))
                                   : Result<UniqueFd>(Errno{path.error()});
    if (f.ok()) {
      fh->fd = std::make_shared<const UniqueFd>(std::move(*f));
    } else {
      spdlog::error("node {} moved, but an open handle cannot follow it: {}", node->id(),
                    ErrnoText(f.error()));
      result = Errno{f.error()};
    }
    table_->AddOpenFd(node, fh->fd);
  }
  return result;
}

Result<void> Overlay::CopyUpWithin(Node* node, Layer tier) {
  if (!NeedsCopyUp(node)) return {};
  if (TierSpace* space = SpaceOf(tier); space != nullptr) {
    Result<SharedFd> fd = resolver_->Fd(node, Layer::kVolume);
    if (!fd.ok()) return Errno{fd.error()};
    Result<struct stat> st = sys::Fstat((*fd)->get());
    if (!st.ok()) return Errno{st.error()};
    if (!space->Admit(static_cast<uint64_t>(st->st_size))) return Errno{ENOSPC};
  }
  return CopyUp(node);
}

Result<void> Overlay::PrepareChange(Node* node) {
  if (!NeedsCopyUp(node)) return {};
  if (node->is_dir()) return CopyUp(node);
  const Layer tier = TierOf(node->route());
  Result<void> r = CopyUpWithin(node, tier);
  if (r.ok() || !IsFull(r.error())) return r;
  // The tier is full: the next link of the route's chain — the disk tier's
  // spill store for a memory route that falls back to it, else the volume,
  // where the file is changed in place.
  if (tier == Layer::kMemory && FallsBackToDisk(node->route())) {
    r = CopyUp(node, true);
    if (r.ok() || !IsFull(r.error())) return r;
  }
  return {};
}

Result<SharedFd> Overlay::EnsureLowerDir(Node* dir) {
  Result<SharedFd> low = resolver_->Fd(dir, Layer::kVolume);
  if (low.ok() || low.error() != ENOENT || dir == table_->root()) return low;
  std::vector<Location> locs = table_->Locations(dir);
  if (locs.empty()) return Errno{ESTALE};
  const Location& loc = locs.front();
  Result<SharedFd> parent_low = EnsureLowerDir(loc.parent.get());
  if (!parent_low.ok()) return parent_low;
  Result<SharedFd> self = resolver_->Fd(dir);
  if (!self.ok()) return Errno{self.error()};
  Result<struct stat> st = sys::Fstat((*self)->get());
  if (!st.ok()) return Errno{st.error()};
  const int pfd = (*parent_low)->get();
  Result<void> made = sys::MkdirAt(pfd, loc.name.c_str(), 0700);
  if (!made.ok() && made.error() != EEXIST) return Errno{made.error()};
  Result<UniqueFd> fd = sys::OpenBeneath(pfd, loc.name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
  if (!fd.ok() && (fd.error() == ENOTDIR || fd.error() == ELOOP)) {
    // A stale non-directory, hidden by the tier's directory, holds the name.
    DETOURFS_TRY(sys::UnlinkAt(pfd, loc.name.c_str(), 0));
    made = sys::MkdirAt(pfd, loc.name.c_str(), 0700);
    if (!made.ok()) return Errno{made.error()};
    fd = sys::OpenBeneath(pfd, loc.name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
  }
  if (!fd.ok()) return Errno{fd.error()};
  resolver_->NewPaths();  // `dir` has a volume side now
  if (made.ok()) {
    DETOURFS_TRY(sys::ChownFd(fd->get(), st->st_uid, st->st_gid));
    DETOURFS_TRY(sys::ChmodPath(fd->get(), st->st_mode & 07777));
    DETOURFS_TRY(CopyXattrs((*self)->get(), fd->get()));
  }
  return std::make_shared<const UniqueFd>(std::move(*fd));
}

Result<void> Overlay::UnhideVolume(Node* dir, int upper_fd) {
  Result<SharedFd> low = resolver_->Fd(dir, Layer::kVolume);
  if (low.ok()) {
    DETOURFS_TRY(
        ForEachEntry((*low)->get(), [&](std::string_view name, ino_t, mode_t type) -> Result<void> {
          const std::string n(name);
          Result<struct stat> up = sys::StatAt(upper_fd, n.c_str());
          if (!up.ok()) return markers::MakeWhiteout(upper_fd, n.c_str());
          // A directory on both: the volume's copy is stale, and stays hidden.
          if (S_ISDIR(up->st_mode) && (S_ISDIR(type) || type == 0)) {
            Result<UniqueFd> sub = sys::OpenBeneath(upper_fd, n.c_str(), O_PATH | O_DIRECTORY);
            if (!sub.ok()) return Errno{sub.error()};
            return markers::SetOpaque(sub->get());
          }
          return {};
        }));
  } else if (low.error() != ENOENT) {
    return Errno{low.error()};
  }
  return markers::ClearOpaque(upper_fd);
}

}  // namespace detourfs
