// The flush's directory on the volume (epoch_area.h, docs/flush.md).
#include "flush/epoch_area.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>

#include "flush/manifest_apply.h"
#include "store/file_copy.h"
#include "store/tree_walk.h"
#include "sys/sys.h"
#include "sys/tmp_file.h"

namespace detourfs::flush {
namespace {

constexpr const char* kLastName = "last";
constexpr const char* kManifestName = "manifest";
constexpr const char* kDataName = "data";
constexpr std::string_view kEpochPrefix = "epoch-";

// The epoch a directory name in flush/ stands for, if it is one.
bool ParseEpochDir(std::string_view name, uint64_t* epoch) {
  if (name.size() != kEpochPrefix.size() + 16 ||
      name.substr(0, kEpochPrefix.size()) != kEpochPrefix) {
    return false;
  }
  const char* first = name.data() + kEpochPrefix.size();
  const char* last = name.data() + name.size();
  auto [end, ec] = std::from_chars(first, last, *epoch, 16);
  return ec == std::errc() && end == last;
}

Result<uint64_t> ReadLast(int dir) {
  Result<UniqueFd> fd = sys::OpenBeneath(dir, kLastName, O_RDONLY);
  if (!fd.ok()) return fd.error() == ENOENT ? Result<uint64_t>(0) : Errno{fd.error()};
  Result<std::string> text = sys::ReadAll(fd->get());
  if (!text.ok()) return Errno{text.error()};
  uint64_t last = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), last);
  if (ec != std::errc() || end == text->data()) return Errno{EINVAL};
  return last;
}

}  // namespace

std::string EpochDirName(uint64_t epoch) {
  char name[32];
  std::snprintf(name, sizeof(name), "epoch-%016" PRIx64, epoch);
  return name;
}

Result<EpochArea> EpochArea::Open(int private_dir) {
  Result<void> made = sys::MkdirAt(private_dir, kFlushDirName, 0700);
  if (!made.ok() && made.error() != EEXIST) return Errno{made.error()};
  if (made.ok()) DETOURFS_TRY(sys::SyncDir(private_dir));
  Result<UniqueFd> dir = sys::OpenBeneath(private_dir, kFlushDirName, O_PATH | O_DIRECTORY);
  if (!dir.ok()) return Errno{dir.error()};
  Result<struct stat> st = sys::Fstat(dir->get());
  if (!st.ok()) return Errno{st.error()};
  if (st->st_uid != ::geteuid() || (st->st_mode & 022) != 0) return Errno{EPERM};
  Result<UniqueFd> lock = sys::Reopen(dir->get(), O_RDONLY | O_DIRECTORY);
  if (!lock.ok()) return Errno{lock.error()};
  if (Result<void> r = sys::Flock(lock->get(), LOCK_EX | LOCK_NB); !r.ok()) {
    return Errno{r.error() == EWOULDBLOCK ? EBUSY : r.error()};
  }
  Result<uint64_t> last = ReadLast(dir->get());
  if (!last.ok()) return Errno{last.error()};
  EpochArea area;
  area.dir_ = std::move(*dir);
  area.lock_ = std::move(*lock);
  area.last_done_ = *last;
  return area;
}

Result<std::vector<uint64_t>> EpochArea::InFlight() const {
  Result<std::vector<WalkItem>> items = ListDir(dir_.get());
  if (!items.ok()) return Errno{items.error()};
  std::vector<uint64_t> epochs;
  for (const WalkItem& item : *items) {
    uint64_t epoch = 0;
    if (S_ISDIR(item.type) && ParseEpochDir(item.name, &epoch)) epochs.push_back(epoch);
  }
  std::sort(epochs.begin(), epochs.end());
  return epochs;
}

Result<uint64_t> EpochArea::NextEpoch() const {
  Result<std::vector<uint64_t>> epochs = InFlight();
  if (!epochs.ok()) return Errno{epochs.error()};
  uint64_t top = last_done_;
  if (!epochs->empty()) top = std::max(top, epochs->back());
  return top + 1;
}

Result<UniqueFd> EpochArea::Begin(int volume, uint64_t epoch) {
  Result<std::vector<uint64_t>> epochs = InFlight();
  if (!epochs.ok()) return Errno{epochs.error()};
  if (epoch <= last_done_ || (!epochs->empty() && epoch <= epochs->back())) return Errno{EEXIST};
  for (uint64_t other : *epochs) {
    if (other <= last_done_) continue;  // done; only its removal was cut short
    const std::string manifest = EpochDirName(other) + "/" + kManifestName;
    Result<struct stat> st = sys::StatAt(dir_.get(), manifest.c_str());
    if (st.ok()) return Errno{EBUSY};
    if (st.error() != ENOENT) return Errno{st.error()};
  }
  Result<UniqueFd> sync_fd = sys::Reopen(volume, O_RDONLY | O_DIRECTORY);
  if (!sync_fd.ok()) return Errno{sync_fd.error()};
  const std::string name = EpochDirName(epoch);
  DETOURFS_TRY(sys::MkdirAt(dir_.get(), name.c_str(), 0700));
  Result<UniqueFd> epoch_dir = sys::OpenBeneath(dir_.get(), name.c_str(), O_PATH | O_DIRECTORY);
  if (!epoch_dir.ok()) return Errno{epoch_dir.error()};
  DETOURFS_TRY(sys::MkdirAt(epoch_dir->get(), kDataName, 0700));
  Result<UniqueFd> data = sys::OpenBeneath(epoch_dir->get(), kDataName, O_PATH | O_DIRECTORY);
  if (!data.ok()) return Errno{data.error()};
  begun_ = epoch;
  sync_fd_ = std::move(*sync_fd);
  return data;
}

Result<UniqueFd> EpochArea::OpenData(uint64_t epoch) const {
  const std::string path = EpochDirName(epoch) + "/" + kDataName;
  return sys::OpenBeneath(dir_.get(), path.c_str(), O_PATH | O_DIRECTORY);
}

namespace {

// Whether every staged object of `manifest` is in `data` with its step's
// type, and every staged regular file reads back from the volume with its
// step's size and hash.
Result<bool> StagedObjectsReadBack(const Manifest& manifest, int data) {
  for (const ManifestStep& s : manifest.steps) {
    if (s.kind != StepKind::kPlace && s.kind != StepKind::kDirectory) continue;
    if (s.kind == StepKind::kDirectory && s.staged == kNoStagedObject) continue;
    const std::string name = StagedName(s.staged);
    Result<struct stat> st = sys::StatAt(data, name.c_str());
    if (!st.ok()) return st.error() == ENOENT ? Result<bool>(false) : Errno{st.error()};
    if ((st->st_mode & S_IFMT) != (s.mode & S_IFMT)) return false;
    if (!S_ISREG(s.mode)) continue;
    Result<UniqueFd> fd = sys::OpenBeneath(data, name.c_str(), O_RDONLY);
    if (!fd.ok()) return Errno{fd.error()};
    (void)sys::Fadvise(fd->get(), 0, 0, POSIX_FADV_DONTNEED);
    Result<DataDigest> digest = DigestOf(fd->get());
    if (!digest.ok()) return Errno{digest.error()};
    if (static_cast<uint64_t>(digest->size) != s.size || digest->hash != s.hash) return false;
  }
  return true;
}

}  // namespace

Result<void> EpochArea::Commit(const Manifest& manifest) {
  if (manifest.epoch != begun_ || !sync_fd_.valid()) return Errno{EINVAL};
  const std::string name = EpochDirName(manifest.epoch);
  Result<UniqueFd> epoch_dir = sys::OpenBeneath(dir_.get(), name.c_str(), O_PATH | O_DIRECTORY);
  if (!epoch_dir.ok()) return Errno{epoch_dir.error()};
  // The staged objects and their directories first, in one sync: the
  // manifest never names an object a crash could lose. Through the fd
  // opened before staging, so a write-back error of the staging is seen.
  DETOURFS_TRY(sys::Syncfs(sync_fd_.get()));
  Result<UniqueFd> data = OpenData(manifest.epoch);
  if (!data.ok()) return Errno{data.error()};
  Result<bool> staged = StagedObjectsReadBack(manifest, data->get());
  if (!staged.ok()) return Errno{staged.error()};
  if (!*staged) return Errno{EIO};
  // A manifest recovery would refuse is never written.
  const std::string bytes = EncodeManifest(manifest);
  std::string why;
  if (!DecodeManifest(bytes, &why).ok()) return Errno{EINVAL};
  DETOURFS_TRY(sys::ReplaceFileDurably(epoch_dir->get(), kManifestName, bytes, 0600));
  Result<Manifest> back = ReadManifest(manifest.epoch, &why);
  if (!back.ok() || !(*back == manifest)) {
    // Not committed after all: the manifest goes (durably) before the
    // error is answered.
    Result<void> gone = sys::UnlinkAt(epoch_dir->get(), kManifestName, 0);
    if (!gone.ok() && gone.error() != ENOENT) return gone;
    DETOURFS_TRY(sys::SyncDir(epoch_dir->get()));
    return Errno{EIO};
  }
  return {};
}

Result<Manifest> EpochArea::ReadManifest(uint64_t epoch, std::string* why) const {
  const std::string path = EpochDirName(epoch) + "/" + kManifestName;
  Result<UniqueFd> fd = sys::OpenBeneath(dir_.get(), path.c_str(), O_RDONLY);
  if (!fd.ok()) return Errno{fd.error()};
  (void)sys::Fadvise(fd->get(), 0, 0, POSIX_FADV_DONTNEED);
  Result<std::string> bytes = sys::ReadAll(fd->get());
  if (!bytes.ok()) return Errno{bytes.error()};
  Result<Manifest> manifest = DecodeManifest(*bytes, why);
  if (manifest.ok() && manifest->epoch != epoch) {
    *why = "the manifest names epoch " + std::to_string(manifest->epoch);
    return Errno{EINVAL};
  }
  return manifest;
}

Result<void> EpochArea::Done(uint64_t epoch) {
  if (epoch > last_done_) {
    DETOURFS_TRY(
        sys::ReplaceFileDurably(dir_.get(), kLastName, std::to_string(epoch) + "\n", 0600));
    last_done_ = epoch;
  }
  return Discard(epoch);
}

Result<void> EpochArea::Discard(uint64_t epoch) {
  // The manifest first, durably: a removal cut short must leave an epoch
  // recovery discards, never a committed one with some objects gone.
  const std::string manifest = EpochDirName(epoch) + "/" + kManifestName;
  Result<void> unlinked = sys::UnlinkAt(dir_.get(), manifest.c_str(), 0);
  if (!unlinked.ok() && unlinked.error() != ENOENT && unlinked.error() != ENOTDIR) {
    return unlinked;
  }
  if (unlinked.ok()) {
    Result<UniqueFd> epoch_dir =
        sys::OpenBeneath(dir_.get(), EpochDirName(epoch).c_str(), O_PATH | O_DIRECTORY);
    if (!epoch_dir.ok()) return Errno{epoch_dir.error()};
    DETOURFS_TRY(sys::SyncDir(epoch_dir->get()));
  }
  Result<void> gone = RemoveTree(dir_.get(), EpochDirName(epoch).c_str());
  if (!gone.ok() && gone.error() != ENOENT) return gone;
  return sys::SyncDir(dir_.get());
}

}  // namespace detourfs::flush
