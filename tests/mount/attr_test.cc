// Attributes through a real mount: chmod, chown, utimensat with explicit
// times, UTIME_NOW and UTIME_OMIT, symlink times, access, and what writes,
// truncates and chowns leave of setuid, setgid and file capabilities.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

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

// What a write, a truncate or a chown leaves of S_ISUID and S_ISGID, as on a
// local filesystem: a caller without CAP_FSETID clears both (S_ISGID only with
// group execute: without it the bit marks mandatory locking and stays); root
// keeps them on a write; a chown clears them whoever does it.
int WriteAsUser(const std::string& p) {
  return AsUser(kUser, kGroup, [&] {
    int fd = ::open(p.c_str(), O_WRONLY | O_APPEND);
    if (fd < 0) return errno;
    int rc = ::write(fd, "y", 1) == 1 ? 0 : errno;
    ::close(fd);
    return rc;
  });
}

std::string MakeFileWithMode(const std::string& p, mode_t mode) {
  EXPECT_EQ(WriteFile(p, "x"), 0);
  EXPECT_EQ(::chmod(p.c_str(), mode), 0);
  return p;
}

TEST_P(AttrTest, WriteByAnotherUserClearsSetuid) {
  const std::string p = MakeFileWithMode(M("suid"), 04777);
  ASSERT_EQ(WriteAsUser(p), 0);
  EXPECT_EQ(Lstat(p).st_mode & 07777, 0777U);
  // Again after the kernel has seen the file written without privileges to
  // clear (it stops checking until the mode or a security xattr changes).
  ASSERT_EQ(::chmod(p.c_str(), 04777), 0);
  ASSERT_EQ(WriteAsUser(p), 0);
  EXPECT_EQ(Lstat(p).st_mode & 07777, 0777U);
}

TEST_P(AttrTest, WriteByAnotherUserClearsSetgidOnlyWithGroupExecute) {
  const std::string gx = MakeFileWithMode(M("sgid-gx"), 02777);
  const std::string locking = MakeFileWithMode(M("sgid-locking"), 02666);
  ASSERT_EQ(WriteAsUser(gx), 0);
  ASSERT_EQ(WriteAsUser(locking), 0);
  EXPECT_EQ(Lstat(gx).st_mode & 07777, 0777U);
  EXPECT_EQ(Lstat(locking).st_mode & 07777, 02666U) << "setgid without g+x is not a privilege";
}

TEST_P(AttrTest, WriteByRootKeepsSetuidAndSetgid) {
  const std::string p = MakeFileWithMode(M("suid"), 06755);
  int fd = ::open(p.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "y", 1), 1);
  ASSERT_EQ(::fsync(fd), 0);
  ::close(fd);
  EXPECT_EQ(Lstat(p).st_mode & 07777, 06755U);
  EXPECT_EQ(Lstat(p).st_size, 2);
}

TEST_P(AttrTest, TruncateByAnotherUserClearsSetuid) {
  const std::string by_path = MakeFileWithMode(M("by-path"), 06777);
  const std::string by_fd = MakeFileWithMode(M("by-fd"), 06777);
  const std::string by_open = MakeFileWithMode(M("by-open"), 06777);
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return Err(::truncate(by_path.c_str(), 1)); }), 0);
  EXPECT_EQ(AsUser(kUser, kGroup,
                   [&] {
                     int fd = ::open(by_fd.c_str(), O_WRONLY);
                     if (fd < 0) return errno;
                     int rc = Err(::ftruncate(fd, 0));
                     ::close(fd);
                     return rc;
                   }),
            0);
  EXPECT_EQ(OpenAsUser(kUser, kGroup, by_open, O_WRONLY | O_TRUNC), 0);
  for (const std::string& p : {by_path, by_fd, by_open}) {
    EXPECT_EQ(Lstat(p).st_mode & 07777, 0777U) << p;
  }
  EXPECT_EQ(Lstat(by_open).st_size, 0);
}

// The kernel trusts "no such name" for a while; a file made behind the
// mount meanwhile (on a separate volume directory here) reaches the daemon
// as a CREATE without O_EXCL, which opens it: an O_TRUNC by another user
// must clear setuid and setgid as an open of the known file does.
using AttrBehindTheMountTest = SeparateLowerMountTest;

TEST_P(AttrBehindTheMountTest, TruncatingCreateOfAFileMadeBehindTheMountClearsSetuid) {
  ASSERT_EQ(::mkdir(M("d").c_str(), 0777), 0);
  ASSERT_EQ(::chmod(M("d").c_str(), 0777), 0);
  const std::string p = M("d/late");
  ASSERT_NE(::access(p.c_str(), F_OK), 0);  // cached by the kernel: no such name
  const std::string behind = L("d/late");
  ASSERT_EQ(WriteFile(behind, "x"), 0);
  ASSERT_EQ(::chmod(behind.c_str(), 06777), 0);
  EXPECT_EQ(OpenAsUser(kUser, kGroup, p, O_WRONLY | O_CREAT | O_TRUNC), 0);
  struct stat st = Lstat(p);
  EXPECT_EQ(st.st_mode & 07777, 0777U);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(Lstat(behind).st_mode & 07777, 0777U);
}

TEST_P(AttrTest, ChownClearsSetuidEvenByRoot) {
  const std::string p = MakeFileWithMode(M("suid"), 06755);
  ASSERT_EQ(::chown(p.c_str(), 1234, 1234), 0);
  EXPECT_EQ(Lstat(p).st_mode & 07777, 0755U);
  const std::string locking = MakeFileWithMode(M("sgid-locking"), 02644);
  ASSERT_EQ(::chown(locking.c_str(), 1234, 1234), 0);
  EXPECT_EQ(Lstat(locking).st_mode & 07777, 02644U);
  ASSERT_EQ(::mkdir(M("dir").c_str(), 02755), 0);
  ASSERT_EQ(::chmod(M("dir").c_str(), 02755), 0);
  ASSERT_EQ(::chown(M("dir").c_str(), 1234, 1234), 0);
  EXPECT_EQ(Lstat(M("dir")).st_mode & 07777, 02755U) << "a directory keeps its setgid";
}

TEST_P(AttrTest, WriteDropsFileCapabilities) {
  const std::string p = MakeFileWithMode(M("capped"), 0755);
  // A vfs_cap_data, revision 2, with CAP_NET_RAW permitted.
  const uint32_t cap[5] = {0x02000000, 1U << 13, 0, 0, 0};
  ASSERT_EQ(::setxattr(p.c_str(), "security.capability", cap, sizeof(cap), 0), 0);
  char buf[64];
  ASSERT_EQ(::getxattr(p.c_str(), "security.capability", buf, sizeof(buf)), 20);
  auto append = [&p] {
    int fd = ::open(p.c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "y", 1), 1);
    ::close(fd);
  };
  append();
  EXPECT_EQ(::getxattr(p.c_str(), "security.capability", buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, ENODATA);
  // Set again on a file already written: the next write still drops it.
  ASSERT_EQ(::setxattr(p.c_str(), "security.capability", cap, sizeof(cap), 0), 0);
  append();
  EXPECT_EQ(::getxattr(p.c_str(), "security.capability", buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, ENODATA);
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
DETOURFS_MOUNT_TEST_P(AttrBehindTheMountTest);

}  // namespace
}  // namespace detourfs::testing
