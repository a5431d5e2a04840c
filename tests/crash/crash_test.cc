// Crash harness tests: SIGKILL the daemon in the middle of fsync-acknowledged
// writes, restart it, and check that every acknowledged file is intact,
// through the mount and on the volume itself.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>

#include "crash_driver.h"
#include "lib/files.h"
#include "lib/mount_test.h"

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

// Power loss: the volume and the disk tier each on a flakyfs that models
// durability. At random moments of the fsync-acknowledging workload, whose
// d1/ and d5/ are routed to the disk tier and the rest is not, the daemon is
// killed and both filesystems lose every change no fsync made durable
// (flakyfs "powercut"); after the restart every acknowledged file reads
// back whole through the mount, and no file whose removal was made durable
// is back.
TEST(CrashPowerCutTest, APowerCutLosesNothingAnFsyncAcknowledged) {
  std::string why;
  if (!CanMount(&why)) GTEST_SKIP() << why;
  TmpfsDir disk_source("256M");
  TmpfsDir conf("1M");
  ASSERT_TRUE(disk_source.ok() && conf.ok());
  char tmpl[] = "/tmp/detourfs-crash-disk.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  struct RemoveDir {
    std::string path;
    ~RemoveDir() { ::rmdir(path.c_str()); }
  } remove_mountpoint{tmpl};
  FlakyConfig modelled;
  modelled.power_cut_model = true;
  std::string error;
  auto disk = FlakyMount::Start(disk_source.path(), tmpl, modelled, &error);
  ASSERT_NE(disk, nullptr) << error;
  const std::string config_file = conf.path() + "/detourfs.toml";
  ASSERT_EQ(WriteFile(config_file, "[tiers.disk]\nroot = \"" + std::string(tmpl) +
                                       "/tier\"\n[[route]]\nmatch = \"**/d1/\"\ntier = \"disk\"\n"
                                       "[[route]]\nmatch = \"**/d5/\"\ntier = \"disk\"\n"),
            0);
  CrashConfig config;
  config.over_flakyfs = true;
  config.flaky = modelled;
  config.mount.extra_args = {"-c", config_file};
  config.seed = 43;
  auto d = CrashDriver::Start(config, &error);  // stopped before `disk`
  ASSERT_NE(d, nullptr) << error;
  // What the start made (the layers' directories, the workload's): durable.
  ASSERT_EQ(d->flaky()->Sync(), "");
  ASSERT_EQ(disk->Sync(), "");
  for (size_t round = 1; round <= 3; ++round) {
    ASSERT_TRUE(d->StartWorkload(&error)) << error;
    ASSERT_TRUE(d->WaitForAcks(48, std::chrono::seconds(120))) << d->Logs();
    d->SleepRandom(std::chrono::milliseconds(0), std::chrono::milliseconds(300));
    d->KillDaemon();
    nlohmann::json volume_cut;
    nlohmann::json disk_cut;
    ASSERT_EQ(d->flaky()->PowerCut(&volume_cut), "");
    ASSERT_EQ(disk->PowerCut(&disk_cut), "");
    ASSERT_TRUE(d->RestartDaemon(&error)) << error;
    EXPECT_EQ(d->CheckAll(d->mount_dir()), "")
        << "after round " << round << "; the cut undid " << volume_cut.dump() << " on the volume, "
        << disk_cut.dump() << " on the disk tier\n"
        << d->Logs();
  }
  // Removals were made durable, and checked.
  EXPECT_NE(ShellOutput("grep -h '^removed ' '" + d->fs().work() + "'/ledger.* | head -1"), "");
  // The routes were used: the disk tier holds acknowledged files.
  EXPECT_NE(ShellOutput("find '" + disk_source.path() + "/tier' -path '*/d1/f*' | head -1"), "");
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
