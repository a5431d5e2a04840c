// Config: the validated contents of detourfs.toml (docs/config.md).
//
// ParseConfig checks everything that can be checked from the text alone:
// TOML syntax, unknown keys, value types, human units, globs, tier names and
// fallback chains; every error names the file and line. CheckPlacement then
// checks the tier roots against the mountpoint and each other, which needs
// the paths of the machine it runs on.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detourfs/status.h"
#include "route/route_rule.h"

namespace detourfs {

inline constexpr const char* kDefaultConfigPath = "/etc/detourfs/detourfs.toml";

struct TierConfig {
  TierId id = TierId::kMemory;
  std::string root;              // absolute path of the tier's directory
  uint64_t capacity = 0;         // bytes; 0: the filesystem's own size
  double high_watermark = 0.90;  // start evicting clean data above this fill
  double low_watermark = 0.75;   // ... down to this fill
  int line = 0;
};

struct FlushConfig {
  std::chrono::milliseconds interval{std::chrono::seconds(30)};
  uint64_t dirty_bytes = uint64_t{1} << 30;  // flush early above this much dirty data
  unsigned concurrency = 4;                  // parallel file copies to the volume
  uint64_t rate_limit = 0;                   // bytes per second to the volume; 0: none
  bool verify = true;                        // read back what was written
};

struct Config {
  std::string source;  // file name, for messages
  std::optional<TierConfig> memory;
  std::optional<TierConfig> disk;
  FlushConfig flush;
  std::vector<RouteRule> routes;

  const TierConfig* tier(TierId id) const;
};

// Parses and validates `text`; `source` names it in messages ("FILE:LINE: ...").
Status ParseConfig(std::string_view text, const std::string& source, Config* out);
// Reads and parses a file.
Status LoadConfigFile(const std::string& path, Config* out);

// Tier roots must be absolute, outside `mountpoint` (the daemon would recurse
// into itself) and must not contain one another. Paths are compared after
// resolving what exists of them.
Status CheckPlacement(const Config& config, const std::string& mountpoint);

// The effective configuration, one fact per line (detourfs --check-config).
std::string DescribeConfig(const Config& config);
// Which rule and tier `path` gets and why (detourfs --explain).
std::string ExplainRoute(const Config& config, std::string_view path, bool is_dir);

}  // namespace detourfs
