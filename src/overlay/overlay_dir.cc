// Overlay: directory listing with getdents64, plain and plus (with lookups).
#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "detourfs/overlay.h"
#include "inodes/resolver.h"
#include "sys/sys.h"

namespace detourfs {
namespace {

constexpr size_t kDirBufSize = size_t{32} * 1024;

bool IsDotOrDotDot(const char* name) {
  return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

}  // namespace

Result<std::unique_ptr<DirHandle>> Overlay::OpenDir(uint64_t ino) {
  Result<Node*> node = NodeOf(ino);
  if (!node.ok()) return Errno{node.error()};
  Result<UniqueFd> dir = resolver_->Open(*node, O_RDONLY | O_DIRECTORY);
  if (!dir.ok()) return Errno{dir.error()};
  auto dh = std::make_unique<DirHandle>();
  dh->node = *node;
  dh->fd = std::move(*dir);
  if (!router_.empty()) {
    // A directory some tier also holds (routed, or above a routed subtree)
    // is listed merged.
    for (Layer tier : {Layer::kMemory, Layer::kDisk}) {
      if (tier == (*node)->layer() && TierOf((*node)->route()) == tier) {
        dh->merged = true;  // a routed directory on its tier: its volume part too
      } else if (resolver_->HasLayer(tier) && resolver_->Fd(*node, tier).ok()) {
        dh->merged = true;
      }
    }
  }
  Track(dh.get());
  return dh;
}

Result<void> Overlay::ReadDir(DirHandle& dh, off_t offset, bool plus,
                              const std::function<bool(const DirEntry&)>& emit) {
  std::lock_guard lock(dh.mu);
  if (dh.merged) return ReadMerged(dh, offset, plus, emit);
  if (offset != dh.offset || dh.buf.empty()) {
    // A seek (or the first call): getdents64 offsets are the filesystem's
    // own cookies, stable while entries come and go.
    if (::lseek(dh.fd.get(), offset, SEEK_SET) < 0) return Errno{errno};
    dh.buf.resize(kDirBufSize);
    dh.buf_pos = dh.buf_len = 0;
    dh.offset = offset;
  }
  bool emitted = false;
  for (;;) {
    if (dh.buf_pos >= dh.buf_len) {
      long n = ::syscall(SYS_getdents64, dh.fd.get(), dh.buf.data(), dh.buf.size());
      if (n < 0) {
        if (emitted) return {};
        return Errno{errno};
      }
      if (n == 0) return {};  // end of directory
      dh.buf_len = static_cast<size_t>(n);
      dh.buf_pos = 0;
    }
    // glibc's dirent64 has the layout getdents64 writes.
    auto* d = reinterpret_cast<struct dirent64*>(dh.buf.data() + dh.buf_pos);
    DirEntry e;
    e.name = d->d_name;
    e.ino = d->d_ino;
    e.type = static_cast<mode_t>(d->d_type) << 12;
    e.next_offset = d->d_off;
    if (plus && !IsDotOrDotDot(d->d_name)) {
      Result<Entry> entry = Stat(dh.node, dh.fd.get(), e.name);
      if (!entry.ok()) {
        if (entry.error() == ENOENT) {  // removed since getdents: skip it
          dh.buf_pos += d->d_reclen;
          dh.offset = d->d_off;
          continue;
        }
        if (emitted) return {};
        return Errno{entry.error()};
      }
      e.entry = *entry;
      e.ino = entry->attr.st_ino;
    }
    if (!emit(e)) {
      if (e.entry) Forget(e.entry->node->id(), 1);
      return {};
    }
    emitted = true;
    dh.buf_pos += d->d_reclen;
    dh.offset = d->d_off;
  }
}

Result<void> Overlay::FsyncDir(DirHandle& dh, bool datasync) {
  return sys::Fsync(dh.fd.get(), datasync);
}

}  // namespace detourfs
