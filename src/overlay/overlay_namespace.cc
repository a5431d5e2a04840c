// Overlay: creating, linking, removing and renaming names.
#include <fcntl.h>
#include <unistd.h>

#include "detourfs/overlay.h"
#include "inodes/resolver.h"
#include "overlay/caller_umask.h"
#include "overlay/markers.h"
#include "sys/sys.h"

namespace detourfs {

Result<void> Overlay::GiveToCaller(int fd, int parent_fd, const Caller& caller, struct stat& st) {
  // The node was created by root: its gid is the parent's when the parent is
  // setgid (that is the rule to keep), else root's own.
  static const gid_t daemon_gid = ::getegid();
  gid_t gid = caller.gid;
  // Linux sets S_ISGID on a new directory only in a setgid parent, and a gid
  // other than root's can only have come from one.
  if ((S_ISDIR(st.st_mode) && (st.st_mode & S_ISGID)) || st.st_gid != daemon_gid) {
    gid = st.st_gid;
  } else if (caller.gid != st.st_gid) {
    Result<struct stat> pst = sys::Fstat(parent_fd);
    if (!pst.ok()) return Errno{pst.error()};
    if (pst->st_mode & S_ISGID) gid = pst->st_gid;
  }
  if (caller.uid == st.st_uid && gid == st.st_gid) return {};
  DETOURFS_TRY(sys::ChownFd(fd, caller.uid, gid));
  // chown clears S_ISUID and S_ISGID on files; the creator asked for them.
  mode_t keep = st.st_mode & S_ISUID;
  if (gid == caller.gid) keep |= st.st_mode & S_ISGID;
  if (S_ISREG(st.st_mode) && keep) DETOURFS_TRY(sys::ChmodPath(fd, st.st_mode & 07777));
  st.st_uid = caller.uid;
  st.st_gid = gid;
  if (S_ISREG(st.st_mode)) st.st_mode = (st.st_mode & ~(S_ISUID | S_ISGID)) | keep;
  return {};
}

template <typename MakeFn>
Result<Entry> Overlay::MakeNode(uint64_t parent_ino, std::string_view name, const Caller& caller,
                                MakeFn make, bool is_dir) {
  Result<Node*> parent = NodeOf(parent_ino);
  if (!parent.ok()) return Errno{parent.error()};
  std::shared_lock names(names_mu_);
  Result<Placement> place = PlaceNew(*parent, name, is_dir);
  if (!place.ok()) return Errno{place.error()};
  const int dirfd = place->dir->get();
  const std::string n(name);
  {
    ScopedUmask umask(caller.umask);
    DETOURFS_TRY(make(dirfd, n.c_str(), umask));
  }
  Result<UniqueFd> fd = sys::OpenBeneath(dirfd, n.c_str(), O_PATH);
  Result<struct stat> st = fd.ok() ? sys::Fstat(fd->get()) : Result<struct stat>(Errno{fd.error()});
  Result<void> owned = st.ok() ? GiveToCaller(fd->get(), dirfd, caller, *st) : Errno{st.error()};
  if (owned.ok() && place->opaque && st.ok() && S_ISDIR(st->st_mode)) {
    owned = markers::SetOpaque(fd->get());
  }
  if (!owned.ok()) {
    // Never leave behind a node the caller was told was not made.
    (void)sys::UnlinkAt(dirfd, n.c_str(), st.ok() && S_ISDIR(st->st_mode) ? AT_REMOVEDIR : 0);
    return Errno{owned.error()};
  }
  return Found(*parent, name, std::move(*fd), *st, place->layer, place->route);
}

Result<Overlay::Placement> Overlay::PlaceNew(Node* parent, std::string_view name, bool is_dir) {
  Placement p;
  p.route = router_.empty() ? kNotRouted : ChildRoute(parent, name, is_dir);
  p.layer = TierOf(p.route);
  if (p.layer == Layer::kVolume) {
    Result<SharedFd> pfd = FdOf(parent, Layer::kVolume);
    if (!pfd.ok()) return Errno{pfd.error()};
    p.dir = *pfd;
    return p;
  }
  // The merged view decides whether the name is taken.
  bool whiteout = false;
  Result<Entry> existing = LookupRouted(parent, name, p.route, p.layer, &whiteout);
  if (existing.ok()) {
    Forget(existing->node->id(), 1);
    return Errno{EEXIST};
  }
  if (existing.error() != ENOENT) return Errno{existing.error()};
  Result<SharedFd> up = EnsureUpperDir(parent, p.layer);
  if (!up.ok()) return Errno{up.error()};
  // A whiteout in the way: the new node replaces it, and a new directory
  // must not show what the volume had there.
  const std::string n(name);
  if (whiteout) {
    DETOURFS_TRY(sys::UnlinkAt((*up)->get(), n.c_str(), 0));
    p.opaque = true;
  }
  // A new directory never shows what the volume has at its path, even when
  // an opaque ancestor hides that already (it may be renamed out from under it).
  if (is_dir && !p.opaque) {
    Result<SharedFd> low = resolver_->Fd(parent, Layer::kVolume);
    p.opaque = low.ok() && sys::StatAt((*low)->get(), n.c_str()).ok();
  }
  p.dir = *up;
  return p;
}

Result<Entry> Overlay::Mknod(uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
                             const Caller& caller) {
  return MakeNode(
      parent, name, caller,
      [&](int dirfd, const char* n, const ScopedUmask& um) {
        return sys::MknodAt(dirfd, n, um.Apply(mode), rdev);
      },
      false);
}

Result<Entry> Overlay::Mkdir(uint64_t parent, std::string_view name, mode_t mode,
                             const Caller& caller) {
  return MakeNode(
      parent, name, caller,
      [&](int dirfd, const char* n, const ScopedUmask& um) {
        return sys::MkdirAt(dirfd, n, um.Apply(mode));
      },
      true);
}

Result<Entry> Overlay::Symlink(std::string_view target, uint64_t parent, std::string_view name,
                               const Caller& caller) {
  const std::string t(target);
  return MakeNode(
      parent, name, caller,
      [&](int dirfd, const char* n, const ScopedUmask&) {
        return sys::SymlinkAt(t.c_str(), dirfd, n);
      },
      false);
}

Result<Entry> Overlay::Link(uint64_t ino, uint64_t new_parent_ino, std::string_view new_name) {
  std::shared_lock names(names_mu_);
  Result<Node*> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  Result<Node*> new_parent = NodeOf(new_parent_ino);
  if (!new_parent.ok()) return Errno{new_parent.error()};
  // A routed file links within its tier; between layers there is no link
  // (EXDEV, as between filesystems: package managers then copy).
  if (NeedsCopyUp(*node)) DETOURFS_TRY(CopyUp(*node));
  Result<Placement> place = PlaceNew(*new_parent, new_name, false);
  if (!place.ok()) return Errno{place.error()};
  LayerLock::Hold layers = layers_.Shared();
  if (place->layer != (*node)->layer()) return Errno{EXDEV};
  if ((*node)->spilled() != 0) {
    return LinkSpilled(*node, *new_parent, new_name, place->dir->get(), place->layer, place->route);
  }
  Result<SharedFd> fd = FdOf(*node);
  if (!fd.ok()) return Errno{fd.error()};
  const std::string n(new_name);
  DETOURFS_TRY(sys::LinkFd((*fd)->get(), place->dir->get(), n.c_str()));
  Result<struct stat> st = sys::Fstat((*fd)->get());
  if (!st.ok()) return Errno{st.error()};
  Entry e{table_->Remember(*new_parent, new_name, *st, place->layer, place->route), *st};
  Report(e.node, e.attr);
  return e;
}

Result<void> Overlay::Remove(uint64_t parent_ino, std::string_view name, int flags) {
  Result<Node*> parent = NodeOf(parent_ino);
  if (!parent.ok()) return Errno{parent.error()};
  if (!router_.empty()) {
    const int route = ChildRoute(*parent, name, (flags & AT_REMOVEDIR) != 0);
    const Layer tier = TierOf(route);
    if (tier != Layer::kVolume) return RemoveRouted(*parent, name, flags, route, tier);
  }
  Result<SharedFd> pfd = FdOf(*parent);
  if (!pfd.ok()) return Errno{pfd.error()};
  const std::string n(name);
  Result<Victim> victim = OpenVictim((*pfd)->get(), n.c_str());
  if (!victim.ok()) return Errno{victim.error()};
  DETOURFS_TRY(sys::UnlinkAt((*pfd)->get(), n.c_str(), flags));
  KeepIfLastLink(*parent, name, std::move(*victim));
  return {};
}

Result<Overlay::Victim> Overlay::OpenVictim(int dirfd, const char* name) {
  Result<UniqueFd> fd = sys::OpenBeneath(dirfd, name, O_PATH);
  if (!fd.ok()) return Errno{fd.error()};
  Result<struct stat> st = sys::Fstat(fd->get());
  if (!st.ok()) return Errno{st.error()};
  return Victim{std::move(*fd), *st};
}

void Overlay::KeepIfLastLink(Node* parent, std::string_view name, Victim victim) {
  ReleaseSpilled(&victim);  // a stub's data goes with its last name
  // The file's last link went, but the kernel still holds its node and uses
  // it: with the writeback cache it flushes the new ctime right after unlink,
  // and a removed directory may be some process's cwd. As on a local
  // filesystem the inode stays usable until the kernel forgets it, through
  // this fd (dropped on forget).
  // Past the orphan budget it answers from its last attributes instead.
  if (uint64_t gone = table_->Unlinked(parent, name, victim.st)) {
    if (Node* node = table_->Find(gone)) {
      table_->KeepOrphan(node, std::make_shared<const UniqueFd>(std::move(victim.fd)), victim.st);
    }
  }
}

Result<void> Overlay::Unlink(uint64_t parent, std::string_view name) {
  std::shared_lock names(names_mu_);
  return Remove(parent, name, 0);
}

Result<void> Overlay::Rmdir(uint64_t parent, std::string_view name) {
  std::shared_lock names(names_mu_);
  return Remove(parent, name, AT_REMOVEDIR);
}

Result<void> Overlay::Rename(uint64_t parent, std::string_view name, uint64_t new_parent,
                             std::string_view new_name, unsigned int flags) {
  std::shared_lock names(names_mu_);
  Result<void> r = RenameHeld(parent, name, new_parent, new_name, flags);
  // Paths below what moved (or half-moved, on failure) may now exist on
  // layers where they did not.
  resolver_->NewPaths();
  return r;
}

Result<void> Overlay::RenameHeld(uint64_t parent_ino, std::string_view name,
                                 uint64_t new_parent_ino, std::string_view new_name,
                                 unsigned int flags) {
  if (flags & ~static_cast<unsigned int>(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
    return Errno{EINVAL};
  }
  Result<Node*> parent = NodeOf(parent_ino);
  if (!parent.ok()) return Errno{parent.error()};
  Result<Node*> new_parent = NodeOf(new_parent_ino);
  if (!new_parent.ok()) return Errno{new_parent.error()};
  if (!router_.empty() && (TierOf(ChildRoute(*parent, name, true)) != Layer::kVolume ||
                           TierOf(ChildRoute(*new_parent, new_name, true)) != Layer::kVolume)) {
    return RenameRouted(*parent, name, *new_parent, new_name, flags);
  }
  Result<SharedFd> pfd = FdOf(*parent);
  if (!pfd.ok()) return Errno{pfd.error()};
  Result<SharedFd> npfd = FdOf(*new_parent);
  if (!npfd.ok()) return Errno{npfd.error()};
  const std::string n(name), nn(new_name);
  const int from = (*pfd)->get(), to = (*npfd)->get();

  Result<struct stat> src = sys::StatAt(from, n.c_str());
  if (!src.ok()) return Errno{src.error()};
  // The file a rename replaces is held open like an unlinked one.
  Result<Victim> dst = OpenVictim(to, nn.c_str());
  // A volume directory may have routed subtrees on the tiers (app/ holding
  // app/node_modules): their part moves with it, first, and back if the
  // volume refuses the rename.
  const bool carry = !router_.empty() && S_ISDIR(src->st_mode);
  if (carry) DETOURFS_TRY(CarryTierParts(*parent, name, *new_parent, new_name, flags));
  if (Result<void> r = sys::RenameAt(from, n.c_str(), to, nn.c_str(), flags); !r.ok()) {
    if (carry) {
      (void)CarryTierParts(*new_parent, new_name, *parent, name, flags & RENAME_EXCHANGE);
    }
    return r;
  }

  // Paths below a moved directory changed on every layer.
  if (carry) resolver_->DropOtherLayers();
  if (flags & RENAME_EXCHANGE) {
    table_->Renamed(*src, *parent, name, *new_parent, new_name);
    if (dst.ok()) table_->Renamed(dst->st, *new_parent, new_name, *parent, name);
    return {};
  }
  if (dst.ok()) {
    // Two links to one file: rename(2) leaves both in place.
    if (dst->st.st_dev == src->st_dev && dst->st.st_ino == src->st_ino) return {};
    KeepIfLastLink(*new_parent, new_name, std::move(*dst));
  }
  table_->Renamed(*src, *parent, name, *new_parent, new_name);
  return {};
}

}  // namespace detourfs
