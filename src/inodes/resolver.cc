// Resolver: node to fd through the bounded cache, re-resolving by name on a miss.
#include "inodes/resolver.h"

#include <fcntl.h>

#include "sys/sys.h"

namespace detourfs {

Result<SharedFd> Resolver::Fd(Node* node) {
  if (node == table_.root()) return root_fd_;
  if (SharedFd fd = cache_.Get(node->id())) return fd;
  // A file open through the mount already has an fd: use it rather than
  // walking names (a file just created is set up this way, e.g. by tar).
  if (SharedFd open = table_.AnyOpenFd(node)) return open;

  Result<UniqueFd> fd = OpenByName(node, O_PATH);
  if (!fd.ok()) return Errno{fd.error()};
  auto shared = std::make_shared<const UniqueFd>(std::move(*fd));
  cache_.Put(node->id(), shared);
  return shared;
}

Result<UniqueFd> Resolver::Open(Node* node, int flags) {
  SharedFd fd = node == table_.root() ? root_fd_ : cache_.Get(node->id());
  if (!fd) fd = table_.AnyOpenFd(node);
  if (fd) return sys::Reopen(fd->get(), flags);
  return OpenByName(node, flags);
}

Result<UniqueFd> Resolver::OpenByName(Node* node, int flags) {
  const BackingId want = table_.Backing(node);
  int last_err = ESTALE;
  for (Location& loc : table_.Locations(node)) {
    Result<SharedFd> parent = Fd(loc.parent.get());
    if (!parent.ok()) {
      last_err = parent.error();
      continue;
    }
    // O_TRUNC waits for the identity check: never truncate a file that
    // replaced ours underneath.
    Result<UniqueFd> fd = sys::OpenBeneath((*parent)->get(), loc.name.c_str(), flags & ~O_TRUNC);
    if (!fd.ok()) {
      last_err = fd.error();
      continue;
    }
    Result<struct stat> st = sys::Fstat(fd->get());
    if (!st.ok()) return Errno{st.error()};
    if (st->st_dev != want.dev || st->st_ino != want.ino) {
      last_err = ESTALE;  // the name now holds another file
      continue;
    }
    if (flags & O_TRUNC) DETOURFS_TRY(sys::Ftruncate(fd->get(), 0));
    return std::move(*fd);
  }
  // The kernel still holds the node, so "no such file" means it vanished
  // behind the mount's back: tell it the handle is stale.
  return Errno{last_err == ENOENT ? ESTALE : last_err};
}

void Resolver::Prime(Node* node, UniqueFd fd) {
  cache_.Put(node->id(), std::make_shared<const UniqueFd>(std::move(fd)));
}

}  // namespace detourfs
