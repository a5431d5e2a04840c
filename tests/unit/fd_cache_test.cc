// FdCache: bounded size, least-recently-used eviction, shared fds.
#include "inodes/fd_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>

namespace detourfs {
namespace {

SharedFd OpenNull() {
  return std::make_shared<const UniqueFd>(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

TEST(FdCacheTest, NeverHoldsMoreThanItsCapacity) {
  FdCache cache(8);
  for (uint64_t id = 0; id < 1000; ++id) cache.Put(id, OpenNull());
  EXPECT_EQ(cache.size(), 8U);
}

TEST(FdCacheTest, EvictsTheLeastRecentlyUsed) {
  FdCache cache(2);
  cache.Put(1, OpenNull());
  cache.Put(2, OpenNull());
  ASSERT_TRUE(cache.Get(1));  // 1 is now the most recent
  cache.Put(3, OpenNull());
  EXPECT_TRUE(cache.Get(1));
  EXPECT_FALSE(cache.Get(2));
  EXPECT_TRUE(cache.Get(3));
}

TEST(FdCacheTest, EvictedFdStaysOpenWhileInUse) {
  FdCache cache(1);
  cache.Put(1, OpenNull());
  SharedFd held = cache.Get(1);
  cache.Put(2, OpenNull());
  EXPECT_FALSE(cache.Get(1));
  EXPECT_GE(::fcntl(held->get(), F_GETFD), 0) << "the holder's fd was closed under it";
}

TEST(FdCacheTest, EraseDropsTheEntry) {
  FdCache cache(4);
  cache.Put(1, OpenNull());
  cache.Erase(1);
  EXPECT_FALSE(cache.Get(1));
  EXPECT_EQ(cache.size(), 0U);
  cache.Erase(99);  // unknown ids are fine
}

TEST(FdCacheTest, PutReplacesWithoutGrowing) {
  FdCache cache(4);
  SharedFd first = OpenNull(), second = OpenNull();
  cache.Put(1, first);
  cache.Put(1, second);
  EXPECT_EQ(cache.size(), 1U);
  EXPECT_EQ(cache.Get(1), second);
}

}  // namespace
}  // namespace detourfs
