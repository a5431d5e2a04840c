// Overlay: opening, creating and operating on regular files.
#include <fcntl.h>
#include <unistd.h>

#include "detourfs/overlay.h"
#include "inodes/resolver.h"
#include "overlay/caller_umask.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

// The flags to open the backing file with for a kernel open with `flags`.
int BackingFlags(int flags, bool writeback_cache) {
  // O_DIRECT stays the kernel's business: it sends such I/O uncached, and the
  // backing file needs no alignment rules of its own. Creation flags are
  // added by the caller.
  // openat2 refuses bits it does not know, and the kernel's open flags carry
  // some (__O_LARGEFILE, FMODE_EXEC): keep only what a backing open needs.
  constexpr int kPassed =
      O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC | O_NOATIME | O_TRUNC;
  flags &= kPassed;
  if (writeback_cache) {
    // The kernel reads pages to fill partial writes, even for a file opened
    // write-only, and it applies O_APPEND itself: sending every append at the
    // offset it computed (passthrough_hp does the same).
    if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
    flags &= ~O_APPEND;
  }
  return flags;
}

}  // namespace

Result<std::unique_ptr<FileHandle>> Overlay::Open(uint64_t ino, int flags) {
  Result<Node*> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  const int backing_flags = BackingFlags(flags, options_.writeback_cache);
  // A routed file still on the volume moves to its tier before it changes.
  if ((backing_flags & O_ACCMODE) != O_RDONLY || (backing_flags & O_TRUNC)) {
    DETOURFS_TRY(PrepareChange(*node));
  }
  Result<UniqueFd> file = resolver_->Open(*node, backing_flags);
  if (!file.ok()) return Errno{file.error()};
  auto fh = std::make_unique<FileHandle>();
  fh->node = *node;
  fh->writable = (backing_flags & O_ACCMODE) != O_RDONLY;
  fh->fd = std::make_shared<const UniqueFd>(std::move(*file));
  table_->AddOpenFd(*node, fh->fd);
  {
    // Tracked from here on, the handle follows spills and moves. One that
    // ran since the fd was opened has rebound the node: reopen.
    std::lock_guard lock(handles_mu_);
    files_.insert(fh.get());
    Result<struct stat> st = sys::Fstat(fh->fd->get());
    const BackingId now = table_->Backing(*node);
    if (st.ok() && (st->st_dev != now.dev || st->st_ino != now.ino)) {
      table_->RemoveOpenFd(*node, fh->fd);  // or the resolver would hand it back
      Result<UniqueFd> again = resolver_->Open(*node, backing_flags & ~O_TRUNC);
      if (!again.ok()) {
        files_.erase(fh.get());
        return Errno{again.error()};
      }
      fh->fd = std::make_shared<const UniqueFd>(std::move(*again));
      table_->AddOpenFd(*node, fh->fd);
    }
  }
  return fh;
}

Result<std::pair<Entry, std::unique_ptr<FileHandle>>> Overlay::Create(uint64_t parent_ino,
                                                                      std::string_view name,
                                                                      mode_t mode, int flags,
                                                                      const Caller& caller,
                                                                      bool kill_suidgid) {
  Result<Node*> parent = NodeOf(parent_ino);
  if (!parent.ok()) return Errno{parent.error()};
  std::shared_lock names(names_mu_);
  Result<Placement> place = PlaceNew(*parent, name, false);
  // A name a routed directory already has (maybe still on the volume) is
  // opened, and copied up by Open when written.
  if (!place.ok() && place.error() == EEXIST && !(flags & O_EXCL)) {
    return OpenExistingRouted(*parent, name, flags, kill_suidgid);
  }
  if (!place.ok()) return Errno{place.error()};
  const int dirfd = place->dir->get();
  const std::string n(name);
  const int open_flags = BackingFlags(flags, options_.writeback_cache);

  // Always create exclusively, so that only a file made here is given to the
  // caller; without O_EXCL an existing file (made behind the mount's back)
  // is simply opened.
  bool created = true;
  Result<UniqueFd> fd = Errno{EEXIST};
  {
    ScopedUmask umask(caller.umask);
    fd = sys::OpenBeneath(dirfd, n.c_str(), open_flags | O_CREAT | O_EXCL, umask.Apply(mode));
  }
  if (!fd.ok() && fd.error() == EEXIST && !(flags & O_EXCL)) {
    created = false;
    fd = sys::OpenBeneath(dirfd, n.c_str(), open_flags);
  }
  if (!fd.ok()) return Errno{fd.error()};
  Result<struct stat> st = sys::Fstat(fd->get());
  Result<void> owned = !st.ok()  ? Result<void>(Errno{st.error()})
                       : created ? GiveToCaller(fd->get(), dirfd, caller, *st)
                                 : Result<void>();
  if (!owned.ok()) {
    if (created) (void)sys::UnlinkAt(dirfd, n.c_str(), 0);
    return Errno{owned.error()};
  }
  // The open fd is not primed into the cache: a cached writable fd would keep
  // the file busy for exec (ETXTBSY) after the caller closed it.
  Entry e{table_->Remember(*parent, name, *st, place->layer, place->route), *st};
  Report(e.node, e.attr);
  auto fh = std::make_unique<FileHandle>();
  fh->node = e.node;
  fh->writable = true;
  fh->fd = std::make_shared<const UniqueFd>(std::move(*fd));
  table_->AddOpenFd(e.node, fh->fd);
  Track(fh.get());
  if (!created && kill_suidgid) {
    // An existing file (made behind the kernel's cached "no such name")
    // truncated by a caller without CAP_FSETID, as Open does.
    names.unlock();
    Result<struct stat> now = OpenedAttr(e.node->id(), fh.get(), true);
    if (!now.ok()) {
      Release(std::move(fh));
      Forget(e.node->id(), 1);
      return Errno{now.error()};
    }
    e.attr = *now;
  }
  return std::make_pair(e, std::move(fh));
}

Result<std::pair<Entry, std::unique_ptr<FileHandle>>> Overlay::OpenExistingRouted(
    Node* parent, std::string_view name, int flags, bool kill_suidgid) {
  const int route = ChildRoute(parent, name, false);
  Result<Entry> existing = LookupRouted(parent, name, route, TierOf(route));
  if (!existing.ok()) return Errno{existing.error()};
  Node* node = existing->node;
  Result<std::unique_ptr<FileHandle>> fh = Open(node->id(), flags);
  Result<struct stat> st =
      fh.ok() ? OpenedAttr(node->id(), fh->get(), kill_suidgid) : Errno{fh.error()};
  if (!st.ok()) {
    if (fh.ok()) Release(std::move(*fh));
    Forget(node->id(), 1);
    return Errno{st.error()};
  }
  return std::make_pair(Entry{node, *st}, std::move(*fh));
}

Result<struct stat> Overlay::OpenedAttr(uint64_t ino, FileHandle* fh, bool kill_suidgid) {
  if (!kill_suidgid) return GetAttr(ino, fh);
  SetAttrRequest kill;
  kill.kill_suidgid = true;
  return SetAttr(ino, kill, fh);
}

void Overlay::Release(std::unique_ptr<FileHandle> fh) {
  {
    std::lock_guard lock(handles_mu_);
    files_.erase(fh.get());
  }
  Node* node = fh->node;
  const uint64_t id = node->id();
  // The kernel usually comes back for a file just written after close (tar
  // sets its times and mode): keep an O_PATH fd on it, reopened from the open
  // one, which needs no path walk and no identity check.
  if (fh->writable && !resolver_->Cached(node)) {
    Result<UniqueFd> path_fd = sys::Reopen(fh->fd->get(), O_PATH);
    if (path_fd.ok()) resolver_->Prime(node, std::move(*path_fd));
  }
  table_->RemoveOpenFd(node, fh->fd);
  if (!table_->Find(id)) resolver_->Drop(id);  // that was the node's last reference
}

SharedFd Overlay::FdOf(FileHandle& fh) const {
  std::shared_lock lock(fh.mu);
  return fh.fd;
}

Result<void> Overlay::Fsync(FileHandle& fh, bool datasync) {
  std::shared_lock lock(fh.mu);
  return sys::Fsync(fh.fd->get(), datasync);
}

Result<void> Overlay::Fallocate(FileHandle& fh, int mode, off_t offset, off_t length) {
  for (size_t spills = 0;; ++spills) {
    std::shared_lock lock(fh.mu);
    const Layer layer = DataLayer(fh.node);
    Result<void> r = sys::Fallocate(fh.fd->get(), mode, offset, length);
    if (r.ok() || layer == Layer::kVolume || spills == kLayerCount || !IsFull(r.error())) {
      return r;
    }
    lock.unlock();
    if (!Spill(fh.node, layer).ok()) return r;  // a full tier: the file moves on
  }
}

Result<size_t> Overlay::CopyFileRange(FileHandle& in, off_t off_in, FileHandle& out, off_t off_out,
                                      size_t len, unsigned int flags) {
  for (size_t spills = 0;; ++spills) {
    std::shared_lock out_lock(out.mu);
    std::shared_lock<std::shared_mutex> in_lock;
    if (&in != &out) in_lock = std::shared_lock(in.mu);
    const Layer layer = DataLayer(out.node);
    Result<size_t> r = sys::CopyFileRange(in.fd->get(), off_in, out.fd->get(), off_out, len, flags);
    if (r.ok() || layer == Layer::kVolume || spills == kLayerCount || !IsFull(r.error())) {
      return r;
    }
    out_lock.unlock();
    if (in_lock.owns_lock()) in_lock.unlock();
    if (!Spill(out.node, layer).ok()) return r;  // a full tier: the file moves on
  }
}

Result<off_t> Overlay::Lseek(FileHandle& fh, off_t off, int whence) {
  std::shared_lock lock(fh.mu);
  return sys::Lseek(fh.fd->get(), off, whence);
}

}  // namespace detourfs
