// TierSpace: capacity against usage, from statvfs of the tier's filesystem.
#include "store/tier_space.h"

#include <algorithm>

#include "sys/sys.h"

namespace detourfs {
namespace {

// How stale the numbers may get: statvfs is cheap, but small-file writes
// come by the thousand per second.
constexpr auto kRefreshEvery = std::chrono::milliseconds(100);
// ... or after this many bytes admitted since the last read.
constexpr uint64_t kRefreshAfterBytes = uint64_t{8} << 20;

}  // namespace

TierSpace::TierSpace(SharedFd root, uint64_t capacity, double high_watermark)
    : root_(std::move(root)), configured_(capacity), high_watermark_(high_watermark) {}

Result<TierSpace::Usage> TierSpace::RefreshLocked(bool force, struct statvfs* raw) {
  const auto now = std::chrono::steady_clock::now();
  if (read_ && !force && now - read_at_ < kRefreshEvery && since_refresh_ < kRefreshAfterBytes) {
    Usage u = usage_;
    u.used += since_refresh_;
    u.fs_free -= std::min(u.fs_free, since_refresh_);
    return u;
  }
  Result<struct statvfs> vfs = sys::Fstatvfs(root_->get());
  if (!vfs.ok()) return Errno{vfs.error()};
  if (raw != nullptr) *raw = *vfs;
  Usage u;
  u.block_size = vfs->f_frsize != 0 ? vfs->f_frsize : 4096;
  const uint64_t size = static_cast<uint64_t>(vfs->f_blocks) * u.block_size;
  u.capacity = configured_ != 0 ? std::min(configured_, size) : size;
  const uint64_t fs_used = static_cast<uint64_t>(vfs->f_blocks - vfs->f_bfree) * u.block_size;
  u.used = fs_used - std::min(fs_used, others_);
  u.fs_free = static_cast<uint64_t>(vfs->f_bavail) * u.block_size;
  u.files = vfs->f_files;
  u.files_free = vfs->f_ffree;
  usage_ = u;
  since_refresh_ = 0;
  read_at_ = now;
  read_ = true;
  return u;
}

bool TierSpace::MayShareFilesystem() {
  if (configured_ == 0) return false;
  Result<struct statvfs> vfs = sys::Fstatvfs(root_->get());
  const uint64_t block = vfs.ok() && vfs->f_frsize != 0 ? vfs->f_frsize : 4096;
  return vfs.ok() && configured_ < static_cast<uint64_t>(vfs->f_blocks) * block;
}

Result<void> TierSpace::SetOwnUsage(uint64_t own) {
  std::lock_guard lock(mu_);
  others_ = 0;
  Result<Usage> u = RefreshLocked(true);
  if (!u.ok()) return Errno{u.error()};
  others_ = u->used - std::min(u->used, own);
  since_refresh_ = 0;
  read_ = false;  // the next read counts without them
  return {};
}

Result<TierSpace::Usage> TierSpace::Read() {
  std::lock_guard lock(mu_);
  return RefreshLocked(false);
}

bool TierSpace::Admit(uint64_t bytes) {
  std::lock_guard lock(mu_);
  Result<Usage> u = RefreshLocked(false);
  if (!u.ok()) return true;  // unknown: let the write say
  const bool fits = u->used + bytes <= u->capacity && bytes <= u->fs_free;
  if (!fits) {
    // Recheck with fresh numbers before saying no: files may have gone.
    u = RefreshLocked(true);
    if (!u.ok()) return true;
    if (u->used + bytes > u->capacity || bytes > u->fs_free) return false;
  }
  since_refresh_ += bytes;
  return true;
}

bool TierSpace::AboveHighWatermark() {
  std::lock_guard lock(mu_);
  Result<Usage> u = RefreshLocked(false);
  return u.ok() && u->capacity != 0 &&
         static_cast<double>(u->used) > high_watermark_ * static_cast<double>(u->capacity);
}

Result<struct statvfs> TierSpace::StatFs() {
  struct statvfs out {};
  Result<Usage> u = [&] {
    std::lock_guard lock(mu_);
    return RefreshLocked(true, &out);
  }();
  if (!u.ok()) return Errno{u.error()};
  const uint64_t left = std::min(u->capacity - std::min(u->capacity, u->used), u->fs_free);
  out.f_frsize = u->block_size;
  out.f_blocks = u->capacity / u->block_size;
  out.f_bfree = left / u->block_size;
  out.f_bavail = left / u->block_size;
  return out;
}

}  // namespace detourfs
