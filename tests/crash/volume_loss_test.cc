// A volume that fails or loses what was just written to it (flakyfs `eio`
// on reads, `lie` on renames), met by a file or tree moving from its tier
// to the volume (review #5): each copy is read back, synced, before
// anything is published; the tier's copy goes only once the volume shows
// the published one at its new name; when the volume lost it, the move is
// undone on the tier (the copy back at its old name) and the caller gets
// EIO. Nothing is deleted.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "crash_driver.h"
#include "lib/files.h"
#include "lib/mount_test.h"
#include "lib/process.h"
#include "lib/tmpfs.h"

namespace detourfs::testing {
namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

class VolumeLossTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!CanMount(&why)) GTEST_SKIP() << why;
    ASSERT_TRUE(memory_.ok());
    const std::string conf = memory_.path() + "/detourfs.toml";
    ASSERT_EQ(WriteFile(conf, "[tiers.memory]\nroot = \"" + memory_.path() +
                                  "/tier\"\n[[route]]\nmatch = \"**/node_modules\"\n"
                                  "tier = \"memory\"\n"),
              0);
    CrashConfig config;
    config.over_flakyfs = true;
    config.mount.extra_args = {"-c", conf};
    std::string error;
    d_ = CrashDriver::Start(config, &error);
    ASSERT_NE(d_, nullptr) << error;
    ASSERT_TRUE(::mkdir(M("").c_str(), 0755) == 0 || errno == EEXIST);
    ASSERT_EQ(::mkdir(M("src").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
    ASSERT_EQ(WriteFile(M("node_modules/x.js"), kData), 0);
    ASSERT_TRUE(Exists(memory_.path() + "/tier/upper/work/node_modules/x.js"));
  }
  void TearDown() override {
    if (d_ != nullptr) {
      EXPECT_EQ(d_->fs().Stop(), 0);
    }
  }

  // Through the mount, and on the volume (bypassing detourfs and flakyfs).
  std::string M(const std::string& p) const { return d_->mount_dir() + "/" + p; }
  std::string V(const std::string& p) const { return d_->volume_dir() + "/" + p; }
  // rename(2) through the mount: 0 or the errno.
  int Rename(const std::string& from, const std::string& to) const {
    return std::rename(M(from).c_str(), M(to).c_str()) == 0 ? 0 : errno;
  }
  // What the memory tier set aside (its kept/ directory), by content.
  std::vector<std::string> KeptContents() const {
    std::vector<std::string> out;
    for (const std::string& n : ListDir(memory_.path() + "/tier/kept")) {
      out.push_back(ReadFile(memory_.path() + "/tier/kept/" + n));
    }
    return out;
  }

  static constexpr char kData[] = "written on the tier\n";
  TmpfsDir memory_{"64M"};
  std::unique_ptr<CrashDriver> d_;
};

// The copy written to the volume cannot be read back (flakyfs's `vanish`
// cannot reach a file linked in before it is closed, as these copies are;
// a copy that reads back different is DigestOf's, unit-tested): the move
// is refused before anything is published, and the file stays on its
// tier, whole.
TEST_F(VolumeLossTest, ACopyTheVolumeDoesNotKeepIsNeverPublished) {
  ASSERT_EQ(d_->flaky()->Control("fault eio ops=read glob=.detourfs/work/**").rfind("ok", 0), 0u);
  EXPECT_EQ(Rename("node_modules/x.js", "src/x.js"), EIO);
  EXPECT_GE(d_->flaky()->Injected("eio"), 2u);  // copied, read back, copied again
  EXPECT_EQ(ReadFile(M("node_modules/x.js")), kData);
  EXPECT_FALSE(Exists(M("src/x.js")));
  EXPECT_FALSE(Exists(V("src/x.js")));
  EXPECT_NE(d_->fs().Log().find("did not keep the copy of 'work/node_modules/x.js'"),
            std::string::npos)
      << d_->fs().Log();
  // The volume behaves again: the same move goes through.
  ASSERT_EQ(d_->flaky()->Control("clear"), "ok");
  EXPECT_EQ(Rename("node_modules/x.js", "src/x.js"), 0);
  EXPECT_EQ(ReadFile(M("src/x.js")), kData);
  EXPECT_EQ(ReadFile(V("src/x.js")), kData);
  EXPECT_EQ(KeptContents(), std::vector<std::string>{});
}

// The same for a directory moving to the volume: one file of it read back
// wrong, and the whole move is refused.
TEST_F(VolumeLossTest, ATreeWithAFileTheVolumeDoesNotKeepIsNeverPublished) {
  ASSERT_EQ(::mkdir(M("node_modules/pkg").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("node_modules/pkg/a.js"), "a\n"), 0);
  ASSERT_EQ(d_->flaky()->Control("fault eio ops=read glob=.detourfs/**/a.js").rfind("ok", 0), 0u);
  EXPECT_EQ(Rename("node_modules", "src/nm"), EIO);
  EXPECT_EQ(ReadFile(M("node_modules/pkg/a.js")), "a\n");
  EXPECT_EQ(ReadFile(M("node_modules/x.js")), kData);
  EXPECT_FALSE(Exists(M("src/nm")));
  ASSERT_EQ(d_->flaky()->Control("clear"), "ok");
  EXPECT_EQ(Rename("node_modules", "src/nm"), 0);
  EXPECT_EQ(ReadFile(V("src/nm/pkg/a.js")), "a\n");
  EXPECT_EQ(ReadFile(V("src/nm/x.js")), kData);
}

// The volume acknowledges the rename that publishes the copy and does not
// make it: the tier's copy, parked until the volume showed the new name,
// goes back to its old name, and the caller gets EIO — the move undone,
// nothing deleted.
TEST_F(VolumeLossTest, AMoveTheVolumeLosesAfterPublishingIsUndone) {
  ASSERT_EQ(
      d_->flaky()->Control("fault lie ops=rename glob=.detourfs/work/moving.*").rfind("ok", 0), 0u);
  EXPECT_EQ(Rename("node_modules/x.js", "src/x.js"), EIO);
  EXPECT_GE(d_->flaky()->Injected("lie"), 1u);
  EXPECT_FALSE(Exists(V("src/x.js")));
  EXPECT_EQ(ReadFile(M("node_modules/x.js")), kData);
  EXPECT_EQ(ReadFile(memory_.path() + "/tier/upper/work/node_modules/x.js"), kData);
  EXPECT_EQ(KeptContents(), std::vector<std::string>{});
  EXPECT_EQ(ListDir(memory_.path() + "/tier/work"), std::vector<std::string>{});
  const std::string log = d_->fs().Log();
  EXPECT_NE(log.find("the volume lost 'work/src/x.js' right after it was published there: the "
                     "memory tier's copy is back at 'work/node_modules/x.js'"),
            std::string::npos)
      << log;
  // Once the volume behaves, the same move goes through.
  ASSERT_EQ(d_->flaky()->Control("clear"), "ok");
  EXPECT_EQ(Rename("node_modules/x.js", "src/x.js"), 0);
  EXPECT_EQ(ReadFile(V("src/x.js")), kData);
}

// A file copied up from the volume (the volume still has its old name,
// hidden by a whiteout once it moves) is undone the same way: the tier's
// copy, with what was written to it, back in place of the whiteout.
TEST_F(VolumeLossTest, ACopiedUpFileTheVolumeLosesIsBackWithItsChanges) {
  ASSERT_EQ(::mkdir(V("lib").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(V("lib/node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(V("lib/node_modules/old.js"), "old\n"), 0);
  {
    std::ofstream out(M("lib/node_modules/old.js"), std::ios::app);
    out << "changed\n";
    ASSERT_TRUE(out.good());
  }
  ASSERT_TRUE(Exists(memory_.path() + "/tier/upper/work/lib/node_modules/old.js"));
  ASSERT_EQ(
      d_->flaky()->Control("fault lie ops=rename glob=.detourfs/work/moving.*").rfind("ok", 0), 0u);
  EXPECT_EQ(Rename("lib/node_modules/old.js", "src/old.js"), EIO);
  EXPECT_EQ(ReadFile(M("lib/node_modules/old.js")), "old\nchanged\n");
  EXPECT_FALSE(Exists(M("src/old.js")));
  EXPECT_EQ(KeptContents(), std::vector<std::string>{});
  EXPECT_EQ(ListDir(memory_.path() + "/tier/work"), std::vector<std::string>{});
}

// The same for a tree: its tier part back at its name.
TEST_F(VolumeLossTest, ATreeTheVolumeLosesAfterPublishingIsUndone) {
  ASSERT_EQ(d_->flaky()->Control("fault lie ops=rename glob=.detourfs/work/tree.*").rfind("ok", 0),
            0u);
  EXPECT_EQ(Rename("node_modules", "src/nm"), EIO);
  EXPECT_GE(d_->flaky()->Injected("lie"), 1u);
  EXPECT_FALSE(Exists(V("src/nm")));
  EXPECT_EQ(ReadFile(M("node_modules/x.js")), kData);
  EXPECT_EQ(KeptContents(), std::vector<std::string>{});
  EXPECT_NE(d_->fs().Log().find("the volume lost 'work/src/nm' right after it was published"),
            std::string::npos)
      << d_->fs().Log();
  ASSERT_EQ(d_->flaky()->Control("clear"), "ok");
  EXPECT_EQ(Rename("node_modules", "src/nm"), 0);
  EXPECT_EQ(ReadFile(V("src/nm/x.js")), kData);
}

// A tree with a volume part (held when the move publishes, its files
// linked into the copy) is not put back: its tier part is kept aside in
// kept/, and the volume's files are still on the volume: in held/, which
// lets go of files linked into the copy only once the volume shows it
// (here the copy stays in work/, flakyfs never renamed it, and the next
// start clears it with work/).
TEST_F(VolumeLossTest, ATreeWithAVolumePartTheVolumeLosesIsKeptAside) {
  ASSERT_EQ(::mkdir(V("lib2").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(V("lib2/node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(V("lib2/node_modules/v.js"), "on the volume\n"), 0);
  ASSERT_EQ(WriteFile(M("lib2/node_modules/t.js"), "on the tier\n"), 0);
  ASSERT_EQ(d_->flaky()->Control("fault lie ops=rename glob=.detourfs/work/tree.*").rfind("ok", 0),
            0u);
  EXPECT_EQ(Rename("lib2/node_modules", "src/nm2"), EIO);
  const std::string volume = d_->volume_dir() + "/../.detourfs";
  EXPECT_NE(ShellOutput("grep -rl 'on the volume' '" + volume + "/held'"), "");
  EXPECT_NE(ShellOutput("grep -rl 'on the tier' '" + memory_.path() + "/tier/kept'"), "");
  EXPECT_NE(d_->fs().Log().find("what it was made from is kept aside"), std::string::npos)
      << d_->fs().Log();
  // And after the next start.
  ASSERT_EQ(d_->flaky()->Control("clear"), "ok");
  d_->KillDaemon();
  std::string error;
  ASSERT_TRUE(d_->RestartDaemon(&error)) << error;
  EXPECT_NE(ShellOutput("grep -rl 'on the volume' '" + volume + "/held'"), "");
}

// An exchange of a tier tree with a volume directory (review of 3f8379d #3):
// the tier's copy of what goes to the volume waits in the tier's work/
// until the volume shows it there; when the volume lost it, that copy is
// kept aside. The exchange is not undone (the other tree took the name)
// and stands, so the kernel's names agree with the mount's; the loss is
// logged as an error.
TEST_F(VolumeLossTest, AnExchangeTheVolumeLosesKeepsTheTierCopyAside) {
  ASSERT_EQ(WriteFile(M("src/s.js"), "s\n"), 0);
  ASSERT_EQ(d_->flaky()->Control("fault lie ops=rename glob=.detourfs/work/tree.*").rfind("ok", 0),
            0u);
  EXPECT_EQ(
      ::renameat2(AT_FDCWD, M("node_modules").c_str(), AT_FDCWD, M("src").c_str(), RENAME_EXCHANGE),
      0)
      << std::strerror(errno);
  EXPECT_GE(d_->flaky()->Injected("lie"), 1u);
  EXPECT_EQ(ReadFile(M("node_modules/s.js")), "s\n");  // the other side went through
  EXPECT_FALSE(Exists(V("src")));
  EXPECT_NE(ShellOutput("grep -rl 'written on the tier' '" + memory_.path() + "/tier/kept'"), "");
  EXPECT_EQ(ListDir(memory_.path() + "/tier/work"), std::vector<std::string>{});
  EXPECT_NE(d_->fs().Log().find("the volume lost 'work/src' right after it was published there; "
                                "what it was made from is kept aside"),
            std::string::npos)
      << d_->fs().Log();
}

// The same exchange with a tree that has a volume part (its files linked
// into the volume's copy): that part is held whole, so the files stay in
// held/ when the volume loses the copy — across a restart too.
TEST_F(VolumeLossTest, AnExchangeTheVolumeLosesKeepsTheVolumePartHeld) {
  ASSERT_EQ(::mkdir(V("lib3").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(V("lib3/node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(V("lib3/node_modules/v.js"), "on the volume\n"), 0);
  ASSERT_EQ(WriteFile(M("lib3/node_modules/t.js"), "on the tier\n"), 0);
  ASSERT_EQ(::mkdir(M("lib3/src").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("lib3/src/s.js"), "s\n"), 0);
  ASSERT_EQ(d_->flaky()->Control("fault lie ops=rename glob=.detourfs/work/tree.*").rfind("ok", 0),
            0u);
  EXPECT_EQ(::renameat2(AT_FDCWD, M("lib3/node_modules").c_str(), AT_FDCWD, M("lib3/src").c_str(),
                        RENAME_EXCHANGE),
            0)
      << std::strerror(errno);
  EXPECT_EQ(ReadFile(M("lib3/node_modules/s.js")), "s\n");
  const std::string volume = d_->volume_dir() + "/../.detourfs";
  EXPECT_NE(ShellOutput("grep -rl 'on the volume' '" + volume + "/held'"), "");
  EXPECT_NE(ShellOutput("grep -rl 'on the tier' '" + memory_.path() + "/tier/kept'"), "");
  ASSERT_EQ(d_->flaky()->Control("clear"), "ok");
  d_->KillDaemon();
  std::string error;
  ASSERT_TRUE(d_->RestartDaemon(&error)) << error;
  EXPECT_NE(ShellOutput("grep -rl 'on the volume' '" + volume + "/held'"), "");
}

// A volume that keeps what it is given: the tier's copy goes (to the trash),
// nothing is set aside.
TEST_F(VolumeLossTest, AMoveTheVolumeKeepsLeavesNothingAside) {
  EXPECT_EQ(Rename("node_modules/x.js", "src/x.js"), 0);
  EXPECT_EQ(ReadFile(V("src/x.js")), kData);
  EXPECT_FALSE(Exists(memory_.path() + "/tier/upper/work/node_modules/x.js"));
  EXPECT_EQ(KeptContents(), std::vector<std::string>{});
  EXPECT_EQ(ListDir(memory_.path() + "/tier/work"), std::vector<std::string>{});
  // A tree too.
  ASSERT_EQ(::mkdir(M("node_modules/pkg").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("node_modules/pkg/a.js"), "a\n"), 0);
  EXPECT_EQ(Rename("node_modules", "src/nm"), 0);
  EXPECT_EQ(ReadFile(V("src/nm/pkg/a.js")), "a\n");
  EXPECT_EQ(ListDir(memory_.path() + "/tier/kept"), std::vector<std::string>{});
  EXPECT_EQ(ListDir(memory_.path() + "/tier/work"), std::vector<std::string>{});
}

}  // namespace
}  // namespace detourfs::testing
