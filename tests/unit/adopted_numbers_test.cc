// AdoptedNumbers (store/adopted_numbers.h): numbers recorded survive a
// restart, a torn last record is ignored and overwritten, and nothing is
// recorded twice.
#include "store/adopted_numbers.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace detourfs {
namespace {

class AdoptedNumbersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/detourfs-adopted.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    dirfd_ = ::open(dir_.c_str(), O_PATH | O_DIRECTORY);
    ASSERT_GE(dirfd_, 0);
  }
  void TearDown() override {
    ::close(dirfd_);
    ::unlinkat(AT_FDCWD, (dir_ + "/adopted").c_str(), 0);
    ::rmdir(dir_.c_str());
  }
  off_t Size() const {
    struct stat st {};
    return ::stat((dir_ + "/adopted").c_str(), &st) == 0 ? st.st_size : -1;
  }
  std::string dir_;
  int dirfd_ = -1;
};

TEST_F(AdoptedNumbersTest, RecordsSurviveARestartOnceEach) {
  {
    AdoptedNumbers a;
    ASSERT_TRUE(a.Open(dirfd_, "adopted").ok());
    EXPECT_FALSE(a.Has(42));
    ASSERT_TRUE(a.Add(42).ok());
    ASSERT_TRUE(a.Add(7).ok());
    ASSERT_TRUE(a.Add(42).ok());  // already there: not written again
    EXPECT_TRUE(a.Has(42));
    EXPECT_EQ(Size(), 16);
  }
  AdoptedNumbers b;
  ASSERT_TRUE(b.Open(dirfd_, "adopted").ok());
  EXPECT_TRUE(b.Has(42));
  EXPECT_TRUE(b.Has(7));
  EXPECT_FALSE(b.Has(8));
  EXPECT_EQ(b.size(), 2U);
}

TEST_F(AdoptedNumbersTest, ATornLastRecordIsIgnoredAndOverwritten) {
  {
    AdoptedNumbers a;
    ASSERT_TRUE(a.Open(dirfd_, "adopted").ok());
    ASSERT_TRUE(a.Add(1000).ok());
  }
  const int fd = ::open((dir_ + "/adopted").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "\x01\x02\x03", 3), 3);  // a crash mid-record
  ::close(fd);
  {
    AdoptedNumbers b;
    ASSERT_TRUE(b.Open(dirfd_, "adopted").ok());
    EXPECT_EQ(b.size(), 1U);
    ASSERT_TRUE(b.Add(2000).ok());
    EXPECT_EQ(Size(), 16);  // written where the torn one began
  }
  AdoptedNumbers c;
  ASSERT_TRUE(c.Open(dirfd_, "adopted").ok());
  EXPECT_TRUE(c.Has(1000));
  EXPECT_TRUE(c.Has(2000));
  EXPECT_EQ(c.size(), 2U);
}

TEST_F(AdoptedNumbersTest, WithoutOpenNothingIsRecorded) {
  AdoptedNumbers a;
  EXPECT_TRUE(a.Add(5).ok());
  EXPECT_FALSE(a.Has(5));
}

}  // namespace
}  // namespace detourfs
