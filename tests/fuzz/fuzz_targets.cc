// Fuzz target bodies (fuzz_targets.h).
#include "fuzz_targets.h"

#include <fnmatch.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
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

}  // namespace detourfs::fuzz
