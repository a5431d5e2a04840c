// Glob: one gitignore-style path pattern, compiled once, matched against
// paths relative to the mount root ("a/b/c", no leading slash).
//
// Syntax (docs/routing.md has examples):
//   *  ?  [abc] [a-z] [!x] [^x] [[:alpha:]]  \x   within one path component
//   **            any number of whole components (zero or more), as a whole
//                 component only; a trailing "/**" needs at least one
//   leading "/"   anchors the pattern at the mount root
//   "/" inside    also anchors it (gitignore: "a/b" means "/a/b")
//   no "/"        matches at any depth ("node_modules" == "**/node_modules")
//   trailing "/"  matches directories only
// Malformed patterns (unclosed "[", trailing "\", empty components, "." or
// "..") are rejected by Compile with a message saying why.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "detourfs/status.h"

namespace detourfs {

class Glob {
 public:
  // Compiles `pattern`; on failure returns a Status naming what is wrong.
  static Status Compile(std::string_view pattern, Glob* out);

  // True when `path` (relative, '/'-separated, no empty components) matches.
  // `is_dir` says whether the path names a directory (for "dir/" patterns).
  bool Matches(std::string_view path, bool is_dir) const;
  // The same for a path already split into components.
  bool MatchesComponents(const std::vector<std::string_view>& components, bool is_dir) const;

  const std::string& pattern() const { return pattern_; }
  bool anchored() const { return anchored_; }
  bool dir_only() const { return dir_only_; }

 private:
  struct Segment {
    enum class Kind { kLiteral, kWildcard, kAnyDirs } kind = Kind::kLiteral;
    std::string text;  // literal text (escapes resolved) or the wildcard pattern
  };

  static bool SegmentMatches(const Segment& segment, std::string_view component);

  std::string pattern_;
  std::vector<Segment> segments_;
  bool anchored_ = false;
  bool dir_only_ = false;
};

// Splits a relative path into its components (empty components skipped).
std::vector<std::string_view> SplitPath(std::string_view path);

// Matches one path component against a wildcard pattern (*, ?, [...], \x).
// The pattern must have passed validation (ValidateWildcard).
bool WildcardMatches(std::string_view pattern, std::string_view text);
// Checks a component pattern; returns an empty string or what is wrong.
std::string ValidateWildcard(std::string_view pattern);

}  // namespace detourfs
