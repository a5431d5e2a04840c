// Fuzz target bodies (fuzz_targets.h).
#include "fuzz_targets.h"

#include <fnmatch.h>
#include <xxhash.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "flush/manifest_format.h"
#include "journal/journal_format.h"
#include "route/glob.h"
#include "route/router.h"

namespace detourfs::fuzz {
namespace {

[[noreturn]] void Violated(const char* what, std::string_view a, std::string_view b) {
  std::fprintf(stderr, "invariant violated: %s: '%.*s' / '%.*s'\n", what,
               static_cast<int>(a.size()), a.data(), static_cast<int>(b.size()), b.data());
  std::abort();
}

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

bool Ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) > 126) return false;
  }
  return true;
}

// The checksums of the input, made right: past them, the decoders'
// parsing is what is fuzzed (a checksum is easy to forge for anyone who
// can write the file). Little-endian u64 at `at`.
void PutU64At(std::string* bytes, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) (*bytes)[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint64_t GetU64At(std::string_view bytes, size_t at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
  }
  return v;
}

// A manifest: body checksum at 32, header checksum at 40.
std::string FixManifestChecksums(std::string bytes) {
  if (bytes.size() < flush::kManifestHeaderSize) return bytes;
  const std::string_view body = std::string_view(bytes).substr(flush::kManifestHeaderSize);
  PutU64At(&bytes, 32, XXH3_64bits(body.data(), body.size()));
  PutU64At(&bytes, 40, XXH3_64bits(bytes.data(), 40));
  return bytes;
}

// A journal segment: the header's checksum at 32, then each framed record's
// (u32 length, u8 type, payload, u64 checksum seeded with the segment number).
std::string FixJournalChecksums(std::string bytes) {
  if (bytes.size() < journal::kHeaderSize) return bytes;
  PutU64At(&bytes, 32, XXH3_64bits(bytes.data(), 32));
  const uint64_t segment = GetU64At(bytes, 16);
  size_t at = journal::kHeaderSize;
  while (bytes.size() - at >= journal::kFrameOverhead) {
    uint64_t length = 0;
    for (int i = 0; i < 4; ++i) {
      length |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
    }
    if (length > bytes.size() - at - journal::kFrameOverhead) break;
    const size_t framed = 5 + length;
    PutU64At(&bytes, at + framed, XXH3_64bits_withSeed(bytes.data() + at, framed, segment));
    at += framed + 8;
  }
  return bytes;
}

}  // namespace

void FuzzGlob(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);  // NOLINT
  std::vector<std::string_view> lines = Lines(text);
  Glob glob;
  if (!Glob::Compile(lines[0], &glob).ok()) return;
  const std::string_view pattern = lines[0];
  // A single component without '/' or "**", plain ASCII: the same answer as
  // fnmatch(3) (which knows no "**" and counts bytes, not characters).
  const bool comparable = pattern.find('/') == std::string_view::npos &&
                          pattern.find("**") == std::string_view::npos && Ascii(pattern);
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view path = lines[i];
    bool file = glob.Matches(path, false);
    bool dir = glob.Matches(path, true);
    if (file && !dir) Violated("a file match must also match as a directory", pattern, path);
    if (comparable && !path.empty() && path.find('/') == std::string_view::npos && Ascii(path) &&
        path.find('\0') == std::string_view::npos) {
      bool ours = WildcardMatches(pattern, path);
      bool theirs = ::fnmatch(std::string(pattern).c_str(), std::string(path).c_str(), 0) == 0;
      if (ours != theirs) Violated("differs from fnmatch", pattern, path);
      // An unanchored single-component glob matches the name at any depth.
      if (glob.Matches("x/y/" + std::string(path), true) != dir) {
        Violated("depth changed the answer", pattern, path);
      }
    }
  }
}

void FuzzConfig(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);  // NOLINT
  Config config;
  Status s = ParseConfig(text, "fuzz.toml", &config);
  if (!s.ok()) {
    if (s.ToString().rfind("fuzz.toml:", 0) != 0)
      Violated("error without a line", s.ToString(), "");
    return;
  }
  (void)DescribeConfig(config);
  for (const char* path : {"node_modules", "a/b/node_modules/c", ".cache/x", "dist", ""}) {
    (void)ExplainRoute(config, path, true);
    (void)ExplainRoute(config, path, false);
  }
  (void)CheckPlacement(config, "/home/coder");
  for (const RouteRule& rule : config.routes) {
    if (rule.globs.empty()) Violated("a rule without globs was accepted", "", "");
    if (rule.tier != TierId::kVolume && config.tier(rule.tier) == nullptr) {
      Violated("a rule names an unconfigured tier", TierName(rule.tier), "");
    }
  }
}

void FuzzManifest(const uint8_t* data, size_t size) {
  const std::string bytes =
      FixManifestChecksums(std::string(reinterpret_cast<const char*>(data), size));  // NOLINT
  std::string why;
  Result<flush::Manifest> m = flush::DecodeManifest(bytes, &why);
  if (!m.ok()) {
    if (why.empty()) Violated("a refusal without a reason", bytes, "");
    return;
  }
  for (const flush::ManifestStep& step : m->steps) {
    if (!flush::ValidStepPath(step.path)) Violated("an unsafe path was accepted", step.path, "");
    if (step.kind == flush::StepKind::kLink && !flush::ValidStepPath(step.target)) {
      Violated("an unsafe link target was accepted", step.target, "");
    }
  }
  if (flush::EncodeManifest(*m) != bytes) Violated("decode then encode changed the bytes", "", "");
}

void FuzzJournal(const uint8_t* data, size_t size) {
  const std::string input =
      FixJournalChecksums(std::string(reinterpret_cast<const char*>(data), size));  // NOLINT
  const std::string_view bytes = input;
  const journal::SegmentScan scan = journal::ScanSegment(bytes);
  if (scan.valid_bytes > bytes.size()) Violated("a good prefix longer than the input", "", "");
  const journal::SegmentScan again = journal::ScanSegment(bytes.substr(0, scan.valid_bytes));
  if (again.changes.size() != scan.changes.size() || again.closed != scan.closed) {
    Violated("the good prefix scans otherwise", "", "");
  }
  for (size_t i = 1; i < scan.changes.size(); ++i) {
    if (scan.changes[i].seq <= scan.changes[i - 1].seq) Violated("a sequence out of order", "", "");
  }
}

}  // namespace detourfs::fuzz
