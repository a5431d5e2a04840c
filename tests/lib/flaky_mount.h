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
  // Model durability from the start ("durability strict"), so that PowerCut()
  // can revert the source to what fsyncs made durable (flakyfs README,
  // "Power cuts"). Keep cache_seconds 0 with it: the kernel's caches would
  // otherwise show the tree from before a cut for that long.
  bool power_cut_model = false;
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

  // The power-cut model (FlakyConfig::power_cut_model, or Control("durability
  // strict")). PowerCut reverts the source to its durable state: "" on
  // success, else flakyfs's answer. Stop whatever uses the mount first
  // (kill detourfs, detach its mount): handles opened before the cut fail with
  // EIO afterwards. `summary` gets {"undone":N,"restored":N,"errors":[...]}.
  std::string PowerCut(nlohmann::json* summary = nullptr) const;
  // A sync point, as syncfs(2) would be if FUSE passed it on: all is durable.
  std::string Sync() const;
  // The model's state: {"mode","unsynced_changes","saved_contents","cuts",...}.
  nlohmann::json Durability() const;

  const std::string& mountpoint() const { return mountpoint_; }
  pid_t pid() const { return pid_; }
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
