// WriteLockSet: it holds every lock asked for, adds a free one without
// letting go of the others, refuses a busy one without waiting, and threads
// taking the same locks in opposite orders all finish (no order needed).
#include "util/write_lock_set.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace detourfs {
namespace {

TEST(WriteLockSetTest, HoldsWhatItTookAndLetsGoAtTheEnd) {
  RwLock a;
  RwLock b;
  {
    WriteLockSet set;
    set.LockAll({&a, &b, &a, nullptr});
    EXPECT_TRUE(set.Holds(&a));
    EXPECT_TRUE(set.Holds(&b));
    EXPECT_FALSE(a.TryLock());
    EXPECT_FALSE(b.TryLock());
  }
  ASSERT_TRUE(a.TryLock());
  ASSERT_TRUE(b.TryLock());
  a.Unlock();
  b.Unlock();
}

TEST(WriteLockSetTest, TryAddRefusesABusyLockAndKeepsTheRest) {
  RwLock a;
  RwLock b;
  RwLock c;
  WriteLockSet set;
  set.LockAll({&a});
  ASSERT_TRUE(b.TryLock());  // another holder
  EXPECT_FALSE(set.TryAdd(&b));
  EXPECT_TRUE(set.Holds(&a));
  EXPECT_FALSE(set.Holds(&b));
  EXPECT_TRUE(set.TryAdd(&c));
  EXPECT_TRUE(set.TryAdd(&a));  // already held
  b.Unlock();
  EXPECT_TRUE(set.TryAdd(&b));
  EXPECT_TRUE(set.Holds(&b));
}

TEST(WriteLockSetTest, LockAllWaitsForABusyLockHoldingNothing) {
  RwLock a;
  RwLock b;
  ASSERT_TRUE(b.TryLock());
  std::atomic<bool> took_a{false};
  std::atomic<bool> got{false};
  std::thread t([&] {
    WriteLockSet set;
    set.LockAll({&a});
    took_a = true;
    set.LockAll({&b});  // b busy: lets a go while it waits
    got = true;
  });
  while (!took_a) std::this_thread::yield();
  // The thread holds a, then waits for b (held here): a must come free.
  bool a_freed = false;
  for (long spins = 0; spins < 100000000 && !a_freed; ++spins) {  // NOLINT
    if (a.TryLock()) {
      a_freed = true;
      a.Unlock();
    } else {
      std::this_thread::yield();
    }
  }
  EXPECT_TRUE(a_freed) << "the set waited for b holding a";
  EXPECT_FALSE(got);
  b.Unlock();
  t.join();
  EXPECT_TRUE(got);
}

TEST(WriteLockSetTest, OppositeOrdersNeverDeadlock) {
  RwLock a;
  RwLock b;
  RwLock c;
  long counter = 0;  // guarded by holding all three
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        WriteLockSet set;
        if (t % 2 == 0) {
          set.LockAll({&a, &b});
          if (!set.TryAdd(&c)) set.LockAll({&c});
        } else {
          set.LockAll({&c, &b});
          set.LockAll({&a});
        }
        ++counter;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(counter, 4 * 2000);
}

}  // namespace
}  // namespace detourfs
