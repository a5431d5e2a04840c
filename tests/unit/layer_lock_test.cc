// LayerLock: nested exclusive holds on one thread, shared holds passing on
// the thread that holds it exclusively, and exclusion between threads.
#include "overlay/layer_lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace detourfs {
namespace {

TEST(LayerLockTest, ExclusiveHoldsNestAndSharedPassesOnTheSameThread) {
  LayerLock lock;
  {
    LayerLock::Hold outer = lock.Exclusive();
    LayerLock::Hold inner = lock.Exclusive();  // a move making a directory
    LayerLock::Hold look = lock.Shared();      // a move looking a name up
  }
  // Released all the way: another thread gets it exclusively.
  std::thread other([&] { LayerLock::Hold h = lock.Exclusive(); });
  other.join();
}

TEST(LayerLockTest, SharedHoldsCoexist) {
  LayerLock lock;
  LayerLock::Hold mine = lock.Shared();
  std::atomic<bool> got{false};
  std::thread other([&] {
    LayerLock::Hold h = lock.Shared();
    got = true;
  });
  other.join();  // would hang if shared holds excluded each other
  EXPECT_TRUE(got);
}

TEST(LayerLockTest, ExclusiveHoldKeepsOtherThreadsOut) {
  LayerLock lock;
  std::atomic<int> inside{0};
  std::atomic<bool> saw_other_inside{false};
  std::thread other;
  {
    LayerLock::Hold held = lock.Exclusive();
    other = std::thread([&] {
      LayerLock::Hold h = lock.Shared();
      inside++;
    });
    // However long the other thread runs, it cannot be inside meanwhile.
    for (int i = 0; i < 1000; ++i) {
      if (inside.load() != 0) saw_other_inside = true;
      std::this_thread::yield();
    }
  }
  other.join();
  EXPECT_FALSE(saw_other_inside);
  EXPECT_EQ(inside.load(), 1);
}

TEST(LayerLockTest, AMovedHoldReleasesOnce) {
  LayerLock lock;
  {
    LayerLock::Hold first = lock.Exclusive();
    LayerLock::Hold moved = std::move(first);
  }  // `first` gave its hold away: one release, not two
  std::thread other([&] { LayerLock::Hold h = lock.Exclusive(); });
  other.join();
}

}  // namespace
}  // namespace detourfs
