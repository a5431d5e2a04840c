// Result and Status: values, errnos and messages.
#include <gtest/gtest.h>

#include <cstring>

#include "detourfs/result.h"
#include "detourfs/status.h"

namespace detourfs {
namespace {

Result<int> Half(int x) {
  if (x % 2) return Errno{EINVAL};
  return x / 2;
}

Result<void> Chain(int x) {
  DETOURFS_TRY(Half(x));
  return {};
}

TEST(ResultTest, CarriesAValueOrAnErrno) {
  Result<int> ok = Half(4);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 2);
  Result<int> bad = Half(3);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), EINVAL);
}

TEST(ResultTest, TryPropagatesTheErrnoUnchanged) {
  EXPECT_TRUE(Chain(2).ok());
  EXPECT_EQ(Chain(1).error(), EINVAL);
}

TEST(StatusTest, FromErrnoNamesContextAndCause) {
  Status s = Status::FromErrno(ENOENT, "cannot open lower directory '/x'");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kNotFound);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_EQ(s.ToString(),
            std::string("cannot open lower directory '/x': ") + std::strerror(ENOENT));
  EXPECT_TRUE(Status::OK().ok());
  EXPECT_EQ(Status::InvalidArgument("bad").ToString(), "bad");
}

}  // namespace
}  // namespace detourfs
