// Which ring thread serves which FUSE-over-io_uring queue (uring_queues.h).
#include "fuse/uring_queues.h"

#include <gtest/gtest.h>

#include <vector>

namespace detourfs::fuseops {
namespace {

using Cpus = std::vector<unsigned>;

TEST(CpuListTest, ParsesRangesAndSingles) {
  EXPECT_EQ(ParseCpuList("0-1\n"), (Cpus{0, 1}));
  EXPECT_EQ(ParseCpuList("0"), (Cpus{0}));
  EXPECT_EQ(ParseCpuList("0-3,8,10-11\n"), (Cpus{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(ParseCpuList("4,0-1"), (Cpus{0, 1, 4}));
}

TEST(CpuListTest, MalformedOrHugeIsEmpty) {
  EXPECT_TRUE(ParseCpuList("").empty());
  EXPECT_TRUE(ParseCpuList("\n").empty());
  EXPECT_TRUE(ParseCpuList("x").empty());
  EXPECT_TRUE(ParseCpuList("3-1").empty());
  EXPECT_TRUE(ParseCpuList("0-").empty());
  EXPECT_TRUE(ParseCpuList("0,").empty());
  EXPECT_TRUE(ParseCpuList("0;1").empty());
  EXPECT_TRUE(ParseCpuList("0-4096").empty());
}

// The number of ring entries each queue gets from a plan.
std::vector<unsigned> EntriesPerQueue(const std::vector<RingThreadPlan>& plan, unsigned queues) {
  std::vector<unsigned> count(queues, 0);
  for (const RingThreadPlan& t : plan) {
    for (unsigned q : t.queues) ++count.at(q);
  }
  return count;
}

TEST(RingPlanTest, TwoThreadsPerCpuWhenEveryPossibleCpuIsOnline) {
  const std::vector<RingThreadPlan> plan = PlanRingThreads(2, {0, 1}, 2);
  ASSERT_EQ(plan.size(), 4U);
  for (const RingThreadPlan& t : plan) EXPECT_EQ(t.queues, (Cpus{t.cpu}));
  EXPECT_EQ(EntriesPerQueue(plan, 2), (Cpus{2, 2}));
}

TEST(RingPlanTest, AVmWith64PossibleAnd2OnlineCpusGets4ThreadsServingAll64Queues) {
  const std::vector<RingThreadPlan> plan = PlanRingThreads(64, {0, 1}, 2);
  ASSERT_EQ(plan.size(), 4U);
  size_t entries = 0;
  for (const RingThreadPlan& t : plan) {
    EXPECT_LT(t.cpu, 2U);
    ASSERT_FALSE(t.queues.empty());
    EXPECT_EQ(t.queues.front(), t.cpu);  // its own CPU's queue first
    entries += t.queues.size();
  }
  EXPECT_EQ(entries, 2U * 2 + 62);
  // Every queue has an entry (else the kernel never uses the rings); the
  // served CPUs have one per thread.
  const std::vector<unsigned> per_queue = EntriesPerQueue(plan, 64);
  EXPECT_EQ(per_queue[0], 2U);
  EXPECT_EQ(per_queue[1], 2U);
  for (unsigned q = 2; q < 64; ++q) EXPECT_EQ(per_queue[q], 1U) << q;
  // Dealt out evenly: 62 spare queues over 4 threads.
  for (const RingThreadPlan& t : plan) {
    EXPECT_GE(t.queues.size(), 1U + 15);
    EXPECT_LE(t.queues.size(), 1U + 16);
  }
}

TEST(RingPlanTest, ACpusetLimitsTheThreadsToItsCpus) {
  const std::vector<RingThreadPlan> plan = PlanRingThreads(8, {5}, 2);
  ASSERT_EQ(plan.size(), 2U);
  EXPECT_EQ(plan[0].cpu, 5U);
  EXPECT_EQ(plan[1].cpu, 5U);
  const std::vector<unsigned> per_queue = EntriesPerQueue(plan, 8);
  EXPECT_EQ(per_queue, (Cpus{1, 1, 1, 1, 1, 2, 1, 1}));
}

TEST(RingPlanTest, NoUsableCpuFallsBackToCpu0) {
  // CPUs beyond the queue count (or none at all) cannot host a queue's threads.
  for (const Cpus& cpus : {Cpus{}, Cpus{9}}) {
    const std::vector<RingThreadPlan> plan = PlanRingThreads(4, cpus, 0);
    ASSERT_EQ(plan.size(), 1U);
    EXPECT_EQ(plan[0].cpu, 0U);
    EXPECT_EQ(plan[0].queues, (Cpus{0, 1, 2, 3}));
  }
  EXPECT_TRUE(PlanRingThreads(0, {0}, 2).empty());
}

}  // namespace
}  // namespace detourfs::fuseops
