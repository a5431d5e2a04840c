// Resolver (resolver.h).
#include "overlay/resolver.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <cinttypes>
#include <cstdio>

#include "overlay/handles.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

// Retries of a walk that met a rename of one of its directories halfway.
constexpr int kWalkAttempts = 4;

}  // namespace

Result<SharedFd> Resolver::OpenChecked(int parent_fd, const std::string& name, const Part& want) {
  Result<UniqueFd> fd = sys::OpenBeneath(parent_fd, name.c_str(), O_PATH);
  if (!fd.ok()) return Errno{fd.error() == ELOOP ? ESTALE : fd.error()};
  Result<struct stat> st = sys::Fstat(fd->get());
  if (!st.ok()) return Errno{st.error()};
  if (!want.Is(*st)) return Errno{ESTALE};  // the name holds another file now
  return std::make_shared<const UniqueFd>(std::move(*fd));
}

Result<SharedFd> Resolver::IndexEntry(Node* node, Layer layer) {
  const LayerDirs& d = changes_.dirs(layer);
  if (!d.index) return Errno{ENOENT};
  Result<UniqueFd> fd =
      sys::OpenBeneath(d.index->get(), markers::IndexName(node->pid()).c_str(), O_PATH);
  if (!fd.ok()) {
    spdlog::debug("index entry {} on the {}: {}", markers::IndexName(node->pid()), LayerName(layer),
                  ErrnoText(fd.error()));
    return Errno{fd.error() == ENOENT ? ESTALE : fd.error()};
  }
  return std::make_shared<const UniqueFd>(std::move(*fd));
}

Result<SharedFd> Resolver::DirFd(Node* dir, Layer layer) {
  if (dir == table_.root()) {
    if (!changes_.has(layer)) return Errno{ENOENT};
    return changes_.dirs(layer).tree;
  }
  for (int attempt = 0;; ++attempt) {
    // Up to the nearest ancestor whose part is cached (or the root).
    std::vector<NodePin> chain;
    SharedFd base;
    for (Node* n = dir;;) {
      if (n == table_.root()) {
        if (!changes_.has(layer)) return Errno{ENOENT};
        base = changes_.dirs(layer).tree;
        break;
      }
      if (SharedFd fd = cache_.Get(Key(n->id(), layer))) {
        base = std::move(fd);
        break;
      }
      chain.push_back(table_.Pin(n));
      std::vector<Location> locs = table_.Locations(n);
      if (locs.empty()) return Errno{ESTALE};  // removed: no path to it
      n = locs.front().parent.get();
    }
    // Down again, each directory opened under its own lock.
    bool moved = false;
    for (size_t i = chain.size(); i-- > 0;) {
      Node* d = chain[i].get();
      Node* expected_parent = i + 1 < chain.size() ? chain[i + 1].get() : nullptr;
      ReadLock lock(&d->content_mu);
      const Part want = d->binding().parts[Index(layer)];
      if (want.state != Part::kPresent) return Errno{ENOENT};
      std::vector<Location> locs = table_.Locations(d);
      if (locs.empty()) return Errno{ESTALE};
      if (expected_parent != nullptr && locs.front().parent.get() != expected_parent) {
        moved = true;  // renamed between the walk up and now
        break;
      }
      Result<SharedFd> fd = OpenChecked(base->get(), locs.front().name, want);
      if (!fd.ok()) {
        if (fd.error() == ENOENT || fd.error() == ESTALE) {
          moved = true;
          break;
        }
        return Errno{fd.error()};
      }
      cache_.Put(Key(d->id(), layer), *fd);
      base = std::move(*fd);
    }
    if (!moved) return base;
    if (attempt + 1 >= kWalkAttempts) return Errno{ESTALE};
  }
}

Result<SharedFd> Resolver::Fd(Node* node, const Binding& b, Layer layer) {
  if (node == table_.root()) {
    if (!changes_.has(layer)) return Errno{ENOENT};
    return changes_.dirs(layer).tree;
  }
  const Part& want = b.parts[Index(layer)];
  if (want.state != Part::kPresent) return Errno{ENOENT};
  const uint64_t key = Key(node->id(), layer);
  if (SharedFd fd = cache_.Get(key)) return fd;
  if (!node->is_dir() && b.index && layer == b.layer) {
    Result<SharedFd> fd = IndexEntry(node, layer);
    if (fd.ok()) {
      cache_.Put(key, *fd);
    } else if (SharedFd orphan = table_.OrphanFd(node)) {
      return orphan;  // its last name went (and the entry with it) while open
    }
    return fd;
  }
  int last = ESTALE;
  for (int attempt = 0; attempt < kWalkAttempts; ++attempt) {
    std::vector<Location> locs = table_.Locations(node);
    if (locs.empty()) {
      // No name left (unlinked while open or held): its orphan fd, if kept.
      if (SharedFd orphan = table_.OrphanFd(node); orphan && layer == b.primary()) return orphan;
      return Errno{ESTALE};
    }
    for (const Location& loc : locs) {
      Result<SharedFd> parent = DirFd(loc.parent.get(), layer);
      if (!parent.ok()) {
        last = parent.error();
        continue;
      }
      Result<SharedFd> fd = OpenChecked((*parent)->get(), loc.name, want);
      if (fd.ok()) {
        cache_.Put(key, *fd);
        return fd;
      }
      last = fd.error();
    }
    if (last != ENOENT && last != ESTALE) break;
  }
  if (SharedFd orphan = table_.OrphanFd(node); orphan && layer == b.primary()) return orphan;
  return Errno{last == ENOENT ? ESTALE : last};
}

Result<UniqueFd> Resolver::OpenData(Node* node, const Binding& b, int flags) {
  if (b.spill.token != 0) {
    Result<UniqueFd> data = changes_.OpenSpilled(b.spill, flags & ~O_TRUNC);
    if (!data.ok() && data.error() == ENOENT && table_.AliasCount(node) == 0) {
      // A stub whose last name went: its data left the store, and lives on
      // through the files still open on it.
      SharedFd open;
      {
        MutexLock lock(&node->handles_mu);
        for (FileHandle* fh : node->open_handles) {
          MutexLock fl(&fh->fd_mu);
          if (fh->fd) open = fh->fd;
          if (open) break;
        }
      }
      if (open) data = sys::Reopen(open->get(), flags & ~O_TRUNC);
      if (!data.ok()) return Errno{ESTALE};
    }
    if (!data.ok()) {
      // The stub is there, its data is not: never answer with the empty stub.
      spdlog::error("node {}: its spilled data on the {} is missing: {}", node->pid(),
                    LayerName(b.spill.layer), ErrnoText(data.error()));
      return Errno{EIO};
    }
    if (flags & O_TRUNC) DETOURFS_TRY(sys::Ftruncate(data->get(), 0));
    return data;
  }
  if (b.metacopy) {
    // An index entry whose data is still the volume file's: reads only.
    Result<SharedFd> entry = Fd(node, b);
    if (!entry.ok()) return Errno{entry.error()};
    Result<std::string> handle = markers::GetBytes((*entry)->get(), markers::kHandleXattr);
    if (!handle.ok()) return Errno{handle.error()};
    return sys::OpenByHandle(changes_.dirs(Layer::kVolume).tree->get(), *handle,
                             (flags & ~(O_TRUNC | O_ACCMODE)) | O_RDONLY);
  }
  Result<SharedFd> fd = Fd(node, b);
  if (!fd.ok()) return Errno{fd.error()};
  Result<struct stat> st = sys::Fstat((*fd)->get());
  if (!st.ok()) return Errno{st.error()};
  // Only regular files and directories are opened here (the kernel handles
  // FIFOs and devices itself): nothing planted underneath can block us.
  if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode)) return Errno{EINVAL};
  return sys::Reopen((*fd)->get(), flags);
}

void Resolver::Drop(uint64_t id) {
  for (Layer l : kAllLayers) cache_.Erase(Key(id, l));
}

}  // namespace detourfs
