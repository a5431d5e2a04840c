// Routing on real mounts: a tmpfs memory tier and a directory disk tier under
// a detourfs mount of a separate volume directory, so each test can look at
// the volume and the tiers directly. Covers where routed and unrouted writes
// land, copy-up, whiteouts, opaque directories, merged listings, renames,
// restart with tier content present, and symlinks planted to escape.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "lib/as_user.h"
#include "lib/files.h"
#include "mount/routing_fixture.h"

namespace detourfs::testing {
namespace {

TEST_P(RoutingTest, RoutedWritesLandInTheirTierAndTheRestOnTheVolume) {
  ASSERT_TRUE(memory_.ok());
  ASSERT_EQ(::mkdir(M("app").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M("app/node_modules").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M("app/node_modules/react").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("app/node_modules/react/index.js"), "module.exports = 1;"), 0);
  ASSERT_EQ(::mkdir(M("app/dist").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("app/dist/bundle.js"), "bundle"), 0);
  ASSERT_EQ(WriteFile(M("app/main.js"), "main"), 0);
  // Through the mount everything is there.
  EXPECT_EQ(ReadFile(M("app/node_modules/react/index.js")), "module.exports = 1;");
  EXPECT_EQ(ReadFile(M("app/dist/bundle.js")), "bundle");
  // On the tiers and the volume, each where its rule says.
  EXPECT_EQ(ReadFile(Mem("app/node_modules/react/index.js")), "module.exports = 1;");
  EXPECT_FALSE(Exists(V("app/node_modules")));
  EXPECT_EQ(ReadFile(Disk("app/dist/bundle.js")), "bundle");
  EXPECT_FALSE(Exists(V("app/dist")));
  EXPECT_EQ(ReadFile(V("app/main.js")), "main");
  EXPECT_FALSE(Exists(Mem("app/main.js")));
  // A file named like a directory-only rule stays on the volume.
  ASSERT_EQ(WriteFile(M("app/dist2"), "x"), 0);
  ASSERT_EQ(WriteFile(M("dist"), "a file called dist"), 0);
  EXPECT_EQ(ReadFile(V("dist")), "a file called dist");
  // The volume parent lists the routed child that exists only in a tier.
  EXPECT_EQ(ListDir(M("app")),
            (std::vector<std::string>{"dist", "dist2", "main.js", "node_modules"}));
}

TEST_P(RoutingTest, FirstChangeCopiesAVolumeFileUpWithItsMetadata) {
  ASSERT_EQ(::mkdir(V("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(V("node_modules/a.js"), "original"), 0);
  ASSERT_EQ(::chmod(V("node_modules/a.js").c_str(), 0640), 0);
  ASSERT_EQ(::chown(V("node_modules/a.js").c_str(), 1234, 2345), 0);
  ASSERT_EQ(::setxattr(V("node_modules/a.js").c_str(), "user.tag", "t", 1, 0), 0);
  const struct timespec times[2] = {{1000000000, 0}, {1100000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, V("node_modules/a.js").c_str(), times, 0), 0);
  // Reading does not copy.
  struct stat before = Lstat(M("node_modules/a.js"));
  EXPECT_EQ(ReadFile(M("node_modules/a.js")), "original");
  EXPECT_FALSE(Exists(Mem("node_modules/a.js")));
  // Changing does; the volume keeps the original until a flush.
  int fd = ::open(M("node_modules/a.js").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "+more", 5), 5);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(ReadFile(M("node_modules/a.js")), "original+more");
  EXPECT_EQ(ReadFile(V("node_modules/a.js")), "original");
  EXPECT_EQ(ReadFile(Mem("node_modules/a.js")), "original+more");
  struct stat up = Lstat(Mem("node_modules/a.js"));
  EXPECT_EQ(up.st_mode & 07777, 0640U);
  EXPECT_EQ(up.st_uid, 1234U);
  EXPECT_EQ(up.st_gid, 2345U);
  char v[4] = {};
  EXPECT_EQ(::getxattr(Mem("node_modules/a.js").c_str(), "user.tag", v, sizeof(v)), 1);
  struct stat after = Lstat(M("node_modules/a.js"));
  EXPECT_EQ(after.st_uid, before.st_uid);
  // The inode number stays, now and after the kernel forgot the file.
  EXPECT_EQ(after.st_ino, before.st_ino);
  Restart();
  EXPECT_EQ(Lstat(M("node_modules/a.js")).st_ino, before.st_ino);
  EXPECT_EQ(ReadFile(M("node_modules/a.js")), "original+more");
  // The record of it is not visible through the mount.
  char names[256] = {};
  const ssize_t len = ::listxattr(M("node_modules/a.js").c_str(), names, sizeof(names));
  EXPECT_EQ(std::string(names, static_cast<size_t>(std::max<ssize_t>(len, 0))).find("detourfs"),
            std::string::npos);
  // chmod alone copies up too.
  ASSERT_EQ(WriteFile(V("node_modules/b.js"), "b"), 0);
  ASSERT_EQ(::chmod(M("node_modules/b.js").c_str(), 0600), 0);
  EXPECT_EQ(Lstat(Mem("node_modules/b.js")).st_mode & 07777, 0600U);
  EXPECT_EQ(Lstat(V("node_modules/b.js")).st_mode & 07777, 0644U);
}

TEST_P(RoutingTest, TruncatingCreateOfAVolumeFileTheKernelThoughtMissingClearsSetuid) {
  // The kernel caches "no such name"; the volume gets the file meanwhile
  // (behind the mount), so the open below reaches the daemon as a CREATE
  // that meets it: copied up, truncated, and cleared as for a known file.
  ASSERT_EQ(::mkdir(V("node_modules").c_str(), 0777), 0);
  ASSERT_EQ(::chmod(V("node_modules").c_str(), 0777), 0);
  ASSERT_NE(::access(M("node_modules/late").c_str(), F_OK), 0);
  ASSERT_EQ(WriteFile(V("node_modules/late"), "old"), 0);
  ASSERT_EQ(::chmod(V("node_modules/late").c_str(), 06777), 0);
  const std::string p = M("node_modules/late");
  EXPECT_EQ(OpenAsUser(kUser, kGroup, p, O_WRONLY | O_CREAT | O_TRUNC), 0);
  struct stat st = Lstat(p);
  EXPECT_EQ(st.st_mode & 07777, 0777U);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(Lstat(Mem("node_modules/late")).st_mode & 07777, 0777U);
  EXPECT_EQ(ReadFile(V("node_modules/late")), "old");  // the volume's copy waits for a flush
}

TEST_P(RoutingTest, DeletingAVolumeEntryLeavesAWhiteoutThatSurvivesRestart) {
  ASSERT_EQ(::mkdir(V("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(V("node_modules/gone.js"), "x"), 0);
  ASSERT_EQ(WriteFile(V("node_modules/kept.js"), "k"), 0);
  ASSERT_EQ(::unlink(M("node_modules/gone.js").c_str()), 0);
  int err = 0;
  Lstat(M("node_modules/gone.js"), &err);
  EXPECT_EQ(err, ENOENT);
  EXPECT_EQ(ListDir(M("node_modules")), std::vector<std::string>{"kept.js"});
  EXPECT_TRUE(Exists(V("node_modules/gone.js")));  // the volume changes at flush time
  Restart();
  Lstat(M("node_modules/gone.js"), &err);
  EXPECT_EQ(err, ENOENT);
  EXPECT_EQ(ListDir(M("node_modules")), std::vector<std::string>{"kept.js"});
  // A name that was whited out can be made again.
  ASSERT_EQ(WriteFile(M("node_modules/gone.js"), "new"), 0);
  EXPECT_EQ(ReadFile(M("node_modules/gone.js")), "new");
}

TEST_P(RoutingTest, RmRfAndMkdirGiveAnOpaqueDirectory) {
  ASSERT_EQ(::mkdir(V("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(V("node_modules/pkg").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(V("node_modules/pkg/old.js"), "old"), 0);
  ASSERT_EQ(Shell("rm -rf " + M("node_modules/pkg")), 0);
  int err = 0;
  Lstat(M("node_modules/pkg"), &err);
  EXPECT_EQ(err, ENOENT);
  ASSERT_EQ(::mkdir(M("node_modules/pkg").c_str(), 0755), 0);
  EXPECT_EQ(ListDir(M("node_modules/pkg")), std::vector<std::string>{});
  ASSERT_EQ(WriteFile(M("node_modules/pkg/new.js"), "new"), 0);
  EXPECT_EQ(ListDir(M("node_modules/pkg")), std::vector<std::string>{"new.js"});
  Lstat(M("node_modules/pkg/old.js"), &err);
  EXPECT_EQ(err, ENOENT);
  Restart();
  EXPECT_EQ(ListDir(M("node_modules/pkg")), std::vector<std::string>{"new.js"});
  // A user's own device 0:0 is a device, not a whiteout.
  ASSERT_EQ(::mknod(M("node_modules/dev").c_str(), S_IFCHR | 0600, 0), 0);
  EXPECT_EQ(ListDir(M("node_modules")), (std::vector<std::string>{"dev", "pkg"}));
}

// A whiteout left on a tier where the volume no longer holds anything to
// hide (its volume entry went while the whiteout stayed: a power cut keeping
// one side) is not a name: not listed, not found, and a name can be made
// there again.
TEST_P(RoutingTest, AWhiteoutWithNothingToHideIsNotListed) {
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M("node_modules/pkg").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("node_modules/pkg/kept.js"), "k"), 0);
  // Enough names that a listing takes several requests, the later ones
  // plain READDIR (the kernel asks for READDIRPLUS at offset 0).
  std::vector<std::string> names{"kept.js"};
  for (int i = 0; i < 300; ++i) {
    names.push_back("f" + std::to_string(1000 + i));
    ASSERT_EQ(WriteFile(M("node_modules/pkg/" + names.back()), ""), 0);
  }
  std::sort(names.begin(), names.end());
  ASSERT_FALSE(Exists(V("node_modules")));  // the tier's alone
  ASSERT_EQ(fs_->Stop(), 0);
  ASSERT_EQ(::mknod(Mem("node_modules/pkg/gone.js").c_str(), S_IFCHR | 0000, 0), 0);
  std::string error;
  ASSERT_TRUE(fs_->Restart(&error)) << error;
  EXPECT_EQ(ListDir(M("node_modules/pkg")), names);
  EXPECT_EQ(Shell("ls -f " + M("node_modules/pkg") + " | grep -qx gone.js"), 1);
  int err = 0;
  Lstat(M("node_modules/pkg/gone.js"), &err);
  EXPECT_EQ(err, ENOENT);
  ASSERT_EQ(WriteFile(M("node_modules/pkg/gone.js"), "again"), 0);
  EXPECT_EQ(ReadFile(M("node_modules/pkg/gone.js")), "again");
}

TEST_P(RoutingTest, RemovingAWholeRoutedTreeThatSpansLayers) {
  ASSERT_EQ(::mkdir(V("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(V("node_modules/a").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(V("node_modules/a/1.js"), "1"), 0);
  ASSERT_EQ(::mkdir(M("node_modules/b").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("node_modules/b/2.js"), "2"), 0);
  ASSERT_EQ(WriteFile(M("node_modules/a/3.js"), "3"), 0);
  EXPECT_EQ(ListDir(M("node_modules/a")), (std::vector<std::string>{"1.js", "3.js"}));
  EXPECT_EQ(::rmdir(M("node_modules/a").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  ASSERT_EQ(Shell("rm -rf " + M("node_modules")), 0);
  int err = 0;
  Lstat(M("node_modules"), &err);
  EXPECT_EQ(err, ENOENT);
  EXPECT_EQ(ListDir(M("")), std::vector<std::string>{});
  // npm's next install starts from an empty directory.
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  EXPECT_EQ(ListDir(M("node_modules")), std::vector<std::string>{});
}

TEST_P(RoutingTest, RenamesWithinATierAndAcrossLayers) {
  // On the volume before the mount looks (a node_modules from before detourfs).
  ASSERT_EQ(::mkdir(V("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(V("node_modules/old.js"), "o"), 0);
  ASSERT_EQ(::mkdir(M("node_modules/.staging").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("node_modules/.staging/pkg.js"), "p"), 0);
  // Within the tier: a rename (npm moves staged packages into place).
  ASSERT_EQ(::rename(M("node_modules/.staging").c_str(), M("node_modules/pkg").c_str()), 0);
  EXPECT_EQ(ReadFile(M("node_modules/pkg/pkg.js")), "p");
  EXPECT_EQ(ReadFile(Mem("node_modules/pkg/pkg.js")), "p");
  // A volume file renamed within the routed tree is copied up first.
  ASSERT_EQ(::rename(M("node_modules/old.js").c_str(), M("node_modules/new.js").c_str()), 0);
  EXPECT_EQ(ReadFile(M("node_modules/new.js")), "o");
  int err = 0;
  Lstat(M("node_modules/old.js"), &err);
  EXPECT_EQ(err, ENOENT);
  // Across layers a file or tree moves with mv (rename(2) answers EXDEV for
  // those today; mv copies and deletes), contents intact.
  ASSERT_EQ(Shell("mv " + M("node_modules/pkg") + " " + M("pkg-moved")), 0);
  EXPECT_EQ(ReadFile(M("pkg-moved/pkg.js")), "p");
  EXPECT_EQ(ReadFile(V("pkg-moved/pkg.js")), "p");
  // Back into the routed tree: a directory only the volume holds moves by
  // one volume rename (routed content already on the volume is served from
  // there and copied up when it changes).
  ASSERT_EQ(Shell("mv " + M("pkg-moved") + " " + M("node_modules/back")), 0);
  EXPECT_EQ(ReadFile(M("node_modules/back/pkg.js")), "p");
  EXPECT_EQ(ReadFile(V("node_modules/back/pkg.js")), "p");
  EXPECT_FALSE(Exists(V("pkg-moved")));
  Lstat(M("pkg-moved"), &err);
  EXPECT_EQ(err, ENOENT);
}

// With --negative-timeout 0 nothing "not there" is remembered, by the kernel
// or by the daemon: a volume directory made underneath the mount, beneath a
// directory the tier made, shows at once.
class RoutingUncachedTest : public RoutingTest {
 protected:
  MountConfig Config() const override {
    MountConfig c = RoutingTest::Config();
    c.extra_args.insert(c.extra_args.end(), {"--negative-timeout", "0"});
    return c;
  }
};

TEST_P(RoutingUncachedTest, VolumeDirectoryMadeUnderneathShowsAtOnce) {
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("node_modules/a.js"), "a"), 0);
  int err = 0;
  Lstat(M("node_modules/b.js"), &err);
  ASSERT_EQ(err, ENOENT);
  ASSERT_EQ(::mkdir(V("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(V("node_modules/b.js"), "b"), 0);
  EXPECT_EQ(ReadFile(M("node_modules/b.js")), "b");
  EXPECT_EQ(ReadFile(M("node_modules/a.js")), "a");
}

// mv of an ordinary project directory takes its routed node_modules along:
// the tier's part moves with the volume's.
TEST_P(RoutingTest, RenamingAProjectCarriesItsRoutedSubtree) {
  ASSERT_EQ(::mkdir(M("proj").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("proj/package.json"), "{}"), 0);
  ASSERT_EQ(::mkdir(M("proj/node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("proj/node_modules/dep.js"), "dep"), 0);
  ASSERT_EQ(::rename(M("proj").c_str(), M("proj2").c_str()), 0);
  EXPECT_EQ(ReadFile(M("proj2/node_modules/dep.js")), "dep");
  EXPECT_EQ(ReadFile(M("proj2/package.json")), "{}");
  EXPECT_EQ(ListDir(M("proj2")), (std::vector<std::string>{"node_modules", "package.json"}));
  EXPECT_EQ(ReadFile(Mem("proj2/node_modules/dep.js")), "dep");
  EXPECT_FALSE(Exists(Mem("proj")));
  EXPECT_FALSE(Exists(V("proj")));
  EXPECT_EQ(ReadFile(V("proj2/package.json")), "{}");
  Restart();
  EXPECT_EQ(ReadFile(M("proj2/node_modules/dep.js")), "dep");
}

TEST_P(RoutingTest, HardLinksWithinATierAndEXDEVAcross) {
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M(".cache").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M(".cache/blob"), "content"), 0);
  // pnpm's store and node_modules on the same tier: a real hard link.
  ASSERT_EQ(::link(M(".cache/blob").c_str(), M("node_modules/file").c_str()), 0);
  EXPECT_EQ(Lstat(M("node_modules/file")).st_nlink, 2U);
  EXPECT_EQ(Lstat(M("node_modules/file")).st_ino, Lstat(M(".cache/blob")).st_ino);
  EXPECT_EQ(::link(M(".cache/blob").c_str(), M("outside").c_str()), -1);
  EXPECT_EQ(errno, EXDEV);
}

// A symlink with two names on the volume (link(2) links the symlink itself)
// linked into a tier and unlinked there again: its copy in the tier's index
// is what its names show, and its own times are set there (it has no name
// in the tier).
TEST_P(RoutingTest, AHardLinkedSymlinkCopiedUpTakesItsOwnTimes) {
  ASSERT_EQ(::mkdir(V("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("../nowhere", V("node_modules/s").c_str()), 0);
  ASSERT_EQ(::link(V("node_modules/s").c_str(), V("node_modules/s2").c_str()), 0);
  ASSERT_EQ(::link(M("node_modules/s").c_str(), M("node_modules/s3").c_str()), 0);
  ASSERT_EQ(::unlink(M("node_modules/s3").c_str()), 0);
  const struct timespec times[2] = {{1000000000, 0}, {1036228966, 500}};
  ASSERT_EQ(::utimensat(AT_FDCWD, M("node_modules/s").c_str(), times, AT_SYMLINK_NOFOLLOW), 0)
      << std::strerror(errno);
  for (const char* name : {"node_modules/s", "node_modules/s2"}) {
    const struct stat st = Lstat(M(name));
    EXPECT_TRUE(S_ISLNK(st.st_mode)) << name;
    EXPECT_EQ(st.st_mtim.tv_sec, 1036228966) << name;
    EXPECT_EQ(st.st_mtim.tv_nsec, 500) << name;
    EXPECT_EQ(st.st_nlink, 2U) << name;
  }
  char target[64] = {};
  EXPECT_EQ(::readlink(M("node_modules/s2").c_str(), target, sizeof target - 1), 10);
  EXPECT_STREQ(target, "../nowhere");
}

// A tier file's name that hides a volume file leaves a whiteout when it
// goes; the file's other names count one link fewer at once.
TEST_P(RoutingTest, UnlinkingANameOverAVolumeFileDropsItsLinkCount) {
  ASSERT_EQ(::mkdir(V("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(V("node_modules/old"), "volume"), 0);
  ASSERT_EQ(WriteFile(M("node_modules/a"), "tier"), 0);
  ASSERT_EQ(::link(M("node_modules/a").c_str(), M("node_modules/b").c_str()), 0);
  ASSERT_EQ(::rename(M("node_modules/b").c_str(), M("node_modules/old").c_str()), 0);
  EXPECT_EQ(Lstat(M("node_modules/a")).st_nlink, 2U);
  ASSERT_EQ(::unlink(M("node_modules/old").c_str()), 0);
  EXPECT_EQ(Lstat(M("node_modules/a")).st_nlink, 1U);
  EXPECT_EQ(::access(M("node_modules/old").c_str(), F_OK), -1);
  EXPECT_EQ(ReadFile(M("node_modules/a")), "tier");
  EXPECT_EQ(ReadFile(V("node_modules/old")), "volume");  // hidden, not touched
}

// A volume directory under a directory-only rule (dist/) removed through
// the mount is hidden by a whiteout on the disk tier; a file named so lives
// on the volume, where the old directory still is. Every way of making one
// there (create, link, symlink) takes the name.
TEST_P(RoutingTest, AFileTakesTheNameOfARemovedDirectoryUnderADirectoryOnlyRule) {
  // Made there, or renamed there: from the volume, from a tier, and a file
  // with another name on a tier (home model checker, seed 1796680003).
  for (const char* how : {"create", "link", "symlink", "rename", "rename-tier", "rename-linked"}) {
    SCOPED_TRACE(how);
    const std::string dir = std::string("p-") + how;
    ASSERT_EQ(::mkdir(V(dir).c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(V(dir + "/dist").c_str(), 0755), 0);
    ASSERT_EQ(WriteFile(V(dir + "/dist/old.js"), "old"), 0);
    ASSERT_EQ(WriteFile(M(dir + "/src.sh"), "x"), 0);
    ASSERT_EQ(Shell("rm -rf " + M(dir + "/dist")), 0);
    const std::string name = M(dir + "/dist");
    if (std::string(how) == "create") {
      ASSERT_EQ(WriteFile(name, "new"), 0);
    } else if (std::string(how) == "link") {
      ASSERT_EQ(::link(M(dir + "/src.sh").c_str(), name.c_str()), 0) << std::strerror(errno);
      EXPECT_EQ(Lstat(name).st_nlink, 2U);
    } else if (std::string(how) == "symlink") {
      ASSERT_EQ(::symlink("src.sh", name.c_str()), 0) << std::strerror(errno);
    } else {
      std::string from = M(dir + "/run.sh");
      if (std::string(how) != "rename") {
        ASSERT_EQ(::mkdir(M(dir + "/node_modules").c_str(), 0755), 0);
        from = M(dir + "/node_modules/run.sh");
      }
      if (std::string(how) == "rename-linked") {
        // A volume file given a name on the tier: its copy is in the
        // tier's index, and the tier's name moves back to the volume.
        ASSERT_EQ(WriteFile(V(dir + "/run.sh"), "new"), 0);
        ASSERT_EQ(::link(M(dir + "/run.sh").c_str(), from.c_str()), 0) << std::strerror(errno);
      } else {
        ASSERT_EQ(WriteFile(from, "new"), 0);
      }
      ASSERT_EQ(::rename(from.c_str(), name.c_str()), 0) << std::strerror(errno);
    }
    EXPECT_FALSE(S_ISDIR(Lstat(name).st_mode));
    std::vector<std::string> want{"dist", "src.sh"};
    if (std::string(how).rfind("rename-", 0) == 0) want.insert(want.begin() + 1, "node_modules");
    if (std::string(how) == "rename-linked") want.insert(want.begin() + 2, "run.sh");
    EXPECT_EQ(ListDir(M(dir)), want);
  }
  Restart();
  for (const char* how : {"create", "rename", "rename-tier", "rename-linked"}) {
    SCOPED_TRACE(how);
    const std::string name = M(std::string("p-") + how + "/dist");
    EXPECT_TRUE(S_ISREG(Lstat(name).st_mode));
    EXPECT_EQ(ReadFile(name), "new");
  }
  EXPECT_EQ(Lstat(M("p-rename-linked/dist")).st_nlink, 2U);
}

// A routed directory with a volume part renamed within its tier leaves
// that volume part (what persisted of its content) in held/, not hidden at
// the old name where a file made there later would clear it (review of
// 10b3d20, finding 1).
TEST_P(RoutingTest, ARoutedDirectorysVolumePartIsHeldWhenItMovesOnItsTier) {
  ASSERT_EQ(::mkdir(M("p").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M("q").c_str(), 0755), 0);
  ASSERT_EQ(Shell("mkdir -p " + M("p/node_modules/pkg")), 0);
  ASSERT_EQ(WriteFile(M("p/node_modules/pkg/f"), "data"), 0);
  ASSERT_EQ(::rename(M("p/node_modules").c_str(), M("p/keep").c_str()), 0);  // to the volume
  ASSERT_EQ(::rename(M("p/keep").c_str(), M("p/dist").c_str()), 0);  // routed, volume part only
  ASSERT_EQ(WriteFile(M("p/dist/new"), "n"), 0);                     // a disk part too
  ASSERT_EQ(::rename(M("p/dist").c_str(), M("q/dist").c_str()), 0);  // on the disk tier
  ASSERT_EQ(::mkdir(M("p/node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("p/node_modules/g"), "x"), 0);
  ASSERT_EQ(::rename(M("p/node_modules/g").c_str(), M("p/dist").c_str()), 0);
  EXPECT_EQ(ReadFile(M("p/dist")), "x");
  EXPECT_EQ(ReadFile(M("q/dist/pkg/f")), "data");
  // The volume still has the directory's persisted content, held.
  EXPECT_EQ(ShellOutput("grep -rl '^data$' '" + V(".detourfs/held") + "' | wc -l"), "1\n");
  Restart();
  EXPECT_EQ(ReadFile(M("q/dist/pkg/f")), "data");
  EXPECT_EQ(ReadFile(M("p/dist")), "x");
}

TEST_P(RoutingTest, InodeNumbersStayDistinctAcrossLayers) {
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  std::vector<ino_t> seen;
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(WriteFile(M("node_modules/f" + std::to_string(i)), "x"), 0);
    ASSERT_EQ(WriteFile(M("v" + std::to_string(i)), "x"), 0);
    seen.push_back(Lstat(M("node_modules/f" + std::to_string(i))).st_ino);
    seen.push_back(Lstat(M("v" + std::to_string(i))).st_ino);
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end());
}

TEST_P(RoutingTest, PlantedSymlinksAreNeverFollowed) {
  // In the volume: node_modules -> /etc. Through the mount it is the user's
  // symlink (the kernel resolves it for the caller, as anywhere); the daemon
  // never writes through it into its tier or outside.
  ASSERT_EQ(::symlink("/etc", V("node_modules").c_str()), 0);
  EXPECT_EQ(Lstat(M("node_modules")).st_mode & S_IFMT, static_cast<mode_t>(S_IFLNK));
  ASSERT_EQ(::unlink(M("node_modules").c_str()), 0);
  EXPECT_TRUE(Exists("/etc/passwd"));
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("node_modules/x"), "x"), 0);
  EXPECT_FALSE(Exists("/etc/x"));
  // In the tier: a symlink where the daemon expects its scaffolding.
  ASSERT_EQ(::mkdir(V("app").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("/etc", Mem("app").c_str()), 0);
  EXPECT_NE(::mkdir(M("app/node_modules").c_str(), 0755), 0);
  EXPECT_FALSE(Exists("/etc/node_modules"));
  expect_clean_log_ = false;  // the refusal is logged
}

TEST_P(RoutingTest, TierContentIsAdoptedOnRestart) {
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("node_modules/kept.js"), "kept"), 0);
  Restart();
  EXPECT_EQ(ReadFile(M("node_modules/kept.js")), "kept");
  EXPECT_NE(fs_->Log().find("adopting what it holds"), std::string::npos);
  struct stat root = Lstat(memory_.path() + "/tier");
  EXPECT_EQ(root.st_mode & 07777, 0700U);
  EXPECT_EQ(root.st_uid, 0U);
}

// A config changed between runs so that what a tier holds is no longer
// routed there: it is not served (paths go where the rules say now), it is
// reported at start, and it is kept — routing it back serves it again.
TEST_P(RoutingTest, TierContentTheConfigNoLongerRoutesIsReportedAndKept) {
  ASSERT_EQ(::mkdir(M("app").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M("app/node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("app/node_modules/kept.js"), "kept"), 0);
  ASSERT_EQ(::mkdir(M("app/dist").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("app/dist/out.js"), "out"), 0);
  ASSERT_EQ(::mkdir(V("old").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(V("old/node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(V("old/node_modules/stale.js"), "stale"), 0);
  ASSERT_EQ(Shell("rm -rf '" + M("old/node_modules") + "'"), 0);  // a whiteout on the tier
  ASSERT_EQ(::mkdir(M(".cache").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M(".cache/tool").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M(".cache/tool/blob"), "blob"), 0);
  const std::string routes = ReadFile(config_);
  std::string moved = routes;
  const std::string memory_rule = "match = \"**/node_modules\"\ntier = \"memory\"";
  ASSERT_NE(moved.find(memory_rule), std::string::npos);
  moved.replace(moved.find(memory_rule), memory_rule.size(),
                "match = \"**/node_modules\"\ntier = \"disk\"");
  const std::string cache_rule =
      "[[route]]\nmatch = \"/.cache\"\ntier = \"memory\"\npersist = \"never\"\n";
  ASSERT_NE(moved.find(cache_rule), std::string::npos);
  moved.erase(moved.find(cache_rule), cache_rule.size());
  ASSERT_EQ(WriteFile(config_, moved), 0);
  Restart();

  const std::string log = fs_->Log();
  EXPECT_NE(log.find("tier memory holds directory 'app/node_modules', which the config no longer "
                     "routes there (the rule at line"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("tier memory holds the deletion of 'old/node_modules'"), std::string::npos);
  // A directory no rule routes any more, reported once with its files.
  EXPECT_NE(log.find("tier memory holds directory '.cache/tool', which the config no longer "
                     "routes there (no rule routes it"),
            std::string::npos);
  EXPECT_EQ(log.find("blob"), std::string::npos);
  EXPECT_EQ(log.find("tier disk holds"), std::string::npos);  // dist is still routed there
  EXPECT_EQ(log.find("'app'"), std::string::npos);            // scaffolding is not reported
  int err = 0;
  Lstat(M("app/node_modules/kept.js"), &err);
  EXPECT_EQ(err, ENOENT);
  EXPECT_EQ(ReadFile(M("old/node_modules/stale.js")), "stale");  // the whiteout no longer applies
  EXPECT_EQ(ReadFile(M("app/dist/out.js")), "out");
  EXPECT_EQ(ReadFile(Mem("app/node_modules/kept.js")), "kept");  // kept on the tier
  EXPECT_EQ(ReadFile(Mem(".cache/tool/blob")), "blob");

  ASSERT_EQ(WriteFile(config_, routes), 0);
  const size_t before = fs_->Log().size();
  Restart();
  EXPECT_EQ(fs_->Log().find("no longer routes", before), std::string::npos);
  EXPECT_EQ(ReadFile(M("app/node_modules/kept.js")), "kept");
  EXPECT_EQ(ReadFile(M(".cache/tool/blob")), "blob");
  Lstat(M("old/node_modules"), &err);
  EXPECT_EQ(err, ENOENT);
  expect_clean_log_ = false;  // the first restart reported errors, as it should
}

// Review 2026-12-07 #4: what a tier holds under a path the rules no longer
// route there may be the only copy of what was written. When the mount
// needs the name — a directory part made there, an unrouted directory above
// it removed (empty in the merged view), a directory renamed onto its path,
// or over the empty directory holding it — it goes to <tier>/kept/, logged,
// never to the trash.
TEST_P(RoutingTest, ContentNoRuleServesIsSetAsideNeverDeleted) {
  for (const char* p : {"made", "removed", "onto", "over"}) {
    ASSERT_EQ(::mkdir(M(p).c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(M(std::string(p) + "/node_modules").c_str(), 0755), 0);
    ASSERT_EQ(WriteFile(M(std::string(p) + "/node_modules/only-copy.js"), p), 0);
  }
  // "onto": no volume directory left, only its tier scaffolding.
  ASSERT_EQ(::rmdir(V("onto").c_str()), 0);
  // node_modules no longer routed; .cache directories go to memory instead.
  const std::string routes = ReadFile(config_);
  std::string changed = routes;
  const std::string memory_rule = "match = \"**/node_modules\"\ntier = \"memory\"";
  ASSERT_NE(changed.find(memory_rule), std::string::npos);
  changed.replace(changed.find(memory_rule), memory_rule.size(),
                  "match = \"**/.cache/\"\ntier = \"memory\"");
  ASSERT_EQ(WriteFile(config_, changed), 0);
  Restart();
  expect_clean_log_ = false;  // the start and each set-aside are reported

  // A part made where the old one is (a routed directory below a new one).
  ASSERT_EQ(Shell("mkdir -p '" + M("made/node_modules/.cache/x") + "'"), 0);
  // An unrouted directory, empty in the merged view, removed.
  ASSERT_EQ(::rmdir(M("removed").c_str()), 0) << std::strerror(errno);
  // A directory with a tier part renamed onto the path.
  ASSERT_EQ(Shell("mkdir -p '" + M("src/.cache") + "'"), 0);
  ASSERT_EQ(::rename(M("src").c_str(), M("onto").c_str()), 0) << std::strerror(errno);
  // And over the empty directory that holds it.
  ASSERT_EQ(Shell("mkdir -p '" + M("src2/.cache") + "'"), 0);
  ASSERT_EQ(::rename(M("src2").c_str(), M("over").c_str()), 0) << std::strerror(errno);

  // Every copy is in kept/, whole, and nowhere else.
  const std::string kept = ShellOutput("cd '" + memory_.path() +
                                       "/tier/kept' && find . -name only-copy.js -exec cat {} \\; "
                                       "-exec echo \\; | sort | tr '\\n' ' '");
  EXPECT_EQ(kept, "made onto over removed ");
  const std::string log = fs_->Log();
  EXPECT_NE(log.find("held 'made/node_modules', which had to make way"), std::string::npos) << log;
  EXPECT_NE(log.find("held 'removed', which had to make way"), std::string::npos);
  EXPECT_NE(log.find("held 'onto', which had to make way"), std::string::npos);
  EXPECT_NE(log.find("held 'over', which had to make way"), std::string::npos);
  EXPECT_TRUE(Exists(M("made/node_modules/.cache/x")));
  EXPECT_TRUE(Exists(M("onto/.cache")));
  EXPECT_TRUE(Exists(M("over/.cache")));
}

// The same inside a tree that moves to another layer: what its tier parts
// hold that no rule serves there (a file on the disk tier at an unrouted
// path, a directory on the memory tier at one, as an earlier config would
// have left them) is not copied with the tree; it goes to its tier's kept/
// before those parts go, never to the trash.
TEST_P(RoutingTest, ContentNoRuleServesInAMovingTreeIsSetAside) {
  ASSERT_EQ(Shell("mkdir -p '" + M("host/node_modules") + "' '" + M("host/dist") + "'"), 0);
  for (const std::string p : {"app1", "app2"}) {
    ASSERT_EQ(Shell("mkdir -p '" + M(p + "/node_modules") + "' '" + M(p + "/dist") + "'"), 0);
    ASSERT_EQ(WriteFile(M(p + "/node_modules/a.js"), "a"), 0);
    ASSERT_EQ(WriteFile(M(p + "/dist/d.js"), "d"), 0);
    ASSERT_TRUE(Exists(Mem(p + "/node_modules/a.js")) && Exists(Disk(p + "/dist/d.js")));
  }
  ASSERT_EQ(fs_->Stop(), 0);
  for (const std::string p : {"app1", "app2"}) {
    ASSERT_EQ(WriteFile(Disk(p + "/only-copy.js"), p + " disk"), 0);
    ASSERT_EQ(::mkdir(Mem(p + "/old").c_str(), 0755), 0);
    ASSERT_EQ(WriteFile(Mem(p + "/old/only-copy.js"), p + " memory"), 0);
  }
  std::string error;
  ASSERT_TRUE(fs_->Restart(&error)) << error;
  expect_clean_log_ = false;  // each set-aside is reported
  const std::vector<std::string> listing{"dist", "node_modules"};
  EXPECT_EQ(ListDir(M("app1")), listing);

  // To the memory tier (under node_modules), and to the disk tier (dist).
  ASSERT_EQ(::rename(M("app1").c_str(), M("host/node_modules/app1").c_str()), 0)
      << std::strerror(errno);
  ASSERT_EQ(::rename(M("app2").c_str(), M("host/dist/app2").c_str()), 0) << std::strerror(errno);
  auto check = [&] {
    for (const std::string moved : {"host/node_modules/app1", "host/dist/app2"}) {
      EXPECT_EQ(ListDir(M(moved)), listing) << moved;
      EXPECT_EQ(ReadFile(M(moved + "/node_modules/a.js")), "a");
      EXPECT_EQ(ReadFile(M(moved + "/dist/d.js")), "d");
    }
  };
  check();
  EXPECT_TRUE(Exists(Mem("host/node_modules/app1/dist/d.js")));
  EXPECT_TRUE(Exists(Disk("host/dist/app2/node_modules/a.js")));
  // Every copy is in its tier's kept/ (a file under a name of its own
  // there), and nowhere else.
  for (const auto& [tier, want] : {std::pair{memory_.path(), "app1 memory app2 memory "},
                                   std::pair{disk_, "app1 disk app2 disk "}}) {
    EXPECT_EQ(ShellOutput("cd '" + tier +
                          "/tier/kept' && find . -type f -exec cat {} \\; "
                          "-exec echo \\; | sort | tr '\\n' ' '"),
              want);
    EXPECT_EQ(ShellOutput("find '" + tier + "/tier/upper' -name only-copy.js | wc -l"), "0\n");
  }
  const std::string log = fs_->Log();
  EXPECT_NE(log.find("held 'app1/old', which had to make way"), std::string::npos) << log;
  EXPECT_NE(log.find("held 'app2/only-copy.js', which had to make way"), std::string::npos);
  Restart();
  check();
}

// A tier directory left by a volume directory of that name since gone
// (the volume lost it, or it was replaced behind the mount) is no part of
// the new one: a lookup does not show what it holds, and neither does a
// tree moved to another layer. Its content is set aside with the move.
TEST_P(RoutingTest, AMovedTreeLeavesStaleScaffoldingOut) {
  ASSERT_EQ(Shell("mkdir -p '" + M("p/sub/node_modules") + "'"), 0);
  ASSERT_EQ(WriteFile(M("p/sub/node_modules/old.js"), "old"), 0);
  ASSERT_TRUE(Exists(Mem("p/sub/node_modules/old.js")));
  ASSERT_EQ(fs_->Stop(), 0);
  // Made before the old one goes: another inode number.
  ASSERT_EQ(::mkdir(V("p/new").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(V("p/new/x"), "x"), 0);
  ASSERT_EQ(Shell("rm -rf '" + V("p/sub") + "' && mv '" + V("p/new") + "' '" + V("p/sub") + "'"),
            0);
  std::string error;
  ASSERT_TRUE(fs_->Restart(&error)) << error;
  expect_clean_log_ = false;  // the set-aside is reported
  ASSERT_EQ(ListDir(M("p/sub")), std::vector<std::string>{"x"});

  // Copied to the memory tier.
  ASSERT_EQ(Shell("mkdir -p '" + M("q/node_modules") + "'"), 0);
  ASSERT_EQ(::rename(M("p").c_str(), M("q/node_modules/p").c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(ListDir(M("q/node_modules/p/sub")), std::vector<std::string>{"x"});
  EXPECT_EQ(ReadFile(M("q/node_modules/p/sub/x")), "x");
  EXPECT_TRUE(Exists(Mem("q/node_modules/p/sub/x")));
  EXPECT_EQ(ShellOutput("cd '" + memory_.path() + "/tier/kept' && find . -type f -exec cat {} \\;"),
            "old");
  Restart();
  EXPECT_EQ(ListDir(M("q/node_modules/p/sub")), std::vector<std::string>{"x"});
}

// Review 2026-12-07 #6: an unrouted directory whose routed entry is made,
// renamed or removed (the change lands on a tier only) changes its mtime
// and ctime, as on any filesystem (make, rsync and editors look at them).
TEST_P(RoutingTest, AnUnroutedDirectoryChangesItsTimesWhenARoutedEntryInItChanges) {
  ASSERT_EQ(::mkdir(M("app").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M("app/node_modules").c_str(), 0755), 0);        // now it spans layers
  const struct timespec past[2] = {{946684800, 0}, {946684800, 0}};  // 2000-01-01
  auto changed = [&](const char* what, const std::function<int()>& change) {
    SCOPED_TRACE(what);
    ASSERT_EQ(::utimensat(AT_FDCWD, M("app").c_str(), past, 0), 0);
    const struct stat before = Lstat(M("app"));
    ASSERT_EQ(before.st_mtim.tv_sec, 946684800);
    ASSERT_EQ(change(), 0) << std::strerror(errno);
    const struct stat after = Lstat(M("app"));
    EXPECT_GT(after.st_mtim.tv_sec, 946684800);
  };
  changed("mkdir of a routed name", [&] { return ::mkdir(M("app/dist").c_str(), 0755); });
  changed("rename of a routed name",
          [&] { return ::rename(M("app/dist").c_str(), M("app/build").c_str()); });
  changed("rmdir of a routed name", [&] { return ::rmdir(M("app/build").c_str()); });
  changed("rmdir of the last", [&] { return ::rmdir(M("app/node_modules").c_str()); });
}

DETOURFS_MOUNT_TEST_P(RoutingTest);
DETOURFS_MOUNT_TEST_P(RoutingUncachedTest);

}  // namespace
}  // namespace detourfs::testing
