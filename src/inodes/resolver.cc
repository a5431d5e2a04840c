// Resolver: node to fd through the bounded cache, re-resolving by name on a miss.
#include "inodes/resolver.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include "detourfs/status.h"
#include "store/spill_store.h"
#include "sys/sys.h"

namespace detourfs {

Result<SharedFd> Resolver::Fd(Node* node, Layer layer) {
  if (node == table_.root()) {
    if (const SharedFd& root = roots_[static_cast<size_t>(layer)]) return root;
    return Errno{ENOENT};
  }
  const uint64_t key = Key(node->id(), layer);
  if (SharedFd fd = cache_.Get(key)) return fd;
  const bool own = layer == node->layer();
  // A file open through the mount already has an fd: use it rather than
  // walking names (a file just created is set up this way, e.g. by tar).
  if (own) {
    if (SharedFd open = table_.AnyOpenFd(node)) return open;
  } else if (KnownAbsent(key)) {
    return Errno{ENOENT};
  }
  const uint64_t epoch = epoch_.load(std::memory_order_acquire);
  Result<UniqueFd> fd = OpenByName(node, layer, O_PATH);
  if (!fd.ok()) {
    if (!own && fd.error() == ENOENT) NoteAbsent(key, epoch);
    return Errno{fd.error()};
  }
  auto shared = std::make_shared<const UniqueFd>(std::move(*fd));
  cache_.Put(Key(node->id(), layer), shared);
  return shared;
}

Result<UniqueFd> Resolver::Open(Node* node, int flags) {
  const Layer layer = node->layer();
  SharedFd fd = node == table_.root() ? roots_[static_cast<size_t>(layer)]
                                      : cache_.Get(Key(node->id(), layer));
  if (!fd) fd = table_.AnyOpenFd(node);
  if (fd) return sys::Reopen(fd->get(), flags);
  return OpenByName(node, layer, flags);
}

bool Resolver::KnownAbsent(uint64_t key) {
  std::lock_guard lock(absent_mu_);
  auto it = absent_.find(key);
  if (it == absent_.end()) return false;
  if (it->second.epoch == epoch_.load(std::memory_order_acquire) &&
      std::chrono::steady_clock::now() < it->second.expires) {
    return true;
  }
  absent_.erase(it);
  return false;
}

void Resolver::NoteAbsent(uint64_t key, uint64_t epoch) {
  if (absent_ttl_ <= std::chrono::steady_clock::duration::zero()) return;
  const auto expires = std::chrono::steady_clock::now() + absent_ttl_;
  std::lock_guard lock(absent_mu_);
  if (absent_.size() >= kMaxAbsent) absent_.clear();
  absent_[key] = Absent{epoch, expires};
}

void Resolver::DropOtherLayers() {
  NewPaths();
  for (uint64_t key : cache_.Keys()) {
    const std::optional<Layer> layer = table_.LayerOf(key / kLayerCount);
    if (!layer || static_cast<uint64_t>(*layer) != key % kLayerCount) {
      cache_.Erase(key);
    }
  }
}

void Resolver::Drop(uint64_t id) {
  std::lock_guard lock(absent_mu_);
  for (size_t l = 0; l < kLayerCount; ++l) {
    cache_.Erase(Key(id, static_cast<Layer>(l)));
    absent_.erase(Key(id, static_cast<Layer>(l)));
  }
}

Result<UniqueFd> Resolver::OpenByName(Node* node, Layer layer, int flags) {
  const bool own = layer == node->layer();
  const BackingId want = table_.Backing(node);
  int last_err = ESTALE;
  for (Location& loc : table_.Locations(node)) {
    Result<SharedFd> parent = Fd(loc.parent.get(), layer);
    if (!parent.ok()) {
      last_err = parent.error();
      continue;
    }
    // O_TRUNC waits for the identity check: never truncate a file that
    // replaced ours underneath. A spilled file's name holds only its stub.
    const int name_flags = own && node->spilled() != 0 ? O_PATH : flags & ~O_TRUNC;
    Result<UniqueFd> fd = sys::OpenBeneath((*parent)->get(), loc.name.c_str(), name_flags);
    if (!fd.ok()) {
      last_err = fd.error();
      continue;
    }
    Result<struct stat> st = sys::Fstat(fd->get());
    if (!st.ok()) return Errno{st.error()};
    if (own ? (st->st_dev != want.dev || st->st_ino != want.ino)
            : (st->st_mode & S_IFMT) != node->type()) {
      last_err = ESTALE;  // the name now holds another file
      continue;
    }
    if (const uint64_t token = own ? node->spilled() : 0; token != 0) {
      Result<UniqueFd> data = SpilledData(token, flags & ~O_TRUNC);
      if (!data.ok()) return Errno{data.error()};
      fd = std::move(data);
    }
    if (flags & O_TRUNC) DETOURFS_TRY(sys::Ftruncate(fd->get(), 0));
    return std::move(*fd);
  }
  // The kernel still holds the node, so "no such file" on its own layer
  // means it vanished behind the mount's back: tell it the handle is stale.
  // On another layer it just has no counterpart there.
  if (!own) return Errno{last_err == ESTALE ? ENOENT : last_err};
  return Errno{last_err == ENOENT ? ESTALE : last_err};
}

Result<UniqueFd> Resolver::SpilledData(uint64_t token, int flags) {
  Result<UniqueFd> data =
      spill_ != nullptr ? spill_->Open(token, flags) : Result<UniqueFd>(Errno{ENOENT});
  if (data.ok()) return data;
  // The stub is there, its data is not: never answer with the empty stub.
  spdlog::error("spilled data {} is missing from the disk tier's spill store: {}",
                SpillStore::NameOf(token), ErrnoText(data.error()));
  return Errno{EIO};
}

void Resolver::Prime(Node* node, Layer layer, UniqueFd fd) {
  cache_.Put(Key(node->id(), layer), std::make_shared<const UniqueFd>(std::move(fd)));
}

}  // namespace detourfs
