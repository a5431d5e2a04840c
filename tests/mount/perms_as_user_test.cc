// Ownership and permissions for an unprivileged user through a real mount:
// new nodes belong to the caller, setgid directories pass their group on,
// the kernel's permission checks (modes, sticky bit, supplementary groups)
// hold as on a local filesystem.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "lib/as_user.h"
#include "lib/files.h"
#include "lib/mount_test.h"

namespace detourfs::testing {
namespace {

class PermsTest : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (fs_) {
      ASSERT_EQ(::chmod(fs_->tree().c_str(), 0777), 0);
    }
  }
};

int Err(int rc) { return rc < 0 ? errno : 0; }

TEST_P(PermsTest, NodesBelongToTheCallingUser) {
  const std::string f = M("f"), d = M("d"), l = M("l"), p = M("p");
  ASSERT_EQ(AsUser(kUser, kGroup,
                   [&] {
                     if (WriteFile(f, "x") != 0) return errno;
                     if (::mkdir(d.c_str(), 0755) != 0) return errno;
                     if (::symlink("f", l.c_str()) != 0) return errno;
                     if (::mkfifo(p.c_str(), 0600) != 0) return errno;
                     return 0;
                   }),
            0);
  for (const std::string& path : {f, d, l, p}) {
    struct stat st = Lstat(path);
    EXPECT_EQ(st.st_uid, kUser) << path;
    EXPECT_EQ(st.st_gid, kGroup) << path;
  }
  // The same holds in the directory underneath, where the data really is.
  ASSERT_EQ(fs_->Stop(), 0);
  EXPECT_EQ(Lstat(f).st_uid, kUser);
  EXPECT_EQ(Lstat(d).st_gid, kGroup);
}

TEST_P(PermsTest, SetgidDirectoryGivesItsGroup) {
  ASSERT_EQ(::mkdir(M("team").c_str(), 0777), 0);
  ASSERT_EQ(::chown(M("team").c_str(), 0, 4000), 0);
  ASSERT_EQ(::chmod(M("team").c_str(), 02777), 0);
  const std::string f = M("team/f"), d = M("team/d");
  ASSERT_EQ(AsUser(kUser, kGroup,
                   [&] {
                     if (WriteFile(f, "x") != 0) return errno;
                     return Err(::mkdir(d.c_str(), 0755));
                   },
                   {4000}),
            0);
  EXPECT_EQ(Lstat(f).st_gid, 4000U);
  EXPECT_EQ(Lstat(f).st_uid, kUser);
  EXPECT_EQ(Lstat(d).st_gid, 4000U);
  EXPECT_TRUE(Lstat(d).st_mode & S_ISGID) << "subdirectories inherit setgid";
  // Also when the setgid directory's group is root's own group.
  ASSERT_EQ(::mkdir(M("rootgroup").c_str(), 02777), 0);
  ASSERT_EQ(::chmod(M("rootgroup").c_str(), 02777), 0);
  const std::string g = M("rootgroup/f");
  ASSERT_EQ(AsUser(kUser, kGroup, [&] { return WriteFile(g, "x"); }), 0);
  EXPECT_EQ(Lstat(g).st_gid, 0U);
}

TEST_P(PermsTest, ModeBitsAreEnforced) {
  ASSERT_EQ(WriteFile(M("rootfile"), "x", 0644), 0);
  ASSERT_EQ(::mkdir(M("closed").c_str(), 0700), 0);
  ASSERT_EQ(::chmod(M("closed").c_str(), 0700), 0);
  const std::string f = M("rootfile"), c = M("closed/new");
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return WriteFile(f, "y"); }), EACCES);
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return WriteFile(c, "y"); }), EACCES);
  EXPECT_EQ(AsUser(kUser, kGroup,
                   [&] {
                     int e = 0;
                     ReadFile(f, &e);
                     return e;
                   }),
            0);
  EXPECT_EQ(ReadFile(f), "x");
}

TEST_P(PermsTest, StickyDirectoryProtectsOthersFiles) {
  ASSERT_EQ(::mkdir(M("tmp").c_str(), 01777), 0);
  ASSERT_EQ(::chmod(M("tmp").c_str(), 01777), 0);
  const std::string mine = M("tmp/mine"), theirs = M("tmp/theirs");
  ASSERT_EQ(AsUser(kOtherUser, kOtherGroup, [&] { return WriteFile(theirs, "t", 0666); }), 0);
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return Err(::unlink(theirs.c_str())); }), EPERM);
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return Err(::rename(theirs.c_str(), mine.c_str())); }),
            EPERM);
  ASSERT_EQ(AsUser(kUser, kGroup, [&] { return WriteFile(mine, "m"); }), 0);
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return Err(::unlink(mine.c_str())); }), 0);
}

TEST_P(PermsTest, SupplementaryGroupGrantsWriteAccess) {
  ASSERT_EQ(::mkdir(M("proj").c_str(), 0770), 0);
  ASSERT_EQ(::chown(M("proj").c_str(), 0, 5000), 0);
  ASSERT_EQ(::chmod(M("proj").c_str(), 0770), 0);
  const std::string f = M("proj/f");
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return WriteFile(f, "x"); }), EACCES);
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return WriteFile(f, "x"); }, {5000}), 0);
  EXPECT_EQ(Lstat(f).st_uid, kUser);
  EXPECT_EQ(Lstat(f).st_gid, kGroup);
}

TEST_P(PermsTest, CreateOverAnExistingFileKeepsItsOwner) {
  ASSERT_EQ(WriteFile(M("shared"), "root's", 0666), 0);
  ASSERT_EQ(::chmod(M("shared").c_str(), 0666), 0);
  const std::string p = M("shared");
  ASSERT_EQ(OpenAsUser(kUser, kGroup, p, O_CREAT | O_WRONLY | O_TRUNC, 0600), 0);
  EXPECT_EQ(Lstat(p).st_uid, 0U);
  EXPECT_EQ(Lstat(p).st_mode & 0777, 0666U);
}

DETOURFS_MOUNT_TEST_P(PermsTest);

}  // namespace
}  // namespace detourfs::testing
