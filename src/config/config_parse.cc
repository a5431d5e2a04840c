// TOML text to a validated Config (config.h). Every message names the file
// and the line of the offending key or value.
#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
#include <initializer_list>
#include <sstream>

#include "config/config.h"
#include "config/units.h"

namespace detourfs {
namespace {

// Collects the first error, prefixed with "FILE:LINE: ".
class Checker {
 public:
  explicit Checker(const std::string& source) : source_(source) {}

  bool failed() const { return !status_.ok(); }
  Status status() const { return status_; }

  void Fail(const toml::source_region& where, const std::string& message) {
    if (failed()) return;
    status_ =
        Status::InvalidArgument(source_ + ":" + std::to_string(where.begin.line) + ": " + message);
  }

  // Rejects keys of `table` not in `allowed`.
  void OnlyKeys(const toml::table& table, std::string_view where,
                std::initializer_list<std::string_view> allowed) {
    for (auto&& [key, value] : table) {
      if (std::find(allowed.begin(), allowed.end(), key.str()) != allowed.end()) continue;
      std::string list;
      for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      Fail(key.source(), "unknown key '" + std::string(key.str()) + "' in " + std::string(where) +
                             " (known: " + list + ")");
      return;
    }
  }

  const toml::table* Table(const toml::node& node, std::string_view what) {
    if (const toml::table* t = node.as_table()) return t;
    Fail(node.source(), std::string(what) + " must be a table");
    return nullptr;
  }

  std::optional<std::string> String(const toml::node& node, std::string_view what) {
    if (auto s = node.value<std::string>(); s && node.is_string()) return s;
    Fail(node.source(), std::string(what) + " must be a string");
    return std::nullopt;
  }

  // A size: a string with a unit, or a non-negative integer of bytes.
  std::optional<uint64_t> Size(const toml::node& node, std::string_view what) {
    if (const auto* i = node.as_integer()) {
      if (i->get() >= 0) return static_cast<uint64_t>(i->get());
      Fail(node.source(), std::string(what) + " must not be negative");
      return std::nullopt;
    }
    auto text = String(node, what);
    if (!text) return std::nullopt;
    uint64_t bytes = 0;
    if (std::string why = ParseSize(*text, &bytes); !why.empty()) {
      Fail(node.source(), std::string(what) + ": " + why);
      return std::nullopt;
    }
    return bytes;
  }

  std::optional<std::chrono::milliseconds> Duration(const toml::node& node, std::string_view what) {
    auto text = String(node, what);
    if (!text) return std::nullopt;
    std::chrono::milliseconds d{};
    if (std::string why = ParseDuration(*text, &d); !why.empty()) {
      Fail(node.source(), std::string(what) + ": " + why);
      return std::nullopt;
    }
    return d;
  }

  std::optional<double> Fraction(const toml::node& node, std::string_view what) {
    if (const auto* f = node.as_floating_point()) {
      if (f->get() >= 0 && f->get() <= 1) return f->get();
      Fail(node.source(), std::string(what) + " must be between 0 and 1, or a percentage");
      return std::nullopt;
    }
    auto text = String(node, what);
    if (!text) return std::nullopt;
    double value = 0;
    if (std::string why = ParseFraction(*text, &value); !why.empty()) {
      Fail(node.source(), std::string(what) + ": " + why);
      return std::nullopt;
    }
    return value;
  }

  // A string, or an array of strings.
  std::vector<std::pair<std::string, toml::source_region>> StringList(const toml::node& node,
                                                                      std::string_view what) {
    std::vector<std::pair<std::string, toml::source_region>> out;
    if (const toml::array* array = node.as_array()) {
      if (array->empty()) Fail(node.source(), std::string(what) + " must not be empty");
      for (const toml::node& element : *array) {
        auto s = String(element, what);
        if (!s) return {};
        out.emplace_back(*s, element.source());
      }
      return out;
    }
    if (auto s = String(node, std::string(what) + " (a string or a list of strings)")) {
      out.emplace_back(*s, node.source());
    }
    return out;
  }

 private:
  std::string source_;
  Status status_;
};

std::optional<TierId> TierByName(std::string_view name) {
  if (name == "memory") return TierId::kMemory;
  if (name == "disk") return TierId::kDisk;
  if (name == "volume") return TierId::kVolume;
  return std::nullopt;
}

void ParseTier(Checker& check, TierId id, const toml::node& node, std::optional<TierConfig>* out) {
  std::string where = "[tiers." + std::string(TierName(id)) + "]";
  const toml::table* table = check.Table(node, where);
  if (table == nullptr) return;
  check.OnlyKeys(*table, where, {"root", "capacity", "high_watermark", "low_watermark"});
  TierConfig tier;
  tier.id = id;
  tier.line = static_cast<int>(node.source().begin.line);
  if (const toml::node* root = table->get("root")) {
    if (auto s = check.String(*root, where + " root")) {
      tier.root = *s;
      if (tier.root.empty() || tier.root.front() != '/') {
        check.Fail(root->source(), where + " root must be an absolute path, not '" + *s + "'");
      }
    }
  } else {
    check.Fail(node.source(), where + " needs a root (the directory holding the tier's data)");
  }
  if (const toml::node* n = table->get("capacity")) {
    if (auto v = check.Size(*n, where + " capacity")) tier.capacity = *v;
  }
  if (const toml::node* n = table->get("high_watermark")) {
    if (auto v = check.Fraction(*n, where + " high_watermark")) tier.high_watermark = *v;
  }
  if (const toml::node* n = table->get("low_watermark")) {
    if (auto v = check.Fraction(*n, where + " low_watermark")) tier.low_watermark = *v;
  }
  if (tier.low_watermark > tier.high_watermark) {
    check.Fail(node.source(), where + " low_watermark is above high_watermark");
  }
  *out = tier;
}

void ParseFlush(Checker& check, const toml::node& node, FlushConfig* flush) {
  const toml::table* table = check.Table(node, "[flush]");
  if (table == nullptr) return;
  check.OnlyKeys(*table, "[flush]",
                 {"interval", "dirty_bytes", "concurrency", "rate_limit", "verify"});
  if (const toml::node* n = table->get("interval")) {
    if (auto v = check.Duration(*n, "[flush] interval")) {
      if (v->count() == 0) check.Fail(n->source(), "[flush] interval must be more than 0");
      flush->interval = *v;
    }
  }
  if (const toml::node* n = table->get("dirty_bytes")) {
    if (auto v = check.Size(*n, "[flush] dirty_bytes")) flush->dirty_bytes = *v;
  }
  if (const toml::node* n = table->get("concurrency")) {
    const auto* i = n->as_integer();
    if (i == nullptr || i->get() < 1 || i->get() > 256) {
      check.Fail(n->source(), "[flush] concurrency must be an integer from 1 to 256");
    } else {
      flush->concurrency = static_cast<unsigned>(i->get());
    }
  }
  if (const toml::node* n = table->get("rate_limit")) {
    if (auto v = check.Size(*n, "[flush] rate_limit")) flush->rate_limit = *v;
  }
  if (const toml::node* n = table->get("verify")) {
    if (const auto* b = n->as_boolean()) {
      flush->verify = b->get();
    } else {
      check.Fail(n->source(), "[flush] verify must be true or false");
    }
  }
}

// Default spill chain after `tier`: memory -> disk -> volume, skipping tiers
// that are not configured.
std::vector<TierId> DefaultFallback(const Config& config, TierId tier) {
  std::vector<TierId> chain;
  if (tier == TierId::kMemory && config.disk) chain.push_back(TierId::kDisk);
  if (tier != TierId::kVolume) chain.push_back(TierId::kVolume);
  return chain;
}

void ParseRoute(Checker& check, const toml::node& node, size_t index, Config* config) {
  std::string where = "[[route]] #" + std::to_string(index + 1);
  const toml::table* table = check.Table(node, where);
  if (table == nullptr) return;
  check.OnlyKeys(*table, where, {"match", "tier", "persist", "fallback"});
  RouteRule rule;
  rule.line = static_cast<int>(node.source().begin.line);
  const toml::node* match = table->get("match");
  if (match == nullptr) {
    check.Fail(node.source(), where + " needs match (a glob or a list of globs)");
    return;
  }
  for (auto& [text, region] : check.StringList(*match, where + " match")) {
    Glob glob;
    if (Status s = Glob::Compile(text, &glob); !s.ok()) {
      check.Fail(region, where + ": " + s.ToString());
      return;
    }
    rule.globs.push_back(std::move(glob));
  }
  auto tier_of = [&](const toml::node& n, std::string_view what) -> std::optional<TierId> {
    auto name = check.String(n, what);
    if (!name) return std::nullopt;
    auto id = TierByName(*name);
    if (!id) {
      check.Fail(n.source(), "unknown tier '" + *name + "' in " + std::string(what) +
                                 " (tiers: memory, disk, volume)");
      return std::nullopt;
    }
    if (*id != TierId::kVolume && config->tier(*id) == nullptr) {
      check.Fail(n.source(), std::string(what) + " names tier '" + *name +
                                 "', which has no [tiers." + *name + "] section");
      return std::nullopt;
    }
    return id;
  };
  if (const toml::node* n = table->get("tier")) {
    if (auto id = tier_of(*n, where + " tier")) rule.tier = *id;
  } else {
    check.Fail(node.source(), where + " needs tier (memory, disk or volume)");
  }
  if (const toml::node* n = table->get("persist")) {
    auto value = check.String(*n, where + " persist");
    if (value == "batch") {
      rule.persist = Persist::kBatch;
    } else if (value == "never") {
      rule.persist = Persist::kNever;
    } else if (value) {
      check.Fail(n->source(),
                 where + " persist must be \"batch\" or \"never\", not \"" + *value + "\"");
    }
  }
  if (const toml::node* n = table->get("fallback")) {
    const toml::array* array = n->as_array();
    if (array == nullptr) {
      check.Fail(n->source(), where + " fallback must be a list of tiers, e.g. [\"disk\"]");
    } else {
      for (const toml::node& element : *array) {
        auto id = tier_of(element, where + " fallback");
        if (!id) break;
        if (*id == rule.tier ||
            std::find(rule.fallback.begin(), rule.fallback.end(), *id) != rule.fallback.end()) {
          check.Fail(element.source(),
                     where + " fallback repeats tier '" + std::string(TierName(*id)) + "'");
          break;
        }
        // Data only moves down the chain memory -> disk -> volume.
        const TierId from = rule.fallback.empty() ? rule.tier : rule.fallback.back();
        if (from == TierId::kVolume || (from == TierId::kDisk && *id == TierId::kMemory)) {
          check.Fail(element.source(), where + " fallback cannot go from '" +
                                           std::string(TierName(from)) + "' to '" +
                                           std::string(TierName(*id)) +
                                           "': data only moves memory -> disk -> volume");
          break;
        }
        rule.fallback.push_back(*id);
      }
    }
  } else {
    rule.fallback = DefaultFallback(*config, rule.tier);
  }
  if (rule.tier == TierId::kVolume && !rule.fallback.empty() && table->get("fallback")) {
    check.Fail(table->get("fallback")->source(), where + " routes to the volume: no fallback");
  }
  config->routes.push_back(std::move(rule));
}

}  // namespace

const TierConfig* Config::tier(TierId id) const {
  if (id == TierId::kMemory && memory) return &*memory;
  if (id == TierId::kDisk && disk) return &*disk;
  return nullptr;
}

Status ParseConfig(std::string_view text, const std::string& source, Config* out) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(source + ":" + std::to_string(e.source().begin.line) + ": " +
                                   std::string(e.description()));
  }
  Checker check(source);
  Config config;
  config.source = source;
  check.OnlyKeys(root, "the top level", {"tiers", "flush", "route"});
  if (const toml::node* tiers = root.get("tiers")) {
    if (const toml::table* table = check.Table(*tiers, "[tiers]")) {
      check.OnlyKeys(*table, "[tiers]", {"memory", "disk"});
      if (const toml::node* n = table->get("memory")) {
        ParseTier(check, TierId::kMemory, *n, &config.memory);
      }
      if (const toml::node* n = table->get("disk"))
        ParseTier(check, TierId::kDisk, *n, &config.disk);
    }
  }
  if (const toml::node* flush = root.get("flush")) ParseFlush(check, *flush, &config.flush);
  if (const toml::node* routes = root.get("route")) {
    if (const toml::array* array = routes->as_array(); array && array->is_array_of_tables()) {
      for (size_t i = 0; i < array->size() && !check.failed(); ++i) {
        ParseRoute(check, *array->get(i), i, &config);
      }
    } else {
      check.Fail(routes->source(), "route must be an array of tables ([[route]])");
    }
  }
  if (check.failed()) return check.status();
  *out = std::move(config);
  return Status::OK();
}

Status LoadConfigFile(const std::string& path, Config* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::FromErrno(errno, "cannot read config '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::FromErrno(errno, "cannot read config '" + path + "'");
  return ParseConfig(text.str(), path, out);
}

}  // namespace detourfs
