// OverlayImpl: attributes — getattr, setattr, readlink, statfs.
#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include "overlay/overlay_impl.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

// `st` with the changes `req` asks for, as the filesystem would make them
// (for a removed file only the kernel still knows).
struct stat Applied(const SetAttrRequest& req, struct stat st) {
  struct timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  auto time = [&now](const struct timespec& t) { return t.tv_nsec == UTIME_NOW ? now : t; };
  if (req.mode) st.st_mode = (st.st_mode & S_IFMT) | *req.mode;
  if (req.uid) st.st_uid = *req.uid;
  if (req.gid) st.st_gid = *req.gid;
  if (req.size) st.st_size = *req.size;
  if (req.atime && req.atime->tv_nsec != UTIME_OMIT) st.st_atim = time(*req.atime);
  if (req.mtime && req.mtime->tv_nsec != UTIME_OMIT) st.st_mtim = time(*req.mtime);
  st.st_ctim = now;
  return st;
}

// What the VFS does before a write by a caller without CAP_FSETID: S_ISUID
// goes, and S_ISGID when the group may execute (without g+x the bit marks
// mandatory locking, not a privilege). The daemon's own writes keep both (it
// has CAP_FSETID), so the kernel asks for this (kill_suidgid.h).
Result<void> ClearSuidgid(int fd, bool open_fd, const struct stat& st) {
  if (!S_ISREG(st.st_mode)) return {};
  const mode_t mode = st.st_mode & 07777;
  mode_t killed = mode & ~S_ISUID;
  if (killed & S_IXGRP) killed &= ~S_ISGID;
  if (killed == mode) return {};
  return open_fd ? sys::Fchmod(fd, killed) : sys::ChmodPath(fd, killed);
}

bool Later(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec;
}

}  // namespace

Layer OverlayImpl::Primary(const Binding& b) { return b.primary(); }

bool OverlayImpl::SpansLayers(const Binding& b) {
  int parts = 0;
  for (const Part& p : b.parts) parts += p.present() ? 1 : 0;
  return parts > 1;
}

void OverlayImpl::Report(Node* node, const Binding& b, struct stat* st) {
  st->st_ino = static_cast<ino_t>(node->pid());
  // A directory spanning layers has subdirectories on several: its link
  // count is not known without listing it. Like overlayfs and btrfs, report
  // 1 ("not counted"), which find takes as "do not optimise by link count".
  if (node->is_dir() && SpansLayers(b)) st->st_nlink = 1;
}

Result<struct stat> OverlayImpl::StatOf(Node* node, const Binding& b, FileHandle* fh) {
  Result<struct stat> st = Errno{EIO};
  // The open file's own fd when it has one (a handle following its data
  // late answers by name, like a stat without a handle).
  Result<SharedFd> open = fh != nullptr ? HandleFd(node, *fh) : Result<SharedFd>(Errno{EBADF});
  if (!open.ok()) fh = nullptr;
  if (fh != nullptr && b.spill.token == 0) {
    st = sys::Fstat((*open)->get());
  } else {
    Result<SharedFd> fd = resolver_.Fd(node, b, Primary(b));
    if (!fd.ok()) {
      if (fd.error() == ESTALE) {
        // A removed file only the kernel still knows, past the orphan budget.
        if (std::optional<struct stat> last = table_.LastAttr(node)) {
          Report(node, b, &*last);
          return *last;
        }
      }
      return Errno{fd.error()};
    }
    st = sys::Fstat((*fd)->get());
  }
  if (!st.ok()) return st;
  if (b.spill.token != 0) {
    // A stub keeps the file's names, mode, owner and xattrs; its data (size,
    // blocks, times) is in the spill store.
    Result<UniqueFd> data = Errno{EIO};
    Result<struct stat> dst = Errno{EIO};
    if (fh != nullptr) {
      dst = sys::Fstat((*open)->get());
    } else {
      data = resolver_.OpenData(node, b, O_RDONLY);
      if (!data.ok() && data.error() == ESTALE) {
        // Removed, closed, its data gone: what the stub says is all there is.
        Report(node, b, &*st);
        return st;
      }
      if (!data.ok()) return Errno{data.error()};
      dst = sys::Fstat(data->get());
    }
    if (!dst.ok()) return dst;
    st->st_size = dst->st_size;
    st->st_blocks = dst->st_blocks;
    st->st_atim = dst->st_atim;
    st->st_mtim = dst->st_mtim;
    if (Later(dst->st_ctim, st->st_ctim)) st->st_ctim = dst->st_ctim;
  }
  if (b.index) {
    // An index entry: the link count is the names it has through the mount.
    const IndexAt e = IndexEntryAt(b.layer, node->pid());
    Result<uint64_t> links = markers::GetNumberAt(e.dir, e.name.c_str(), markers::kLinksXattr);
    if (links.ok() && *links != 0) st->st_nlink = static_cast<nlink_t>(*links);
  }
  Report(node, b, &*st);
  return st;
}

Result<struct stat> OverlayImpl::GetAttr(uint64_t ino, FileHandle* fh) {
  Result<NodePin> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  ReadLock lock(&(*node)->content_mu);
  return StatOf(node->get(), (*node)->binding(), fh);
}

Result<struct stat> OverlayImpl::SetAttr(uint64_t ino, const SetAttrRequest& req, FileHandle* fh) {
  Result<struct stat> r = SetAttrOf(ino, req, fh);
  if (!r.ok() && spdlog::should_log(spdlog::level::debug)) {
    if (NodePin n = table_.Find(ino)) {
      const Binding b = n->Snapshot();
      spdlog::debug("setattr of '{}' (id {}, {} names, {}, index {}, spill {}, fh {}): {}",
                    PathOf(n.get()), n->pid(), table_.AliasCount(n.get()), LayerName(b.layer),
                    b.index, b.spill.token != 0, fh != nullptr, ErrnoText(r.error()));
    }
  }
  return r;
}

Result<struct stat> OverlayImpl::SetAttrOf(uint64_t ino, const SetAttrRequest& req,
                                           FileHandle* fh) {
  Result<NodePin> pin = NodeOf(ino);
  if (!pin.ok()) return Errno{pin.error()};
  Node* node = pin->get();
  MoveGate::Pass pass = gate_.Enter({node});
  if (Result<void> p = PrepareChange(node); !p.ok()) {
    spdlog::debug("setattr of node {} ('{}'): copy-up: {}", node->pid(), PathOf(node),
                  ErrnoText(p.error()));
    return Errno{p.error()};
  }
  ReadLock lock(&node->content_mu);
  const Binding& b = node->binding();
  // The open file's own fd when it has one (a handle following its data
  // late changes it by name, like a setattr without a handle).
  Result<SharedFd> open = fh != nullptr ? HandleFd(node, *fh) : Result<SharedFd>(Errno{EBADF});
  const bool open_fd = open.ok();
  // Attributes of a stub are its own; its data's size and times are the
  // store file's.
  Result<SharedFd> meta = Errno{EIO};
  if (open_fd && b.spill.token == 0) {
    meta = open;
  } else {
    meta = resolver_.Fd(node, b, Primary(b));
  }
  if (!meta.ok()) {
    spdlog::debug("setattr of node {} ({} names, layer {}, index {}, spill {}): {}", node->pid(),
                  table_.AliasCount(node), LayerName(b.layer), b.index, b.spill.token,
                  ErrnoText(meta.error()));
    if (meta.error() == ESTALE) {
      if (std::optional<struct stat> last = table_.LastAttr(node)) {
        struct stat st = Applied(req, *last);
        table_.SetLastAttr(node, st);
        Report(node, b, &st);
        return st;
      }
    }
    return Errno{meta.error()};
  }
  const int mfd = (*meta)->get();
  const bool meta_open = open_fd && b.spill.token == 0;
  UniqueFd data_owned;
  int dfd = mfd;
  bool data_open = meta_open;
  bool data_gone = false;
  if (b.spill.token != 0 && (req.size || req.atime || req.mtime)) {
    if (open_fd) {
      dfd = (*open)->get();
    } else {
      Result<UniqueFd> data = resolver_.OpenData(node, b, O_RDWR);
      if (!data.ok() && data.error() == ESTALE) {
        // Removed and closed, its data gone: nothing left to change but the
        // stub's attributes.
        data_gone = true;
      } else if (!data.ok()) {
        return Errno{data.error()};
      } else {
        data_owned = std::move(*data);
        dfd = data_owned.get();
      }
    }
    data_open = true;
  }
  const std::string path = PathOf(node);
  const At at{Primary(b), -1, "", path, RouteOf(node) >= 0};
  if (req.mode) {
    DETOURFS_TRY(meta_open ? sys::Fchmod(mfd, *req.mode) : sys::ChmodPath(mfd, *req.mode));
  }
  if (req.uid || req.gid) {
    DETOURFS_TRY(sys::ChownFd(mfd, req.uid ? *req.uid : static_cast<uid_t>(-1),
                              req.gid ? *req.gid : static_cast<gid_t>(-1)));
  }
  if (req.mode || req.uid || req.gid) changes_->Record(ChangeKind::kSetattr, at, node->pid());
  if (req.size && !data_gone) {
    DETOURFS_TRY(data_open ? sys::Ftruncate(dfd, *req.size) : sys::TruncatePath(dfd, *req.size));
    changes_->Record(ChangeKind::kTruncate, at, node->pid(), 0, static_cast<uint64_t>(*req.size));
  }
  if ((req.atime || req.mtime) && !data_gone) {
    struct timespec times[2];
    times[0] = req.atime ? *req.atime : timespec{0, UTIME_OMIT};
    times[1] = req.mtime ? *req.mtime : timespec{0, UTIME_OMIT};
    if (data_open) {
      DETOURFS_TRY(sys::Futimens(dfd, times));
    } else if (node->type() == S_IFLNK && b.index) {
      // No fd-based call sets a symlink's own times: by name. A hard-linked
      // one in a tier's index by its entry there (its names may all be on
      // the volume, resolving to it).
      const IndexAt e = IndexEntryAt(b.layer, node->pid());
      DETOURFS_TRY(sys::UtimensAt(e.dir, e.name.c_str(), times));
    } else if (node->type() == S_IFLNK) {
      // Else by a name of it in its parent on its layer.
      std::vector<Location> locs = table_.Locations(node);
      if (locs.empty()) return Errno{ESTALE};
      Result<SharedFd> pfd = resolver_.DirFd(locs.front().parent.get(), Primary(b));
      if (!pfd.ok()) return Errno{pfd.error()};
      DETOURFS_TRY(sys::UtimensAt((*pfd)->get(), locs.front().name.c_str(), times));
    } else {
      DETOURFS_TRY(sys::UtimensPath(dfd, times));
    }
    changes_->Record(ChangeKind::kSetattr, at, node->pid());
  }
  if (req.kill_suidgid) {
    Result<struct stat> now = sys::Fstat(mfd);
    if (!now.ok()) return Errno{now.error()};
    DETOURFS_TRY(ClearSuidgid(mfd, meta_open, *now));
  }
  if (node->is_dir() && (req.mode || req.uid || req.gid)) {
    // An unrouted directory's scaffolding on the tiers keeps its owner and
    // mode: entries are made there with the caller's credentials.
    Result<struct stat> now = sys::Fstat(mfd);
    for (Layer t : kTiers) {
      if (t == Primary(b) || !b.parts[Index(t)].present() || !now.ok()) continue;
      Result<SharedFd> part = resolver_.Fd(node, b, t);
      if (!part.ok()) continue;
      if (req.uid || req.gid) (void)sys::ChownFd((*part)->get(), now->st_uid, now->st_gid);
      (void)sys::ChmodPath((*part)->get(), now->st_mode & 07777);
    }
  }
  return StatOf(node, b, fh);
}

SharedFd OverlayImpl::VolumePartToTouch(Node* dir) {
  const Binding b = dir->Snapshot();
  if (Primary(b) != Layer::kVolume || !SpansLayers(b)) return nullptr;
  Result<SharedFd> fd = resolver_.Fd(dir, b, Layer::kVolume);
  if (!fd.ok()) {
    spdlog::warn("'{}': cannot update the directory's modification time: {}", PathOf(dir),
                 ErrnoText(fd.error()));
    return nullptr;
  }
  return *fd;
}

void OverlayImpl::TouchVolumePart(const SharedFd& part) {
  if (!part) return;
  const struct timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  if (Result<void> r = sys::UtimensPath(part->get(), times); !r.ok()) {
    spdlog::warn("cannot update a directory's modification time on the volume: {}",
                 ErrnoText(r.error()));
  }
}

Result<std::string> OverlayImpl::Readlink(uint64_t ino) {
  Result<NodePin> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  if ((*node)->type() != S_IFLNK) return Errno{EINVAL};
  ReadLock lock(&(*node)->content_mu);
  const Binding& b = (*node)->binding();
  Result<SharedFd> fd = resolver_.Fd(node->get(), b);
  if (!fd.ok()) return Errno{fd.error()};
  return sys::ReadlinkFd((*fd)->get());
}

Result<struct statvfs> OverlayImpl::StatFs(uint64_t ino) {
  // A routed path reports its tier: its capacity and what is left of it.
  // The rest reports the volume.
  if (Result<NodePin> node = NodeOf(ino); node.ok()) {
    const Layer tier = TierOf(RouteOf(node->get()));
    if (TierSpace* space = SpaceOf(tier)) return space->StatFs();
  }
  return sys::Fstatvfs(changes_->dirs(Layer::kVolume).tree->get());
}

}  // namespace detourfs
