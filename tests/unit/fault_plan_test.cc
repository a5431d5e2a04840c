// flakyfs's FaultPlan: commands, default operation sets, repeatable draws,
// vanish bookkeeping.
#include "fault_plan.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <thread>

namespace flakyfs {
namespace {

std::string Apply(FaultPlan& plan, const std::string& command) {
  std::string reply;
  std::string error = plan.Apply(command, &reply);
  return error.empty() ? "ok " + reply : "error " + error;
}

TEST(FaultPlanTest, NothingFiresWhenNothingIsConfigured) {
  FaultPlan plan;
  for (size_t i = 0; i < kOpCount; ++i) {
    Decision d = plan.Decide(static_cast<Op>(i), "a/b", 4096);
    EXPECT_EQ(d.error, 0);
    EXPECT_FALSE(d.lie);
    EXPECT_EQ(d.short_write, 0U);
    EXPECT_EQ(d.delay.count(), 0);
  }
  EXPECT_FALSE(plan.OnClosedAfterWrite("a/b"));
  EXPECT_FALSE(plan.Vanished("a/b"));
}

TEST(FaultPlanTest, EachKindHasItsErrnoAndDefaultOperations) {
  FaultPlan plan;
  ASSERT_EQ(Apply(plan, "fault enospc"), "ok rule 1");
  EXPECT_EQ(plan.Decide(Op::kWrite, "f", 10).error, ENOSPC);
  EXPECT_EQ(plan.Decide(Op::kRead, "f").error, 0);  // reading needs no space
  EXPECT_EQ(plan.Decide(Op::kUnlink, "f").error, 0);
  ASSERT_EQ(Apply(plan, "clear"), "ok ");
  ASSERT_EQ(Apply(plan, "fault erofs"), "ok rule 1");
  EXPECT_EQ(plan.Decide(Op::kUnlink, "f").error, EROFS);
  EXPECT_EQ(plan.Decide(Op::kGetattr, "f").error, 0);
  ASSERT_EQ(Apply(plan, "clear"), "ok ");
  ASSERT_EQ(Apply(plan, "fault eio"), "ok rule 1");
  EXPECT_EQ(plan.Decide(Op::kGetattr, "f").error, EIO);
  EXPECT_EQ(plan.Decide(Op::kRelease, "f").error, 0);  // the kernel ignores release errors
  ASSERT_EQ(Apply(plan, "clear"), "ok ");
  ASSERT_EQ(Apply(plan, "fault lie"), "ok rule 1");
  EXPECT_TRUE(plan.Decide(Op::kRename, "f").lie);
  EXPECT_FALSE(plan.Decide(Op::kCreate, "f").lie);
  ASSERT_EQ(Apply(plan, "clear"), "ok ");
  ASSERT_EQ(Apply(plan, "fault short_write"), "ok rule 1");
  EXPECT_EQ(plan.Decide(Op::kWrite, "f", 100).short_write, 50U);
  EXPECT_EQ(plan.Decide(Op::kWrite, "f", 1).short_write, 0U);
  EXPECT_EQ(plan.Injected(FaultKind::kShortWrite), 1U);
}

TEST(FaultPlanTest, GlobAndOpsNarrowARule) {
  FaultPlan plan;
  ASSERT_EQ(Apply(plan, "fault eio glob=**/node_modules/** ops=open,read"), "ok rule 1");
  EXPECT_EQ(plan.Decide(Op::kOpen, "app/node_modules/x/y.js").error, EIO);
  EXPECT_EQ(plan.Decide(Op::kGetattr, "app/node_modules/x/y.js").error, 0);
  EXPECT_EQ(plan.Decide(Op::kOpen, "app/src/y.js").error, 0);
  EXPECT_EQ(plan.Decide(Op::kOpen, "").error, 0);  // the root matches no glob
}

TEST(FaultPlanTest, DrawsDependOnTheSeedAndTheOperationSequenceOnly) {
  auto run = [](uint64_t seed) {
    FaultPlan plan;
    EXPECT_EQ(Apply(plan, "seed " + std::to_string(seed)), "ok ");
    EXPECT_EQ(Apply(plan, "fault eio prob=0.3"), "ok rule 1");
    std::string pattern;
    for (int i = 0; i < 300; ++i) {
      pattern += plan.Decide(Op::kGetattr, "f" + std::to_string(i % 7)).error != 0 ? '1' : '0';
    }
    return pattern;
  };
  EXPECT_EQ(run(3), run(3));
  EXPECT_NE(run(3), run(4));
  std::string p = run(3);
  size_t ones = static_cast<size_t>(std::count(p.begin(), p.end(), '1'));
  EXPECT_GT(ones, 50U);
  EXPECT_LT(ones, 130U);
}

TEST(FaultPlanTest, ProbabilityZeroNeverFires) {
  FaultPlan plan;
  ASSERT_EQ(Apply(plan, "fault eio prob=0"), "ok rule 1");
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(plan.Decide(Op::kGetattr, "x").error, 0);
  EXPECT_EQ(plan.Injected(FaultKind::kEio), 0U);
}

TEST(FaultPlanTest, LatencyPerClassWithJitterInRange) {
  FaultPlan plan;
  ASSERT_EQ(Apply(plan, "latency write 1ms 500us"), "ok ");
  ASSERT_EQ(Apply(plan, "latency fsync 5ms"), "ok ");
  for (int i = 0; i < 100; ++i) {
    auto d = plan.Decide(Op::kWrite, "f" + std::to_string(i), 10).delay;
    EXPECT_GE(d.count(), 1000);
    EXPECT_LE(d.count(), 1500);
  }
  EXPECT_EQ(plan.Decide(Op::kFsync, "f").delay.count(), 5000);
  EXPECT_EQ(plan.Decide(Op::kGetattr, "f").delay.count(), 0);
}

TEST(FaultPlanTest, TemporaryVanishExpiresAndForgetEndsIt) {
  FaultPlan plan;
  ASSERT_EQ(Apply(plan, "fault vanish glob=t* mode=size for=50ms"), "ok rule 1");
  EXPECT_FALSE(plan.OnClosedAfterWrite("t1"));  // no permanent damage
  ASSERT_TRUE(plan.Vanished("t1"));
  EXPECT_EQ(plan.Vanished("t1")->mode, VanishMode::kSize);
  EXPECT_FALSE(plan.Vanished("other"));
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_FALSE(plan.Vanished("t1"));
  EXPECT_FALSE(plan.OnClosedAfterWrite("t2"));
  plan.Forget("t2");
  EXPECT_FALSE(plan.Vanished("t2"));
  EXPECT_EQ(plan.Injected(FaultKind::kVanish), 2U);
}

TEST(FaultPlanTest, PermanentVanishAsksForDamage) {
  FaultPlan plan;
  ASSERT_EQ(Apply(plan, "fault vanish mode=content"), "ok rule 1");
  auto damage = plan.OnClosedAfterWrite("x/y");
  ASSERT_TRUE(damage);
  EXPECT_EQ(damage->path, "x/y");
  EXPECT_EQ(damage->mode, VanishMode::kContent);
}

TEST(FaultPlanTest, DirectoryFsyncIsAnOperationOfTheFsyncClass) {
  FaultPlan plan;
  ASSERT_EQ(Apply(plan, "fault eio ops=fsyncdir"), "ok rule 1");
  ASSERT_EQ(Apply(plan, "latency fsync 2ms"), "ok ");
  Decision d = plan.Decide(Op::kFsyncdir, "d");
  EXPECT_EQ(d.error, EIO);
  EXPECT_EQ(d.delay.count(), 2000);
  EXPECT_EQ(plan.Decide(Op::kFsync, "d/f").error, 0);
  EXPECT_EQ(OpByName("fsyncdir"), Op::kFsyncdir);
}

TEST(FaultPlanTest, BadCommandsAreRefusedWithAReason) {
  FaultPlan plan;
  EXPECT_EQ(Apply(plan, "explode").rfind("error unknown command", 0), 0U);
  EXPECT_EQ(Apply(plan, "fault").rfind("error fault needs a kind", 0), 0U);
  EXPECT_EQ(Apply(plan, "fault eio prob=2").rfind("error bad prob", 0), 0U);
  EXPECT_EQ(Apply(plan, "fault eio ops=frobnicate").rfind("error unknown op", 0), 0U);
  EXPECT_EQ(Apply(plan, "fault eio when=now").rfind("error unknown key", 0), 0U);
  EXPECT_EQ(Apply(plan, "fault vanish mode=gone").rfind("error mode must be", 0), 0U);
  EXPECT_EQ(Apply(plan, "latency disk 1ms").rfind("error unknown class", 0), 0U);
  EXPECT_EQ(Apply(plan, "latency all 1 parsec").rfind("error", 0), 0U);
  EXPECT_EQ(Apply(plan, "stall 0.5").rfind("error usage", 0), 0U);
  EXPECT_EQ(Apply(plan, "seed x").rfind("error usage", 0), 0U);
  EXPECT_EQ(Apply(plan, "# a comment"), "ok ");
  EXPECT_EQ(Apply(plan, ""), "ok ");
}

TEST(FaultPlanTest, CountersAreJson) {
  FaultPlan plan;
  ASSERT_EQ(Apply(plan, "fault eio ops=mkdir"), "ok rule 1");
  (void)plan.Decide(Op::kMkdir, "d");
  (void)plan.Decide(Op::kGetattr, "d");
  std::string reply = Apply(plan, "counters");
  EXPECT_NE(reply.find("\"eio\":1"), std::string::npos) << reply;
  EXPECT_NE(reply.find("\"ops_total\":2"), std::string::npos) << reply;
}

}  // namespace
}  // namespace flakyfs
