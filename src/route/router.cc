// Router: first matching rule at the shortest matching prefix (router.h).
#include "route/router.h"

namespace detourfs {

std::string_view TierName(TierId tier) {
  switch (tier) {
    case TierId::kVolume:
      return "volume";
    case TierId::kMemory:
      return "memory";
    case TierId::kDisk:
      return "disk";
  }
  return "?";
}

std::string_view PersistName(Persist persist) {
  return persist == Persist::kBatch ? "batch" : "never";
}

const RouteRule* Router::MatchExact(const std::vector<std::string_view>& components, bool is_dir,
                                    size_t* rule_index, size_t* glob_index) const {
  for (size_t r = 0; r < rules_.size(); ++r) {
    const RouteRule& rule = rules_[r];
    for (size_t g = 0; g < rule.globs.size(); ++g) {
      if (rule.globs[g].MatchesComponents(components, is_dir)) {
        if (rule_index) *rule_index = r;
        if (glob_index) *glob_index = g;
        return &rule;
      }
    }
  }
  return nullptr;
}

RouteDecision Router::Route(std::string_view path, bool is_dir) const {
  RouteDecision decision;
  std::vector<std::string_view> all = SplitPath(path);
  std::vector<std::string_view> prefix;
  prefix.reserve(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    prefix.push_back(all[i]);
    bool prefix_is_dir = (i + 1 < all.size()) || is_dir;
    size_t r = 0;
    size_t g = 0;
    if (const RouteRule* rule = MatchExact(prefix, prefix_is_dir, &r, &g)) {
      decision.rule = rule;
      decision.rule_index = r;
      decision.glob_index = g;
      for (size_t k = 0; k <= i; ++k) {
        if (k > 0) decision.routed_root += '/';
        decision.routed_root += all[k];
      }
      return decision;
    }
  }
  return decision;
}

}  // namespace detourfs
