// The write-back journal's on-disk format (docs/journal.md): a segment file
// starts with a header, then holds framed records, each with its type,
// length and an XXH3-64 checksum. Encoding and scanning only: no syscalls,
// so the format is tested byte by byte and read offline the same way.
//
// A scan stops at the first record that is torn (cut short by a crash) or
// corrupt (checksum, length or content wrong) and never returns it nor
// anything after it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "store/change_record.h"

namespace detourfs::journal {

inline constexpr uint32_t kVersion = 1;
inline constexpr size_t kHeaderSize = 40;
// A record's frame: u32 payload length, u8 type, payload, u64 checksum.
inline constexpr size_t kFrameOverhead = 4 + 1 + 8;
// Longer than any record (two paths of PATH_MAX and the fixed fields): a
// length above it is corruption, not a record.
inline constexpr uint32_t kMaxPayload = 64 * 1024;

// What a record is. The change kinds keep ChangeKind's values; the rest
// describe the segment itself.
enum class RecordType : uint8_t {
  kChange = 1,  // a ChangeRecord
  kClose = 2,   // the segment was closed cleanly: nothing after it was lost
  kGap = 3,     // changes were dropped here (old segments removed to bound
                // the journal, or a record too long to write): a
                // reconcile pass must run
};

struct SegmentHeader {
  uint64_t number = 0;     // the segment's number (increasing per tier)
  uint64_t first_seq = 0;  // the sequence number its first change follows
};

std::string EncodeHeader(const SegmentHeader& header);
// Records of segment number `segment` (their checksums are seeded with it).
std::string EncodeChange(const ChangeRecord& record, uint64_t segment);
std::string EncodeClose(uint64_t last_seq, uint64_t segment);
std::string EncodeGap(uint64_t last_dropped_segment, uint64_t segment);

// Why a scan stopped.
enum class StopReason {
  kEnd,      // at the end of the data, on a record boundary
  kTorn,     // the last record is cut short (a crash while appending)
  kCorrupt,  // a record's checksum, length, type or content is wrong
  kBadHeader,
};

const char* StopReasonName(StopReason reason);

struct SegmentScan {
  SegmentHeader header;
  std::vector<ChangeRecord> changes;  // every whole, valid change, in order
  bool closed = false;                // a close record ends it
  bool gap = false;                   // changes before it were dropped
  StopReason stop = StopReason::kEnd;
  size_t valid_bytes = 0;  // the length of the good prefix
  std::string detail;      // what was wrong, for logs
};

// Reads a whole segment's bytes.
SegmentScan ScanSegment(std::string_view bytes);

}  // namespace detourfs::journal
