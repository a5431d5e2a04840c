// FlakyMount: a real flakyfs mount for a test (tests/tools/flakyfs), with its
// control socket and guaranteed cleanup, like MountedFs for detourfs.
// $FLAKYFS_BIN names the binary.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace detourfs::testing {

struct FlakyConfig {
  std::vector<std::string> rules;  // commands applied at start (--rule)
  uint64_t seed = 1;
  double cache_seconds = 0;
};

class FlakyMount {
 public:
  // Serves `source` at `mountpoint` (the same path mounts in place).
  static std::unique_ptr<FlakyMount> Start(const std::string& source, const std::string& mountpoint,
                                           const FlakyConfig& config, std::string* error);
  ~FlakyMount();

  // Sends one command; returns the answer ("ok ..." or "error ...").
  std::string Control(const std::string& command) const;
  nlohmann::json Counters() const;
  // How many faults of `kind` ("eio", "vanish", ...) were injected so far.
  uint64_t Injected(const std::string& kind) const;

  const std::string& mountpoint() const { return mountpoint_; }
  std::string Log() const;
  // Unmounts and reaps flakyfs; its exit code, or -1.
  int Stop();

 private:
  FlakyMount() = default;

  std::string dir_;  // socket and log
  std::string mountpoint_;
  pid_t pid_ = -1;
  bool mounted_ = false;
};

}  // namespace detourfs::testing
