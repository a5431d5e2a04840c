// WriteLockSet: it holds every lock asked for, adds a free one without
// letting go of the others, refuses a busy one without waiting, lets later
// locks go while it waits, and threads taking the same locks in opposite
// orders all finish (no order needed).
#include "util/write_lock_set.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
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

// A set that must wait lets go of what it holds and takes the locks in
// address order: here it held the later one, so that one comes free.
TEST(WriteLockSetTest, LockAllLetsGoOfLaterLocksWhileItWaits) {
  RwLock mus[2];
  RwLock* first = &mus[0];
  RwLock* later = &mus[1];
  ASSERT_TRUE(first->TryLock());
  std::atomic<bool> took_later{false};
  std::atomic<bool> got{false};
  std::thread t([&] {
    WriteLockSet set;
    set.LockAll({later});
    took_later = true;
    set.LockAll({first});  // busy: lets `later` go, waits for `first`
    got = true;
  });
  while (!took_later) std::this_thread::yield();
  bool freed = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!freed && std::chrono::steady_clock::now() < deadline) {
    if (later->TryLock()) {
      freed = true;
      later->Unlock();
    } else {
      std::this_thread::yield();
    }
  }
  EXPECT_TRUE(freed) << "the set waited holding a later lock";
  EXPECT_FALSE(got);
  first->Unlock();
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
