// Failpoints: parsing DETOURFS_FAILPOINTS, errors returned at the armed
// hit, the daemon killed for `kill`.
#include "store/failpoints.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "build_config.h"

namespace detourfs {
namespace {

std::unique_ptr<Failpoints> MustParse(std::string_view spec) {
  Result<std::unique_ptr<Failpoints>> fp = Failpoints::Parse(spec);
  EXPECT_TRUE(fp.ok()) << "'" << spec << "': errno " << fp.error();
  if (!fp.ok()) return nullptr;
  EXPECT_NE(*fp, nullptr);
  return std::move(*fp);
}

int ParseError(std::string_view spec) {
  Result<std::unique_ptr<Failpoints>> fp = Failpoints::Parse(spec);
  return fp.ok() ? 0 : fp.error();
}

TEST(FailpointsTest, EmptySpecArmsNothing) {
  std::unique_ptr<Failpoints> fp = MustParse("");
  ASSERT_NE(fp, nullptr);
  for (const char* name : kFailpoints) EXPECT_TRUE(fp->Hit(name).ok()) << name;
}

TEST(FailpointsTest, EveryListedNameCanBeArmed) {
  for (const char* name : kFailpoints) {
    std::unique_ptr<Failpoints> fp = MustParse(std::string(name) + "=eio");
    ASSERT_NE(fp, nullptr) << name;
    Result<void> r = fp->Hit(name);
    EXPECT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.error(), EIO) << name;
  }
}

TEST(FailpointsTest, ErrorsAreReturnedAsErrno) {
  std::unique_ptr<Failpoints> fp = MustParse("intent.step=eio,copyup.copied=enospc");
  ASSERT_NE(fp, nullptr);
  EXPECT_EQ(fp->Hit("intent.step").error(), EIO);
  EXPECT_EQ(fp->Hit("copyup.copied").error(), ENOSPC);
}

TEST(FailpointsTest, FiresOnceOnTheFirstHitByDefault) {
  std::unique_ptr<Failpoints> fp = MustParse("dir.built=eio");
  ASSERT_NE(fp, nullptr);
  EXPECT_FALSE(fp->Hit("dir.built").ok());
  EXPECT_TRUE(fp->Hit("dir.built").ok());
  EXPECT_TRUE(fp->Hit("dir.built").ok());
}

TEST(FailpointsTest, AtNFiresOnTheNthHitOnly) {
  std::unique_ptr<Failpoints> fp = MustParse("intent.step=enospc@3");
  ASSERT_NE(fp, nullptr);
  EXPECT_TRUE(fp->Hit("intent.step").ok());
  EXPECT_TRUE(fp->Hit("intent.step").ok());
  Result<void> third = fp->Hit("intent.step");
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error(), ENOSPC);
  EXPECT_TRUE(fp->Hit("intent.step").ok());
}

TEST(FailpointsTest, HitsOfOtherPointsDoNotCount) {
  std::unique_ptr<Failpoints> fp = MustParse("intent.done=eio@2");
  ASSERT_NE(fp, nullptr);
  EXPECT_TRUE(fp->Hit("intent.done").ok());
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(fp->Hit("intent.step").ok());
  EXPECT_FALSE(fp->Hit("intent.done").ok());
}

TEST(FailpointsTest, HitOnAnUnarmedOrUnknownNameIsOk) {
  std::unique_ptr<Failpoints> fp = MustParse("spill.copied=eio");
  ASSERT_NE(fp, nullptr);
  EXPECT_TRUE(fp->Hit("spill.marked").ok());
  EXPECT_TRUE(fp->Hit("no.such.point").ok());
  EXPECT_TRUE(fp->Hit("").ok());
  EXPECT_TRUE(fp->Hit("spill.copied.").ok()) << "names match whole";
}

TEST(FailpointsTest, EmptyItemsAreSkipped) {
  std::unique_ptr<Failpoints> fp = MustParse(",move.copied=eio,,");
  ASSERT_NE(fp, nullptr);
  EXPECT_EQ(fp->Hit("move.copied").error(), EIO);
}

TEST(FailpointsTest, UnknownNamesAreRejected) {
  EXPECT_EQ(ParseError("no.such.point=eio"), ENOENT);
  EXPECT_EQ(ParseError("intent=eio"), ENOENT);
  EXPECT_EQ(ParseError("=eio"), ENOENT);
  EXPECT_EQ(ParseError(" intent.step=eio"), ENOENT) << "no trimming";
  EXPECT_EQ(ParseError("intent.step=eio,bogus=kill"), ENOENT) << "one bad item spoils the spec";
}

TEST(FailpointsTest, BadSyntaxIsRejected) {
  EXPECT_EQ(ParseError("intent.step"), EINVAL);
  EXPECT_EQ(ParseError("intent.step="), EINVAL);
  EXPECT_EQ(ParseError("intent.step=crash"), EINVAL);
  EXPECT_EQ(ParseError("intent.step=EIO"), EINVAL);
  EXPECT_EQ(ParseError("intent.step=eio@0"), EINVAL);
  EXPECT_EQ(ParseError("intent.step=eio@"), EINVAL);
  EXPECT_EQ(ParseError("intent.step=eio@x"), EINVAL);
  EXPECT_EQ(ParseError("intent.step=@2"), EINVAL);
}

// Regression (found by its unit test): the count after '@' is read with strtoull and nothing
// checks where it stopped or its sign, so "eio@2x" arms the 2nd hit and
// "eio@-1" the 18446744073709551615th (never) instead of being rejected as
// not name=kill|eio|enospc[@N].
TEST(FailpointsTest, MalformedCountIsRejected) {
  EXPECT_EQ(ParseError("intent.step=eio@2x"), EINVAL);
  EXPECT_EQ(ParseError("intent.step=eio@-1"), EINVAL);
  EXPECT_EQ(ParseError("intent.step=eio@1@2"), EINVAL);
}

TEST(FailpointsTest, TheNthHitFiresExactlyOnceUnderConcurrentHits) {
  std::unique_ptr<Failpoints> fp = MustParse("intent.step=eio@2000");
  ASSERT_NE(fp, nullptr);
  std::atomic<int> fired{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (!fp->Hit("intent.step").ok()) fired.fetch_add(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(fired.load(), 1);
}

TEST(FailpointsDeathTest, KillRaisesSigkillAtTheArmedHit) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        std::unique_ptr<Failpoints> fp = MustParse("move.copied=kill@2");
        if (!fp || !fp->Hit("move.copied").ok()) ::_exit(3);  // not on the first hit
        (void)fp->Hit("move.copied");
        ::_exit(4);  // not reached
      },
      ::testing::KilledBySignal(SIGKILL), "");
}

class FailpointsEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* old = ::getenv("DETOURFS_FAILPOINTS")) saved_ = old;
  }
  void TearDown() override {
    if (saved_) {
      ::setenv("DETOURFS_FAILPOINTS", saved_->c_str(), 1);
    } else {
      ::unsetenv("DETOURFS_FAILPOINTS");
    }
  }
  std::optional<std::string> saved_;
};

TEST_F(FailpointsEnvTest, NothingArmedWithoutTheVariable) {
  ::unsetenv("DETOURFS_FAILPOINTS");
  EXPECT_EQ(Failpoints::FromEnvironment(), nullptr);
  ::setenv("DETOURFS_FAILPOINTS", "", 1);
  EXPECT_EQ(Failpoints::FromEnvironment(), nullptr);
}

TEST_F(FailpointsEnvTest, AnInvalidSpecIsIgnored) {
  ::setenv("DETOURFS_FAILPOINTS", "intent.step=sometimes", 1);
  EXPECT_EQ(Failpoints::FromEnvironment(), nullptr);
}

TEST_F(FailpointsEnvTest, ArmedFromTheEnvironmentInFailpointBuilds) {
  ::setenv("DETOURFS_FAILPOINTS", "remove.whiteout=enospc", 1);
  std::unique_ptr<Failpoints> fp = Failpoints::FromEnvironment();
#if DETOURFS_FAILPOINTS
  ASSERT_NE(fp, nullptr);
  EXPECT_EQ(fp->Hit("remove.whiteout").error(), ENOSPC);
#else
  EXPECT_EQ(fp, nullptr) << "builds without failpoints ignore the variable";
#endif
}

}  // namespace
}  // namespace detourfs
