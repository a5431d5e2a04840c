// CrashDriver: runs detourfs (optionally over flakyfs), applies the
// fsync-acknowledging workload, kills the daemon with SIGKILL at a chosen
// moment (after N acknowledgements) or a random one (a seeded delay), restarts
// it, and hands the mount, the volume (and, once tiers exist, the tiers) to a
// checker. The flush work reuses it to prove crash consistency.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>

#include "lib/flaky_mount.h"
#include "lib/mounted_fs.h"
#include "lib/tmpfs.h"

namespace detourfs::testing {

struct CrashConfig {
  MountConfig mount;
  // Put flakyfs between detourfs and the volume, with these rules.
  bool over_flakyfs = false;
  FlakyConfig flaky;
  uint64_t seed = 1;
};

class CrashDriver {
 public:
  static std::unique_ptr<CrashDriver> Start(const CrashConfig& config, std::string* error);
  ~CrashDriver();

  // Starts a workload process writing under <mount>/work/runN; its ledger is
  // kept outside the mount. Each call starts run N+1 with a new ledger.
  bool StartWorkload(std::string* error);
  // The chosen moment: waits until the current workload acknowledged `n`
  // files (false after `timeout` or if it stopped first).
  bool WaitForAcks(size_t n, std::chrono::seconds timeout);
  // What the workload and the daemon logged, for a failure message.
  std::string Logs() const;
  // A random moment: sleeps a seeded delay in [min, max].
  void SleepRandom(std::chrono::milliseconds min, std::chrono::milliseconds max);
  // SIGKILLs the daemon, detaches its mount, and reaps the workload (which
  // fails with ENOTCONN).
  void KillDaemon();
  bool RestartDaemon(std::string* error);

  // Runs the checker over `dir`/runN against every ledger N so far (`dir` is
  // mount_dir() or volume_dir()): "" when every
  // acknowledged file is intact, else the checker's report.
  std::string CheckAll(const std::string& dir) const;

  MountedFs& fs() { return *fs_; }
  FlakyMount* flaky() { return flaky_.get(); }
  std::string mount_dir() const { return fs_->tree() + "/work"; }
  // The same tree on the volume, bypassing detourfs (and flakyfs).
  std::string volume_dir() const;
  // The same tree on the volume through flakyfs (over_flakyfs only).
  std::string volume_through_flakyfs() const { return flaky_mountpoint_ + "/work"; }
  size_t Acks() const;

 private:
  CrashDriver() = default;

  CrashConfig config_;
  std::mt19937_64 rng_;
  std::unique_ptr<TmpfsDir> volume_;  // flakyfs's source when over flakyfs
  std::string flaky_mountpoint_;
  std::unique_ptr<FlakyMount> flaky_;
  std::unique_ptr<MountedFs> fs_;
  pid_t workload_ = -1;
  int ledgers_ = 0;
};

}  // namespace detourfs::testing
