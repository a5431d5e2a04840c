// Names through a real mount: lookup, mkdir, rmdir, unlink, symlink, readlink,
// link, mknod, rename (NOREPLACE, EXCHANGE), with the errnos a local
// filesystem gives. Where an errno is the point, the same call runs on the
// reference directory of the same filesystem type and both must agree.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>

#include "lib/as_user.h"
#include "lib/files.h"
#include "lib/mount_test.h"

namespace detourfs::testing {
namespace {

class NamespaceTest : public MountTest {
 protected:
  // Runs `op` on the mount and on the reference directory; both must give the
  // same result (0 or errno).
  void ExpectParity(const std::function<int(const std::string& root)>& op, const char* what) {
    int on_mount = op(fs_->tree());
    int on_ref = op(fs_->ref());
    EXPECT_EQ(on_mount, on_ref) << what << ": mount gave " << std::strerror(on_mount)
                                << ", reference gave " << std::strerror(on_ref);
  }
};

int Err(int rc) { return rc < 0 ? errno : 0; }

TEST_P(NamespaceTest, LookupOfMissingNameIsENOENT) {
  int err = 0;
  Lstat(M("missing"), &err);
  EXPECT_EQ(err, ENOENT);
  Lstat(M("missing/below"), &err);
  EXPECT_EQ(err, ENOENT);
}

TEST_P(NamespaceTest, NameTooLongIsENAMETOOLONG) {
  const std::string longname(300, 'x');
  ExpectParity(
      [&](const std::string& r) { return Err(::mkdir((r + "/" + longname).c_str(), 0755)); },
      "mkdir 300-byte name");
  ExpectParity([&](const std::string& r) { return WriteFile(r + "/" + longname, "x"); },
               "create 300-byte name");
}

TEST_P(NamespaceTest, MkdirRmdirAndTheirErrors) {
  for (const std::string& root : {fs_->tree(), fs_->ref()}) {
    ASSERT_EQ(::mkdir((root + "/d").c_str(), 0750), 0);
    ASSERT_EQ(WriteFile(root + "/d/f", "x"), 0);
    ASSERT_EQ(WriteFile(root + "/file", "x"), 0);
  }
  struct stat st = Lstat(M("d"));
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750U & ~0U);
  ExpectParity([](const std::string& r) { return Err(::mkdir((r + "/d").c_str(), 0755)); },
               "mkdir existing");
  ExpectParity([](const std::string& r) { return Err(::rmdir((r + "/d").c_str())); },
               "rmdir non-empty");
  ExpectParity([](const std::string& r) { return Err(::rmdir((r + "/file").c_str())); },
               "rmdir file");
  ExpectParity([](const std::string& r) { return Err(::unlink((r + "/d").c_str())); },
               "unlink directory");
  ExpectParity([](const std::string& r) { return Err(::mkdir((r + "/file/x").c_str(), 0755)); },
               "mkdir below a file");
  ExpectParity([](const std::string& r) { return Err(::unlink((r + "/d/f").c_str())); },
               "unlink file");
  ExpectParity([](const std::string& r) { return Err(::rmdir((r + "/d").c_str())); },
               "rmdir now empty");
  int err = 0;
  Lstat(M("d"), &err);
  EXPECT_EQ(err, ENOENT);
}

TEST_P(NamespaceTest, SymlinkAndReadlink) {
  ASSERT_EQ(::symlink("target/that/does/not/exist", M("s").c_str()), 0);
  char buf[256];
  ssize_t n = ::readlink(M("s").c_str(), buf, sizeof(buf));
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "target/that/does/not/exist");
  EXPECT_TRUE(S_ISLNK(Lstat(M("s")).st_mode));
  ASSERT_EQ(WriteFile(M("real"), "through the link"), 0);
  ASSERT_EQ(::symlink("real", M("s2").c_str()), 0);
  EXPECT_EQ(ReadFile(M("s2")), "through the link");
  ASSERT_EQ(::symlink("loop", M("loop").c_str()), 0);
  ExpectParity(
      [](const std::string& r) {
        if (::symlink("loop", (r + "/loop").c_str()) != 0 && errno != EEXIST) return errno;
        int fd = ::open((r + "/loop").c_str(), O_RDONLY);
        if (fd >= 0) ::close(fd);
        return Err(fd);
      },
      "open a symlink loop");
  ExpectParity(
      [](const std::string& r) {
        char buf[16];
        return Err(::readlink(r.c_str(), buf, sizeof(buf)) < 0 ? -1 : 0);
      },
      "readlink of a directory");
  ExpectParity([](const std::string& r) { return Err(::symlink("x", (r + "/").c_str())); },
               "symlink over existing");
}

TEST_P(NamespaceTest, HardLinksShareInodeAndCount) {
  ASSERT_EQ(WriteFile(M("a"), "shared"), 0);
  ASSERT_EQ(::mkdir(M("sub").c_str(), 0755), 0);
  ASSERT_EQ(::link(M("a").c_str(), M("sub/b").c_str()), 0);
  struct stat a = Lstat(M("a")), b = Lstat(M("sub/b"));
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2U);
  ASSERT_EQ(WriteFile(M("sub/b"), "changed"), 0);
  EXPECT_EQ(ReadFile(M("a")), "changed");
  ASSERT_EQ(::unlink(M("a").c_str()), 0);
  EXPECT_EQ(Lstat(M("sub/b")).st_nlink, 1U);
  EXPECT_EQ(ReadFile(M("sub/b")), "changed");
  for (const std::string& root : {fs_->tree(), fs_->ref()}) {
    ASSERT_EQ(::mkdir((root + "/dir").c_str(), 0755), 0);
    ASSERT_EQ(WriteFile(root + "/x", ""), 0);
  }
  ExpectParity(
      [](const std::string& r) { return Err(::link((r + "/dir").c_str(), (r + "/d2").c_str())); },
      "link a directory");
  ExpectParity(
      [](const std::string& r) { return Err(::link((r + "/x").c_str(), (r + "/dir").c_str())); },
      "link over existing");
  ExpectParity(
      [](const std::string& r) { return Err(::link((r + "/nope").c_str(), (r + "/y").c_str())); },
      "link missing source");
}

TEST_P(NamespaceTest, MknodMakesFifosSocketsFilesAndDevices) {
  ASSERT_EQ(::mknod(M("fifo").c_str(), S_IFIFO | 0640, 0), 0);
  ASSERT_EQ(::mknod(M("sock").c_str(), S_IFSOCK | 0600, 0), 0);
  ASSERT_EQ(::mknod(M("reg").c_str(), S_IFREG | 0600, 0), 0);
  ASSERT_EQ(::mknod(M("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  EXPECT_TRUE(S_ISFIFO(Lstat(M("fifo")).st_mode));
  EXPECT_EQ(Lstat(M("fifo")).st_mode & 0777, 0640U & ~022U);
  EXPECT_TRUE(S_ISSOCK(Lstat(M("sock")).st_mode));
  EXPECT_TRUE(S_ISREG(Lstat(M("reg")).st_mode));
  struct stat dev = Lstat(M("null"));
  EXPECT_TRUE(S_ISCHR(dev.st_mode));
  EXPECT_EQ(dev.st_rdev, makedev(1, 3));
  // An unprivileged caller may not make devices (the kernel says EPERM).
  ASSERT_EQ(::chmod(fs_->tree().c_str(), 0777), 0);
  const std::string path = M("userdev");
  EXPECT_EQ(AsUser(kUser, kGroup,
                   [&] { return Err(::mknod(path.c_str(), S_IFCHR | 0600, makedev(1, 3))); }),
            EPERM);
  EXPECT_EQ(AsUser(kUser, kGroup,
                   [&] { return Err(::mknod((path + "fifo").c_str(), S_IFIFO | 0600, 0)); }),
            0);
}

TEST_P(NamespaceTest, FifoPassesDataThroughTheMount) {
  ASSERT_EQ(::mkfifo(M("pipe").c_str(), 0600), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(M("pipe").c_str(), O_WRONLY);
    (void)!::write(fd, "ping", 4);
    ::_exit(0);
  }
  int fd = ::open(M("pipe").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char buf[8] = {};
  EXPECT_EQ(::read(fd, buf, sizeof(buf)), 4);
  EXPECT_STREQ(buf, "ping");
  ::close(fd);
  ::waitpid(pid, nullptr, 0);
}

TEST_P(NamespaceTest, RenameMovesReplacesAndKeepsInode) {
  ASSERT_EQ(WriteFile(M("a"), "A"), 0);
  ASSERT_EQ(WriteFile(M("b"), "B"), 0);
  ASSERT_EQ(::mkdir(M("d").c_str(), 0755), 0);
  const ino_t ino = Lstat(M("a")).st_ino;
  ASSERT_EQ(::rename(M("a").c_str(), M("d/a2").c_str()), 0);
  EXPECT_EQ(Lstat(M("d/a2")).st_ino, ino);
  EXPECT_EQ(ReadFile(M("d/a2")), "A");
  ASSERT_EQ(::rename(M("d/a2").c_str(), M("b").c_str()), 0);  // replaces b
  EXPECT_EQ(ReadFile(M("b")), "A");
  int err = 0;
  Lstat(M("d/a2"), &err);
  EXPECT_EQ(err, ENOENT);
  // A renamed directory takes its contents along.
  ASSERT_EQ(WriteFile(M("d/inner"), "in"), 0);
  ASSERT_EQ(::rename(M("d").c_str(), M("e").c_str()), 0);
  EXPECT_EQ(ReadFile(M("e/inner")), "in");
  Lstat(M("d/inner"), &err);
  EXPECT_EQ(err, ENOENT);
}

TEST_P(NamespaceTest, RenameNoreplaceAndExchange) {
  ASSERT_EQ(WriteFile(M("x"), "X"), 0);
  ASSERT_EQ(WriteFile(M("y"), "Y"), 0);
  EXPECT_EQ(Err(::renameat2(AT_FDCWD, M("x").c_str(), AT_FDCWD, M("y").c_str(), RENAME_NOREPLACE)),
            EEXIST);
  EXPECT_EQ(ReadFile(M("y")), "Y");
  ASSERT_EQ(::renameat2(AT_FDCWD, M("x").c_str(), AT_FDCWD, M("z").c_str(), RENAME_NOREPLACE), 0);
  ASSERT_EQ(::renameat2(AT_FDCWD, M("z").c_str(), AT_FDCWD, M("y").c_str(), RENAME_EXCHANGE), 0);
  EXPECT_EQ(ReadFile(M("z")), "Y");
  EXPECT_EQ(ReadFile(M("y")), "X");
  // Exchange a file and a directory; each keeps its inode under the new name.
  ASSERT_EQ(::mkdir(M("dir").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("dir/f"), "F"), 0);
  ino_t dir_ino = Lstat(M("dir")).st_ino;
  ASSERT_EQ(::renameat2(AT_FDCWD, M("dir").c_str(), AT_FDCWD, M("z").c_str(), RENAME_EXCHANGE), 0);
  EXPECT_EQ(Lstat(M("z")).st_ino, dir_ino);
  EXPECT_EQ(ReadFile(M("z/f")), "F");
  EXPECT_EQ(ReadFile(M("dir")), "Y");
  EXPECT_EQ(
      Err(::renameat2(AT_FDCWD, M("nope").c_str(), AT_FDCWD, M("y").c_str(), RENAME_EXCHANGE)),
      ENOENT);
}

TEST_P(NamespaceTest, RenameErrorsMatchTheLocalFilesystem) {
  for (const std::string& root : {fs_->tree(), fs_->ref()}) {
    ASSERT_EQ(::mkdir((root + "/d1").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root + "/d2").c_str(), 0755), 0);
    ASSERT_EQ(WriteFile(root + "/d2/f", "x"), 0);
    ASSERT_EQ(::mkdir((root + "/d3").c_str(), 0755), 0);
    ASSERT_EQ(WriteFile(root + "/file", "x"), 0);
  }
  ExpectParity(
      [](const std::string& r) { return Err(::rename((r + "/d1").c_str(), (r + "/d2").c_str())); },
      "dir over non-empty dir");
  ExpectParity(
      [](const std::string& r) {
        return Err(::rename((r + "/file").c_str(), (r + "/d1").c_str()));
      },
      "file over dir");
  ExpectParity(
      [](const std::string& r) {
        return Err(::rename((r + "/d1").c_str(), (r + "/file").c_str()));
      },
      "dir over file");
  ExpectParity(
      [](const std::string& r) {
        return Err(::rename((r + "/d1").c_str(), (r + "/d1/sub").c_str()));
      },
      "dir into itself");
  ExpectParity(
      [](const std::string& r) {
        return Err(::rename((r + "/missing").c_str(), (r + "/x").c_str()));
      },
      "missing source");
  ExpectParity(
      [](const std::string& r) { return Err(::rename((r + "/d1").c_str(), (r + "/d3").c_str())); },
      "dir over empty dir");
}

TEST_P(NamespaceTest, RenameBetweenHardLinksOfOneFileLeavesBoth) {
  ASSERT_EQ(WriteFile(M("a"), "same"), 0);
  ASSERT_EQ(::link(M("a").c_str(), M("b").c_str()), 0);
  ASSERT_EQ(::rename(M("a").c_str(), M("b").c_str()), 0);
  EXPECT_EQ(ReadFile(M("a")), "same");
  EXPECT_EQ(ReadFile(M("b")), "same");
}

TEST_P(NamespaceTest, InodeNumberReuseAfterUnlinkDoesNotConfuseFiles) {
  // Create and delete many files while keeping one unlinked file open: no new
  // file may be mistaken for it, even if the filesystem reuses its inode.
  ASSERT_EQ(WriteFile(M("keep"), "kept"), 0);
  int fd = ::open(M("keep").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::unlink(M("keep").c_str()), 0);
  for (int i = 0; i < 200; ++i) {
    const std::string p = M("f" + std::to_string(i));
    ASSERT_EQ(WriteFile(p, "new" + std::to_string(i)), 0);
    EXPECT_EQ(ReadFile(p), "new" + std::to_string(i));
  }
  char buf[16] = {};
  EXPECT_EQ(::pread(fd, buf, sizeof(buf), 0), 4);
  EXPECT_STREQ(buf, "kept");
  ::close(fd);
}

DETOURFS_MOUNT_TEST_P(NamespaceTest);

}  // namespace
}  // namespace detourfs::testing

namespace detourfs::testing {
namespace {

// With a tiny fd cache, removed files are not cached when the kernel comes
// back for them (it flushes ctime after unlink with the writeback cache): the
// daemon must still reach them. TearDown fails on any warning in the log.
class SmallFdCacheTest : public MountTest {
 protected:
  MountConfig Config() const override {
    MountConfig c = MountTest::Config();
    c.extra_args = {"--fd-cache", "16"};
    return c;
  }
};

TEST_P(SmallFdCacheTest, RemovedAndReplacedFilesStayUsableWhileReferenced) {
  ASSERT_EQ(::mkdir(M("d").c_str(), 0755), 0);
  for (int i = 0; i < 300; ++i) ASSERT_EQ(WriteFile(M("d/f" + std::to_string(i)), "x"), 0);
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(WriteFile(M("d/new" + std::to_string(i)), "new"), 0);
    ASSERT_EQ(
        ::rename(M("d/new" + std::to_string(i)).c_str(), M("d/f" + std::to_string(i)).c_str()), 0);
  }
  EXPECT_EQ(ReadFile(M("d/f7")), "new");
  // A removed directory that is still a process's cwd can still be stat'ed.
  ASSERT_EQ(::mkdir(M("cwd").c_str(), 0755), 0);
  int dirfd = ::open(M("cwd").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dirfd, 0);
  ASSERT_EQ(::rmdir(M("cwd").c_str()), 0);
  struct stat st {};
  EXPECT_EQ(::fstat(dirfd, &st), 0) << std::strerror(errno);
  ::close(dirfd);
  ASSERT_EQ(Shell("rm -rf " + M("d")), 0);
}

DETOURFS_MOUNT_TEST_P(SmallFdCacheTest);

}  // namespace
}  // namespace detourfs::testing
