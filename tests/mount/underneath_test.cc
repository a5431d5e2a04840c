// Changes made underneath the mount (to the served directory directly): the
// daemon re-resolves names and checks identity, so an operation never reaches
// a different file than the one the kernel knew, and data written through the
// mount lands in the served directory.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "lib/files.h"
#include "lib/mount_test.h"

namespace detourfs::testing {
namespace {

using UnderneathTest = SeparateLowerMountTest;

TEST_P(UnderneathTest, LowerServesItsFilesAndReceivesWrites) {
  ASSERT_EQ(WriteFile(L("existing"), "from below"), 0);
  EXPECT_EQ(ReadFile(M("existing")), "from below");
  ASSERT_EQ(WriteFile(M("new"), "from above"), 0);
  EXPECT_EQ(ReadFile(L("new")), "from above");
}

TEST_P(UnderneathTest, AFileReplacedUnderneathIsNeverMistakenForTheOldOne) {
  ASSERT_EQ(WriteFile(L("f"), "original"), 0);
  const ino_t old_ino = Lstat(M("f")).st_ino;  // the kernel now knows f
  ASSERT_EQ(::rename(L("f").c_str(), L("f.old").c_str()), 0);
  ASSERT_EQ(WriteFile(L("f"), "replacement"), 0);
  ASSERT_NE(Lstat(L("f")).st_ino, old_ino);
  expect_clean_log_ = false;  // the daemon warns about the stale node, as it should

  // Opening f by path reaches whatever f is now, never the old inode by
  // mistake; truncation applies to that file only.
  int fd = ::open(M("f").c_str(), O_RDWR | O_TRUNC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::write(fd, "new", 3), 3);
  ::close(fd);
  EXPECT_EQ(ReadFile(L("f")), "new");
  EXPECT_EQ(ReadFile(L("f.old")), "original");
  EXPECT_EQ(ReadFile(M("f.old")), "original");
  // Metadata changes by path also reach the current file only.
  ASSERT_EQ(::chmod(M("f").c_str(), 0600), 0);
  EXPECT_EQ(Lstat(L("f")).st_mode & 0777, 0600U);
  EXPECT_EQ(Lstat(L("f.old")).st_mode & 0777, 0644U);
}

// A directory replaced underneath by a new one (another inode the kernel
// never looked up), then removed or renamed over through the mount: the
// daemon makes a node for it that nothing else holds, and locks its entries
// while it checks it is empty. It must let the lock go before the node goes
// (ASan saw the unlock after the free; maintainer review).
TEST_P(UnderneathTest, DirectoriesReplacedUnderneathAreRemovedAndReplacedThroughTheMount) {
  for (const char* d : {"d", "e", "src"}) ASSERT_EQ(::mkdir(L(d).c_str(), 0755), 0);
  for (const char* d : {"d", "e", "src"}) Lstat(M(d));  // the kernel knows them
  for (const char* d : {"d", "e"}) {
    const std::string fresh = L(std::string(d) + ".new");
    ASSERT_EQ(::mkdir(fresh.c_str(), 0755), 0);
    ASSERT_EQ(::rmdir(L(d).c_str()), 0);
    ASSERT_EQ(::rename(fresh.c_str(), L(d).c_str()), 0);
  }
  expect_clean_log_ = false;  // stale nodes are warned about
  EXPECT_EQ(::rmdir(M("d").c_str()), 0) << std::strerror(errno);
  EXPECT_NE(::access(L("d").c_str(), F_OK), 0);
  EXPECT_EQ(::rename(M("src").c_str(), M("e").c_str()), 0) << std::strerror(errno);
  EXPECT_NE(::access(L("src").c_str(), F_OK), 0);
  EXPECT_EQ(::access(L("e").c_str(), F_OK), 0);
  // A non-empty one answers ENOTEMPTY, and stays.
  ASSERT_EQ(::mkdir(L("f").c_str(), 0755), 0);
  Lstat(M("f"));
  ASSERT_EQ(::rmdir(L("f").c_str()), 0);
  ASSERT_EQ(::mkdir(L("f").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(L("f/x"), "x"), 0);
  EXPECT_EQ(::rmdir(M("f").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  EXPECT_EQ(ReadFile(M("f/x")), "x");
}

TEST_P(UnderneathTest, AFileDeletedUnderneathDisappearsThroughTheMount) {
  ASSERT_EQ(WriteFile(L("gone"), "x"), 0);
  ASSERT_EQ(ReadFile(M("gone")), "x");
  ASSERT_EQ(::unlink(L("gone").c_str()), 0);
  // The kernel may still trust its cached name for a while (docs/caching.md):
  // opening it then fails, or (while the last handle's asynchronous release is
  // in flight) reaches the very same deleted file. Never another file.
  int err = 0;
  std::string content = ReadFile(M("gone"), &err);
  EXPECT_TRUE(err == ENOENT || err == ESTALE || (err == 0 && content == "x"))
      << std::strerror(err) << " '" << content << "'";
  // Listings are never cached: the name is gone from them at once.
  EXPECT_EQ(ShellOutput("ls " + fs_->tree()), "");
  expect_clean_log_ = false;  // the daemon may warn about the stale handle
}

// A file with a second link the mount never looked up: unlinking the name it
// knows leaves the node without a known name, yet the kernel still uses it
// (its ctime flush after unlink, an open fd). Found by npm ci over a tree
// where esbuild's binary is hard-linked.
TEST_P(UnderneathTest, UnlinkingTheOnlyKnownLinkOfAHardLinkedFile) {
  ASSERT_EQ(WriteFile(fs_->lower() + "/a", "shared"), 0);
  ASSERT_EQ(::link((fs_->lower() + "/a").c_str(), (fs_->lower() + "/b").c_str()), 0);
  int fd = ::open(M("a").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::unlink(M("a").c_str()), 0);
  EXPECT_EQ(::fchmod(fd, 0600), 0);
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 1U);
  ::close(fd);
  EXPECT_EQ(ReadFile(M("b")), "shared");
}

DETOURFS_MOUNT_TEST_P(UnderneathTest);

}  // namespace
}  // namespace detourfs::testing
