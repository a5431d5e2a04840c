// OpenHandles: the file and directory handles flakyfs has given the kernel
// and the kernel has not released yet. The kernel drops a RELEASE still in
// flight when the mount goes away (a close just before umount), so FlakyFs
// owns every handle here and closes what is left when it is destroyed;
// nothing leaks and no fd stays open past the mount.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "file_key.h"

namespace flakyfs {

struct FileHandle {
  FileHandle() = default;
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  ~FileHandle() {
    if (fd >= 0) close(fd);
  }
  int fd = -1;
  uint64_t epoch = 0;  // the model's epoch at open: a power cut kills older handles
  std::atomic<bool> written{false};
  FileKey key;  // the model's name for the file, under its guard
};

struct DirHandle {
  DirHandle() = default;
  DirHandle(const DirHandle&) = delete;
  DirHandle& operator=(const DirHandle&) = delete;
  ~DirHandle() {
    if (dir != nullptr) closedir(dir);
  }
  DIR* dir = nullptr;
  uint64_t epoch = 0;
};

// Owns handles of type H, keyed by the pointer the kernel carries in fh.
template <typename H>
class OpenHandles {
 public:
  // Takes `h` and returns the value for fuse_file_info::fh.
  uint64_t Add(std::unique_ptr<H> h) {
    auto fh = reinterpret_cast<uint64_t>(h.get());  // NOLINT: the FUSE fh carries our pointer
    std::lock_guard<std::mutex> lock(mu_);
    open_.emplace(fh, std::move(h));
    return fh;
  }
  // Closes and frees the handle `fh` (the kernel's RELEASE).
  void Remove(uint64_t fh) {
    std::unique_ptr<H> h;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = open_.find(fh);
      if (it == open_.end()) return;
      h = std::move(it->second);
      open_.erase(it);
    }
  }

 private:
  std::mutex mu_;
  std::unordered_map<uint64_t, std::unique_ptr<H>> open_;
};

}  // namespace flakyfs
