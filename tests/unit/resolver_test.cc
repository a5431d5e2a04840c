// Resolver: what it remembers about paths missing on another layer, and when
// it looks again (NewPaths, the negative timeout, a forgotten node). Runs on
// two plain temporary directories standing in for the volume and a tier.
#include "inodes/resolver.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include "inodes/fd_cache.h"
#include "unit/scratch_dir.h"

namespace detourfs {
namespace {

class ResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(scratch_.ok());
    dir_ = scratch_.path();
    ASSERT_EQ(::mkdir((dir_ + "/volume").c_str(), 0700), 0);
    ASSERT_EQ(::mkdir((dir_ + "/tier").c_str(), 0700), 0);
    ASSERT_EQ(::mkdir((dir_ + "/tier/pkg").c_str(), 0700), 0);
  }

  SharedFd OpenDir(const std::string& rel) const {
    return std::make_shared<const UniqueFd>(
        ::open((dir_ + "/" + rel).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  }
  // A table and resolver whose volume is volume/ and memory tier tier/, with
  // "pkg" a directory made on the tier.
  void Start(std::chrono::steady_clock::duration ttl) {
    struct stat root {};
    ASSERT_EQ(::stat((dir_ + "/volume").c_str(), &root), 0);
    table_ = std::make_unique<InodeTable>(root);
    resolver_ = std::make_unique<Resolver>(*table_, cache_, OpenDir("volume"), ttl);
    resolver_->SetLayerRoot(Layer::kMemory, OpenDir("tier"));
    struct stat st {};
    ASSERT_EQ(::stat((dir_ + "/tier/pkg").c_str(), &st), 0);
    pkg_ = table_->Remember(table_->root(), "pkg", st, Layer::kMemory, kNotRouted);
  }
  bool OnVolume() { return resolver_->Fd(pkg_, Layer::kVolume).ok(); }
  void MakeOnVolume() { ASSERT_EQ(::mkdir((dir_ + "/volume/pkg").c_str(), 0700), 0); }

  ScratchDir scratch_{"/tmp/detourfs-resolver"};
  std::string dir_;
  FdCache cache_{16};
  std::unique_ptr<InodeTable> table_;
  std::unique_ptr<Resolver> resolver_;
  Node* pkg_ = nullptr;
};

TEST_F(ResolverTest, MissingVolumeSideIsRememberedUntilNewPaths) {
  Start(std::chrono::seconds(60));
  EXPECT_FALSE(OnVolume());
  MakeOnVolume();  // underneath, as a spill would before calling NewPaths
  EXPECT_FALSE(OnVolume()) << "the answer is remembered";
  resolver_->NewPaths();
  EXPECT_TRUE(OnVolume());
  EXPECT_TRUE(resolver_->Fd(pkg_).ok()) << "its own layer is never affected";
}

TEST_F(ResolverTest, MovingATreeForgetsMissingPathsToo) {
  Start(std::chrono::seconds(60));
  EXPECT_FALSE(OnVolume());
  MakeOnVolume();
  resolver_->DropOtherLayers();
  EXPECT_TRUE(OnVolume());
}

TEST_F(ResolverTest, ZeroTimeoutRemembersNothing) {
  Start(std::chrono::steady_clock::duration::zero());
  EXPECT_FALSE(OnVolume());
  MakeOnVolume();
  EXPECT_TRUE(OnVolume());
}

TEST_F(ResolverTest, AnswersExpire) {
  Start(std::chrono::milliseconds(1));
  EXPECT_FALSE(OnVolume());
  MakeOnVolume();
  ::usleep(5000);  // past the 1 ms the answer is trusted
  EXPECT_TRUE(OnVolume());
}

TEST_F(ResolverTest, AForgottenNodeTakesItsAnswersAlong) {
  Start(std::chrono::seconds(60));
  EXPECT_FALSE(OnVolume());
  MakeOnVolume();
  resolver_->Drop(pkg_->id());
  EXPECT_TRUE(OnVolume());
}

}  // namespace
}  // namespace detourfs
