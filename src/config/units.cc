// Parsing and printing of the config's human units (units.h).
#include "config/units.h"

#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>

namespace detourfs {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return s;
}

// Reads a non-negative decimal number ("12", "1.5") from the front of `s`.
bool TakeNumber(std::string_view* s, double* value) {
  size_t i = 0;
  bool digits = false;
  bool dot = false;
  while (i < s->size()) {
    char c = (*s)[i];
    if (std::isdigit(static_cast<unsigned char>(c)) != 0) {
      digits = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
    ++i;
  }
  if (!digits || i > 40) return false;
  *value = std::strtod(std::string(s->substr(0, i)).c_str(), nullptr);
  s->remove_prefix(i);
  return true;
}

std::string_view TakeLetters(std::string_view* s) {
  size_t i = 0;
  while (i < s->size() && std::isalpha(static_cast<unsigned char>((*s)[i])) != 0) ++i;
  std::string_view letters = s->substr(0, i);
  s->remove_prefix(i);
  return letters;
}

}  // namespace

std::string ParseSize(std::string_view text, uint64_t* bytes) {
  std::string_view s = Trim(text);
  double number = 0;
  if (!TakeNumber(&s, &number)) return "not a size: '" + std::string(text) + "' (e.g. \"16GiB\")";
  s = Trim(s);
  std::string unit = Lower(TakeLetters(&s));
  if (!Trim(s).empty()) return "not a size: '" + std::string(text) + "' (e.g. \"16GiB\")";
  struct Unit {
    const char* name;
    double factor;
  };
  static constexpr std::array<Unit, 14> kUnits = {{
      {"", 1.0},
      {"b", 1.0},
      {"k", 1024.0},
      {"kib", 1024.0},
      {"m", 1048576.0},
      {"mib", 1048576.0},
      {"g", 1073741824.0},
      {"gib", 1073741824.0},
      {"t", 1099511627776.0},
      {"tib", 1099511627776.0},
      {"kb", 1e3},
      {"mb", 1e6},
      {"gb", 1e9},
      {"tb", 1e12},
  }};
  for (const Unit& u : kUnits) {
    if (unit == u.name) {
      double value = number * u.factor;
      // 2^64 as a double; anything at or above it does not fit.
      if (!(value < 18446744073709551616.0)) return "size too large: '" + std::string(text) + "'";
      *bytes = static_cast<uint64_t>(std::llround(value));
      return {};
    }
  }
  return "unknown size unit '" + unit + "' in '" + std::string(text) +
         "' (use B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB)";
}

std::string ParseDuration(std::string_view text, std::chrono::milliseconds* out) {
  std::string_view s = Trim(text);
  const std::string example = " (e.g. \"30s\", \"5m\", \"250ms\")";
  if (s.empty()) return "empty duration" + example;
  double total_ms = 0;
  while (!s.empty()) {
    double number = 0;
    if (!TakeNumber(&s, &number)) return "not a duration: '" + std::string(text) + "'" + example;
    s = Trim(s);
    std::string unit = Lower(TakeLetters(&s));
    double factor = 0;
    if (unit == "ms") {
      factor = 1;
    } else if (unit == "s") {
      factor = 1e3;
    } else if (unit == "m") {
      factor = 60e3;
    } else if (unit == "h") {
      factor = 3600e3;
    } else if (unit == "d") {
      factor = 86400e3;
    } else if (unit.empty()) {
      return "duration needs a unit: '" + std::string(text) + "'" + example;
    } else {
      std::string why = "unknown duration unit '" + unit + "' in '";
      why += text;
      why += "'" + example;
      return why;
    }
    total_ms += number * factor;
    s = Trim(s);
  }
  // A year is plenty for any setting here and keeps the value far from overflow.
  if (total_ms > 365.0 * 86400e3) return "duration too long: '" + std::string(text) + "'";
  *out = std::chrono::milliseconds(std::llround(total_ms));
  return {};
}

std::string ParseFraction(std::string_view text, double* out) {
  std::string_view s = Trim(text);
  double number = 0;
  if (!TakeNumber(&s, &number)) return "not a percentage: '" + std::string(text) + "'";
  s = Trim(s);
  if (s == "%") {
    number /= 100.0;
  } else if (!s.empty()) {
    return "not a percentage: '" + std::string(text) + "' (e.g. \"90%\")";
  }
  if (number > 1.0) return "percentage above 100%: '" + std::string(text) + "'";
  *out = number;
  return {};
}

std::string FormatSize(uint64_t bytes) {
  static constexpr std::array<const char*, 5> kNames = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < kNames.size()) {
    value /= 1024.0;
    ++unit;
  }
  std::array<char, 48> buf{};
  if (unit == 0 || value == std::floor(value)) {
    std::snprintf(buf.data(), buf.size(), "%.0f %s", value, kNames[unit]);
  } else {
    std::snprintf(buf.data(), buf.size(), "%.2f %s", value, kNames[unit]);
  }
  return buf.data();
}

std::string FormatDuration(std::chrono::milliseconds duration) {
  int64_t ms = duration.count();
  if (ms == 0) return "0s";
  std::string out;
  struct Part {
    int64_t ms;
    const char* unit;
  };
  static constexpr std::array<Part, 5> kParts = {
      {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}}};
  for (const Part& p : kParts) {
    if (ms >= p.ms) {
      out += std::to_string(ms / p.ms) + p.unit;
      ms %= p.ms;
    }
  }
  return out;
}

}  // namespace detourfs
