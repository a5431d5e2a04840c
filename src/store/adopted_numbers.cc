// AdoptedNumbers (adopted_numbers.h).
#include "store/adopted_numbers.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <array>
#include <cstring>
#include <string>

#include "sys/sys.h"

namespace detourfs {

Status AdoptedNumbers::Open(int dirfd, const char* name) {
  Result<UniqueFd> fd = sys::OpenBeneath(dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (!fd.ok()) {
    return Status::FromErrno(
        fd.error(), std::string("cannot open the record of adopted numbers '") + name + "'");
  }
  std::unordered_set<uint64_t> numbers;
  std::array<char, 64 * 1024> buf{};  // a multiple of the record size
  off_t at = 0;
  for (;;) {
    size_t have = 0;
    // Whole records per round: a short read mid-buffer is read on.
    while (have < buf.size()) {
      Result<size_t> n = sys::PRead(fd->get(), buf.data() + have, buf.size() - have, at);
      if (!n.ok()) {
        return Status::FromErrno(n.error(), std::string("cannot read the record of adopted "
                                                        "numbers '") +
                                                name + "'");
      }
      if (*n == 0) break;
      have += *n;
      at += static_cast<off_t>(*n);
    }
    for (size_t i = 0; i + sizeof(uint64_t) <= have; i += sizeof(uint64_t)) {
      uint64_t number = 0;
      std::memcpy(&number, buf.data() + i, sizeof(number));
      numbers.insert(number);
    }
    if (have < buf.size()) {
      if (have % sizeof(uint64_t) != 0) {
        // A crash mid-write: the next record goes where the torn one began.
        spdlog::warn("the record of adopted numbers '{}' ends in a torn record: ignored", name);
        at -= static_cast<off_t>(have % sizeof(uint64_t));
      }
      break;
    }
  }
  MutexLock lock(&mu_);
  numbers_ = std::move(numbers);
  end_ = at;
  fd_ = std::move(*fd);
  return Status::OK();
}

Result<void> AdoptedNumbers::Add(uint64_t number) {
  MutexLock lock(&mu_);
  if (!fd_.valid() || numbers_.count(number) != 0) return {};
  // At a known offset, not O_APPEND: a write cut short is overwritten by
  // the next record instead of shifting every later one. Kept in memory only
  // once written: a failed write is tried again by the next Add.
  if (Result<void> r = sys::PWriteAll(fd_.get(), &number, sizeof(number), end_); !r.ok()) {
    spdlog::warn("cannot record that an entry reports volume inode number {}: {}", number,
                 ErrnoText(r.error()));
    return r;
  }
  numbers_.insert(number);
  end_ += static_cast<off_t>(sizeof(number));
  dirty_ = true;
  return {};
}

Result<void> AdoptedNumbers::Sync() {
  MutexLock lock(&mu_);
  if (!fd_.valid() || !dirty_) return {};
  DETOURFS_TRY(sys::Fsync(fd_.get(), true));
  dirty_ = false;
  return {};
}

bool AdoptedNumbers::Has(uint64_t number) const {
  MutexLock lock(&mu_);
  return numbers_.count(number) != 0;
}

size_t AdoptedNumbers::size() const {
  MutexLock lock(&mu_);
  return numbers_.size();
}

}  // namespace detourfs
