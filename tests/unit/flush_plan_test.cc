// The flush's planner and stager against real trees: an epoch planned from
// a capture, staged, committed and applied makes the volume's subtree equal
// to the captured one (contents, owners, modes, times, symlinks, hard
// links), and planning again finds nothing to do; a change to one file
// plans just that file; a broken hard link is not missed; a capture that
// is not a pre-order tree of safe paths is refused.
#include "flush/flush_plan.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "flush/epoch_area.h"
#include "flush/epoch_recovery.h"
#include "flush/manifest_apply.h"
#include "flush/stage_object.h"
#include "flush_trees.h"
#include "scratch_dir.h"
#include "sys/sys.h"

namespace detourfs::flush {
namespace {

using namespace flush_trees;  // NOLINT(google-build-using-namespace)

// What a capture would note of the subtree `rel` of the tree at `root`:
// pre-order, hard links grouped by inode.
CapturedTree CaptureDir(const std::string& root, const std::string& rel) {
  CapturedTree tree;
  std::vector<std::string> todo = {rel};
  while (!todo.empty()) {
    const std::string p = todo.back();
    todo.pop_back();
    struct stat st {};
    if (::lstat((root + "/" + p).c_str(), &st) != 0) continue;
    CapturedEntry e;
    e.path = p;
    e.mode = st.st_mode;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.mtime_sec = st.st_mtim.tv_sec;
    e.mtime_nsec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
    if (S_ISREG(st.st_mode)) e.size = static_cast<uint64_t>(st.st_size);
    e.rdev = st.st_rdev;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      const ssize_t n = ::readlink((root + "/" + p).c_str(), target, sizeof(target));
      e.target.assign(target, static_cast<size_t>(std::max<ssize_t>(n, 0)));
    }
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) e.group = st.st_ino;
    tree.entries.push_back(e);
    if (!S_ISDIR(st.st_mode)) continue;
    DIR* d = ::opendir((root + "/" + p).c_str());
    std::vector<std::string> names;
    while (dirent* de = ::readdir(d)) {
      const std::string n = de->d_name;
      if (n != "." && n != "..") names.push_back(p + "/" + n);
    }
    ::closedir(d);
    std::sort(names.rbegin(), names.rend());  // popped in order
    todo.insert(todo.end(), names.begin(), names.end());
  }
  return tree;
}

class FlushPlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(scratch_.ok());
    tier_ = scratch_.path() + "/tier";
    vol_ = scratch_.path() + "/vol";
    for (const std::string& d : {tier_, vol_, vol_ + "/.detourfs"}) {
      ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
    }
    BuildNew(tier_);
    BuildOld(vol_);
    Result<UniqueFd> tree = sys::OpenPath(vol_.c_str(), O_PATH | O_DIRECTORY);
    Result<UniqueFd> tier = sys::OpenPath(tier_.c_str(), O_PATH | O_DIRECTORY);
    ASSERT_TRUE(tree.ok() && tier.ok());
    volume_ = std::move(*tree);
    tier_fd_ = std::move(*tier);
    Result<UniqueFd> priv = sys::OpenBeneath(volume_.get(), ".detourfs", O_PATH | O_DIRECTORY);
    ASSERT_TRUE(priv.ok());
    Result<EpochArea> area = EpochArea::Open(priv->get());
    ASSERT_TRUE(area.ok());
    area_ = std::move(*area);
  }

  // Plans node_modules against the volume.
  Plan PlanNow(const CapturedTree& capture) {
    Plan plan;
    uint64_t next = 1;
    EXPECT_TRUE(PlanSubtree(capture, volume_.get(), &next, &plan).ok());
    EXPECT_EQ(next, plan.stage.size() + 1);
    return plan;
  }

  // Stages, commits and finishes `plan` as the next epoch.
  void Flush(const CapturedTree& capture, Plan plan) {
    const uint64_t epoch = area_.last_done() + 1;
    Result<UniqueFd> data = area_.Begin(epoch);
    ASSERT_TRUE(data.ok());
    for (const StageItem& item : plan.stage) {
      const CapturedEntry& e = capture.entries[item.entry];
      Result<UniqueFd> source = sys::OpenBeneath(tier_fd_.get(), e.path.c_str(), O_PATH);
      ASSERT_TRUE(source.ok()) << e.path;
      ASSERT_TRUE(StageObject(e, source->get(), -1, data->get(), &plan.steps[item.step]).ok())
          << e.path;
    }
    Manifest m{epoch, std::move(plan.steps)};
    ASSERT_TRUE(area_.Commit(volume_.get(), m).ok());
    std::string why;
    ASSERT_TRUE(FinishEpoch(&area_, m, volume_.get(), &why).ok()) << why;
  }

  ScratchDir scratch_{"/dev/shm/detourfs-flush-plan"};
  std::string tier_, vol_;
  UniqueFd volume_, tier_fd_;
  EpochArea area_;
};

TEST_F(FlushPlanTest, AnEpochMakesTheVolumeSubtreeTheCapturedOneAndThenNothingIsLeftToDo) {
  const CapturedTree capture = CaptureDir(tier_, "proj/node_modules");
  Plan plan = PlanNow(capture);
  EXPECT_EQ(plan.stage_bytes, std::string("childnow a filev2shared").size());
  EXPECT_EQ(plan.unchanged, 0U);
  ASSERT_NO_FATAL_FAILURE(Flush(capture, std::move(plan)));
  EXPECT_EQ(Dump(vol_), Dump(tier_));

  const CapturedTree again = CaptureDir(tier_, "proj/node_modules");
  const Plan nothing = PlanNow(again);
  EXPECT_TRUE(nothing.steps.empty()) << nothing.steps.front().path;
  EXPECT_EQ(nothing.unchanged, again.entries.size());
}

TEST_F(FlushPlanTest, AChangedFileIsAllThatIsPlanned) {
  CapturedTree capture = CaptureDir(tier_, "proj/node_modules");
  ASSERT_NO_FATAL_FAILURE(Flush(capture, PlanNow(capture)));
  // Rewritten in place, same size: the directory's mtime does not change
  // on the tier, but placing the file changes it on the volume.
  WriteFile(tier_ + "/proj/node_modules/becomes_dir/child.js", "CHILD", 0600);
  SetMeta(tier_ + "/proj/node_modules/becomes_dir/child.js", 1000, 1000, 0600, kTime + 100);
  capture = CaptureDir(tier_, "proj/node_modules");
  Plan plan = PlanNow(capture);
  ASSERT_EQ(plan.steps.size(), 2U);
  EXPECT_EQ(plan.steps[0].kind, StepKind::kDirectory);
  EXPECT_EQ(plan.steps[0].path, "proj/node_modules/becomes_dir");
  EXPECT_EQ(plan.steps[1].kind, StepKind::kPlace);
  EXPECT_EQ(plan.steps[1].path, "proj/node_modules/becomes_dir/child.js");
  EXPECT_EQ(plan.stage_bytes, 5U);
  ASSERT_NO_FATAL_FAILURE(Flush(capture, std::move(plan)));
  EXPECT_EQ(Dump(vol_), Dump(tier_));
  // Only a directory's times.
  SetMeta(tier_ + "/proj/node_modules/new", 1000, 1000, 0700, kTime + 200);
  capture = CaptureDir(tier_, "proj/node_modules");
  plan = PlanNow(capture);
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(plan.steps[0].kind, StepKind::kDirectory);
  EXPECT_EQ(plan.steps[0].path, "proj/node_modules/new");
  EXPECT_TRUE(plan.stage.empty());
  ASSERT_NO_FATAL_FAILURE(Flush(capture, std::move(plan)));
  EXPECT_EQ(Dump(vol_), Dump(tier_));
}

TEST_F(FlushPlanTest, AHardLinkBrokenOnTheTierIsBrokenOnTheVolume) {
  CapturedTree capture = CaptureDir(tier_, "proj/node_modules");
  ASSERT_NO_FATAL_FAILURE(Flush(capture, PlanNow(capture)));
  // b.js becomes a file of its own with the same size, mode and times.
  const std::string b = tier_ + "/proj/node_modules/new/b.js";
  ASSERT_EQ(::unlink(b.c_str()), 0);
  WriteFile(b, "shared");
  SetMeta(b, 1000, 1000, 0644, kTime + 5);
  capture = CaptureDir(tier_, "proj/node_modules");
  ASSERT_NO_FATAL_FAILURE(Flush(capture, PlanNow(capture)));
  EXPECT_EQ(Dump(vol_), Dump(tier_));
  struct stat sa {
  }, sb{};
  ASSERT_EQ(::stat((vol_ + "/proj/node_modules/new/a.js").c_str(), &sa), 0);
  ASSERT_EQ(::stat((vol_ + "/proj/node_modules/new/b.js").c_str(), &sb), 0);
  EXPECT_NE(sa.st_ino, sb.st_ino);
  // And linked again.
  ASSERT_EQ(::unlink(b.c_str()), 0);
  ASSERT_EQ(::link((tier_ + "/proj/node_modules/new/a.js").c_str(), b.c_str()), 0);
  capture = CaptureDir(tier_, "proj/node_modules");
  ASSERT_NO_FATAL_FAILURE(Flush(capture, PlanNow(capture)));
  EXPECT_EQ(Dump(vol_), Dump(tier_));
}

TEST_F(FlushPlanTest, ACaptureThatIsNotAPreOrderTreeOfSafePathsIsRefused) {
  auto entry = [](std::string path, mode_t mode) {
    CapturedEntry e;
    e.path = std::move(path);
    e.mode = mode;
    return e;
  };
  const CapturedEntry root = entry("p/nm", S_IFDIR | 0755);
  const std::vector<std::vector<CapturedEntry>> bad = {
      {},
      {entry("p/nm", S_IFREG | 0644)},             // root not a directory
      {root, entry("p/other/x", S_IFREG | 0644)},  // not beneath it
      {root, entry("p/nm/a", S_IFREG | 0644), entry("p/nm/a", S_IFREG | 0644)},  // twice
      {root, entry("p/nm/../../etc", S_IFREG | 0644)},                           // escapes
      {root, entry("p/nm/d", S_IFDIR | 0755), entry("p/nm/e", S_IFDIR | 0755),
       entry("p/nm/d/x", S_IFREG | 0644), entry("p/nm/e/y", S_IFREG | 0644)},  // not pre-order
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    Plan plan;
    uint64_t next = 1;
    Result<void> r = PlanSubtree(CapturedTree{bad[i]}, volume_.get(), &next, &plan);
    ASSERT_FALSE(r.ok()) << i;
    EXPECT_EQ(r.error(), EINVAL) << i;
  }
}

}  // namespace
}  // namespace detourfs::flush
