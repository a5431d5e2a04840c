// Router: decides the tier of a path from the config's rules.
//
// The first rule in file order whose glob matches wins. A rule that matches a
// directory covers its whole subtree, and a match nested inside an already
// routed subtree does not re-route it: the decision for "a/b/c" is made at
// the shortest prefix ("a", then "a/b", then "a/b/c") that any rule matches.
// Prefixes of a path are directories; the path itself is a directory only
// when `is_dir` says so.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "route/route_rule.h"

namespace detourfs {

struct RouteDecision {
  const RouteRule* rule = nullptr;  // nullptr: not routed, the volume serves it
  size_t rule_index = 0;            // 0-based position of `rule` in the config
  size_t glob_index = 0;            // which of the rule's globs matched
  std::string routed_root;          // the prefix the rule matched (the subtree's root)

  bool routed() const { return rule != nullptr; }
};

class Router {
 public:
  Router() = default;
  explicit Router(std::vector<RouteRule> rules) : rules_(std::move(rules)) {}

  // The decision for `path` (relative to the mount root, no leading '/').
  RouteDecision Route(std::string_view path, bool is_dir) const;

  // The rule matching exactly these components (no prefix walk): what a lookup
  // under a parent that is not routed needs. nullptr when none matches.
  const RouteRule* MatchExact(const std::vector<std::string_view>& components, bool is_dir,
                              size_t* rule_index, size_t* glob_index) const;

  const std::vector<RouteRule>& rules() const { return rules_; }
  bool empty() const { return rules_.empty(); }

 private:
  std::vector<RouteRule> rules_;
};

}  // namespace detourfs
