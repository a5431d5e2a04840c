// IdSource (id_source.h).
#include "store/id_source.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <string>

#include "sys/sys.h"
#include "sys/tmp_file.h"

namespace detourfs {
namespace {

constexpr const char* kIdsName = "ids";
constexpr uint64_t kMaxIncarnation = (uint64_t{1} << 30) - 1;

uint64_t ReadIncarnation(int dir) {
  Result<UniqueFd> fd = sys::OpenBeneath(dir, kIdsName, O_RDONLY);
  if (!fd.ok()) return 0;
  char buf[64] = {};
  Result<size_t> n = sys::Read(fd->get(), buf, sizeof(buf) - 1);
  if (!n.ok()) return 0;
  return std::strtoull(buf, nullptr, 10);
}

Result<void> WriteIncarnation(int dir, uint64_t incarnation) {
  return sys::ReplaceFileDurably(dir, kIdsName, std::to_string(incarnation) + "\n", 0600);
}

}  // namespace

Status IdSource::Open(const std::vector<int>& dirs, std::unique_ptr<IdSource>* out) {
  uint64_t last = 0;
  for (int dir : dirs) last = std::max(last, ReadIncarnation(dir));
  auto source = std::unique_ptr<IdSource>(new IdSource(dirs, last + 1));
  if (Status s = source->Persist(last + 1); !s.ok()) return s;
  *out = std::move(source);
  return Status::OK();
}

std::unique_ptr<IdSource> IdSource::Transient() {
  return std::unique_ptr<IdSource>(new IdSource({}, 0));
}

Status IdSource::Persist(uint64_t incarnation) {
  if (incarnation > kMaxIncarnation) return Status::IOError("ids exhausted");
  size_t written = 0;
  int last_error = 0;
  for (int dir : dirs_) {
    Result<void> w = WriteIncarnation(dir, incarnation);
    if (w.ok()) {
      ++written;
    } else {
      last_error = w.error();
      spdlog::warn("cannot record the id incarnation in one of the layers: {}, ignoring",
                   ErrnoText(w.error()));
    }
  }
  if (!dirs_.empty() && written == 0) {
    return Status::FromErrno(last_error, "cannot record the id incarnation on any layer");
  }
  return Status::OK();
}

uint64_t IdSource::Next() {
  for (;;) {
    const uint64_t n = next_.fetch_add(1, std::memory_order_relaxed);
    const uint64_t inc = incarnation_.load(std::memory_order_acquire);
    if (n < (uint64_t{1} << 32)) return kIdBase | (inc << 32) | n;
    // 2^32 ids in one run: a new incarnation (rare enough to take a lock).
    MutexLock lock(&mu_);
    if (incarnation_.load(std::memory_order_acquire) == inc) {
      if (!Persist(inc + 1).ok()) spdlog::error("cannot record a new id incarnation");
      incarnation_.store(inc + 1, std::memory_order_release);
      next_.store(0, std::memory_order_release);
    }
  }
}

}  // namespace detourfs
