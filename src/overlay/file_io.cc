// OverlayImpl: open files — open, create's handle, read, write, fsync,
// fallocate, copy_file_range, lseek, release.
#include <fcntl.h>
#include <spdlog/spdlog.h>

#include "overlay/overlay_impl.h"
#include "sys/sys.h"

namespace detourfs {

int OverlayImpl::BackingFlags(int flags, bool writeback_cache) {
  // O_DIRECT stays the kernel's business: it sends such I/O uncached, and the
  // backing file needs no alignment rules of its own. openat2 refuses bits
  // it does not know, and the kernel's open flags carry some
  // (__O_LARGEFILE, FMODE_EXEC): keep only what a backing open needs.
  constexpr int kPassed =
      O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC | O_NOATIME | O_TRUNC;
  flags &= kPassed;
  if (writeback_cache) {
    // The kernel reads pages to fill partial writes, even for a file opened
    // write-only, and applies O_APPEND itself, sending every append at the
    // offset it computed (as passthrough_hp does).
    if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
    flags &= ~O_APPEND;
  }
  return flags;
}

void OverlayImpl::Track(FileHandle* fh) {
  MutexLock lock(&handles_mu_);
  files_.insert(fh);
}

void OverlayImpl::Track(DirHandle* dh) {
  MutexLock lock(&handles_mu_);
  dirs_.insert(dh);
}

void OverlayImpl::RepointHandles(Node* node, const Binding& b) {
  // The handles as they are now: none is added (OpenNode holds content_mu
  // shared) or released (Release too) while content_mu is held here, and
  // handles_mu stays a leaf (OpenData may take it, for a stub).
  std::vector<FileHandle*> handles;
  {
    MutexLock lock(&node->handles_mu);
    handles = node->open_handles;
  }
  for (FileHandle* fh : handles) {
    Result<UniqueFd> fd = resolver_.OpenData(node, b, fh->flags);
    if (Result<void> hit = changes_->Hit("handle.follow"); fd.ok() && !hit.ok()) {
      fd = Errno{hit.error()};
    }
    MutexLock fl(&fh->fd_mu);
    if (!fd.ok()) {
      // Never let a handle keep writing into the old copy: it lets go of it
      // and opens the data at its next use.
      spdlog::warn(
          "node {}: an open file could not follow it to the {} now ({}): it will at its "
          "next use",
          node->pid(), LayerName(DataLayer(b)), ErrnoText(fd.error()));
      fh->fd = nullptr;
      continue;
    }
    fh->fd = std::make_shared<const UniqueFd>(std::move(*fd));
  }
}

Result<SharedFd> OverlayImpl::HandleFd(Node* node, FileHandle& fh) {
  {
    MutexLock lock(&fh.fd_mu);
    if (fh.fd) return fh.fd;
  }
  // Opened without fd_mu held (OpenData may look at the node's other
  // handles); content_mu, held shared, keeps the binding still meanwhile.
  Result<UniqueFd> fd = resolver_.OpenData(node, node->binding(), fh.flags);
  if (!fd.ok()) {
    {
      MutexLock lock(&fh.fd_mu);
      if (!fh.follow_failed) {  // once per handle: a reader may try again in a loop
        spdlog::warn("node {}: an open file still cannot reach its data on the {}: {}", node->pid(),
                     LayerName(DataLayer(node->binding())), ErrnoText(fd.error()));
      }
      fh.follow_failed = true;
    }
    // What read(2) and write(2) may answer for an open file: its data gone
    // is ESTALE; the daemon's own fd table full, an interrupted open (no
    // signal was the caller's) or anything else EIO.
    switch (fd.error()) {
      case ENOENT:
        return Errno{ESTALE};
      case EIO:
      case ESTALE:
      case EROFS:
      case ENOSPC:
      case EDQUOT:
        return Errno{fd.error()};
      default:
        return Errno{EIO};
    }
  }
  MutexLock lock(&fh.fd_mu);
  fh.follow_failed = false;
  if (!fh.fd) {
    spdlog::info("node {}: an open file followed its data to the {}", node->pid(),
                 LayerName(DataLayer(node->binding())));
    fh.fd = std::make_shared<const UniqueFd>(std::move(*fd));
  }
  return fh.fd;
}

Result<FileHandle*> OverlayImpl::OpenNode(NodePin node, int flags) {
  Node* n = node.get();
  ReadLock lock(&n->content_mu);
  const Binding& b = n->binding();
  Result<UniqueFd> data = resolver_.OpenData(n, b, flags);
  if (!data.ok()) return Errno{data.error()};
  auto* fh = new FileHandle();
  {
    MutexLock fl(&fh->fd_mu);
    fh->fd = std::make_shared<const UniqueFd>(std::move(*data));
  }
  fh->flags = flags & ~O_TRUNC;
  fh->writable = (flags & O_ACCMODE) != O_RDONLY;
  if (flags & O_TRUNC) {
    changes_->Record(ChangeKind::kTruncate, At{DataLayer(b), -1, "", PathOf(n), RouteOf(n) >= 0},
                     n->pid());
  }
  {
    MutexLock hl(&n->handles_mu);
    n->open_handles.push_back(fh);
  }
  table_.AddHandle(n);
  fh->node = std::move(node);
  Track(fh);
  return fh;
}

Result<FileHandle*> OverlayImpl::Open(uint64_t ino, int flags) {
  Result<NodePin> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  const int backing = BackingFlags(flags, options_.writeback_cache);
  if ((backing & O_ACCMODE) != O_RDONLY || (backing & O_TRUNC)) {
    // A routed file still on the volume moves to its tier before it changes.
    MoveGate::Pass pass = gate_.Enter({node->get()});
    DETOURFS_TRY(PrepareChange(node->get()));
    return OpenNode(std::move(*node), backing);
  }
  return OpenNode(std::move(*node), backing);
}

void OverlayImpl::Release(FileHandle* fh) {
  Node* n = fh->node.get();
  {
    // Shared: never while the file's data moves and its handles follow.
    ReadLock content(&n->content_mu);
    MutexLock hl(&n->handles_mu);
    auto& v = n->open_handles;
    v.erase(std::remove(v.begin(), v.end(), fh), v.end());
  }
  {
    MutexLock lock(&handles_mu_);
    files_.erase(fh);
  }
  table_.RemoveHandle(n);
  const uint64_t id = n->id();
  delete fh;  // NOLINT: the kernel's handle, owned since Open
  if (!table_.Find(id)) resolver_.Drop(id);
}

int OverlayImpl::Read(FileHandle& fh, off_t off, size_t size, const ReadFn& reply) {
  // Held across the reply: the file cannot move while its data is spliced.
  Node* node = fh.node.get();
  ReadLock lock(&node->content_mu);
  Result<SharedFd> fd = HandleFd(node, fh);
  if (!fd.ok()) return -fd.error();
  return reply((*fd)->get(), off, size);
}

Result<size_t> OverlayImpl::Write(FileHandle& fh, off_t off, size_t size, const WriteFn& write) {
  Node* node = fh.node.get();
  MoveGate::Pass pass = gate_.Enter({node});
  // A write that meets a full tier is never answered short (the kernel's
  // writeback would take a short answer as lost pages): the file's data
  // moves on along its fallback chain and the rest of the write goes there.
  size_t done = 0;
  for (size_t spills = 0;; ++spills) {
    Layer full = Layer::kVolume;
    {
      ReadLock lock(&node->content_mu);
      Result<SharedFd> handle_fd = HandleFd(node, fh);
      if (!handle_fd.ok()) return done > 0 ? Result<size_t>(done) : Errno{handle_fd.error()};
      const Binding& b = node->binding();
      const Layer layer = DataLayer(b);
      const int fd = (*handle_fd)->get();
      bool room = true;
      if (TierSpace* space = SpaceOf(layer); space && spills < kLayerCount) {
        // Only what the write adds beyond the file's end takes space.
        Result<struct stat> st = sys::Fstat(fd);
        const off_t end = off + static_cast<off_t>(size);
        const uint64_t growth =
            st.ok() && end > st->st_size ? static_cast<uint64_t>(end - st->st_size) : 0;
        room = growth == 0 || space->Admit(growth);
      }
      int err = 0;
      const size_t before = done;
      if (room) {
        while (done < size) {
          const ssize_t n = write(fd, off + static_cast<off_t>(done), size - done);
          if (n < 0) {
            err = static_cast<int>(-n);
            break;
          }
          if (n == 0) {
            err = EIO;
            break;
          }
          done += static_cast<size_t>(n);
        }
        if (done > before) {
          changes_->Record(ChangeKind::kWrite, At{layer, -1, "", PathOf(node), RouteOf(node) >= 0},
                           node->pid(), static_cast<uint64_t>(off) + before, done - before);
        }
        if (done == size) return done;
        if (!IsFull(err) || !IsTier(layer) || spills >= kLayerCount) {
          return done > 0 ? Result<size_t>(done) : Errno{err};
        }
      }
      full = layer;
    }
    // The tier is full: the file's data moves on, and the write goes there.
    if (Result<void> moved = Spill(node, full); !moved.ok()) {
      spdlog::warn("{} full, and '{}' could not move on: {}", LayerName(full), PathOf(node),
                   ErrnoText(moved.error()));
      return done > 0 ? Result<size_t>(done) : Errno{ENOSPC};
    }
  }
}

Result<void> OverlayImpl::Fsync(FileHandle& fh, bool datasync) {
  Node* node = fh.node.get();
  ReadLock lock(&node->content_mu);
  Result<SharedFd> fd = HandleFd(node, fh);
  if (!fd.ok()) return Errno{fd.error()};
  return sys::Fsync((*fd)->get(), datasync);
}

Result<void> OverlayImpl::Fallocate(FileHandle& fh, int mode, off_t offset, off_t length) {
  Node* node = fh.node.get();
  MoveGate::Pass pass = gate_.Enter({node});
  for (size_t spills = 0;; ++spills) {
    Layer layer = Layer::kVolume;
    {
      ReadLock lock(&node->content_mu);
      Result<SharedFd> fd = HandleFd(node, fh);
      if (!fd.ok()) return Errno{fd.error()};
      layer = DataLayer(node->binding());
      Result<void> r = sys::Fallocate((*fd)->get(), mode, offset, length);
      if (r.ok()) {
        changes_->Record(ChangeKind::kWrite, At{layer, -1, "", PathOf(node), RouteOf(node) >= 0},
                         node->pid(), static_cast<uint64_t>(offset), static_cast<uint64_t>(length));
        return r;
      }
      if (!IsFull(r.error()) || !IsTier(layer) || spills >= kLayerCount) return r;
    }
    if (!Spill(node, layer).ok()) return Errno{ENOSPC};
  }
}

Result<size_t> OverlayImpl::CopyFileRange(FileHandle& in, off_t off_in, FileHandle& out,
                                          off_t off_out, size_t len, unsigned int flags) {
  Node* node = out.node.get();
  MoveGate::Pass pass = gate_.Enter({node});
  for (size_t spills = 0;; ++spills) {
    Layer layer = Layer::kVolume;
    {
      // Two nodes: content locks taken in id order (both shared).
      Node* first = in.node.get();
      Node* second = node;
      if (first->id() > second->id()) std::swap(first, second);
      ReadLock l1(&first->content_mu);
      std::optional<ReadLock> l2;
      if (second != first) l2.emplace(&second->content_mu);
      in.node->content_mu.AssertReaderHeld();  // as `first` or `second`
      node->content_mu.AssertReaderHeld();
      Result<SharedFd> in_fd = HandleFd(in.node.get(), in);
      if (!in_fd.ok()) return Errno{in_fd.error()};
      Result<SharedFd> out_fd = HandleFd(node, out);
      if (!out_fd.ok()) return Errno{out_fd.error()};
      layer = DataLayer(node->binding());
      Result<size_t> r =
          sys::CopyFileRange((*in_fd)->get(), off_in, (*out_fd)->get(), off_out, len, flags);
      if (r.ok()) {
        changes_->Record(ChangeKind::kWrite, At{layer, -1, "", PathOf(node), RouteOf(node) >= 0},
                         node->pid(), static_cast<uint64_t>(off_out), *r);
        return r;
      }
      if (!IsFull(r.error()) || !IsTier(layer) || spills >= kLayerCount) return r;
    }
    if (!Spill(node, layer).ok()) return Errno{ENOSPC};
  }
}

Result<off_t> OverlayImpl::Lseek(FileHandle& fh, off_t off, int whence) {
  Node* node = fh.node.get();
  ReadLock lock(&node->content_mu);
  Result<SharedFd> fd = HandleFd(node, fh);
  if (!fd.ok()) return Errno{fd.error()};
  return sys::Lseek((*fd)->get(), off, whence);
}

}  // namespace detourfs
