// Attributes through a real mount: chmod, chown, utimensat with explicit
// times, UTIME_NOW and UTIME_OMIT, symlink times, access.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "lib/as_user.h"
#include "lib/files.h"
#include "lib/mount_test.h"

namespace detourfs::testing {
namespace {

using AttrTest = MountTest;

TEST_P(AttrTest, ChmodAndChown) {
  ASSERT_EQ(WriteFile(M("f"), "x"), 0);
  ASSERT_EQ(::chmod(M("f").c_str(), 04751), 0);
  EXPECT_EQ(Lstat(M("f")).st_mode & 07777, 04751U);
  ASSERT_EQ(::chown(M("f").c_str(), 1234, 5678), 0);
  struct stat st = Lstat(M("f"));
  EXPECT_EQ(st.st_uid, 1234U);
  EXPECT_EQ(st.st_gid, 5678U);
  ASSERT_EQ(::chown(M("f").c_str(), static_cast<uid_t>(-1), 42), 0);
  st = Lstat(M("f"));
  EXPECT_EQ(st.st_uid, 1234U);
  EXPECT_EQ(st.st_gid, 42U);
  ASSERT_EQ(::symlink("f", M("l").c_str()), 0);
  ASSERT_EQ(::lchown(M("l").c_str(), 77, 88), 0);
  EXPECT_EQ(Lstat(M("l")).st_uid, 77U);
  EXPECT_EQ(Lstat(M("f")).st_uid, 1234U) << "lchown must not follow the link";
}

TEST_P(AttrTest, UnprivilegedChownAndChmodOfOthersFilesAreRefused) {
  ASSERT_EQ(WriteFile(M("root-owned"), "x"), 0);
  ASSERT_EQ(WriteFile(M("mine"), "x"), 0);
  ASSERT_EQ(::chown(M("mine").c_str(), kUser, kGroup), 0);
  const std::string root_owned = M("root-owned"), mine = M("mine");
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return Err(::chmod(root_owned.c_str(), 0777)); }), EPERM);
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return Err(::chown(mine.c_str(), 0, 0)); }), EPERM);
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return Err(::chmod(mine.c_str(), 0600)); }), 0);
  EXPECT_EQ(Lstat(mine).st_mode & 0777, 0600U);
}

TEST_P(AttrTest, WriteByAnotherUserClearsSetuid) {
  ASSERT_EQ(WriteFile(M("suid"), "x"), 0);
  ASSERT_EQ(::chmod(M("suid").c_str(), 04777), 0);
  const std::string p = M("suid");
  ASSERT_EQ(AsUser(kUser, kGroup,
                   [&] {
                     int fd = ::open(p.c_str(), O_WRONLY | O_APPEND);
                     if (fd < 0) return errno;
                     int rc = ::write(fd, "y", 1) == 1 ? 0 : errno;
                     ::close(fd);
                     return rc;
                   }),
            0);
  EXPECT_EQ(Lstat(p).st_mode & 07000, 0U);
}

TEST_P(AttrTest, UtimensExplicitNowAndOmit) {
  ASSERT_EQ(WriteFile(M("t"), "x"), 0);
  struct timespec times[2] = {{1000000000, 123456789}, {1200000000, 987654321}};
  ASSERT_EQ(::utimensat(AT_FDCWD, M("t").c_str(), times, 0), 0);
  struct stat st = Lstat(M("t"));
  EXPECT_EQ(st.st_atim.tv_sec, 1000000000);
  EXPECT_EQ(st.st_atim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 987654321);
  struct timespec omit_now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  ASSERT_EQ(::utimensat(AT_FDCWD, M("t").c_str(), omit_now, 0), 0);
  st = Lstat(M("t"));
  EXPECT_EQ(st.st_atim.tv_sec, 1000000000) << "UTIME_OMIT changed atime";
  EXPECT_GT(st.st_mtim.tv_sec, 1700000000) << "UTIME_NOW did not set mtime";
  // Through an open file (futimens).
  int fd = ::open(M("t").c_str(), O_RDWR);
  struct timespec fixed[2] = {{5, 0}, {6, 0}};
  ASSERT_EQ(::futimens(fd, fixed), 0);
  ::close(fd);
  EXPECT_EQ(Lstat(M("t")).st_mtim.tv_sec, 6);
}

TEST_P(AttrTest, SymlinkTimesAreTheLinksOwn) {
  ASSERT_EQ(WriteFile(M("target"), "x"), 0);
  ASSERT_EQ(::symlink("target", M("link").c_str()), 0);
  struct timespec times[2] = {{111, 0}, {222, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, M("link").c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(Lstat(M("link")).st_mtim.tv_sec, 222);
  EXPECT_NE(Lstat(M("target")).st_mtim.tv_sec, 222);
}

TEST_P(AttrTest, TimesOfOthersFilesNeedOwnership) {
  ASSERT_EQ(WriteFile(M("f"), "x", 0644), 0);
  const std::string p = M("f");
  struct timespec times[2] = {{1, 0}, {2, 0}};
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return Err(::utimensat(AT_FDCWD, p.c_str(), times, 0)); }),
            EPERM);
  // touch (UTIME_NOW) needs only write permission.
  ASSERT_EQ(::chmod(p.c_str(), 0666), 0);
  EXPECT_EQ(
      AsUser(kUser, kGroup, [&] { return Err(::utimensat(AT_FDCWD, p.c_str(), nullptr, 0)); }), 0);
}

TEST_P(AttrTest, AccessFollowsModeBits) {
  ASSERT_EQ(WriteFile(M("ro"), "x", 0444), 0);
  ASSERT_EQ(::chmod(M("ro").c_str(), 0444), 0);
  const std::string p = M("ro");
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return Err(::access(p.c_str(), R_OK)); }), 0);
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return Err(::access(p.c_str(), W_OK)); }), EACCES);
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return Err(::access(p.c_str(), X_OK)); }), EACCES);
  EXPECT_EQ(Err(::access(M("missing").c_str(), F_OK)), ENOENT);
}

DETOURFS_MOUNT_TEST_P(AttrTest);

}  // namespace
}  // namespace detourfs::testing
