// JournalWriter (journal_writer.h).
#include "journal/journal_writer.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
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
  // Lower-case hex digits only, as SegmentName writes them.
  if (name.find_first_not_of("0123456789abcdef", prefix) != std::string::npos) return 0;
  uint64_t n = 0;
  std::from_chars(name.data() + prefix, name.data() + name.size(), n, 16);
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
  return sys::ReadAll(fd->get());
}

Result<void> MarkIncomplete(int dir_fd) {
  Result<UniqueFd> fd = sys::OpenBeneath(dir_fd, kIncompleteMarker, O_WRONLY | O_CREAT, 0600);
  if (!fd.ok()) return Errno{fd.error()};
  DETOURFS_TRY(sys::Fsync(fd->get(), false));
  return sys::SyncDir(dir_fd);
}

bool MarkedIncomplete(int dir_fd) {
  Result<struct stat> st = sys::StatAt(dir_fd, kIncompleteMarker);
  return st.ok() || st.error() != ENOENT;  // (one that cannot be read: assume so)
}

Result<std::unique_ptr<JournalWriter>> JournalWriter::Open(SharedFd dir_fd, std::string what) {
  std::unique_ptr<JournalWriter> w(new JournalWriter(std::move(dir_fd), std::move(what)));
  MutexLock lock(&w->mu_);
  Result<void> r = w->BeginNext();
  if (!r.ok() && r.error() == ENOSPC) {
    // A full tier: the oldest segments go first (the gap says so), then
    // once more.
    (void)w->DropOldest(0);
    r = w->BeginNext();
  }
  if (!r.ok()) {
    // This run's changes go unjournaled: the next start must know.
    if (Result<void> m = MarkIncomplete(w->dir_->get()); !m.ok()) {
      spdlog::error("journal of the {}: cannot mark it incomplete either: {}", w->what_,
                    ErrnoText(m.error()));
    }
    return Errno{r.error()};
  }
  return w;
}

JournalWriter::~JournalWriter() { Close(); }

Result<void> JournalWriter::BeginNext() {
  Result<std::vector<SegmentFile>> segments = ListSegments(dir_->get());
  if (!segments.ok()) return Errno{segments.error()};
  const uint64_t number = std::max(number_, segments->empty() ? 0 : segments->back().number) + 1;
  Result<UniqueFd> fd = Begin(number, last_seq_);
  if (!fd.ok()) return Errno{fd.error()};
  // The old segment ends closed only once the new one is there: a crash
  // between leaves it unclosed (the journal incomplete), never a closed
  // journal that lacks what came after.
  if (fd_.valid()) {
    const std::string close = EncodeClose(last_seq_, number_);
    Result<void> c = sys::WriteAll(fd_.get(), close.data(), close.size());
    if (c.ok()) c = sys::Fsync(fd_.get(), true);
    if (!c.ok()) {
      spdlog::warn("journal of the {}: cannot close the full segment '{}': {}", what_,
                   SegmentName(number_), ErrnoText(c.error()));
    }
  }
  fd_ = std::move(*fd);
  number_ = number;
  written_ = kHeaderSize;
  // Past the bound, the oldest go; the new segment says so.
  return DropOldest(kMaxJournalBytes);
}

Result<void> JournalWriter::DropOldest(uint64_t bound) {
  Result<std::vector<SegmentFile>> segments = ListSegments(dir_->get());
  if (!segments.ok()) return Errno{segments.error()};
  uint64_t total = 0;
  for (const SegmentFile& f : *segments) total += f.bytes;
  uint64_t last_dropped = 0;
  for (const SegmentFile& f : *segments) {
    if (total <= bound || f.number == number_) break;
    if (fd_.valid() && last_dropped == 0) {
      // The gap first: a crash after a removal never leaves a journal
      // that looks complete without it.
      const std::string gap = EncodeGap(f.number, number_);
      DETOURFS_TRY(sys::WriteAll(fd_.get(), gap.data(), gap.size()));
      DETOURFS_TRY(sys::Fsync(fd_.get(), true));
      written_ += gap.size();
    } else if (!fd_.valid()) {
      DETOURFS_TRY(MarkIncomplete(dir_->get()));
    }
    if (Result<void> r = sys::UnlinkAt(dir_->get(), f.name.c_str(), 0); !r.ok()) {
      spdlog::warn("journal of the {}: cannot remove the old segment '{}': {}", what_, f.name,
                   ErrnoText(r.error()));
      return r;
    }
    spdlog::warn("journal of the {}: removed the old segment '{}' to stay under {} MiB", what_,
                 f.name, bound >> 20);
    total -= f.bytes;
    last_dropped = f.number;
  }
  return {};
}

Result<UniqueFd> JournalWriter::Begin(uint64_t number, uint64_t first_seq) {
  const std::string name = SegmentName(number);
  Result<UniqueFd> fd =
      sys::OpenBeneath(dir_->get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND, 0600);
  if (!fd.ok()) {
    spdlog::error("journal of the {}: cannot make the segment '{}': {}", what_, name,
                  ErrnoText(fd.error()));
    return Errno{fd.error()};
  }
  const std::string head = EncodeHeader(SegmentHeader{number, first_seq});
  Result<void> r = sys::WriteAll(fd->get(), head.data(), head.size());
  if (r.ok()) r = sys::Fsync(fd->get(), false);
  if (r.ok()) r = sys::SyncDir(dir_->get());
  if (!r.ok()) {
    spdlog::error("journal of the {}: cannot begin the segment '{}': {}", what_, name,
                  ErrnoText(r.error()));
    return Errno{r.error()};
  }
  return std::move(*fd);
}

void JournalWriter::Fail(const char* doing, int err) {
  if (!failed_) {
    spdlog::error(
        "journal of the {}: cannot {} ({}); changes from now on are not journaled (the "
        "journal is marked incomplete for the next start)",
        what_, doing, ErrnoText(err));
    if (Result<void> m = MarkIncomplete(dir_->get()); !m.ok()) {
      spdlog::error(
          "journal of the {}: cannot mark it incomplete either ({}); its last "
          "segment stays unclosed",
          what_, ErrnoText(m.error()));
    }
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
    if (Result<void> b = BeginNext(); !b.ok()) {
      Fail("begin its next segment", b.error());
      return b;
    }
  }
  return {};
}

void JournalWriter::Append(const ChangeRecord& record) {
  MutexLock lock(&mu_);
  if (failed_ || closed_) return;
  if (buffer_.empty()) oldest_ = std::chrono::steady_clock::now();
  std::string encoded = EncodeChange(record, number_);
  if (encoded.size() > kFrameOverhead + kMaxPayload) {
    // Paths longer than a record holds (a tree deeper than PATH_MAX): a
    // gap stands for it, so the journal reads incomplete from here.
    spdlog::warn("journal of the {}: a change of a path of {} bytes is too long to journal", what_,
                 record.path.size() + record.path2.size());
    encoded = EncodeGap(0, number_);
  } else {
    last_seq_ = record.seq;
  }
  buffer_ += encoded;
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
  if (!failed_ && WriteBuffer().ok()) {
    const std::string close = EncodeClose(last_seq_, number_);
    Result<void> r = sys::WriteAll(fd_.get(), close.data(), close.size());
    if (r.ok()) r = sys::Fsync(fd_.get(), true);
    if (!r.ok()) Fail("close it", r.error());
  }
  fd_.Reset();
}

bool JournalWriter::intact() const {
  MutexLock lock(&mu_);
  return !failed_;
}

}  // namespace detourfs::journal
