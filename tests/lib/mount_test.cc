// MountTest: set-up, teardown and the skip rule for mount tests.
#include "lib/mount_test.h"

#include <unistd.h>

namespace detourfs::testing {

bool CanMount(std::string* why) {
  if (::geteuid() != 0) {
    *why = "mount tests need root";
    return false;
  }
  if (::access("/dev/fuse", R_OK | W_OK) != 0) {
    *why = "no usable /dev/fuse";
    return false;
  }
  return true;
}

std::string BackingName(const ::testing::TestParamInfo<Backing>& info) {
  return info.param == Backing::kPlainDir ? "PlainDir" : "Ext4Loop";
}

MountConfig MountTest::Config() const {
  MountConfig c;
  c.backing = GetParam();
  return c;
}

void MountTest::SetUp() {
  std::string why;
  if (!CanMount(&why)) GTEST_SKIP() << why;
  std::string error;
  fs_ = MountedFs::Start(Config(), &error);
  ASSERT_TRUE(fs_) << error;
}

void MountTest::TearDown() {
  if (!fs_) return;
  if (!HasFailure()) {
    EXPECT_EQ(fs_->Stop(), expect_exit_code_) << "daemon exit status; log:\n" << fs_->Log();
    if (expect_clean_log_) {
      for (const std::string& line : fs_->LogProblems()) ADD_FAILURE() << "daemon log: " << line;
    }
  } else if (std::getenv("DETOURFS_TEST_LOG") != nullptr) {
    std::fprintf(stderr, "daemon log:\n%s\n", fs_->Log().c_str());
  }
  fs_.reset();
}

}  // namespace detourfs::testing
