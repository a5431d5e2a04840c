// CheckPlacement: tier roots against the mountpoint and each other (config.h).
#include <filesystem>
#include <system_error>

#include "config/config.h"

namespace detourfs {
namespace {

// The path with symlinks resolved as far as it exists, '.' and '..' removed.
std::filesystem::path Resolved(const std::string& path) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::weakly_canonical(path, ec);
  if (ec) p = std::filesystem::path(path).lexically_normal();
  // "/a/b/" and "/a/b" must compare equal.
  if (p.has_relative_path() && !p.has_filename()) p = p.parent_path();
  return p;
}

// True when `inner` is `outer` or lies beneath it, component by component.
bool Within(const std::filesystem::path& inner, const std::filesystem::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

std::string Where(const Config& config, const TierConfig& tier) {
  return config.source + ":" + std::to_string(tier.line) + ": [tiers." +
         std::string(TierName(tier.id)) + "] root '" + tier.root + "'";
}

}  // namespace

Status CheckPlacement(const Config& config, const std::string& mountpoint) {
  const std::filesystem::path mount = Resolved(mountpoint);
  std::vector<const TierConfig*> tiers;
  if (config.memory) tiers.push_back(&*config.memory);
  if (config.disk) tiers.push_back(&*config.disk);
  for (const TierConfig* tier : tiers) {
    const std::filesystem::path root = Resolved(tier->root);
    if (Within(root, mount)) {
      return Status::InvalidArgument(Where(config, *tier) + " is inside the mountpoint '" +
                                     mountpoint + "': detourfs would recurse into itself");
    }
    if (Within(mount, root)) {
      return Status::InvalidArgument(Where(config, *tier) + " contains the mountpoint '" +
                                     mountpoint + "'");
    }
  }
  if (tiers.size() == 2) {
    const std::filesystem::path a = Resolved(tiers[0]->root);
    const std::filesystem::path b = Resolved(tiers[1]->root);
    if (Within(a, b) || Within(b, a)) {
      return Status::InvalidArgument(Where(config, *tiers[1]) + " overlaps [tiers." +
                                     std::string(TierName(tiers[0]->id)) + "] root '" +
                                     tiers[0]->root + "': each tier needs its own directory");
    }
  }
  return Status::OK();
}

}  // namespace detourfs
