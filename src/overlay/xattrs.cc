// OverlayImpl: extended attributes (POSIX ACLs included). detourfs's own
// (trusted.detourfs.*) are never shown and cannot be set or removed.
#include <cstring>
#include <string_view>
#include <vector>

#include "overlay/overlay_impl.h"
#include "store/markers.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

bool IsAcl(const char* name) { return std::strncmp(name, "system.posix_acl_", 17) == 0; }

}  // namespace

Result<size_t> OverlayImpl::GetXattr(uint64_t ino, const char* name, void* value, size_t size) {
  if (markers::IsReservedXattr(name)) return Errno{ENODATA};
  Result<NodePin> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  // A symlink's own xattrs cannot be reached race-free before Linux 6.13:
  // it has none here, as on many filesystems.
  if ((*node)->type() == S_IFLNK) return Errno{ENODATA};
  ReadLock lock(&(*node)->content_mu);
  const Binding& b = (*node)->binding();
  Result<SharedFd> fd = resolver_.Fd(node->get(), b, Primary(b));
  if (!fd.ok()) return Errno{fd.error()};
  return sys::GetXattr((*fd)->get(), name, value, size);
}

Result<size_t> OverlayImpl::ListXattr(uint64_t ino, char* list, size_t size) {
  Result<NodePin> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  if ((*node)->type() == S_IFLNK) return size_t{0};
  ReadLock lock(&(*node)->content_mu);
  const Binding& b = (*node)->binding();
  Result<SharedFd> fd = resolver_.Fd(node->get(), b, Primary(b));
  if (!fd.ok()) return Errno{fd.error()};
  // The whole list, filtered: the size asked for is the filtered one.
  std::vector<char> buf;
  for (;;) {
    Result<size_t> need = sys::ListXattr((*fd)->get(), nullptr, 0);
    if (!need.ok()) return need;
    buf.resize(*need);
    Result<size_t> got = sys::ListXattr((*fd)->get(), buf.data(), buf.size());
    if (got.ok()) {
      buf.resize(*got);
      break;
    }
    if (got.error() != ERANGE) return got;  // grew meanwhile: again
  }
  const size_t n = markers::FilterXattrList(buf.data(), buf.size());
  if (size == 0) return n;
  if (n > size) return Errno{ERANGE};
  if (n > 0) std::memcpy(list, buf.data(), n);  // (an empty list: buf may hold no array)
  return n;
}

Result<void> OverlayImpl::SetXattr(uint64_t ino, const char* name, const void* value, size_t size,
                                   int flags, bool kill_sgid) {
  if (markers::IsReservedXattr(name)) return Errno{EPERM};
  Result<NodePin> pin = NodeOf(ino);
  if (!pin.ok()) return Errno{pin.error()};
  Node* node = pin->get();
  if (node->type() == S_IFLNK) return Errno{EPERM};
  MoveGate::Pass pass = gate_.Enter({node});
  DETOURFS_TRY(PrepareChange(node));
  ReadLock lock(&node->content_mu);
  const Binding& b = node->binding();
  Result<SharedFd> fd = resolver_.Fd(node, b, Primary(b));
  if (!fd.ok()) return Errno{fd.error()};
  DETOURFS_TRY(sys::SetXattr((*fd)->get(), name, value, size, flags));
  if (kill_sgid) {
    Result<struct stat> st = sys::Fstat((*fd)->get());
    if (st.ok() && (st->st_mode & S_ISGID)) {
      DETOURFS_TRY(sys::ChmodPath((*fd)->get(), st->st_mode & 07777 & ~S_ISGID));
    }
  }
  changes_->Record(ChangeKind::kXattr, At{Primary(b), -1, "", PathOf(node), RouteOf(node) >= 0},
                   node->pid());
  if (node->is_dir() && IsAcl(name)) {
    // Scaffolding on the tiers keeps the directory's ACLs: entries are made
    // there with the caller's credentials, and inherit its default ACL.
    for (Layer t : kTiers) {
      if (t == Primary(b) || !b.parts[Index(t)].present()) continue;
      Result<SharedFd> part = resolver_.Fd(node, b, t);
      if (part.ok()) (void)sys::SetXattr((*part)->get(), name, value, size, 0);
    }
  }
  return {};
}

Result<void> OverlayImpl::RemoveXattr(uint64_t ino, const char* name) {
  if (markers::IsReservedXattr(name)) return Errno{EPERM};
  Result<NodePin> pin = NodeOf(ino);
  if (!pin.ok()) return Errno{pin.error()};
  Node* node = pin->get();
  if (node->type() == S_IFLNK) return Errno{EPERM};
  MoveGate::Pass pass = gate_.Enter({node});
  DETOURFS_TRY(PrepareChange(node));
  ReadLock lock(&node->content_mu);
  const Binding& b = node->binding();
  Result<SharedFd> fd = resolver_.Fd(node, b, Primary(b));
  if (!fd.ok()) return Errno{fd.error()};
  DETOURFS_TRY(sys::RemoveXattr((*fd)->get(), name));
  changes_->Record(ChangeKind::kXattr, At{Primary(b), -1, "", PathOf(node), RouteOf(node) >= 0},
                   node->pid());
  if (node->is_dir() && IsAcl(name)) {
    for (Layer t : kTiers) {
      if (t == Primary(b) || !b.parts[Index(t)].present()) continue;
      Result<SharedFd> part = resolver_.Fd(node, b, t);
      if (part.ok()) (void)sys::RemoveXattr((*part)->get(), name);
    }
  }
  return {};
}

}  // namespace detourfs
