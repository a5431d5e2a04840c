// Human-readable views of a Config: --check-config and --explain (config.h).
#include <sstream>

#include "config/config.h"
#include "config/units.h"
#include "route/router.h"

namespace detourfs {
namespace {

std::string Chain(const RouteRule& rule) {
  std::string out(TierName(rule.tier));
  for (TierId t : rule.fallback) out += " -> " + std::string(TierName(t));
  return out;
}

std::string Globs(const RouteRule& rule) {
  std::string out;
  for (const Glob& g : rule.globs) out += (out.empty() ? "" : ", ") + g.pattern();
  return out;
}

}  // namespace

std::string DescribeConfig(const Config& config) {
  std::ostringstream out;
  out << "config " << config.source << "\n";
  for (TierId id : {TierId::kMemory, TierId::kDisk}) {
    const TierConfig* tier = config.tier(id);
    if (tier == nullptr) {
      out << "tier " << TierName(id) << ": not configured\n";
      continue;
    }
    out << "tier " << TierName(id) << ": root " << tier->root << ", capacity "
        << (tier->capacity != 0 ? FormatSize(tier->capacity) : "the filesystem's size")
        << ", evict clean data above " << tier->high_watermark * 100 << "% down to "
        << tier->low_watermark * 100 << "%\n";
  }
  const FlushConfig& f = config.flush;
  out << "flush: every " << FormatDuration(f.interval) << " or above " << FormatSize(f.dirty_bytes)
      << " dirty, " << f.concurrency << " in parallel, rate "
      << (f.rate_limit != 0 ? FormatSize(f.rate_limit) + "/s" : "unlimited") << ", verify "
      << (f.verify ? "on" : "off") << "\n";
  if (config.routes.empty()) out << "routes: none (everything passes through to the volume)\n";
  for (size_t i = 0; i < config.routes.size(); ++i) {
    const RouteRule& r = config.routes[i];
    out << "route " << i + 1 << " (line " << r.line << "): " << Globs(r) << " -> " << Chain(r)
        << ", persist " << PersistName(r.persist) << "\n";
  }
  out << "anything else -> volume (pass-through)\n";
  return out.str();
}

std::string ExplainRoute(const Config& config, std::string_view path, bool is_dir) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  Router router(config.routes);
  RouteDecision d = router.Route(path, is_dir);
  std::ostringstream out;
  out << "/" << path << ": ";
  if (!d.routed()) {
    out << "volume (pass-through): no rule matches it or any of its parent directories\n";
    return out.str();
  }
  const RouteRule& r = *d.rule;
  out << TierName(r.tier) << " tier, persist " << PersistName(r.persist) << "\n";
  out << "  rule " << d.rule_index + 1 << " (" << config.source << ":" << r.line << ") glob '"
      << r.globs[d.glob_index].pattern() << "' matches ";
  if (d.routed_root == path) {
    out << "the path itself\n";
  } else {
    out << "its parent /" << d.routed_root << ", whose whole subtree the rule covers\n";
  }
  out << "  spills when full: " << Chain(r) << "\n";
  return out.str();
}

}  // namespace detourfs
