// The journal's format: records round-trip, and a scan of a segment cut
// short or damaged anywhere returns exactly the whole, valid records before
// the damage — never the damaged one, never one after it.
#include "journal/journal_format.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <string>
#include <vector>

namespace detourfs::journal {
namespace {

ChangeRecord Change(uint64_t seq, ChangeKind kind, std::string path, std::string path2 = "") {
  ChangeRecord r;
  r.seq = seq;
  r.kind = kind;
  r.layer = Layer::kMemory;
  r.path = std::move(path);
  r.path2 = std::move(path2);
  r.id = 1000 + seq;
  r.offset = seq * 4096;
  r.length = seq * 7;
  return r;
}

bool Same(const ChangeRecord& a, const ChangeRecord& b) {
  return a.seq == b.seq && a.kind == b.kind && a.layer == b.layer && a.path == b.path &&
         a.path2 == b.path2 && a.id == b.id && a.offset == b.offset && a.length == b.length;
}

// One record of every kind, paths empty, long, and with any byte.
std::vector<ChangeRecord> EveryKind() {
  std::vector<ChangeRecord> out;
  uint64_t seq = 5;
  for (int k = 0; k <= static_cast<int>(ChangeKind::kMove); ++k) {
    const auto kind = static_cast<ChangeKind>(k);
    std::string path = "p/node_modules/pkg" + std::to_string(k);
    if (k == 3) path = std::string(4000, 'x');
    if (k == 4) path = std::string("odd\n\0name\xff", 11);
    out.push_back(Change(seq, kind, path, kind == ChangeKind::kRename ? "p/node_modules/b" : ""));
    seq += 1 + static_cast<uint64_t>(k % 3);
  }
  out.back().layer = Layer::kVolume;
  return out;
}

struct Built {
  std::string bytes;
  std::vector<size_t> ends;  // where each record ends
};

Built Segment(const std::vector<ChangeRecord>& records, bool close) {
  Built b;
  b.bytes = EncodeHeader(SegmentHeader{7, 4});
  for (const ChangeRecord& r : records) {
    b.bytes += EncodeChange(r, 7);
    b.ends.push_back(b.bytes.size());
  }
  if (close) {
    b.bytes += EncodeClose(records.empty() ? 4 : records.back().seq, 7);
    b.ends.push_back(b.bytes.size());
  }
  return b;
}

void ExpectPrefix(const SegmentScan& scan, const std::vector<ChangeRecord>& records, size_t n) {
  ASSERT_EQ(scan.changes.size(), n);
  for (size_t i = 0; i < n; ++i) EXPECT_TRUE(Same(scan.changes[i], records[i])) << i;
}

TEST(JournalFormatTest, EveryKindRoundTrips) {
  const std::vector<ChangeRecord> records = EveryKind();
  const Built b = Segment(records, true);
  const SegmentScan scan = ScanSegment(b.bytes);
  EXPECT_EQ(scan.stop, StopReason::kEnd) << scan.detail;
  EXPECT_TRUE(scan.closed);
  EXPECT_FALSE(scan.gap);
  EXPECT_EQ(scan.header.number, 7U);
  EXPECT_EQ(scan.header.first_seq, 4U);
  EXPECT_EQ(scan.valid_bytes, b.bytes.size());
  ExpectPrefix(scan, records, records.size());
}

TEST(JournalFormatTest, AnEmptySegmentAndAGapRecord) {
  std::string bytes = EncodeHeader(SegmentHeader{1, 0});
  SegmentScan scan = ScanSegment(bytes);
  EXPECT_EQ(scan.stop, StopReason::kEnd);
  EXPECT_FALSE(scan.closed);
  EXPECT_TRUE(scan.changes.empty());
  bytes += EncodeGap(0, 1);
  bytes += EncodeChange(Change(1, ChangeKind::kCreate, "a"), 1);
  scan = ScanSegment(bytes);
  EXPECT_EQ(scan.stop, StopReason::kEnd);
  EXPECT_TRUE(scan.gap);
  EXPECT_EQ(scan.changes.size(), 1U);
}

TEST(JournalFormatTest, ASegmentCutShortAnywhereGivesOnlyItsWholeRecords) {
  const std::vector<ChangeRecord> records = EveryKind();
  const Built b = Segment(records, true);
  for (size_t len = 0; len < b.bytes.size(); ++len) {
    SCOPED_TRACE(len);
    const SegmentScan scan = ScanSegment(std::string_view(b.bytes).substr(0, len));
    size_t whole = 0;
    while (whole < records.size() && b.ends[whole] <= len) ++whole;
    ExpectPrefix(scan, records, whole);
    EXPECT_FALSE(scan.closed);
    const bool boundary = len == kHeaderSize || (whole > 0 && b.ends[whole - 1] == len);
    if (boundary) {
      EXPECT_EQ(scan.stop, StopReason::kEnd);
      EXPECT_EQ(scan.valid_bytes, len);
    } else {
      EXPECT_EQ(scan.stop, StopReason::kTorn) << scan.detail;
    }
  }
}

TEST(JournalFormatTest, ADamagedByteAnywhereStopsTheScanBeforeItsRecord) {
  const std::vector<ChangeRecord> records = EveryKind();
  const Built b = Segment(records, true);
  for (size_t at = 0; at < b.bytes.size(); ++at) {
    for (unsigned char flip : {0x01, 0x80}) {
      std::string bytes = b.bytes;
      bytes[at] = static_cast<char>(bytes[at] ^ flip);
      const SegmentScan scan = ScanSegment(bytes);
      if (at < kHeaderSize) {
        ASSERT_EQ(scan.stop, StopReason::kBadHeader) << at;
        EXPECT_TRUE(scan.changes.empty());
        continue;
      }
      size_t before = 0;  // records wholly before the damaged byte
      while (before < b.ends.size() && b.ends[before] <= at) ++before;
      ASSERT_NE(scan.stop, StopReason::kEnd) << "byte " << at;
      EXPECT_FALSE(scan.closed) << at;
      ExpectPrefix(scan, records, std::min(before, records.size()));
    }
  }
}

TEST(JournalFormatTest, HeadersOfAnotherFileOrVersionAreRefused) {
  const std::string good = EncodeHeader(SegmentHeader{1, 0});
  std::string other = good;
  other[0] = 'X';
  EXPECT_EQ(ScanSegment(other).stop, StopReason::kBadHeader);
  EXPECT_NE(ScanSegment(other).detail.find("not a detourfs journal"), std::string::npos);
  // Version 2, its checksum right: named as a version this build cannot read.
  std::string v2 = good.substr(0, kHeaderSize - 8);
  v2[8] = 2;
  const uint64_t sum = XXH3_64bits(v2.data(), v2.size());
  for (int i = 0; i < 8; ++i) v2.push_back(static_cast<char>((sum >> (8 * i)) & 0xff));
  const SegmentScan scan = ScanSegment(v2);
  EXPECT_EQ(scan.stop, StopReason::kBadHeader);
  EXPECT_NE(scan.detail.find("version 2"), std::string::npos) << scan.detail;
}

TEST(JournalFormatTest, RecordsOutOfOrderOrAfterTheCloseAreCorrupt) {
  std::string bytes = EncodeHeader(SegmentHeader{1, 0});
  bytes += EncodeChange(Change(3, ChangeKind::kCreate, "a"), 1);
  bytes += EncodeChange(Change(3, ChangeKind::kWrite, "a"), 1);  // not after 3
  SegmentScan scan = ScanSegment(bytes);
  EXPECT_EQ(scan.stop, StopReason::kCorrupt);
  EXPECT_EQ(scan.changes.size(), 1U);

  bytes = EncodeHeader(SegmentHeader{1, 0});
  bytes += EncodeChange(Change(3, ChangeKind::kCreate, "a"), 1);
  bytes += EncodeClose(2, 1);  // names another last change
  scan = ScanSegment(bytes);
  EXPECT_EQ(scan.stop, StopReason::kCorrupt);
  EXPECT_FALSE(scan.closed);

  bytes = EncodeHeader(SegmentHeader{1, 0});
  bytes += EncodeChange(Change(3, ChangeKind::kCreate, "a"), 1);
  bytes += EncodeClose(3, 1);
  bytes += EncodeChange(Change(4, ChangeKind::kUnlink, "a"), 1);
  scan = ScanSegment(bytes);
  EXPECT_EQ(scan.stop, StopReason::kCorrupt);
  EXPECT_EQ(scan.changes.size(), 1U);
}

TEST(JournalFormatTest, ARecordOfAnotherSegmentDoesNotCheckOut) {
  // A stale block of segment 2 left in segment 1's tail: its checksum is
  // seeded with 2, so the scan stops there.
  std::string bytes = EncodeHeader(SegmentHeader{1, 0});
  bytes += EncodeChange(Change(1, ChangeKind::kCreate, "a"), 1);
  bytes += EncodeChange(Change(9, ChangeKind::kCreate, "stale"), 2);
  const SegmentScan scan = ScanSegment(bytes);
  EXPECT_EQ(scan.stop, StopReason::kCorrupt);
  EXPECT_EQ(scan.changes.size(), 1U);
}

TEST(JournalFormatTest, AnUnknownTypeOrKindWithAGoodChecksumIsCorrupt) {
  for (const bool bad_type : {true, false}) {
    std::string frame = EncodeChange(Change(1, ChangeKind::kCreate, "a"), 1);
    if (bad_type) {
      frame[4] = 9;  // the type byte
    } else {
      frame[5] = 99;  // the payload's kind byte
    }
    const uint64_t sum = XXH3_64bits_withSeed(frame.data(), frame.size() - 8, 1);
    for (int i = 0; i < 8; ++i) {
      frame[frame.size() - 8 + i] = static_cast<char>((sum >> (8 * i)) & 0xff);
    }
    const SegmentScan scan = ScanSegment(EncodeHeader(SegmentHeader{1, 0}) + frame);
    EXPECT_EQ(scan.stop, StopReason::kCorrupt) << bad_type;
    EXPECT_TRUE(scan.changes.empty());
  }
}

TEST(JournalFormatTest, ALengthBeyondAnyRecordIsCorruptNotTorn) {
  std::string bytes = EncodeHeader(SegmentHeader{1, 0});
  bytes += std::string("\xff\xff\xff\x7f\x01", 5) + std::string(64, '\0');
  const SegmentScan scan = ScanSegment(bytes);
  EXPECT_EQ(scan.stop, StopReason::kCorrupt);
  EXPECT_NE(scan.detail.find("out of range"), std::string::npos);
}

}  // namespace
}  // namespace detourfs::journal
