// Glob compilation and matching (see glob.h for the syntax).
//
// Written here rather than taken from a library: fnmatch(3) has no "**", and
// Debian packages no gitignore matcher as a C/C++ library (libgit2 keeps its
// wildmatch internal and ties ignore rules to a repository). Matching is the
// classic greedy wildcard algorithm, used twice: over the characters of one
// component for '*', and over the components of a path for "**" (which, like
// '*', matches any sequence) — linear in practice, never exponential.
#include "route/glob.h"

#include <array>
#include <cctype>
#include <cstddef>

namespace detourfs {
namespace {

constexpr size_t kNone = std::string_view::npos;

struct NamedClass {
  std::string_view name;
  int (*test)(int);
};

constexpr std::array<NamedClass, 12> kNamedClasses = {{
    {"alnum", ::isalnum},
    {"alpha", ::isalpha},
    {"blank", ::isblank},
    {"cntrl", ::iscntrl},
    {"digit", ::isdigit},
    {"graph", ::isgraph},
    {"lower", ::islower},
    {"print", ::isprint},
    {"punct", ::ispunct},
    {"space", ::isspace},
    {"upper", ::isupper},
    {"xdigit", ::isxdigit},
}};

const NamedClass* FindNamedClass(std::string_view name) {
  for (const NamedClass& c : kNamedClasses) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

// Parses the bracket expression starting at pattern[open] == '['. Returns the
// index just past its closing ']' (kNone if malformed, with `error` set), and
// whether byte `c` is in the class (when `c` >= 0).
size_t ParseClass(std::string_view pattern, size_t open, int c, bool* matched, std::string* error) {
  size_t i = open + 1;
  bool negate = false;
  if (i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^')) {
    negate = true;
    ++i;
  }
  bool in = false;
  bool first = true;
  while (true) {
    if (i >= pattern.size()) {
      if (error) *error = "unclosed '[' at offset " + std::to_string(open);
      return kNone;
    }
    char ch = pattern[i];
    if (ch == ']' && !first) break;
    first = false;
    if (ch == '[' && i + 1 < pattern.size() && (pattern[i + 1] == '.' || pattern[i + 1] == '=')) {
      // POSIX collating symbols and equivalence classes: fnmatch(3) gives them
      // locale meanings; rather than guess, refuse them.
      if (error) *error = "'[.' and '[=' inside brackets are not supported (write '\\[')";
      return kNone;
    }
    if (ch == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      size_t end = pattern.find(":]", i + 2);
      if (end == kNone) {
        if (error) *error = "unclosed '[:' at offset " + std::to_string(i);
        return kNone;
      }
      std::string_view name = pattern.substr(i + 2, end - i - 2);
      const NamedClass* named = FindNamedClass(name);
      if (named == nullptr) {
        if (error) *error = "unknown character class '[:" + std::string(name) + ":]'";
        return kNone;
      }
      if (c >= 0 && named->test(c) != 0) in = true;
      i = end + 2;
      continue;
    }
    unsigned char lo = 0;
    if (ch == '\\') {
      if (i + 1 >= pattern.size()) {
        if (error) *error = "trailing '\\'";
        return kNone;
      }
      lo = static_cast<unsigned char>(pattern[i + 1]);
      i += 2;
    } else {
      lo = static_cast<unsigned char>(ch);
      i += 1;
    }
    unsigned char hi = lo;
    if (i + 1 < pattern.size() && pattern[i] == '-' && pattern[i + 1] != ']') {
      size_t h = i + 1;
      if (pattern[h] == '[' && h + 1 < pattern.size() &&
          (pattern[h + 1] == '.' || pattern[h + 1] == '=' || pattern[h + 1] == ':')) {
        // fnmatch(3) reads a collating element or class there, not '['.
        if (error) *error = "a range cannot end in '[.', '[=' or '[:' (write '\\[')";
        return kNone;
      }
      if (pattern[h] == '\\') {
        if (h + 1 >= pattern.size()) {
          if (error) *error = "trailing '\\'";
          return kNone;
        }
        ++h;
      }
      hi = static_cast<unsigned char>(pattern[h]);
      if (hi < lo) {
        if (error) {
          *error = "reversed range '" + std::string(1, static_cast<char>(lo)) + "-" +
                   std::string(1, static_cast<char>(hi)) + "'";
        }
        return kNone;
      }
      i = h + 1;
    }
    if (c >= lo && c <= hi) in = true;
  }
  if (matched) *matched = (in != negate);
  return i + 1;
}

// Length of the UTF-8 character starting at text[i] (1 for a stray byte).
size_t CharLength(std::string_view text, size_t i) {
  size_t n = 1;
  if ((static_cast<unsigned char>(text[i]) & 0xC0U) == 0xC0U) {
    while (i + n < text.size() && (static_cast<unsigned char>(text[i + n]) & 0xC0U) == 0x80U) ++n;
  }
  return n;
}

bool HasWildcard(std::string_view segment) {
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] == '\\') {
      ++i;
    } else if (segment[i] == '*' || segment[i] == '?' || segment[i] == '[') {
      return true;
    }
  }
  return false;
}

std::string Unescape(std::string_view segment) {
  std::string out;
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] == '\\' && i + 1 < segment.size()) ++i;
    out += segment[i];
  }
  return out;
}

}  // namespace

std::string ValidateWildcard(std::string_view pattern) {
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\') {
      if (i + 1 >= pattern.size()) return "trailing '\\'";
      ++i;
    } else if (pattern[i] == '[') {
      std::string error;
      size_t end = ParseClass(pattern, i, -1, nullptr, &error);
      if (end == kNone) return error;
      i = end - 1;
    }
  }
  return {};
}

bool WildcardMatches(std::string_view pattern, std::string_view text) {
  size_t p = 0;
  size_t t = 0;
  size_t star_p = kNone;
  size_t star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size()) {
      char pc = pattern[p];
      if (pc == '*') {
        star_p = p++;
        star_t = t;
        continue;
      }
      if (pc == '?') {
        ++p;
        t += CharLength(text, t);
        continue;
      }
      if (pc == '[') {
        bool in = false;
        size_t end = ParseClass(pattern, p, static_cast<unsigned char>(text[t]), &in, nullptr);
        if (end != kNone && in) {
          p = end;
          ++t;
          continue;
        }
      } else {
        char lit = pc;
        size_t next = p + 1;
        if (pc == '\\' && p + 1 < pattern.size()) {
          lit = pattern[p + 1];
          next = p + 2;
        }
        if (lit == text[t]) {
          p = next;
          ++t;
          continue;
        }
      }
    }
    if (star_p == kNone) return false;
    p = star_p + 1;
    t = ++star_t;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == kNone) slash = path.size();
    if (slash > start) out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

Status Glob::Compile(std::string_view pattern, Glob* out) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("bad glob '" + std::string(pattern) + "': " + why);
  };
  if (pattern.empty()) return bad("empty pattern");
  if (pattern.find('\0') != kNone) return bad("contains a NUL byte");
  Glob g;
  g.pattern_ = std::string(pattern);
  std::string_view body = pattern;
  if (body.back() == '/' && (body.size() < 2 || body[body.size() - 2] != '\\')) {
    g.dir_only_ = true;
    body.remove_suffix(1);
  }
  if (!body.empty() && body.front() == '/') {
    g.anchored_ = true;
    body.remove_prefix(1);
  }
  if (body.empty()) return bad("matches nothing but the mount root");
  if (body.find('/') != kNone) g.anchored_ = true;

  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t slash = body.find('/', start);
    std::string_view part =
        body.substr(start, slash == kNone ? std::string_view::npos : slash - start);
    if (part.empty()) return bad("empty path component ('//')");
    if (part == "." || part == "..") return bad("'" + std::string(part) + "' component");
    parts.push_back(part);
    if (slash == kNone) break;
    start = slash + 1;
  }

  if (!g.anchored_) g.segments_.push_back({Segment::Kind::kAnyDirs, {}});
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string_view part = parts[i];
    if (part == "**") {
      // "a/**" means everything inside a, not a itself: one component, then any.
      if (i + 1 == parts.size() && i > 0) g.segments_.push_back({Segment::Kind::kWildcard, "*"});
      if (g.segments_.empty() || g.segments_.back().kind != Segment::Kind::kAnyDirs) {
        g.segments_.push_back({Segment::Kind::kAnyDirs, {}});
      }
      continue;
    }
    if (std::string why = ValidateWildcard(part); !why.empty()) return bad(why);
    if (HasWildcard(part)) {
      g.segments_.push_back({Segment::Kind::kWildcard, std::string(part)});
    } else {
      g.segments_.push_back({Segment::Kind::kLiteral, Unescape(part)});
    }
  }
  *out = std::move(g);
  return Status::OK();
}

bool Glob::SegmentMatches(const Segment& segment, std::string_view component) {
  if (segment.kind == Segment::Kind::kLiteral) return segment.text == component;
  return WildcardMatches(segment.text, component);
}

bool Glob::Matches(std::string_view path, bool is_dir) const {
  return MatchesComponents(SplitPath(path), is_dir);
}

bool Glob::MatchesComponents(const std::vector<std::string_view>& components, bool is_dir) const {
  if (dir_only_ && !is_dir) return false;
  if (components.empty()) return false;
  const size_t m = segments_.size();
  const size_t n = components.size();
  size_t p = 0;
  size_t t = 0;
  size_t star_p = kNone;
  size_t star_t = 0;
  while (t < n) {
    if (p < m && segments_[p].kind == Segment::Kind::kAnyDirs) {
      star_p = p++;
      star_t = t;
      continue;
    }
    if (p < m && SegmentMatches(segments_[p], components[t])) {
      ++p;
      ++t;
      continue;
    }
    if (star_p == kNone) return false;
    p = star_p + 1;
    t = ++star_t;
  }
  while (p < m && segments_[p].kind == Segment::Kind::kAnyDirs) ++p;
  return p == m;
}

}  // namespace detourfs
