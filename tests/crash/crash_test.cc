// Crash harness tests: SIGKILL the daemon in the middle of fsync-acknowledged
// writes, restart it, and check that every acknowledged file is intact,
// through the mount and on the volume itself; and power cuts (the volume and
// the disk tier on flakyfs, which drops what no fsync made durable) under
// that workload and under the model checker's home workload.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>

#include "crash_driver.h"
#include "lib/files.h"
#include "lib/mount_test.h"
#include "lib/process.h"
#include "lib/stress_tool.h"

namespace detourfs::testing {
namespace {

class CrashTest : public ::testing::TestWithParam<Backing> {
 protected:
  void SetUp() override {
    std::string why;
    if (!CanMount(&why)) GTEST_SKIP() << why;
  }
};

// Kill at chosen moments: after 40, then 80, then 120 acknowledgements of the
// current run, restarting in between; every run's files must survive.
TEST_P(CrashTest, KillAfterAcknowledgedWritesLosesNothing) {
  CrashConfig config;
  config.mount.backing = GetParam();
  config.seed = 11;
  std::string error;
  auto d = CrashDriver::Start(config, &error);
  ASSERT_NE(d, nullptr) << error;
  for (size_t round = 1; round <= 3; ++round) {
    ASSERT_TRUE(d->StartWorkload(&error)) << error;
    ASSERT_TRUE(d->WaitForAcks(40 * round, std::chrono::seconds(120))) << "round " << round << "\n"
                                                                       << d->Logs();
    d->KillDaemon();
    ASSERT_TRUE(d->RestartDaemon(&error)) << error;
    EXPECT_EQ(d->CheckAll(d->mount_dir()), "") << "after round " << round;
  }
  EXPECT_EQ(d->fs().Stop(), 0);
  EXPECT_EQ(d->CheckAll(d->volume_dir()), "");
  EXPECT_EQ(d->fs().LogProblems(), std::vector<std::string>{});
}

// Kill at random moments while the volume under detourfs is slow and stalls.
TEST_P(CrashTest, KillAtRandomMomentsWhileTheVolumeStalls) {
  CrashConfig config;
  config.mount.backing = GetParam();
  config.over_flakyfs = true;
  config.flaky.rules = {"latency all 200us", "latency fsync 2ms", "stall 0.05 100ms"};
  config.seed = 23;
  std::string error;
  auto d = CrashDriver::Start(config, &error);
  ASSERT_NE(d, nullptr) << error;
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(d->StartWorkload(&error)) << error;
    ASSERT_TRUE(d->WaitForAcks(1, std::chrono::seconds(60))) << d->Logs();
    d->SleepRandom(std::chrono::milliseconds(50), std::chrono::milliseconds(800));
    d->KillDaemon();
    ASSERT_TRUE(d->RestartDaemon(&error)) << error;
    EXPECT_EQ(d->CheckAll(d->mount_dir()), "") << "after round " << round;
  }
  EXPECT_GT(d->flaky()->Counters()["stalls"].get<uint64_t>(), 0U);
  EXPECT_EQ(d->fs().Stop(), 0);
  EXPECT_EQ(d->CheckAll(d->volume_dir()), "");
}

// Kill at random moments while files spill from a 1 MiB memory tier to a
// 2 MiB disk tier (data to its spill store, stubs left behind) and on to the
// volume: after each restart every acknowledged file reads back whole
// through the mount, wherever its data ended up.
TEST_P(CrashTest, KillWhileFilesSpillThroughTheTiersLosesNothing) {
  TmpfsDir memory("64M");
  TmpfsDir disk("64M");
  ASSERT_TRUE(memory.ok() && disk.ok());
  const std::string tiers = memory.path() + "/detourfs.toml";
  ASSERT_EQ(
      WriteFile(tiers, "[tiers.memory]\nroot = \"" + memory.path() +
                           "/tier\"\ncapacity = \"1MiB\"\n[tiers.disk]\nroot = \"" + disk.path() +
                           "/tier\"\ncapacity = \"2MiB\"\n[[route]]\nmatch = \"/work\"\n"
                           "tier = \"memory\"\n"),
      0);
  CrashConfig config;
  config.mount.backing = GetParam();
  config.mount.extra_args = {"-c", tiers};
  config.seed = 31;
  std::string error;
  auto d = CrashDriver::Start(config, &error);
  ASSERT_NE(d, nullptr) << error;
  for (size_t round = 1; round <= 3; ++round) {
    ASSERT_TRUE(d->StartWorkload(&error)) << error;
    ASSERT_TRUE(d->WaitForAcks(20 * round, std::chrono::seconds(120))) << d->Logs();
    d->SleepRandom(std::chrono::milliseconds(20), std::chrono::milliseconds(400));
    d->KillDaemon();
    ASSERT_TRUE(d->RestartDaemon(&error)) << error;
    EXPECT_EQ(d->CheckAll(d->mount_dir()), "") << "after round " << round;
  }
  EXPECT_EQ(d->fs().Stop(), 0);
  EXPECT_NE(d->fs().Log().find("moved to the disk tier"), std::string::npos);
  EXPECT_NE(d->fs().Log().find("moved to the volume"), std::string::npos);
}

// The rig of the power-cut tests: the volume and the disk tier each on a
// flakyfs that models durability (flakyfs "powercut" then drops every
// change no fsync made durable), detourfs over the volume with `routes`
// (the disk tier's root given), and a cut: the daemon killed, both
// filesystems cut, the daemon restarted.
class PowerCutRig {
 public:
  bool Start(const std::string& routes, uint64_t seed, std::string* error) {
    if (!disk_source_.ok() || !conf_.ok() || ::mkdtemp(disk_mountpoint_) == nullptr) {
      *error = "cannot make the rig's directories";
      return false;
    }
    remove_mountpoint_ = true;
    ::chmod(disk_source_.path().c_str(), 0700);  // a tier root: the owner's alone
    FlakyConfig modelled;
    modelled.power_cut_model = true;
    disk_ = FlakyMount::Start(disk_source_.path(), disk_mountpoint_, modelled, error);
    if (disk_ == nullptr) return false;
    const std::string config_file = conf_.path() + "/detourfs.toml";
    // The tier is the flakyfs's root: the fsync of its root that stands in
    // for a syncfs (ChangeLayer::SyncWhole) is then flakyfs's sync point.
    if (WriteFile(config_file, "[tiers.disk]\nroot = \"" + std::string(disk_mountpoint_) + "\"\n" +
                                   routes) != 0) {
      *error = "cannot write the config";
      return false;
    }
    CrashConfig config;
    config.over_flakyfs = true;
    config.flaky = modelled;
    config.mount.extra_args = {"-c", config_file};
    config.seed = seed;
    driver_ = CrashDriver::Start(config, error);
    if (driver_ == nullptr) return false;
    // What the start made (the layers' directories, the workload's): durable.
    *error = driver_->flaky()->Sync() + disk_->Sync();
    return error->empty();
  }
  ~PowerCutRig() {
    driver_.reset();  // stopped before the disk tier's flakyfs
    disk_.reset();
    if (remove_mountpoint_) ::rmdir(disk_mountpoint_);
  }

  // The daemon killed, both filesystems cut, the daemon restarted; "" or
  // why not. `cut` gets what the cuts undid.
  std::string Cut(std::string* cut) {
    driver_->KillDaemon();
    pending_ = "volume: " + driver_->flaky()->Control("durability pending") +
               "\ndisk: " + disk_->Control("durability pending") + "\n";
    nlohmann::json volume_cut;
    nlohmann::json disk_cut;
    std::string error = driver_->flaky()->PowerCut(&volume_cut) + disk_->PowerCut(&disk_cut);
    if (!error.empty()) return error;
    *cut = volume_cut.dump() + " on the volume, " + disk_cut.dump() + " on the disk tier";
    return driver_->RestartDaemon(&error) ? "" : error;
  }

  CrashDriver* driver() { return driver_.get(); }
  // What was not durable at the last cut (flakyfs's `durability pending`).
  const std::string& pending() const { return pending_; }
  // The disk tier's files, bypassing flakyfs.
  std::string disk_tier() const { return disk_source_.path(); }

 private:
  TmpfsDir disk_source_{"256M"};
  TmpfsDir conf_{"1M"};
  char disk_mountpoint_[40] = "/tmp/detourfs-crash-disk.XXXXXX";
  bool remove_mountpoint_ = false;
  std::unique_ptr<FlakyMount> disk_;
  std::unique_ptr<CrashDriver> driver_;
  std::string pending_;
};

// Power loss under the fsync-acknowledging workload, whose d1/ and d5/ are
// routed to the disk tier and the rest is not: at random moments the
// daemon is killed and both filesystems cut; after the restart every
// acknowledged file reads back whole through the mount, and no file whose
// removal was made durable is back.
TEST(CrashPowerCutTest, APowerCutLosesNothingAnFsyncAcknowledged) {
  std::string why;
  if (!CanMount(&why)) GTEST_SKIP() << why;
  PowerCutRig rig;
  ASSERT_TRUE(
      rig.Start("[[route]]\nmatch = \"**/d1/\"\ntier = \"disk\"\n"
                "[[route]]\nmatch = \"**/d5/\"\ntier = \"disk\"\n",
                43, &why))
      << why;
  CrashDriver* d = rig.driver();
  std::string error;
  for (size_t round = 1; round <= 3; ++round) {
    ASSERT_TRUE(d->StartWorkload(&error)) << error;
    ASSERT_TRUE(d->WaitForAcks(48, std::chrono::seconds(120))) << d->Logs();
    d->SleepRandom(std::chrono::milliseconds(0), std::chrono::milliseconds(300));
    std::string cut;
    ASSERT_EQ(rig.Cut(&cut), "") << d->Logs();
    EXPECT_EQ(d->CheckAll(d->mount_dir()), "")
        << "after round " << round << "; the cut undid " << cut << "\n"
        << d->Logs();
  }
  // Removals were made durable, and checked.
  EXPECT_NE(ShellOutput("grep -h '^removed ' '" + d->fs().work() + "'/ledger.* | head -1"), "");
  // The routes were used: the disk tier holds acknowledged files.
  EXPECT_NE(ShellOutput("find '" + rig.disk_tier() + "' -path '*/d1/f*' | head -1"), "");
  EXPECT_EQ(d->fs().Stop(), 0);
}

// The model checker's home workload under power cuts (tests/stress,
// --durable-every): runs in <test>/runN (prefilled in <prefill>/runN), each
// worker's tree made durable every few operations, killed at a random
// moment after a few of those; then the cut, and every run so far checked
// against its workers' last durable states.
class HomeCheckerUnderCuts {
 public:
  // One worker: the model (flakyfs) orders every change after any earlier
  // one in the same directory, and all of detourfs's staged creates pass
  // through a tier's work/, so one worker's changes made after its last
  // fsync would hold back another's that were made durable — an ordering
  // no journaling filesystem imposes, and not what this test is about.
  static constexpr unsigned kProcs = 1;
  bool ok() const { return ref_.ok() && records_.ok(); }

  // Round `round`: the run, the kill, `cut()` ("" or why it failed), the
  // check of every run so far. `durable_dirs` are fsynced before the run.
  void Round(int round, const std::string& test, const std::string& prefill,
             const std::function<std::string(std::string*)>& cut,
             const std::function<std::string()>& context) {
    const std::string name = "run" + std::to_string(round);
    for (const std::string& dir : {test + "/" + name, ref_.path() + "/" + name, Records(round)}) {
      ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << dir;
    }
    // The run's directory is durable before its workers start.
    for (const std::string& dir : {test, test + "/" + name}) {
      const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      ASSERT_GE(fd, 0) << dir;
      EXPECT_EQ(::fsync(fd), 0) << dir;
      ::close(fd);
    }
    const std::string log = Records(round) + ".log";
    std::string error;
    pid_t stress = SpawnLogged({StressBin(),
                                "--home",
                                "--test",
                                test + "/" + name,
                                "--ref",
                                ref_.path() + "/" + name,
                                "--prefill",
                                prefill + "/" + name,
                                "--prefill-ops",
                                "100",
                                "--procs",
                                std::to_string(kProcs),
                                "--ops",
                                "1000000",
                                "--durable-every",
                                "10",
                                "--durable-dir",
                                Records(round),
                                "--no-shrink",
                                "--skip",
                                "link,hold_open",
                                "--seed",
                                std::to_string(seed_ + static_cast<unsigned>(round))},
                               log, 0, &error);
    ASSERT_GT(stress, 0) << error;
    // Until every worker made its tree durable a few times.
    auto synced = [&] {
      for (unsigned w = 0; w < kProcs; ++w) {
        const std::string first = ShellOutput("head -1 '" + Records(round) + "/w" +
                                              std::to_string(w) + ".manifest' 2>/dev/null");
        if (first.rfind("sync ", 0) != 0 || std::stoul(first.substr(5)) < 5) return false;
      }
      return true;
    };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    int status = 0;
    bool ended = false;
    while (!synced() && !(ended = WaitChild(stress, std::chrono::milliseconds(20), &status)) &&
           std::chrono::steady_clock::now() < deadline) {
    }
    ASSERT_FALSE(ended) << "the model checker stopped before the cut:\n"
                        << ReadWholeFile(log) << context();
    ASSERT_TRUE(synced()) << ReadWholeFile(log);
    std::this_thread::sleep_for(std::chrono::milliseconds(rng_() % 500));
    ::kill(stress, SIGKILL);  // its workers follow (PR_SET_PDEATHSIG)
    ASSERT_TRUE(WaitChild(stress, std::chrono::seconds(10), &status));
    // A mismatch before the cut is a failure of its own.
    EXPECT_EQ(ReadWholeFile(log).find("MISMATCH"), std::string::npos)
        << ReadWholeFile(log) << context();
    std::string undone;
    ASSERT_EQ(cut(&undone), "") << context();
    for (int run = 1; run <= round; ++run) {
      std::string out = ShellOutput(
          StressBin() + " --check-durable --procs " + std::to_string(kProcs) + " --test " + test +
              "/run" + std::to_string(run) + " --durable-dir " + Records(run) + " 2>&1",
          &status);
      EXPECT_EQ(status, 0) << "run " << run << " after round " << round << "; the cut undid "
                           << undone << ":\n"
                           << out << context();
      EXPECT_NE(out.find("nothing lost, changed or back"), std::string::npos);
      const size_t at = out.find("detourfs-stress: ");
      if (at != std::string::npos) checked_ += std::strtoull(out.c_str() + at + 17, nullptr, 10);
    }
  }
  // Entries compared with a durable state so far (the check is not vacuous).
  size_t checked() const { return checked_; }

 private:
  std::string Records(int round) const { return records_.path() + "/run" + std::to_string(round); }

  TmpfsDir ref_{"512M", MS_NODEV | MS_NOSUID};  // as a FUSE mount: whiteouts open alike
  TmpfsDir records_{"64M"};
  // A new seed each run (printed; DETOURFS_STRESS_SEED replays one).
  unsigned long long seed_ = StressSeed();  // NOLINT
  std::mt19937_64 rng_{seed_};
  size_t checked_ = 0;
};

// The check is right: the same workload straight on a flakyfs that models
// durability, cut the same way, agrees with its durable states (and so a
// difference through detourfs is detourfs's).
TEST(CrashPowerCutTest, TheHomeCheckerAgreesWithAFilesystemThatKeepsWhatWasFsynced) {
  std::string why;
  if (!CanMount(&why)) GTEST_SKIP() << why;
  TmpfsDir source("512M");
  char mountpoint[] = "/tmp/detourfs-crash-plain.XXXXXX";
  ASSERT_TRUE(source.ok() && ::mkdtemp(mountpoint) != nullptr);
  struct RemoveDir {
    std::string path;
    ~RemoveDir() { ::rmdir(path.c_str()); }
  } remove_mountpoint{mountpoint};
  FlakyConfig modelled;
  modelled.power_cut_model = true;
  auto flaky = FlakyMount::Start(source.path(), mountpoint, modelled, &why);
  ASSERT_NE(flaky, nullptr) << why;
  HomeCheckerUnderCuts checker;
  ASSERT_TRUE(checker.ok());
  auto cut = [&](std::string* undone) {
    nlohmann::json summary;
    std::string error = flaky->PowerCut(&summary);
    *undone = summary.dump();
    return error;
  };
  for (int round = 1; round <= 3 && !::testing::Test::HasFatalFailure(); ++round) {
    checker.Round(round, mountpoint, mountpoint, cut, [] { return std::string(); });
  }
  EXPECT_GT(checker.checked(), 0U);
  EXPECT_EQ(flaky->Stop(), 0) << flaky->Log();
}

// Power loss under the model checker's home workload: each worker's
// home-like tree, with content already on the volume and every operation of
// the checker through the mount, is made durable every few operations; at
// a random moment the workers and the daemon are killed and both
// filesystems cut; after the restart nothing made durable is lost or
// changed and nothing removed before it is back, in this run and the
// earlier ones. Each route is on the disk tier: a memory tier does not
// survive a power loss (its content reaches the volume with the flush). No
// hard links and no files held open: flakyfs is path-based (libfuse's
// high-level API), so an fd opened through one name of a file stops taking
// attribute changes when that name goes (ESTALE; the kernel's time update
// at close then fails it with EIO), which no kernel filesystem does (the
// home checker over tmpfs and ext4 covers both).
TEST(CrashPowerCutTest, APowerCutUnderTheHomeModelCheckerLosesNothingMadeDurable) {
  std::string why;
  if (!CanMount(&why)) GTEST_SKIP() << why;
  PowerCutRig rig;
  ASSERT_TRUE(
      rig.Start("[[route]]\nmatch = \"/work/*/*/.cache\"\ntier = \"disk\"\n"
                "persist = \"never\"\n"
                "[[route]]\nmatch = \"**/node_modules\"\ntier = \"disk\"\n"
                "[[route]]\nmatch = [\"**/dist/\", \"**/build/\"]\ntier = \"disk\"\n",
                47, &why))
      << why;
  CrashDriver* d = rig.driver();
  HomeCheckerUnderCuts checker;
  ASSERT_TRUE(checker.ok());
  for (int round = 1; round <= 3 && !::testing::Test::HasFatalFailure(); ++round) {
    checker.Round(
        round, d->mount_dir(), d->volume_through_flakyfs(),
        [&](std::string* undone) { return rig.Cut(undone); },
        [&] {
          return "\nnot durable at the cut:\n" + rig.pending() + "daemon log:\n" + d->fs().Log();
        });
  }
  EXPECT_GT(checker.checked(), 0U);
  // The routes were used: the disk tier holds a node_modules.
  EXPECT_NE(ShellOutput("find '" + rig.disk_tier() + "' -name node_modules | head -1"), "");
  EXPECT_EQ(d->fs().Stop(), 0);
}

// The checker is not vacuous: damage one acknowledged file on the volume and
// it must say so.
TEST_P(CrashTest, CheckerReportsALostFile) {
  CrashConfig config;
  config.mount.backing = GetParam();
  std::string error;
  auto d = CrashDriver::Start(config, &error);
  ASSERT_NE(d, nullptr) << error;
  ASSERT_TRUE(d->StartWorkload(&error)) << error;
  ASSERT_TRUE(d->WaitForAcks(5, std::chrono::seconds(60))) << d->Logs();
  d->KillDaemon();
  ASSERT_EQ(::unlink((d->volume_dir() + "/run1/d0/f0").c_str()), 0);
  ASSERT_EQ(::truncate((d->volume_dir() + "/run1/d1/f1").c_str(), 1), 0);
  std::string report = d->CheckAll(d->volume_dir());
  EXPECT_NE(report.find("LOST d0/f0"), std::string::npos) << report;
  EXPECT_NE(report.find("CORRUPT d1/f1"), std::string::npos) << report;
}

INSTANTIATE_TEST_SUITE_P(Backings, CrashTest,
                         ::testing::Values(Backing::kPlainDir, Backing::kExt4Loop), BackingName);

}  // namespace
}  // namespace detourfs::testing
