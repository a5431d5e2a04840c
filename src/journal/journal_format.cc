// The journal's encoding and scanning (journal_format.h, docs/journal.md).
#include "journal/journal_format.h"

#include <xxhash.h>

#include <cstring>

#include "util/byte_codec.h"

namespace detourfs::journal {
namespace {

constexpr char kMagic[8] = {'D', 'T', 'F', 'S', 'J', 'R', 'N', 'L'};

// The checksum is seeded with the segment's number: a stale block of
// another segment that a crash left in this one's tail never checks out.
std::string Frame(RecordType type, std::string_view payload, uint64_t segment) {
  std::string out;
  out.reserve(kFrameOverhead + payload.size());
  PutU32(&out, static_cast<uint32_t>(payload.size()));
  PutU8(&out, static_cast<uint8_t>(type));
  out.append(payload);
  PutU64(&out, XXH3_64bits_withSeed(out.data(), out.size(), segment));
  return out;
}

bool ValidKind(uint64_t kind) { return kind <= static_cast<uint64_t>(ChangeKind::kMove); }

bool ValidLayer(uint64_t layer) { return layer <= static_cast<uint64_t>(Layer::kDisk); }

}  // namespace

std::string EncodeHeader(const SegmentHeader& header) {
  std::string out(kMagic, sizeof(kMagic));
  PutU32(&out, kVersion);
  PutU32(&out, 0);  // flags: none yet
  PutU64(&out, header.number);
  PutU64(&out, header.first_seq);
  PutU64(&out, XXH3_64bits(out.data(), out.size()));
  return out;
}

std::string EncodeChange(const ChangeRecord& r, uint64_t segment) {
  std::string payload;
  PutU8(&payload, static_cast<uint8_t>(r.kind));
  PutU8(&payload, static_cast<uint8_t>(r.layer));
  PutU64(&payload, r.seq);
  PutU64(&payload, r.id);
  PutU64(&payload, r.offset);
  PutU64(&payload, r.length);
  PutString(&payload, r.path);
  PutString(&payload, r.path2);
  return Frame(RecordType::kChange, payload, segment);
}

std::string EncodeClose(uint64_t last_seq, uint64_t segment) {
  std::string payload;
  PutU64(&payload, last_seq);
  return Frame(RecordType::kClose, payload, segment);
}

std::string EncodeGap(uint64_t last_dropped_segment, uint64_t segment) {
  std::string payload;
  PutU64(&payload, last_dropped_segment);
  return Frame(RecordType::kGap, payload, segment);
}

const char* StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kEnd:
      return "end";
    case StopReason::kTorn:
      return "torn";
    case StopReason::kCorrupt:
      return "corrupt";
    case StopReason::kBadHeader:
      return "bad header";
  }
  return "?";
}

SegmentScan ScanSegment(std::string_view bytes) {
  SegmentScan scan;
  if (bytes.size() < kHeaderSize) {
    // A segment is made with its header in one write: shorter is torn.
    // (Empty: made, and the crash came before its header was written.)
    scan.stop = StopReason::kTorn;
    scan.detail = "header cut short (" + std::to_string(bytes.size()) + " bytes)";
    return scan;
  }
  {
    ByteCursor c(bytes.substr(0, kHeaderSize));
    const bool magic = std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) == 0;
    c.Fixed(8);
    const uint64_t version = c.Fixed(4);
    const uint64_t flags = c.Fixed(4);
    scan.header.number = c.Fixed(8);
    scan.header.first_seq = c.Fixed(8);
    const uint64_t sum = c.Fixed(8);
    // Magic, then version (another version may lay its header out
    // otherwise), then the checksum.
    if (!magic) {
      scan.stop = StopReason::kBadHeader;
      scan.detail = "not a detourfs journal segment";
      return scan;
    }
    if (version != kVersion) {
      scan.stop = StopReason::kBadHeader;
      scan.detail = "journal format version " + std::to_string(version) + " (this build reads " +
                    std::to_string(kVersion) + ")";
      return scan;
    }
    if (sum != XXH3_64bits(bytes.data(), kHeaderSize - 8) || flags != 0) {
      scan.stop = StopReason::kBadHeader;
      scan.detail = flags != 0 ? "unknown header flags" : "header checksum mismatch";
      return scan;
    }
  }
  size_t pos = kHeaderSize;
  scan.valid_bytes = pos;
  uint64_t last_seq = scan.header.first_seq;
  while (pos < bytes.size()) {
    if (scan.closed) {
      scan.stop = StopReason::kCorrupt;
      scan.detail = "bytes after the close record";
      return scan;
    }
    const std::string_view rest = bytes.substr(pos);
    if (rest.size() < 5) {
      scan.stop = StopReason::kTorn;
      scan.detail = "frame header cut short";
      return scan;
    }
    ByteCursor head(rest.substr(0, 5));
    const uint64_t length = head.Fixed(4);
    const uint64_t type = head.Fixed(1);
    if (length > kMaxPayload) {
      scan.stop = StopReason::kCorrupt;
      scan.detail = "record length " + std::to_string(length) + " out of range";
      return scan;
    }
    if (rest.size() < kFrameOverhead + length) {
      scan.stop = StopReason::kTorn;
      scan.detail = "record cut short";
      return scan;
    }
    ByteCursor tail(rest.substr(5 + length, 8));
    if (tail.Fixed(8) != XXH3_64bits_withSeed(rest.data(), 5 + length, scan.header.number)) {
      scan.stop = StopReason::kCorrupt;
      scan.detail = "record checksum mismatch";
      return scan;
    }
    ByteCursor p(rest.substr(5, length));
    bool good = false;
    ChangeRecord r;
    switch (static_cast<RecordType>(type)) {
      case RecordType::kChange: {
        const uint64_t kind = p.Fixed(1);
        const uint64_t layer = p.Fixed(1);
        r.kind = static_cast<ChangeKind>(kind);
        r.layer = static_cast<Layer>(layer);
        r.seq = p.Fixed(8);
        r.id = p.Fixed(8);
        r.offset = p.Fixed(8);
        r.length = p.Fixed(8);
        r.path = p.String();
        r.path2 = p.String();
        // Sequence numbers only grow: one that does not is not this
        // journal's (a stale block the filesystem left).
        good = p.ok() && p.done() && ValidKind(kind) && ValidLayer(layer) && r.seq > last_seq;
        break;
      }
      case RecordType::kClose: {
        // It names the last change before it.
        const uint64_t seq = p.Fixed(8);
        good = p.ok() && p.done() && seq == last_seq;
        break;
      }
      case RecordType::kGap: {
        p.Fixed(8);
        good = p.ok() && p.done();
        break;
      }
    }
    if (!good) {
      scan.stop = StopReason::kCorrupt;
      scan.detail = "record " + std::to_string(scan.changes.size() + 1) + " malformed";
      return scan;
    }
    if (static_cast<RecordType>(type) == RecordType::kChange) {
      last_seq = r.seq;
      scan.changes.push_back(std::move(r));
    } else if (static_cast<RecordType>(type) == RecordType::kClose) {
      scan.closed = true;
    } else {
      scan.gap = true;
    }
    pos += kFrameOverhead + length;
    scan.valid_bytes = pos;
  }
  return scan;
}

}  // namespace detourfs::journal
