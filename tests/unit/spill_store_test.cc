// The spill store's names and tokens, and the space a tier counts as its own
// when it shares its filesystem (a real directory on /dev/shm).
#include "store/spill_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "overlay/backing_tree.h"
#include "store/tier_space.h"
#include "unit/scratch_dir.h"

namespace detourfs {
namespace {

class SpillStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(scratch_.ok());
    dir_ = scratch_.path();
    int fd = ::open(dir_.c_str(), O_PATH | O_DIRECTORY);
    ASSERT_GE(fd, 0);
    fd_ = std::make_shared<const UniqueFd>(fd);
  }
  void Put(const std::string& name, size_t size) {
    int fd = ::open((dir_ + "/" + name).c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    const std::string data(size, 'x');
    ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ::close(fd);
  }
  ScratchDir scratch_{"/dev/shm/detourfs-spill-store"};
  std::string dir_;
  SharedFd fd_;
};

TEST_F(SpillStoreTest, NamesAndTokensRoundTrip) {
  EXPECT_EQ(SpillStore::NameOf(0xabcULL), "0000000000000abc");
  EXPECT_EQ(SpillStore::TokenOf("0000000000000abc"), 0xabcULL);
  EXPECT_EQ(SpillStore::TokenOf(SpillStore::NameOf(~0ULL)), ~0ULL);
  EXPECT_EQ(SpillStore::TokenOf("abc"), 0U);               // too short
  EXPECT_EQ(SpillStore::TokenOf("000000000000ABCD"), 0U);  // not ours
  EXPECT_EQ(SpillStore::TokenOf("00000000000000g1"), 0U);  // not hex
  for (int i = 0; i < 100; ++i) EXPECT_NE(SpillStore::NewToken(), 0U);
  EXPECT_NE(SpillStore::NewToken(), SpillStore::NewToken());
}

TEST_F(SpillStoreTest, OpensListsAndRemovesByToken) {
  SpillStore store(fd_);
  Put(SpillStore::NameOf(7), 3);
  Put(SpillStore::NameOf(9), 5);
  Put("unrelated", 1);
  Result<std::vector<uint64_t>> tokens = store.Tokens();
  ASSERT_TRUE(tokens.ok());
  std::sort(tokens->begin(), tokens->end());
  EXPECT_EQ(*tokens, (std::vector<uint64_t>{7, 9}));
  Result<UniqueFd> f = store.Open(9, O_RDONLY);
  ASSERT_TRUE(f.ok());
  char buf[8];
  EXPECT_EQ(::read(f->get(), buf, sizeof(buf)), 5);
  EXPECT_TRUE(store.Remove(9).ok());
  EXPECT_EQ(store.Open(9, O_PATH).error(), ENOENT);
  EXPECT_EQ(store.Open(0, O_PATH).error(), EINVAL);
  // A symlink planted in the store is never followed.
  ASSERT_EQ(::symlink("/etc/passwd", (dir_ + "/" + SpillStore::NameOf(11)).c_str()), 0);
  EXPECT_FALSE(store.Open(11, O_RDONLY).ok());
}

TEST_F(SpillStoreTest, ATierSharingItsFilesystemCountsOnlyWhatItHolds) {
  // The tier is sub/; the file beside it is someone else's on the same
  // filesystem.
  ASSERT_EQ(::mkdir((dir_ + "/sub").c_str(), 0700), 0);
  Put("sub/a", 1 << 20);
  Put("sub/b", 1 << 20);
  ASSERT_EQ(::link((dir_ + "/sub/b").c_str(), (dir_ + "/sub/b2").c_str()), 0);
  Put("others", 8 << 20);
  int fd = ::open((dir_ + "/sub").c_str(), O_PATH | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  auto tier = std::make_shared<const UniqueFd>(fd);
  Result<uint64_t> own = DiskUsage(tier->get());
  ASSERT_TRUE(own.ok());
  EXPECT_GE(*own, uint64_t{2} << 20);  // the linked file counted once
  EXPECT_LT(*own, uint64_t{3} << 20);
  // A 4 MiB capacity: the filesystem's usage (over 10 MiB) leaves no room;
  // the tier's own (2 MiB) leaves about 2 MiB.
  TierSpace space(tier, uint64_t{4} << 20, 0.9);
  ASSERT_TRUE(space.MayShareFilesystem());
  EXPECT_FALSE(space.Admit(uint64_t{1} << 20));
  ASSERT_TRUE(space.SetOwnUsage(*own).ok());
  EXPECT_TRUE(space.Admit(uint64_t{1} << 20));
  EXPECT_FALSE(space.Admit(uint64_t{3} << 20));
  // Without a capacity the filesystem is the tier's alone.
  TierSpace whole(tier, 0, 0.9);
  EXPECT_FALSE(whole.MayShareFilesystem());
}

}  // namespace
}  // namespace detourfs
