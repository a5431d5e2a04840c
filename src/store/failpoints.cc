// Failpoints (failpoints.h).
#include "store/failpoints.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "build_config.h"

namespace detourfs {

Result<std::unique_ptr<Failpoints>> Failpoints::Parse(std::string_view spec) {
  auto fp = std::make_unique<Failpoints>();
  while (!spec.empty()) {
    const size_t comma = spec.find(',');
    std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) return Errno{EINVAL};
    auto p = std::make_unique<Point>();
    p->name = std::string(item.substr(0, eq));
    std::string_view action = item.substr(eq + 1);
    if (const size_t at = action.find('@'); at != std::string_view::npos) {
      const std::string_view count = action.substr(at + 1);
      if (count.empty() || count.size() > 9) return Errno{EINVAL};
      p->nth = 0;
      for (char c : count) {
        if (c < '0' || c > '9') return Errno{EINVAL};
        p->nth = p->nth * 10 + static_cast<uint64_t>(c - '0');
      }
      action = action.substr(0, at);
      if (p->nth == 0) return Errno{EINVAL};
    }
    if (action == "kill") {
      p->err = 0;
    } else if (action == "eio") {
      p->err = EIO;
    } else if (action == "enospc") {
      p->err = ENOSPC;
    } else if (action == "wait") {
      p->wait = true;
    } else {
      return Errno{EINVAL};
    }
    bool known = false;
    for (const char* name : kFailpoints) known = known || p->name == name;
    if (!known) return Errno{ENOENT};
    fp->points_.push_back(std::move(p));
  }
  return fp;
}

std::unique_ptr<Failpoints> Failpoints::FromEnvironment() {
#if DETOURFS_FAILPOINTS
  // Read once, at start, before any thread runs.
  const char* spec = std::getenv("DETOURFS_FAILPOINTS");  // NOLINT(concurrency-mt-unsafe)
  if (spec == nullptr || *spec == '\0') return nullptr;
  Result<std::unique_ptr<Failpoints>> fp = Parse(spec);
  if (!fp.ok()) {
    spdlog::error("DETOURFS_FAILPOINTS='{}' is not valid (name=kill|eio|enospc[@N],...), ignored",
                  spec);
    return nullptr;
  }
  spdlog::warn("failpoints armed: {}", spec);
  const char* dir = std::getenv("DETOURFS_FAILPOINT_DIR");  // NOLINT(concurrency-mt-unsafe)
  if (dir != nullptr) (*fp)->wait_dir_ = dir;
  return std::move(*fp);
#else
  return nullptr;
#endif
}

Result<void> Failpoints::Hit(std::string_view name) {
  for (auto& p : points_) {
    if (p->name != name) continue;
    if (p->hits.fetch_add(1) + 1 != p->nth) continue;
    if (p->wait) {
      Wait(name);
      return {};
    }
    if (p->err == 0) {
      spdlog::warn("failpoint {}: killing the daemon", name);
      spdlog::default_logger()->flush();
      ::raise(SIGKILL);
    }
    spdlog::warn("failpoint {}: failing with errno {}", name, p->err);
    return Errno{p->err};
  }
  return {};
}

void Failpoints::Wait(std::string_view name) const {
  if (wait_dir_.empty()) return;
  const std::filesystem::path dir(wait_dir_);
  const std::string base(name);
  spdlog::warn("failpoint {}: waiting for {}.go in {}", name, base, wait_dir_);
  std::ofstream(dir / (base + ".waiting")).put('\n');
  std::error_code ec;
  for (int i = 0; i < 6000 && !std::filesystem::exists(dir / (base + ".go"), ec); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace detourfs
