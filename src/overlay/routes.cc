// OverlayImpl: which rule a name falls under, and node paths.
#include "overlay/overlay_impl.h"
#include "route/glob.h"

namespace detourfs {

std::string OverlayImpl::Join(const std::string& dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string p;
  p.reserve(dir.size() + 1 + name.size());
  p += dir;
  p += '/';
  p += name;
  return p;
}

std::string OverlayImpl::PathOf(Node* node) {
  std::optional<std::string> p = table_.PathOf(node);
  return p ? *p : std::string();
}

bool OverlayImpl::IsPrivateName(Node* parent, std::string_view name) const {
  return parent == table_.root() && name == kPrivateDirName && changes_->dirs(Layer::kVolume).root;
}

Layer OverlayImpl::TierOf(int route) const {
  if (route < 0) return Layer::kVolume;
  switch (router_.rules()[static_cast<size_t>(route)].tier) {
    case TierId::kMemory:
      return Layer::kMemory;
    case TierId::kDisk:
      return Layer::kDisk;
    case TierId::kVolume:
      break;
  }
  return Layer::kVolume;
}

int OverlayImpl::RouteOf(Node* node) {
  if (router_.empty() || node == table_.root()) return -1;
  const uint64_t gen = table_.namespace_gen();
  if (node->route_gen.load(std::memory_order_acquire) == gen) {
    return node->route.load(std::memory_order_acquire);
  }
  // A node's route is its path's: the first rule at the shortest matching
  // prefix. Computed from the most recent name, cached until any directory
  // is renamed (the generation moves on).
  int route = -1;
  if (std::optional<std::string> path = table_.PathOf(node)) {
    RouteDecision d = router_.Route(*path, node->is_dir());
    if (d.routed()) route = static_cast<int>(d.rule_index);
  }
  node->route.store(route, std::memory_order_release);
  node->route_gen.store(gen, std::memory_order_release);
  return route;
}

ChildRoute OverlayImpl::RouteOfChild(Node* parent, std::string_view name) {
  ChildRoute r;
  if (router_.empty()) return r;
  const int parent_route = RouteOf(parent);
  if (parent_route >= 0) {
    // Inside a routed subtree everything is routed with it.
    r.dir = r.file = parent_route;
  } else {
    std::optional<std::string> path = table_.PathOf(parent);
    if (!path) return r;
    std::vector<std::string_view> components = SplitPath(*path);
    components.push_back(name);
    size_t rule = 0;
    if (router_.MatchExact(components, true, &rule, nullptr)) r.dir = static_cast<int>(rule);
    if (router_.MatchExact(components, false, &rule, nullptr)) r.file = static_cast<int>(rule);
  }
  r.dir_layer = TierOf(r.dir);
  r.file_layer = TierOf(r.file);
  return r;
}

}  // namespace detourfs
