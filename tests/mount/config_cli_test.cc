// The daemon and its config: --check-config and --explain, refusals with exit
// code 6 naming the line, unsafe tier roots refused.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "lib/files.h"
#include "lib/mount_test.h"
#include "lib/process.h"

namespace detourfs::testing {
namespace {

// The shipped default config, from the source tree.
std::string DefaultConfig() {
  const char* root = ::getenv("DETOURFS_SOURCE_ROOT");
  return std::string(root ? root : ".") + "/config/detourfs.toml";
}

class ConfigFile {
 public:
  explicit ConfigFile(const std::string& text) {
    char tmpl[] = "/tmp/detourfs-config.XXXXXX.toml";
    int fd = ::mkstemps(tmpl, 5);
    path_ = tmpl;
    if (fd >= 0) ::close(fd);
    WriteFile(path_, text);
  }
  ~ConfigFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ConfigCliTest, CheckConfigPrintsTheEffectiveRules) {
  int status = 0;
  std::string out =
      ShellOutput(DetourfsBinary() + " --check-config -c " + DefaultConfig() + " 2>&1", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("): **/node_modules, **/.next, **/.nuxt"), std::string::npos) << out;
  EXPECT_NE(out.find("persist never"), std::string::npos) << out;
  EXPECT_NE(out.find("config OK"), std::string::npos) << out;
}

TEST(ConfigCliTest, ExplainSaysWhichRuleAndWhy) {
  int status = 0;
  std::string out = ShellOutput(DetourfsBinary() + " -c " + DefaultConfig() +
                                    " --explain app/node_modules/react/index.js 2>&1",
                                &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("memory tier, persist batch"), std::string::npos) << out;
  EXPECT_NE(out.find("its parent /app/node_modules"), std::string::npos) << out;
  // A trailing slash asks about a directory: build/ rules are directory-only.
  out = ShellOutput(DetourfsBinary() + " -c " + DefaultConfig() + " --explain app/build/ 2>&1",
                    &status);
  EXPECT_NE(out.find("disk tier"), std::string::npos) << out;
  out = ShellOutput(DetourfsBinary() + " -c " + DefaultConfig() + " --explain app/build 2>&1",
                    &status);
  EXPECT_NE(out.find("volume (pass-through)"), std::string::npos) << out;
}

TEST(ConfigCliTest, InvalidConfigExitsSixNamingTheLine) {
  ConfigFile bad(
      "[tiers.memory]\nroot = \"/run/m\"\n\n[[route]]\nmatch = \"**/node_modules\"\n"
      "tier = \"ramdisk\"\n");
  int status = 0;
  std::string out =
      ShellOutput(DetourfsBinary() + " --check-config -c " + bad.path() + " 2>&1", &status);
  EXPECT_EQ(status, 6);
  EXPECT_NE(out.find(bad.path() + ":6: unknown tier 'ramdisk'"), std::string::npos) << out;
  // The daemon refuses to mount with it, with the same message.
  out = ShellOutput(DetourfsBinary() + " -f -c " + bad.path() + " /tmp 2>&1", &status);
  EXPECT_EQ(status, 6);
  EXPECT_NE(out.find("unknown tier 'ramdisk'"), std::string::npos) << out;
}

TEST(ConfigCliTest, MissingNamedConfigExitsSix) {
  int status = 0;
  std::string out =
      ShellOutput(DetourfsBinary() + " --check-config -c /nonexistent.toml 2>&1", &status);
  EXPECT_EQ(status, 6);
  EXPECT_NE(out.find("cannot read config '/nonexistent.toml'"), std::string::npos) << out;
}

TEST(ConfigCliTest, TierInsideTheMountpointIsRefused) {
  ConfigFile cfg("[tiers.memory]\nroot = \"/home/coder/.detourfs\"\n");
  int status = 0;
  std::string out = ShellOutput(
      DetourfsBinary() + " --check-config -c " + cfg.path() + " /home/coder 2>&1", &status);
  EXPECT_EQ(status, 6);
  EXPECT_NE(out.find("is inside the mountpoint"), std::string::npos) << out;
}

// Tier roots are the daemon's own: one that others could write to, or a
// symlink planted in its place, is refused before mounting.
TEST(ConfigCliTest, UnsafeTierRootsAreRefused) {
  std::string why;
  if (!CanMount(&why)) GTEST_SKIP() << why;
  char tmpl[] = "/tmp/detourfs-tierroot.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  ASSERT_EQ(::mkdir((dir + "/open").c_str(), 0777), 0);
  ASSERT_EQ(::chmod((dir + "/open").c_str(), 0777), 0);
  ASSERT_EQ(::symlink("/etc", (dir + "/link").c_str()), 0);
  ASSERT_EQ(::mkdir((dir + "/mnt").c_str(), 0755), 0);
  for (const std::string& root : {dir + "/open", dir + "/link"}) {
    ConfigFile cfg("[tiers.memory]\nroot = \"" + root + "\"\n[[route]]\nmatch = \"x\"\n" +
                   "tier = \"memory\"\n");
    int status = 0;
    std::string out =
        ShellOutput(DetourfsBinary() + " -f -c " + cfg.path() + " " + dir + "/mnt 2>&1", &status);
    EXPECT_EQ(status, 6) << out;
    EXPECT_NE(out.find("tier memory root '" + root + "'"), std::string::npos) << out;
  }
  EXPECT_FALSE(IsFuseMount(dir + "/mnt"));
  Shell("rm -rf '" + dir + "'");
}

}  // namespace
}  // namespace detourfs::testing
