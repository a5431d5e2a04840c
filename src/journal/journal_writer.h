// JournalWriter: appends a tier's change records to the newest segment of
// its journal directory (<tier>/journal, docs/journal.md). Records are
// buffered and written in batches (at 64 KiB, when the oldest buffered one
// is a second old, at Sync and at Close): the journal speeds the flush up
// but is not its truth. A segment that does not end with a close record
// (a crash, a write that failed) tells the next start to reconcile the
// tier with the volume instead of trusting the journal alone.
//
// Bounded: past kSegmentBytes the next segment is begun and then this one
// closed; whenever one begins, the oldest go while the journal exceeds
// kMaxJournalBytes, a gap record in the new one saying so. A run that
// cannot journal marks the journal incomplete (kIncompleteMarker).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "detourfs/result.h"
#include "detourfs/status.h"
#include "detourfs/unique_fd.h"
#include "inodes/node.h"
#include "store/change_record.h"
#include "util/locks.h"

namespace detourfs::journal {

inline constexpr size_t kSegmentBytes = 16 << 20;
inline constexpr size_t kMaxJournalBytes = 128 << 20;
inline constexpr size_t kBufferBytes = 64 << 10;

struct SegmentFile {
  uint64_t number = 0;
  std::string name;
  uint64_t bytes = 0;
};

// A segment's file name, and the number a name stands for (0: not one).
std::string SegmentName(uint64_t number);
uint64_t SegmentNumber(const std::string& name);
// The segments in `dir_fd`, oldest first.
Result<std::vector<SegmentFile>> ListSegments(int dir_fd);
// A segment's bytes.
Result<std::string> ReadSegmentFile(int dir_fd, const std::string& name);

// The marker a journal that cannot name every change carries (a run that
// could not journal, a tier adopted with content but no journal) until a
// reconcile pass (the flush's) has compared the tier with the volume.
inline constexpr const char* kIncompleteMarker = "incomplete";
Result<void> MarkIncomplete(int dir_fd);
bool MarkedIncomplete(int dir_fd);

class JournalWriter {
 public:
  // Begins a new segment in `dir_fd` (the journal directory, kept open),
  // after removing the oldest ones beyond the bound. `what` names the
  // journal in logs (the tier).
  static Result<std::unique_ptr<JournalWriter>> Open(SharedFd dir_fd, std::string what);
  ~JournalWriter();  // Close()
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;

  void Append(const ChangeRecord& record);
  // Writes the buffer out and makes the segment durable.
  Result<void> Sync();
  // Ends the segment with a close record, durable. Later appends go nowhere.
  void Close();

  // Whether every change so far reached the segment (no write failed).
  bool intact() const;

 private:
  JournalWriter(SharedFd dir_fd, std::string what)
      : dir_(std::move(dir_fd)), what_(std::move(what)) {}
  // A new segment, its header durable.
  Result<UniqueFd> Begin(uint64_t number, uint64_t first_seq) REQUIRES(mu_);
  // Begins the segment after every one there, then closes the current one
  // (if any) and drops the oldest past the bound.
  Result<void> BeginNext() REQUIRES(mu_);
  // Removes the oldest segments (never the current) while the journal is
  // larger than `bound`, a gap record in the current one first.
  Result<void> DropOldest(uint64_t bound) REQUIRES(mu_);
  Result<void> WriteBuffer() REQUIRES(mu_);
  void Fail(const char* doing, int err) REQUIRES(mu_);

  const SharedFd dir_;
  const std::string what_;
  mutable Mutex mu_;
  UniqueFd fd_ GUARDED_BY(mu_);
  uint64_t number_ GUARDED_BY(mu_) = 0;
  uint64_t written_ GUARDED_BY(mu_) = 0;  // bytes in the segment file
  uint64_t last_seq_ GUARDED_BY(mu_) = 0;
  std::string buffer_ GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point oldest_ GUARDED_BY(mu_);
  bool failed_ GUARDED_BY(mu_) = false;
  bool closed_ GUARDED_BY(mu_) = false;
};

}  // namespace detourfs::journal
