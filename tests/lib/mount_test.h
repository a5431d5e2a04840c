// MountTest: the gtest fixture for tests on a real mount, parametrised over the
// backing (a plain directory, and ext4 on a loop device). Skips when the
// machine cannot mount (not root, no /dev/fuse). TearDown unmounts, and after
// a passing test asserts that the daemon exited 0 and logged no errors.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "lib/mounted_fs.h"

namespace detourfs::testing {

class MountTest : public ::testing::TestWithParam<Backing> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Override to pass options or limits.
  virtual MountConfig Config() const;

  // Path of `rel` inside the mount, and inside the reference directory.
  std::string M(const std::string& rel) const { return fs_->tree() + "/" + rel; }
  std::string R(const std::string& rel) const { return fs_->ref() + "/" + rel; }

  std::unique_ptr<MountedFs> fs_;
  // Tests that provoke logged errors on purpose clear this.
  bool expect_clean_log_ = true;
  // The daemon's exit status TearDown expects (-1: killed by a signal).
  int expect_exit_code_ = 0;
};

// A mount of a separate volume directory (not in place): a test can change
// the volume behind the mount's back, through L().
class SeparateLowerMountTest : public MountTest {
 protected:
  MountConfig Config() const override {
    MountConfig c = MountTest::Config();
    c.separate_lower = true;
    return c;
  }
  std::string L(const std::string& rel) const { return fs_->lower() + "/" + rel; }
};

// True if this machine can run mount tests; otherwise `why` says what lacks.
bool CanMount(std::string* why);

std::string BackingName(const ::testing::TestParamInfo<Backing>& info);

#define DETOURFS_MOUNT_TEST_P(Fixture)                                                 \
  INSTANTIATE_TEST_SUITE_P(Backings, Fixture,                                          \
                           ::testing::Values(::detourfs::testing::Backing::kPlainDir,  \
                                             ::detourfs::testing::Backing::kExt4Loop), \
                           ::detourfs::testing::BackingName)

}  // namespace detourfs::testing
