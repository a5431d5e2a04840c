// The manifest's encoding and decoding (manifest_format.h, docs/flush.md).
#include "flush/manifest_format.h"

#include <sys/stat.h>
#include <xxhash.h>

#include <cerrno>
#include <unordered_set>

#include "store/layer_dirs.h"
#include "util/byte_codec.h"

namespace detourfs::flush {
namespace {

constexpr std::string_view kMagic = "DTFSMNFT";

bool ValidKind(uint64_t kind) {
  return kind >= static_cast<uint64_t>(StepKind::kRemove) &&
         kind <= static_cast<uint64_t>(StepKind::kLink);
}

void EncodeStep(std::string* out, const ManifestStep& s) {
  PutU8(out, static_cast<uint8_t>(s.kind));
  PutString(out, s.path);
  PutString(out, s.target);
  PutU64(out, s.staged);
  PutU32(out, s.mode);
  PutU32(out, s.uid);
  PutU32(out, s.gid);
  PutU64(out, static_cast<uint64_t>(s.mtime_sec));
  PutU32(out, s.mtime_nsec);
  PutU64(out, s.size);
  PutU64(out, s.hash);
}

// A step's fields must agree with its kind: a staged object has a type, a
// link names its first name.
bool StepConsistent(const ManifestStep& s, std::string* why) {
  if (!ValidStepPath(s.path)) {
    *why = "a step names an invalid path";
    return false;
  }
  switch (s.kind) {
    case StepKind::kRemove:
      return true;
    case StepKind::kLink:
      if (!ValidStepPath(s.target)) *why = "a link names an invalid first name";
      return why->empty();
    case StepKind::kDirectory:
      if (!S_ISDIR(s.mode)) *why = "a directory step without a directory's mode";
      return why->empty();
    case StepKind::kPlace:
      if (S_ISDIR(s.mode) || (s.mode & S_IFMT) == 0) *why = "a place step without a file's mode";
      return why->empty();
  }
  return false;
}

// Whether no remove step is followed by a step making its name or a name
// beneath it: applying such a manifest again (after a crash) would remove
// what the later step made.
bool RemovesStayRemoved(const std::vector<ManifestStep>& steps) {
  std::unordered_set<std::string_view> made;  // later steps' paths and their ancestors
  for (size_t i = steps.size(); i-- > 0;) {
    std::string_view path = steps[i].path;
    if (steps[i].kind == StepKind::kRemove) {
      if (made.count(path) != 0) return false;
      continue;
    }
    while (made.insert(path).second) {
      const size_t slash = path.rfind('/');
      if (slash == std::string_view::npos) break;
      path = path.substr(0, slash);
    }
  }
  return true;
}

}  // namespace

const char* StepKindName(StepKind kind) {
  switch (kind) {
    case StepKind::kRemove:
      return "remove";
    case StepKind::kPlace:
      return "place";
    case StepKind::kDirectory:
      return "directory";
    case StepKind::kLink:
      return "link";
  }
  return "?";
}

bool ValidStepPath(std::string_view path) {
  if (path.empty() || path.front() == '/' || path.back() == '/') return false;
  if (path.find('\0') != std::string_view::npos) return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (start == 0 && part == kPrivateDirName) return false;
    start = end + 1;
  }
  return true;
}

std::string EncodeManifest(const Manifest& manifest) {
  std::string body;
  for (const ManifestStep& s : manifest.steps) EncodeStep(&body, s);
  std::string out(kMagic);
  PutU32(&out, kManifestVersion);
  PutU32(&out, 0);  // flags: none yet
  PutU64(&out, manifest.epoch);
  PutU64(&out, manifest.steps.size());
  PutU64(&out, XXH3_64bits(body.data(), body.size()));
  PutU64(&out, XXH3_64bits(out.data(), out.size()));
  return out + body;
}

Result<Manifest> DecodeManifest(std::string_view bytes, std::string* why) {
  auto bad = [why](const char* what) {
    *why = what;
    return Errno{EINVAL};
  };
  why->clear();
  if (bytes.size() < kManifestHeaderSize) return bad("shorter than its header");
  if (bytes.substr(0, kMagic.size()) != kMagic) return bad("not a manifest (magic)");
  ByteCursor head(bytes.substr(kMagic.size(), kManifestHeaderSize - kMagic.size()));
  const uint64_t version = head.Fixed(4);
  const uint64_t flags = head.Fixed(4);
  Manifest m;
  m.epoch = head.Fixed(8);
  const uint64_t count = head.Fixed(8);
  const uint64_t body_hash = head.Fixed(8);
  const uint64_t head_hash = head.Fixed(8);
  const bool head_ok = head_hash == XXH3_64bits(bytes.data(), kManifestHeaderSize - 8);
  if (version != kManifestVersion) {
    // Another version may lay its header out otherwise; a header that
    // checks out as this version's says which it is.
    *why = std::string(head_ok ? "" : "a damaged header, or ") + "version " +
           std::to_string(version) + " (this build reads " + std::to_string(kManifestVersion) + ")";
    return Errno{EINVAL};
  }
  if (!head_ok) return bad("header checksum mismatch");
  if (flags != 0) return bad("unknown flags");
  std::string_view body = bytes.substr(kManifestHeaderSize);
  if (XXH3_64bits(body.data(), body.size()) != body_hash) return bad("body checksum mismatch");
  ByteCursor c(body);
  // Each step takes at least its fixed fields: a count above what the body
  // can hold is corruption, not a reason to reserve memory.
  constexpr size_t kMinStep = 1 + 4 + 4 + 8 + 4 * 3 + 8 + 4 + 8 + 8;
  if (count > body.size() / kMinStep) return bad("step count larger than the body");
  m.steps.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    ManifestStep s;
    const uint64_t kind = c.Fixed(1);
    s.path = c.String();
    s.target = c.String();
    s.staged = c.Fixed(8);
    s.mode = static_cast<uint32_t>(c.Fixed(4));
    s.uid = static_cast<uint32_t>(c.Fixed(4));
    s.gid = static_cast<uint32_t>(c.Fixed(4));
    s.mtime_sec = static_cast<int64_t>(c.Fixed(8));
    s.mtime_nsec = static_cast<uint32_t>(c.Fixed(4));
    s.size = c.Fixed(8);
    s.hash = c.Fixed(8);
    if (!c.ok()) return bad("a step is cut short");
    if (!ValidKind(kind)) return bad("unknown step kind");
    s.kind = static_cast<StepKind>(kind);
    if (s.mtime_nsec >= 1000000000U) return bad("a time's nanoseconds out of range");
    if (!StepConsistent(s, why)) return Errno{EINVAL};
    m.steps.push_back(std::move(s));
  }
  if (!c.done()) return bad("bytes after the last step");
  if (!RemovesStayRemoved(m.steps)) return bad("a removed name is made again by a later step");
  return m;
}

}  // namespace detourfs::flush
