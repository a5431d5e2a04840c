// The model checker in CI: bounded runs of detourfs-stress against detourfs
// (plain directory and ext4 on loop) with a tmpfs reference — flat, inside a
// routed node_modules, and over a home-like tree with a home's routes — and
// proof that the checker catches a volume that lies, shrinking the log to the
// three operations that show it.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <sstream>
#include <string>

#include "lib/flaky_mount.h"
#include "lib/mount_test.h"
#include "lib/mounted_fs.h"
#include "lib/process.h"
#include "lib/stress_tool.h"
#include "lib/tmpfs.h"
#include "mount/routing_fixture.h"

namespace detourfs::testing {
namespace {

class StressTest : public MountTest {};

TEST_P(StressTest, RandomOperationsAgreeWithTmpfs) {
  TmpfsDir ref("512M");
  ASSERT_TRUE(ref.ok());
  const std::string cmd = StressBin() + " --test " + fs_->tree() + " --ref " + ref.path() +
                          " --procs 4 --ops 6000 --check-every 200 --seed " +
                          std::to_string(StressSeed()) + " 2>&1";
  int status = 0;
  std::string out = ShellOutput(cmd, &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("all agreed with the reference"), std::string::npos) << out;
}

DETOURFS_MOUNT_TEST_P(StressTest);

// The same checker inside a subtree routed to a memory tier, over content
// made directly on the volume first (--prefill): lookups through both layers,
// copy-up, whiteouts, opaque directories, merged listings and renames all
// meet each other.
// Runs the checker inside node_modules routed to a memory tier, over volume
// content made first; `capacity` (a config size, or empty) bounds the tier.
// With `disk_capacity`, a disk tier of that size (a tmpfs of its own) is the
// memory tier's fallback before the volume.
void RunRouted(const std::string& capacity, int ops, const std::string& disk_capacity = "") {
  std::string why;
  if (!CanMount(&why)) GTEST_SKIP() << why;
  TmpfsDir ref("512M");
  TmpfsDir memory("512M");
  TmpfsDir disk("512M");
  ASSERT_TRUE(ref.ok() && memory.ok() && disk.ok());
  const std::string config = memory.path() + "/detourfs.toml";
  const std::string cap = capacity.empty() ? "" : "capacity = \"" + capacity + "\"\\n";
  const std::string disk_tier = disk_capacity.empty()
                                    ? ""
                                    : "[tiers.disk]\\nroot = \"" + disk.path() +
                                          "/tier\"\\ncapacity = \"" + disk_capacity + "\"\\n";
  ASSERT_EQ(
      Shell("printf '[tiers.memory]\\nroot = \"" + memory.path() + "/tier\"\\n" + cap + disk_tier +
            "[[route]]\\nmatch = \"**/node_modules\"\\ntier = \"memory\"\\n' > " + config),
      0);
  MountConfig mc;
  mc.separate_lower = true;
  mc.extra_args = {"-c", config};
  std::string error;
  auto fs = MountedFs::Start(mc, &error);
  ASSERT_NE(fs, nullptr) << error;
  ASSERT_EQ(Shell("mkdir " + fs->lower() + "/node_modules"), 0);
  const std::string cmd = StressBin() + " --test " + fs->tree() + "/node_modules --ref " +
                          ref.path() + " --prefill " + fs->lower() +
                          "/node_modules --procs 2 --ops " + std::to_string(ops) +
                          " --check-every 200 --seed " + std::to_string(StressSeed()) + " 2>&1";
  int status = 0;
  std::string out = ShellOutput(cmd, &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("all agreed with the reference"), std::string::npos) << out;
  if (!disk_capacity.empty()) {
    // Whatever the random operations reached: a file bigger than both tiers
    // walks the whole chain, and reads back whole.
    const std::string big = fs->tree() + "/node_modules/chain.bin";
    EXPECT_EQ(Shell("head -c 3145728 /dev/urandom > /tmp/detourfs-chain.bin && cp "
                    "/tmp/detourfs-chain.bin '" +
                    big + "' && cmp /tmp/detourfs-chain.bin '" + big +
                    "'; rc=$?; rm -f /tmp/detourfs-chain.bin; exit $rc"),
              0);
  }
  EXPECT_EQ(fs->Stop(), 0);
  EXPECT_EQ(fs->LogProblems(), std::vector<std::string>{});
  if (::testing::Test::HasFailure() && std::getenv("DETOURFS_TEST_LOG") != nullptr) {
    std::fprintf(stderr, "daemon log:\n%s\n", fs->Log().c_str());
  }
  if (!disk_capacity.empty()) {
    // The chain was walked: data went to the disk tier, and on to the volume.
    EXPECT_NE(fs->Log().find("moved to the disk tier"), std::string::npos);
    EXPECT_NE(fs->Log().find("moved to the volume"), std::string::npos);
  }
}

TEST(RoutedStressTest, RoutedSubtreeOverVolumeContentAgreesWithTmpfs) { RunRouted("", 4000); }

// A 1 MiB tier: files spill to the volume all the time, under hard links,
// open handles and renames of directories whose volume part is stale.
TEST(RoutedStressTest, SpillsThroughAOneMiBTierAgreeWithTmpfs) { RunRouted("1MiB", 4000); }

// The whole chain: a 1 MiB memory tier spills files' data to a 1 MiB disk
// tier, which moves them on to the volume when it fills too.
TEST(RoutedStressTest, SpillsThroughMemoryThenDiskAgreeWithTmpfs) {
  RunRouted("1MiB", 4000, "1MiB");
}

// A home's routes, at each worker's home (MOUNT/w0, ...): the anchored cache
// rule is one level down, as /.cache is in a real home.
constexpr char kHomeRoutes[] =
    "[[route]]\nmatch = \"/*/.cache\"\ntier = \"memory\"\npersist = \"never\"\n"
    "[[route]]\nmatch = \"**/node_modules\"\ntier = \"memory\"\n"
    "[[route]]\nmatch = [\"**/dist/\", \"**/build/\"]\ntier = \"disk\"\n";

// The mount over a volume directory, a memory tier and a disk tier (each a
// tmpfs of its own) routed as a home is.
class HomeStressTest : public TieredMountTest {
 protected:
  HomeStressTest() : TieredMountTest("512M", "", kHomeRoutes, "512M") {}

  // The home checker with `seed`: every worker must agree with the reference.
  void RunHome(uint64_t seed) {
    TmpfsDir ref("512M", MS_NODEV | MS_NOSUID);  // as the FUSE mount: whiteouts open alike
    ASSERT_TRUE(ref.ok());
    const std::string cmd = StressBin() + " --home --test " + fs_->tree() + " --ref " + ref.path() +
                            " --prefill " + fs_->lower() +
                            " --prefill-ops 100 --procs 3 --ops 2000 --check-every 100"
                            " --shrink-seconds 30 --seed " +
                            std::to_string(seed) + " 2>&1";
    int status = 0;
    std::string out = ShellOutput(cmd, &status);
    EXPECT_EQ(status, 0) << out;  // each worker's mismatch and shortest log
    EXPECT_NE(out.find("all agreed with the reference"), std::string::npos);
  }
};

// The checker at the mount root over a home-like tree (stress_home.h): each
// worker's volume part made first, directly on the volume (files, directories,
// symlinks, hard links inside and across routed paths), then every operation
// through the mount — renames across rules and with each renameat2 flag,
// rm -rf of projects whose node_modules is on the volume, mkdir -p and rmdir
// of parents of routed directories, links between routed and unrouted paths —
// compared with a tmpfs that had the same done to it.
//
// Run by CI in every build (release, ASan with io_uring, TSan), with a new
// seed each run as the other checkers. Seeds 1-250 all agreed on the
// release build (PlainDir) and 1-25 on Ext4Loop at a180b72 and after; the
// last two that did not (23, 245: a volume inode freed while a tier copy
// the mount did not know reported its number) were fixed by the adopted
// numbers (store/adopted_numbers.h). A long run:
//   build/tests/stress-tests --gtest_filter='*HomeStress*'
// or tests/stress/soak.sh DURATION build home; each mismatch prints its
// shortest log and seed.
TEST_P(HomeStressTest, HomeTreeOverVolumeContentAgreesWithTmpfs) { RunHome(StressSeed()); }

// Seed 1796657200 (found in CI's ASan run): a volume device 0:0 with two
// names, one linked into the disk tier's index, exchanged at an unrouted
// `dist` with a directory on the disk tier, then `rm -rf` of that
// directory: the device's old volume name came back (it stayed behind
// the directory; a directory-only rule serves a device from the volume).
// The exchange holds it now. (A mount test built by hand did not reach
// the same path.)
TEST_P(HomeStressTest, AnExchangedVolumeNameDoesNotComeBack) { RunHome(1796657200); }

// Seed 1796680016: a routed directory on the disk tier with a volume part
// exchanged with a volume file at an unrouted name: both sides go to the
// volume, each holding its volume part whole (hold-whole) until the volume
// shows the copies. Only the second held part let go of its files linked
// into the copies, so the directory's file showed nlink 2.
TEST_P(HomeStressTest, BothSidesOfAnExchangeToTheVolumeLetGoOfTheirHeldLinks) {
  RunHome(1796680016);
}

DETOURFS_MOUNT_TEST_P(HomeStressTest);

// The home namespace itself agrees between two plain filesystems: a mismatch
// through the mount is the mount's, not the checker's.
TEST(StressCheckerTest, HomeNamespaceAgreesBetweenTwoTmpfs) {
  std::string why;
  if (!CanMount(&why)) GTEST_SKIP() << why;
  TmpfsDir test("512M", MS_NODEV | MS_NOSUID);
  TmpfsDir ref("512M", MS_NODEV | MS_NOSUID);
  ASSERT_TRUE(test.ok() && ref.ok());
  int status = 0;
  std::string out = ShellOutput(StressBin() + " --home --test " + test.path() + " --ref " +
                                    ref.path() + " --prefill " + test.path() +
                                    " --procs 4 --ops 3000 --check-every 50 --seed " +
                                    std::to_string(StressSeed()) + " 2>&1",
                                &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("all agreed with the reference"), std::string::npos) << out;
}

// The check after a power cut is not vacuous: after a run that made its tree
// durable at every step, a durable file no operation touched since is
// removed and an absent name made; the check reports both.
TEST(StressCheckerTest, TheDurableCheckReportsALostFileAndOneBack) {
  std::string why;
  if (!CanMount(&why)) GTEST_SKIP() << why;
  TmpfsDir test("512M", MS_NODEV | MS_NOSUID);
  TmpfsDir ref("512M", MS_NODEV | MS_NOSUID);
  TmpfsDir records("16M");
  ASSERT_TRUE(test.ok() && ref.ok() && records.ok());
  const std::string run =
      StressBin() + " --home --procs 1 --test " + test.path() + " --durable-dir " + records.path();
  int status = 0;
  std::string out = ShellOutput(run + " --ref " + ref.path() + " --prefill " + test.path() +
                                    " --ops 200 --durable-every 1 --seed 5 2>&1",
                                &status);
  ASSERT_EQ(status, 0) << out;
  out = ShellOutput(run + " --check-durable 2>&1", &status);
  ASSERT_EQ(status, 0) << out;
  // A regular file in the durable state that the last operation did not touch.
  std::string touched = ReadWholeFile(records.path() + "/w0.touched");
  std::string lost;
  std::istringstream manifest(ReadWholeFile(records.path() + "/w0.manifest"));
  for (std::string line; std::getline(manifest, line) && lost.empty();) {
    if (line.rfind("f ", 0) != 0) continue;
    const std::string rel = line.substr(line.rfind(' ') + 1);
    if (touched.find(rel) == std::string::npos) lost = rel;
  }
  ASSERT_NE(lost, "") << touched;
  ASSERT_EQ(::unlink((test.path() + "/w0/" + lost).c_str()), 0);
  ASSERT_EQ(WriteFile(test.path() + "/w0/never-made", "x"), 0);
  out = ShellOutput(run + " --check-durable 2>&1", &status);
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("LOST " + lost + ": made durable, gone after the cut"), std::string::npos)
      << out;
  EXPECT_NE(out.find("BACK never-made: absent when made durable"), std::string::npos) << out;
}

TEST(StressCheckerTest, CatchesALyingVolumeAndShrinksTheLog) {
  TmpfsDir ref;
  TmpfsDir source;
  ASSERT_TRUE(ref.ok() && source.ok());
  std::string error;
  auto flaky = FlakyMount::Start(source.path(), source.path(),
                                 {.rules = {"fault lie glob=**/f3 ops=unlink"}}, &error);
  ASSERT_NE(flaky, nullptr) << error;
  int status = 0;
  std::string out = ShellOutput(StressBin() + " --test " + source.path() + " --ref " + ref.path() +
                                    " --procs 1 --ops 3000 --seed 3 2>&1",
                                &status);
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("MISMATCH: worker 0 (--seed 3"), std::string::npos) << out;
  // The write that found the file still there, after the unlink that lied.
  EXPECT_NE(out.find("shortest log found (3 of"), std::string::npos) << out;
  EXPECT_NE(out.find("     2  unlink f3\n     3  write f3"), std::string::npos) << out;
  EXPECT_GE(flaky->Injected("lie"), 1U);
}

}  // namespace
}  // namespace detourfs::testing
