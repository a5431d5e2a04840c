// Overlay: capacity. A tier that is full, or at the capacity its config
// gives, never fails a write: the file being written moves to the volume at
// the same path (its open handles follow) and the write goes on there; a
// volume file that would be copied up into a full tier is changed where it
// is. The volume is the last link of every route's fallback chain.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <shared_mutex>

#include <spdlog/spdlog.h>

#include "detourfs/overlay.h"
#include "inodes/resolver.h"
#include "overlay/dir_entries.h"
#include "overlay/markers.h"
#include "store/tier_space.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

bool IsFull(int err) { return err == ENOSPC || err == EDQUOT; }

// The open flags worth keeping when a handle is pointed at a new file.
int ReopenFlags(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return O_RDWR;
  return flags & (O_ACCMODE | O_APPEND | O_DIRECT | O_NOATIME | O_SYNC | O_DSYNC);
}

}  // namespace

TierSpace* Overlay::SpaceOf(Layer layer) const { return spaces_[static_cast<size_t>(layer)].get(); }

Result<size_t> Overlay::Write(FileHandle& fh, off_t off, size_t size, const WriteFn& write) {
  size_t done = 0;
  bool spilled = false;
  while (done < size) {
    std::shared_lock lock(fh.mu);
    TierSpace* space = SpaceOf(fh.node->layer());
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
    if (!IsFull(err) || space == nullptr || spilled) {
      if (done > 0) return done;
      return Errno{err};
    }
    if (Result<void> r = Spill(fh.node); !r.ok()) {
      spdlog::warn("tier full, and node {} cannot move to the volume: {}", fh.node->id(),
                   std::strerror(r.error()));
      if (done > 0) return done;
      return Errno{ENOSPC};
    }
    spilled = true;
  }
  return done;
}

Result<void> Overlay::Spill(Node* node) {
  std::lock_guard copy_lock(copy_up_mu_);
  const Layer tier = node->layer();
  if (tier == Layer::kVolume) return {};  // another writer moved it meanwhile
  if (node->is_dir()) return Errno{ENOSPC};
  std::vector<Location> locs = table_->Locations(node);
  if (locs.size() != 1) return Errno{ENOSPC};  // unnamed, or hard links on the tier
  const Location& loc = locs.front();
  Node* parent = loc.parent.get();
  const char* name = loc.name.c_str();
  Result<SharedFd> src = resolver_->Fd(node, tier);
  if (!src.ok()) return Errno{src.error()};
  Result<struct stat> st = sys::Fstat((*src)->get());
  if (!st.ok()) return Errno{st.error()};
  if (st->st_nlink > 1) return Errno{ENOSPC};
  Result<SharedFd> up = resolver_->Fd(parent, tier);
  if (!up.ok()) return Errno{up.error()};
  const int upfd = (*up)->get();
  // Once the tier's copy goes, the volume's must show: not hidden by an
  // opaque parent.
  if (Result<bool> opaque = markers::IsOpaque(upfd); opaque.ok() && *opaque) {
    DETOURFS_TRY(UnhideVolume(parent, upfd));
  }
  Result<SharedFd> low = EnsureLowerDir(parent);
  if (!low.ok()) return Errno{low.error()};
  const int lowfd = (*low)->get();

  // Every open handle of the file waits while its data moves.
  std::lock_guard handles_lock(handles_mu_);
  HeldHandles held;
  HoldHandles(node, &held);
  const std::string tmp = ".detourfs-spill." + std::to_string(node->id());
  DETOURFS_TRY(CopyNodeInto((*src)->get(), *st, lowfd, tmp.c_str()));
  // Over whatever stale file the volume had under the name (the tier's hid it).
  if (Result<void> r = sys::RenameAt(lowfd, tmp.c_str(), lowfd, name, 0); !r.ok()) {
    (void)sys::UnlinkAt(lowfd, tmp.c_str(), 0);
    return r;
  }
  Result<UniqueFd> fd = sys::OpenBeneath(lowfd, name, O_PATH | O_NOFOLLOW);
  if (!fd.ok()) return Errno{fd.error()};
  Result<struct stat> nst = sys::Fstat(fd->get());
  if (!nst.ok()) return Errno{nst.error()};
  DETOURFS_TRY(sys::UnlinkAt(upfd, name, 0));
  table_->Rebind(node, *nst, Layer::kVolume);
  table_->KeepIno(node, 0);  // the tier's number is free for reuse now
  resolver_->Drop(node->id());
  resolver_->Prime(node, Layer::kVolume, std::move(*fd));
  DETOURFS_TRY(RepointHandles(node, held));
  spdlog::info("tier full: '{}' ({} bytes) moved to the volume", loc.name, nst->st_size);
  return {};
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
                    std::strerror(f.error()));
      result = Errno{f.error()};
    }
    table_->AddOpenFd(node, fh->fd);
  }
  return result;
}

Result<void> Overlay::PrepareChange(Node* node) {
  if (!NeedsCopyUp(node)) return {};
  TierSpace* space = SpaceOf(TierOf(node->route()));
  if (space != nullptr && !node->is_dir()) {
    Result<SharedFd> fd = resolver_->Fd(node, Layer::kVolume);
    if (!fd.ok()) return Errno{fd.error()};
    Result<struct stat> st = sys::Fstat((*fd)->get());
    if (!st.ok()) return Errno{st.error()};
    if (!space->Admit(static_cast<uint64_t>(st->st_size))) return {};  // changed in place
  }
  Result<void> r = CopyUp(node);
  if (!r.ok() && IsFull(r.error()) && !node->is_dir()) return {};
  return r;
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
  if (!fd.ok()) return Errno{fd.error()};
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
        ForEachEntry((*low)->get(), [&](std::string_view name, ino_t, mode_t) -> Result<void> {
          const std::string n(name);
          if (sys::StatAt(upper_fd, n.c_str()).ok()) return {};
          return markers::MakeWhiteout(upper_fd, n.c_str());
        }));
  } else if (low.error() != ENOENT) {
    return Errno{low.error()};
  }
  return markers::ClearOpaque(upper_fd);
}

}  // namespace detourfs
