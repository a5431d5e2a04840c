// Real tools through a real mount, each compared with the same work on the
// raw filesystem next to it: tar extraction, git, rsync round trips, and
// `npm ci` of ../shared/fixtures/webapp.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "lib/files.h"
#include "lib/mount_test.h"
#include "lib/tmpfs.h"

namespace detourfs::testing {
namespace {

// One line per path: type, mode, size, symlink target, path; then checksums of
// every regular file. With `mtimes`, file modification times too.
std::string Manifest(const std::string& dir, bool mtimes) {
  const std::string fmt = mtimes ? "%y %m %s %T@ %l %P\\n" : "%y %m %s %l %P\\n";
  return ShellOutput("cd '" + dir + "' && find . -mindepth 1 ! -type d -printf '" + fmt +
                     "' | LC_ALL=C sort && find . -mindepth 1 -type d -printf '%m %P\\n' | "
                     "LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | "
                     "xargs -0 -r sha256sum");
}

// Empty when the two trees have equal manifests, else a diff of them.
std::string ManifestDiff(const std::string& a, const std::string& b, bool mtimes) {
  char tmpl[] = "/tmp/detourfs-manifest.XXXXXX";
  if (!::mkdtemp(tmpl)) return "mkdtemp failed";
  const std::string dir = tmpl;
  FILE* fa = std::fopen((dir + "/a").c_str(), "w");
  FILE* fb = std::fopen((dir + "/b").c_str(), "w");
  const std::string ma = Manifest(a, mtimes), mb = Manifest(b, mtimes);
  std::fwrite(ma.data(), 1, ma.size(), fa);
  std::fwrite(mb.data(), 1, mb.size(), fb);
  std::fclose(fa);
  std::fclose(fb);
  std::string diff = ShellOutput("diff " + dir + "/a " + dir + "/b | head -40");
  Shell("rm -rf " + dir);
  if (ma.empty()) return "empty manifest for " + a;
  return diff;
}

// npm's cache: $DETOURFS_NPM_CACHE (one per build directory, so each test
// run asks the registry once), else one per test.
std::string NpmCache(const std::string& fallback) {
  const char* d = ::getenv("DETOURFS_NPM_CACHE");
  return d ? d : fallback;
}

std::string FixturesDir() {
  const char* d = ::getenv("DETOURFS_FIXTURES");
  return d ? d : "";
}

class ToolsTest : public MountTest {
 protected:
  // A small source tree with the shapes tools care about.
  std::string MakeSourceTree() {
    const std::string src = fs_->work() + "/src";
    EXPECT_EQ(Shell("mkdir -p " + src + "/a/b/c " + src + "/empty && cd " + src +
                    " && head -c 300000 /dev/urandom > a/big && echo hi > a/b/c/small && "
                    "ln -s b/c/small a/link && ln a/big a/hard && mkfifo a/fifo && "
                    "chmod 0751 a/b && chmod 0600 a/b/c/small && "
                    "for i in $(seq 1 200); do echo $i > a/n$i; done && "
                    "touch -d '2001-02-03 04:05:06' a/b/c/small"),
              0);
    return src;
  }
};

TEST_P(ToolsTest, TarExtractionGivesTheSameTreeAsOnTheRawFilesystem) {
  const std::string src = MakeSourceTree();
  const std::string tarball = fs_->work() + "/src.tar";
  ASSERT_EQ(Shell("tar -C " + src + " -cf " + tarball + " ."), 0);
  ASSERT_EQ(Shell("tar -C " + fs_->tree() + " -xpf " + tarball), 0);
  ASSERT_EQ(Shell("tar -C " + fs_->ref() + " -xpf " + tarball), 0);
  EXPECT_EQ(ManifestDiff(fs_->tree(), fs_->ref(), true), "");
  // Hard links stay hard links through the mount.
  EXPECT_EQ(Lstat(M("a/big")).st_ino, Lstat(M("a/hard")).st_ino);
  // And tar reads back through the mount what it wrote.
  EXPECT_EQ(Shell("tar -C " + fs_->tree() + " -cf " + fs_->work() + "/back.tar . && tar -C " +
                  fs_->tree() + " -df " + tarball),
            0);
}

TEST_P(ToolsTest, GitInitAddCommitStatusGcFsck) {
  const std::string repo = M("repo");
  const std::string git = "git -C " + repo + " -c user.name=t -c user.email=t@t ";
  ASSERT_EQ(Shell("mkdir " + repo + " && " + git + "init -q"), 0);
  ASSERT_EQ(Shell("cd " + repo +
                  " && for i in $(seq 1 100); do mkdir -p d$((i%7)); "
                  "echo line $i > d$((i%7))/f$i; done"),
            0);
  ASSERT_EQ(Shell(git + "add -A && " + git + "commit -qm first"), 0);
  EXPECT_EQ(ShellOutput(git + "status --porcelain"), "");
  ASSERT_EQ(Shell("echo changed >> " + repo + "/d1/f1 && rm " + repo + "/d2/f2 && " + git +
                  "mv d3/f3 d3/g3"),
            0);
  EXPECT_EQ(ShellOutput(git + "status --porcelain | LC_ALL=C sort"),
            " D d2/f2\n M d1/f1\nR  d3/f3 -> d3/g3\n");
  ASSERT_EQ(Shell(git + "commit -qam second"), 0);
  ASSERT_EQ(Shell(git + "gc -q --aggressive --prune=now"), 0);
  EXPECT_EQ(Shell(git + "fsck --strict --no-progress 2>&1"), 0);
  EXPECT_EQ(ShellOutput(git + "rev-list --count HEAD"), "2\n");
  EXPECT_EQ(ShellOutput(git + "status --porcelain"), "");
  // A clone through the mount checks out the same files.
  ASSERT_EQ(Shell("git clone -q " + repo + " " + M("clone")), 0);
  EXPECT_EQ(ShellOutput("cd " + M("clone") + " && git ls-files -s | sha256sum"),
            ShellOutput("cd " + repo + " && git ls-files -s | sha256sum"));
}

TEST_P(ToolsTest, RsyncRoundTripPreservesEverything) {
  const std::string src = MakeSourceTree();
  const std::string back = fs_->ref() + "/back";
  ASSERT_EQ(Shell("rsync -aHAX --modify-window=-1 " + src + "/ " + M("copy") + "/"), 0);
  ASSERT_EQ(Shell("rsync -aHAX --modify-window=-1 " + M("copy") + "/ " + back + "/"), 0);
  EXPECT_EQ(ManifestDiff(src, back, true), "");
  EXPECT_EQ(ManifestDiff(src, M("copy"), true), "");
  // Nothing left to transfer, comparing checksums.
  EXPECT_EQ(ShellOutput("rsync -aHAXc --modify-window=-1 --dry-run --itemize-changes " + src +
                        "/ " + M("copy") + "/"),
            "");
}

TEST_P(ToolsTest, NpmCiOfTheWebappFixtureMatchesTheRawFilesystem) {
  const std::string fixtures = FixturesDir();
  if (fixtures.empty() || ::access((fixtures + "/webapp/package-lock.json").c_str(), R_OK) != 0) {
    GTEST_FAIL() << "fixture not found: set DETOURFS_FIXTURES (../shared/fixtures)";
  }
  if (Shell("command -v npm >/dev/null") != 0) GTEST_SKIP() << "npm is not installed";
  // The cache is shared between both installs, so the registry is asked once.
  const std::string npm = "npm ci --no-audit --no-fund --loglevel=error --cache " +
                          NpmCache(fs_->work() + "/npm-cache");
  for (const std::string& root : {fs_->tree(), fs_->ref()}) {
    ASSERT_EQ(Shell("cp -r " + fixtures + "/webapp " + root + "/webapp && chmod -R u+w " + root +
                    "/webapp"),
              0);
  }
  ASSERT_EQ(Shell("cd " + R("webapp") + " && " + npm + " >/dev/null"), 0)
      << "npm ci failed on the raw filesystem: is the registry reachable?";
  ASSERT_EQ(Shell("cd " + M("webapp") + " && " + npm), 0);
  EXPECT_EQ(Shell("cd " + M("webapp") + " && npm ls --all >/dev/null"), 0);
  EXPECT_EQ(ManifestDiff(M("webapp/node_modules"), R("webapp/node_modules"), false), "");
  // The installed tools run from the mount.
  EXPECT_EQ(Shell("cd " + M("webapp") + " && npx --no-install tsc --version >/dev/null"), 0);
  // And rm -rf node_modules (which tmpfs-over-node_modules workarounds break) works.
  EXPECT_EQ(Shell("rm -rf " + M("webapp/node_modules")), 0);
}

DETOURFS_MOUNT_TEST_P(ToolsTest);

// npm with node_modules routed to a memory tier, over a volume that already
// holds an older install (the devpod case): npm ci removes it (whiteouts,
// an opaque directory) and installs into the tier; the tree must equal a
// plain npm ci on a local disk, and the volume must be left alone.
class RoutedToolsTest : public MountTest {
 protected:
  RoutedToolsTest() {
    config_ = memory_.path() + "/detourfs.toml";
    WriteFile(config_, "[tiers.memory]\nroot = \"" + memory_.path() +
                           "/tier\"\n[[route]]\nmatch = \"**/node_modules\"\ntier = \"memory\"\n");
  }
  MountConfig Config() const override {
    MountConfig c = MountTest::Config();
    c.separate_lower = true;
    c.extra_args = {"-c", config_};
    return c;
  }
  TmpfsDir memory_{"2G"};
  std::string config_;
};

TEST_P(RoutedToolsTest, NpmCiIntoAMemoryTierMatchesPlainNpmCi) {
  const std::string fixtures = FixturesDir();
  if (fixtures.empty() || ::access((fixtures + "/webapp/package-lock.json").c_str(), R_OK) != 0) {
    GTEST_FAIL() << "fixture not found: set DETOURFS_FIXTURES (../shared/fixtures)";
  }
  if (Shell("command -v npm >/dev/null") != 0) GTEST_SKIP() << "npm is not installed";
  ASSERT_TRUE(memory_.ok());
  const std::string npm = "npm ci --no-audit --no-fund --loglevel=error --cache " +
                          NpmCache(fs_->work() + "/npm-cache");
  const std::string volume = fs_->lower();
  for (const std::string& root : {volume, fs_->ref()}) {
    ASSERT_EQ(Shell("cp -r " + fixtures + "/webapp " + root + "/webapp && chmod -R u+w " + root +
                    "/webapp"),
              0);
  }
  // The reference, and an older install already on the volume.
  ASSERT_EQ(Shell("cd " + R("webapp") + " && " + npm + " >/dev/null"), 0)
      << "npm ci failed on the raw filesystem: is the registry reachable?";
  ASSERT_EQ(Shell("cp -a " + R("webapp/node_modules") + " " + volume + "/webapp/node_modules && " +
                  "echo stale > " + volume + "/webapp/node_modules/stale-file"),
            0);
  const std::string before = ShellOutput("cd " + volume + " && find webapp/node_modules | wc -l");
  ASSERT_EQ(Shell("cd " + M("webapp") + " && " + npm), 0);
  EXPECT_EQ(Shell("cd " + M("webapp") + " && npm ls --all >/dev/null"), 0);
  EXPECT_EQ(ManifestDiff(M("webapp/node_modules"), R("webapp/node_modules"), false), "");
  EXPECT_EQ(Shell("cd " + M("webapp") + " && npx --no-install tsc --version >/dev/null"), 0);
  // The install went to the tier; the volume still has the old one (a flush
  // would replace it).
  EXPECT_EQ(::access((memory_.path() + "/tier/upper/webapp/node_modules/typescript").c_str(), F_OK),
            0);
  EXPECT_EQ(ShellOutput("cd " + volume + " && find webapp/node_modules | wc -l"), before);
  EXPECT_NE(::access(M("webapp/node_modules/stale-file").c_str(), F_OK), 0);
  EXPECT_EQ(Shell("rm -rf " + M("webapp/node_modules")), 0);
  EXPECT_NE(::access(M("webapp/node_modules").c_str(), F_OK), 0);
}

// One backing: the volume's filesystem matters little here, and npm ci is
// the longest test in CI.
INSTANTIATE_TEST_SUITE_P(Backings, RoutedToolsTest, ::testing::Values(Backing::kPlainDir),
                         BackingName);

}  // namespace
}  // namespace detourfs::testing
