// Whiteout and opaque markers on a real directory (root: trusted.* xattrs
// and device nodes), and the reserved xattr names.
#include "overlay/markers.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace detourfs::markers {
namespace {

class MarkersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (trusted.* xattrs, mknod)";
    char tmpl[] = "/dev/shm/detourfs-markers.XXXXXX";  // tmpfs, like a memory tier
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fd_ = ::open(dir_.c_str(), O_PATH | O_DIRECTORY);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
    if (!dir_.empty()) std::system(("rm -rf '" + dir_ + "'").c_str());
  }
  struct stat Lstat(const char* name) {
    struct stat st {};
    EXPECT_EQ(::fstatat(fd_, name, &st, AT_SYMLINK_NOFOLLOW), 0) << name;
    return st;
  }
  std::string dir_;
  int fd_ = -1;
};

TEST_F(MarkersTest, AWhiteoutIsRecognised) {
  ASSERT_TRUE(MakeWhiteout(fd_, "gone").ok());
  Result<bool> w = IsWhiteout(fd_, "gone", Lstat("gone"));
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(*w);
  EXPECT_EQ(MakeWhiteout(fd_, "gone").error(), EEXIST);
}

TEST_F(MarkersTest, ADevice00WithoutTheMarkIsNotAWhiteout) {
  ASSERT_EQ(::mknodat(fd_, "dev", S_IFCHR | 0600, makedev(0, 0)), 0);
  Result<bool> w = IsWhiteout(fd_, "dev", Lstat("dev"));
  ASSERT_TRUE(w.ok());
  EXPECT_FALSE(*w);
}

TEST_F(MarkersTest, AFileWithTheMarkIsNotAWhiteout) {
  const std::string path = dir_ + "/file";
  ASSERT_EQ(::close(::open(path.c_str(), O_CREAT | O_WRONLY, 0644)), 0);
  ASSERT_EQ(::setxattr(path.c_str(), kWhiteoutXattr, "y", 1, 0), 0);
  Result<bool> w = IsWhiteout(fd_, "file", Lstat("file"));
  ASSERT_TRUE(w.ok());
  EXPECT_FALSE(*w);
}

TEST_F(MarkersTest, OpaqueDirectories) {
  ASSERT_EQ(::mkdirat(fd_, "d", 0755), 0);
  int d = ::openat(fd_, "d", O_PATH | O_DIRECTORY);
  ASSERT_GE(d, 0);
  EXPECT_FALSE(*IsOpaque(d));
  ASSERT_TRUE(SetOpaque(d).ok());
  EXPECT_TRUE(*IsOpaque(d));
  ::close(d);
}

TEST(ReservedXattrTest, OnlyDetourfsNamesAreReserved) {
  EXPECT_TRUE(IsReservedXattr("trusted.detourfs.whiteout"));
  EXPECT_TRUE(IsReservedXattr("trusted.detourfs.anything"));
  EXPECT_FALSE(IsReservedXattr("trusted.detourfs"));
  EXPECT_FALSE(IsReservedXattr("trusted.overlay.opaque"));
  EXPECT_FALSE(IsReservedXattr("user.detourfs.x"));
}

TEST(ReservedXattrTest, FilterDropsReservedNamesKeepingTheRest) {
  std::string list;
  for (const char* name :
       {"user.a", "trusted.detourfs.opaque", "security.selinux", "trusted.detourfs.w"}) {
    list += name;
    list += '\0';
  }
  size_t n = FilterXattrList(list.data(), list.size());
  EXPECT_EQ(std::string(list.data(), n), std::string("user.a\0security.selinux\0", 24));
  EXPECT_EQ(FilterXattrList(list.data(), 0), 0U);
}

TEST_F(MarkersTest, ASpilledStubCarriesItsToken) {
  const std::string path = dir_ + "/stub";
  ASSERT_EQ(::close(::open(path.c_str(), O_CREAT | O_WRONLY, 0)), 0);
  int fd = ::open(path.c_str(), O_PATH);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(MaybeSpilled(Lstat("stub")));
  Result<uint64_t> none = SpilledToken(fd);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0U);  // an empty mode-0000 file alone is not a stub
  ASSERT_TRUE(MarkSpilled(fd, 0x1234abcdULL).ok());
  Result<uint64_t> token = SpilledToken(fd);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(*token, 0x1234abcdULL);
  EXPECT_TRUE(IsReservedXattr(kSpilledXattr));
  ::close(fd);
}

TEST_F(MarkersTest, OnlyModeZeroRegularFilesMayBeStubs) {
  ASSERT_EQ(::close(::openat(fd_, "f", O_CREAT | O_WRONLY, 0644)), 0);
  EXPECT_FALSE(MaybeSpilled(Lstat("f")));
  ASSERT_EQ(::mkdirat(fd_, "d", 0), 0);
  EXPECT_FALSE(MaybeSpilled(Lstat("d")));
  ASSERT_EQ(::mknodat(fd_, "c", S_IFCHR, makedev(0, 0)), 0);
  EXPECT_FALSE(MaybeSpilled(Lstat("c")));
}

}  // namespace
}  // namespace detourfs::markers
