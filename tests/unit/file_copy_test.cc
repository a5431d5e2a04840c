// DigestOf (store/file_copy.h): the read-back that gates a copy on the
// volume before its source goes — two files' digests equal only when every
// byte is.
#include "store/file_copy.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "scratch_dir.h"

namespace detourfs {
namespace {

class DataDigestTest : public ::testing::Test {
 protected:
  // A file `name` holding `data` (made sparse up to `size` when larger),
  // open for reading.
  UniqueFd Make(const std::string& name, const std::string& data, off_t size = -1) {
    const std::string path = dir_.path() + "/" + name;
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::pwrite(fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
    if (size >= 0) {
      EXPECT_EQ(::ftruncate(fd, size), 0);
    }
    return UniqueFd(fd);
  }
  // Whether two open files read back alike, as the read-back compares them.
  static Result<bool> Same(int a, int b) {
    Result<DataDigest> da = DigestOf(a);
    if (!da.ok()) return Errno{da.error()};
    Result<DataDigest> db = DigestOf(b);
    if (!db.ok()) return Errno{db.error()};
    return *da == *db;
  }
  ScratchDir dir_{"/tmp/detourfs-file-copy"};
};

TEST_F(DataDigestTest, EqualFilesAreTheSame) {
  const std::string big(3 << 20, 'x');  // more than one read buffer
  UniqueFd a = Make("a", big + "end");
  UniqueFd b = Make("b", big + "end");
  Result<bool> same = Same(a.get(), b.get());
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(*same);
}

TEST_F(DataDigestTest, OneByteChangedPastTheFirstBufferDiffers) {
  const std::string big(3 << 20, 'x');
  UniqueFd a = Make("a", big + "end");
  UniqueFd b = Make("b", big + "End");
  Result<bool> same = Same(a.get(), b.get());
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(*same);
}

TEST_F(DataDigestTest, ZerosWhereTheDataWasDiffer) {
  // What a volume that lost a fresh write shows: the size kept, zeros.
  UniqueFd a = Make("a", "written\n");
  UniqueFd b = Make("b", std::string(8, '\0'));
  Result<bool> same = Same(a.get(), b.get());
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(*same);
}

TEST_F(DataDigestTest, ATruncatedCopyDiffers) {
  UniqueFd a = Make("a", "written\n");
  UniqueFd b = Make("b", "");
  Result<bool> same = Same(a.get(), b.get());
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(*same);
}

TEST_F(DataDigestTest, AHoleEqualsTheZerosItReadsAs) {
  UniqueFd a = Make("a", "head", 1 << 20);
  UniqueFd b = Make("b", "head" + std::string((1 << 20) - 4, '\0'));
  Result<bool> same = Same(a.get(), b.get());
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(*same);
}

TEST_F(DataDigestTest, AnUnreadableFileIsAnError) {
  UniqueFd a = Make("a", "written\n");
  const std::string path = dir_.path() + "/w";
  UniqueFd w(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(w.valid());
  ASSERT_EQ(::pwrite(w.get(), "written\n", 8, 0), 8);
  Result<bool> same = Same(a.get(), w.get());
  ASSERT_FALSE(same.ok());
  EXPECT_EQ(same.error(), EBADF);
}

}  // namespace
}  // namespace detourfs
