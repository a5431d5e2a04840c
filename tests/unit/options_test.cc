// Command-line options of detourfs.
#include "daemon/options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace detourfs {
namespace {

ParsedOptions Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "detourfs");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return ParseOptions(static_cast<int>(argv.size()), argv.data());
}

TEST(OptionsTest, DefaultsMountInPlaceWithCaches) {
  ParsedOptions p = Parse({"/home/coder"});
  ASSERT_TRUE(p.options);
  EXPECT_EQ(p.options->mountpoint, "/home/coder");
  EXPECT_TRUE(p.options->lower.empty());
  EXPECT_FALSE(p.options->foreground);
  EXPECT_TRUE(p.options->writeback_cache);
  EXPECT_EQ(p.options->fd_cache, 4096U);
}

TEST(OptionsTest, FuseOptionsSplitOnCommasAndRepeat) {
  ParsedOptions p = Parse({"-o", "ro,noatime", "-o", "dev", "/mnt"});
  ASSERT_TRUE(p.options);
  EXPECT_EQ(p.options->fuse_options, (std::vector<std::string>{"ro", "noatime", "dev"}));
}

TEST(OptionsTest, DebugImpliesForeground) {
  ParsedOptions p = Parse({"-d", "/mnt"});
  ASSERT_TRUE(p.options);
  EXPECT_TRUE(p.options->foreground);
  EXPECT_TRUE(p.options->fuse_debug);
}

TEST(OptionsTest, IoUringIsOptInAndTheLastOfItsFlagsWins) {
  ParsedOptions p = Parse({"/mnt"});
  ASSERT_TRUE(p.options);
  EXPECT_FALSE(p.options->io_uring);
  EXPECT_FALSE(p.options->io_uring_sched_idle);
  p = Parse({"--io-uring", "/mnt"});
  ASSERT_TRUE(p.options);
  EXPECT_TRUE(p.options->io_uring);
  // --no-io-uring, the default, is still accepted (old scripts pass it).
  p = Parse({"--no-io-uring", "/mnt"});
  ASSERT_TRUE(p.options);
  EXPECT_FALSE(p.options->io_uring);
  p = Parse({"--io-uring", "--no-io-uring", "/mnt"});
  ASSERT_TRUE(p.options);
  EXPECT_FALSE(p.options->io_uring);
  p = Parse({"--no-io-uring", "--io-uring", "--io-uring-sched-idle", "/mnt"});
  ASSERT_TRUE(p.options);
  EXPECT_TRUE(p.options->io_uring);
  EXPECT_TRUE(p.options->io_uring_sched_idle);
}

TEST(OptionsTest, MissingMountpointIsAUsageError) {
  ParsedOptions p = Parse({});
  EXPECT_FALSE(p.options);
  EXPECT_EQ(p.exit_code, kExitUsage);
}

TEST(OptionsTest, BadValuesAreUsageErrors) {
  EXPECT_EQ(Parse({"--log-level", "loud", "/mnt"}).exit_code, kExitUsage);
  EXPECT_EQ(Parse({"--fd-cache", "0", "/mnt"}).exit_code, kExitUsage);
  EXPECT_EQ(Parse({"--entry-timeout", "-1", "/mnt"}).exit_code, kExitUsage);
}

TEST(OptionsTest, HelpExitsZeroWithoutOptions) {
  ParsedOptions p = Parse({"--help"});
  EXPECT_FALSE(p.options);
  EXPECT_EQ(p.exit_code, kExitOk);
}

}  // namespace
}  // namespace detourfs

namespace detourfs {
namespace {

TEST(OptionsConfigTest, ConfigCommandsNeedNoMountpoint) {
  std::vector<std::string> args = {"detourfs", "--check-config", "-c", "/etc/x.toml"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  ParsedOptions p = ParseOptions(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(p.options);
  EXPECT_TRUE(p.options->check_config);
  EXPECT_EQ(p.options->config_file, "/etc/x.toml");
  EXPECT_TRUE(p.options->mountpoint.empty());
}

TEST(OptionsConfigTest, MountingStillNeedsAMountpoint) {
  std::vector<std::string> args = {"detourfs", "-c", "/etc/x.toml"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  ParsedOptions p = ParseOptions(static_cast<int>(argv.size()), argv.data());
  EXPECT_FALSE(p.options);
  EXPECT_EQ(p.exit_code, kExitUsage);
}

}  // namespace
}  // namespace detourfs
