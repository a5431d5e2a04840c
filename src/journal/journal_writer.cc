// JournalWriter (journal_writer.h).
#include "journal/journal_writer.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "journal/journal_format.h"
#include "store/tree_walk.h"
#include "sys/sys.h"

namespace detourfs::journal {
namespace {

constexpr char kPrefix[] = "segment-";
constexpr auto kBufferAge = std::chrono::seconds(1);

}  // namespace

std::string SegmentName(uint64_t number) {
  char name[32];
  std::snprintf(name, sizeof(name), "%s%016" PRIx64, kPrefix, number);
  return name;
}

uint64_t SegmentNumber(const std::string& name) {
  const size_t prefix = sizeof(kPrefix) - 1;
  if (name.size() != prefix + 16 || name.compare(0, prefix, kPrefix) != 0) return 0;
  uint64_t n = 0;
  for (size_t i = prefix; i < name.size(); ++i) {
    const char c = name[i];
    int digit = 0;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return 0;
    }
    n = (n << 4) | static_cast<uint64_t>(digit);
  }
  return n;
}

Result<std::vector<SegmentFile>> ListSegments(int dir_fd) {
  Result<std::vector<WalkItem>> items = ListDir(dir_fd);
  if (!items.ok()) return Errno{items.error()};
  std::vector<SegmentFile> out;
  for (const WalkItem& item : *items) {
    const uint64_t number = SegmentNumber(item.name);
    if (number == 0 || item.type != S_IFREG) continue;
    Result<struct stat> st = sys::StatAt(dir_fd, item.name.c_str());
    if (!st.ok()) {
      if (st.error() == ENOENT) continue;
      return Errno{st.error()};
    }
    out.push_back(SegmentFile{number, item.name, static_cast<uint64_t>(st->st_size)});
  }
  std::sort(out.begin(), out.end(),
            [](const SegmentFile& a, const SegmentFile& b) { return a.number < b.number; });
  return out;
}

Result<std::string> ReadSegmentFile(int dir_fd, const std::string& name) {
  Result<UniqueFd> fd = sys::OpenBeneath(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW);
  if (!fd.ok()) return Errno{fd.error()};
  std::string bytes;
  char buf[64 << 10];
  for (;;) {
    Result<size_t> n = sys::Read(fd->get(), buf, sizeof(buf));
    if (!n.ok()) return Errno{n.error()};
    if (*n == 0) break;
    bytes.append(buf, *n);
  }
  return bytes;
}

Result<std::unique_ptr<JournalWriter>> JournalWriter::Open(SharedFd dir_fd, std::string what) {
  std::unique_ptr<JournalWriter> w(new JournalWriter(std::move(dir_fd), std::move(what)));
  Result<std::vector<SegmentFile>> segments = ListSegments(w->dir_->get());
  if (!segments.ok()) return Errno{segments.error()};
  const uint64_t number = segments->empty() ? 1 : segments->back().number + 1;
  MutexLock lock(&w->mu_);
  // The new segment first (it may say a gap), then the oldest go.
  uint64_t total = 0;
  for (const SegmentFile& s : *segments) total += s.bytes;
  size_t drop = 0;
  while (drop < segments->size() && total > kMaxJournalBytes - kSegmentBytes) {
    total -= (*segments)[drop].bytes;
    ++drop;
  }
  if (Result<void> r = w->Begin(number, drop > 0, 0); !r.ok()) return Errno{r.error()};
  for (size_t i = 0; i < drop; ++i) {
    const std::string& name = (*segments)[i].name;
    if (Result<void> r = sys::UnlinkAt(w->dir_->get(), name.c_str(), 0); !r.ok()) {
      spdlog::warn("journal of the {}: cannot remove the old segment '{}': {}", w->what_, name,
                   ErrnoText(r.error()));
    } else {
      spdlog::warn("journal of the {}: removed the old segment '{}' to stay under {} MiB", w->what_,
                   name, kMaxJournalBytes >> 20);
    }
  }
  return w;
}

JournalWriter::~JournalWriter() { Close(); }

Result<void> JournalWriter::Begin(uint64_t number, bool gap, uint64_t first_seq) {
  const std::string name = SegmentName(number);
  Result<UniqueFd> fd =
      sys::OpenBeneath(dir_->get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND, 0600);
  if (!fd.ok()) {
    spdlog::error("journal of the {}: cannot make the segment '{}': {}", what_, name,
                  ErrnoText(fd.error()));
    return Errno{fd.error()};
  }
  std::string head = EncodeHeader(SegmentHeader{number, first_seq});
  if (gap) head += EncodeGap(first_seq);
  Result<void> r = sys::WriteAll(fd->get(), head.data(), head.size());
  if (r.ok()) r = sys::Fsync(fd->get(), false);
  if (r.ok()) r = sys::SyncDir(dir_->get());
  if (!r.ok()) {
    spdlog::error("journal of the {}: cannot begin the segment '{}': {}", what_, name,
                  ErrnoText(r.error()));
    return r;
  }
  fd_ = std::move(*fd);
  number_ = number;
  written_ = head.size();
  last_seq_ = first_seq;
  return {};
}

void JournalWriter::Fail(const char* doing, int err) {
  if (!failed_) {
    spdlog::error(
        "journal of the {}: cannot {} ({}); changes from now on are not journaled (the "
        "segment stays unclosed, so the next start knows)",
        what_, doing, ErrnoText(err));
  }
  failed_ = true;
  buffer_.clear();
}

Result<void> JournalWriter::WriteBuffer() {
  if (failed_) return Errno{EIO};
  if (buffer_.empty()) return {};
  Result<void> r = sys::WriteAll(fd_.get(), buffer_.data(), buffer_.size());
  if (!r.ok()) {
    Fail("append to it", r.error());
    return r;
  }
  written_ += buffer_.size();
  buffer_.clear();
  if (written_ >= kSegmentBytes) {
    // The next segment takes over; this one ends closed.
    const std::string close = EncodeClose(last_seq_);
    Result<void> c = sys::WriteAll(fd_.get(), close.data(), close.size());
    if (c.ok()) c = sys::Fsync(fd_.get(), true);
    if (!c.ok()) {
      Fail("close a full segment", c.error());
      return c;
    }
    if (Result<void> b = Begin(number_ + 1, false, last_seq_); !b.ok()) {
      Fail("begin a new segment", b.error());
      return b;
    }
  }
  return {};
}

void JournalWriter::Append(const ChangeRecord& record) {
  MutexLock lock(&mu_);
  if (failed_ || closed_) return;
  if (buffer_.empty()) oldest_ = std::chrono::steady_clock::now();
  buffer_ += EncodeChange(record);
  last_seq_ = record.seq;
  if (buffer_.size() >= kBufferBytes || std::chrono::steady_clock::now() - oldest_ >= kBufferAge) {
    (void)WriteBuffer();
  }
}

Result<void> JournalWriter::Sync() {
  MutexLock lock(&mu_);
  if (closed_) return {};
  DETOURFS_TRY(WriteBuffer());
  Result<void> r = sys::Fsync(fd_.get(), true);
  if (!r.ok()) Fail("sync it", r.error());
  return r;
}

void JournalWriter::Close() {
  MutexLock lock(&mu_);
  if (closed_) return;
  closed_ = true;
  if (failed_ || !WriteBuffer().ok()) return;  // left unclosed: the next start reconciles
  const std::string close = EncodeClose(last_seq_);
  Result<void> r = sys::WriteAll(fd_.get(), close.data(), close.size());
  if (r.ok()) r = sys::Fsync(fd_.get(), true);
  if (!r.ok()) Fail("close it", r.error());
  fd_.Reset();
}

bool JournalWriter::intact() const {
  MutexLock lock(&mu_);
  return !failed_;
}

}  // namespace detourfs::journal
