// Little-endian fixed-width fields and length-prefixed strings, written to
// and read from byte strings: the framing of detourfs's on-disk records
// (the journal's segments, the flush's manifests). No syscalls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace detourfs {

inline void PutU8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }

inline void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

inline void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A u32 length, then the bytes.
inline void PutString(std::string* out, std::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

// Reads what the Put functions wrote from a byte range; any read past its
// end marks the cursor failed (and returns zeros and empty strings).
class ByteCursor {
 public:
  explicit ByteCursor(std::string_view bytes) : bytes_(bytes) {}
  bool ok() const { return ok_; }
  bool done() const { return pos_ == bytes_.size(); }
  size_t pos() const { return pos_; }

  uint64_t Fixed(int width) {
    if (!ok_ || bytes_.size() - pos_ < static_cast<size_t>(width)) {
      ok_ = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < width; ++i) {
      v |= static_cast<uint64_t>(static_cast<unsigned char>(bytes_[pos_ + i])) << (8 * i);
    }
    pos_ += static_cast<size_t>(width);
    return v;
  }

  std::string String() {
    const uint64_t n = Fixed(4);
    if (!ok_ || bytes_.size() - pos_ < n) {
      ok_ = false;
      return {};
    }
    std::string s(bytes_.substr(pos_, n));
    pos_ += n;
    return s;
  }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace detourfs
