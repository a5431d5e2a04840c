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

#include <map>
#include <string>
#include <utility>
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

// A regular file's identity and change time: what a capturer's change
// tracking can record at a flush and compare at the next (as git's index).
using Stamps = std::map<std::string, std::pair<ino_t, int64_t>>;

// What a capture would note of the subtree `rel` of the tree at `root`:
// pre-order, hard links grouped by inode, a regular file clean when its
// stamp is the one `clean` recorded. Its files' stamps go to `stamps`.
CapturedTree CaptureDir(const std::string& root, const std::string& rel, const Stamps& clean,
                        Stamps* stamps) {
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
    if (S_ISREG(st.st_mode)) {
      e.size = static_cast<uint64_t>(st.st_size);
      const std::pair<ino_t, int64_t> stamp{st.st_ino,
                                            st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec};
      auto it = clean.find(p);
      e.clean = it != clean.end() && it->second == stamp;
      (*stamps)[p] = stamp;
    }
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
    ASSERT_EQ(::mkdir(tier_.c_str(), 0755), 0);
    BuildNew(tier_);
    Result<UniqueFd> tier = sys::OpenPath(tier_.c_str(), O_PATH | O_DIRECTORY);
    ASSERT_TRUE(tier.ok());
    tier_fd_ = std::move(*tier);
    ASSERT_NO_FATAL_FAILURE(NewVolume("vol"));
  }

  // A volume holding the old tree at scratch/`name`, and its flush area.
  void NewVolume(const std::string& name) {
    vol_ = scratch_.path() + "/" + name;
    ASSERT_EQ(::mkdir(vol_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((vol_ + "/.detourfs").c_str(), 0700), 0);
    BuildOld(vol_);
    Result<UniqueFd> tree = sys::OpenPath(vol_.c_str(), O_PATH | O_DIRECTORY);
    ASSERT_TRUE(tree.ok());
    volume_ = std::move(*tree);
    ASSERT_NO_FATAL_FAILURE(OpenArea());
  }

  void OpenArea() { ReopenArea(volume_.get(), &area_); }

  // Captures node_modules on the tier; Flush records its stamps as clean.
  CapturedTree Capture() {
    pending_.clear();
    return CaptureDir(tier_, "proj/node_modules", clean_, &pending_);
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
    Manifest m;
    ASSERT_NO_FATAL_FAILURE(StageAndCommit(capture, std::move(plan), &m));
    std::string why;
    ASSERT_TRUE(FinishEpoch(&area_, m, volume_.get(), &why).ok()) << why;
    clean_ = pending_;
  }

  // Stages `plan` as the next epoch and commits it as `*m`.
  void StageAndCommit(const CapturedTree& capture, Plan plan, Manifest* m) {
    Result<uint64_t> epoch = area_.NextEpoch();
    ASSERT_TRUE(epoch.ok());
    Result<UniqueFd> data = area_.Begin(volume_.get(), *epoch);
    ASSERT_TRUE(data.ok());
    for (const StageItem& item : plan.stage) {
      const CapturedEntry& e = capture.entries[item.entry];
      Result<UniqueFd> source = sys::OpenBeneath(tier_fd_.get(), e.path.c_str(), O_PATH);
      ASSERT_TRUE(source.ok()) << e.path;
      ASSERT_TRUE(StageObject(e, source->get(), -1, data->get(), &plan.steps[item.step]).ok())
          << e.path;
    }
    *m = Manifest{*epoch, std::move(plan.steps)};
    ASSERT_TRUE(area_.Commit(*m).ok());
  }

  ScratchDir scratch_{"/dev/shm/detourfs-flush-plan"};
  std::string tier_, vol_;
  UniqueFd volume_, tier_fd_;
  EpochArea area_;
  Stamps clean_, pending_;
};

TEST_F(FlushPlanTest, AnEpochMakesTheVolumeSubtreeTheCapturedOneAndThenNothingIsLeftToDo) {
  const CapturedTree capture = Capture();
  Plan plan = PlanNow(capture);
  EXPECT_EQ(plan.stage_bytes, std::string("childnow a filev2shared").size());
  EXPECT_EQ(plan.unchanged, 0U);
  ASSERT_NO_FATAL_FAILURE(Flush(capture, std::move(plan)));
  EXPECT_EQ(Dump(vol_), Dump(tier_));

  const CapturedTree again = Capture();
  const Plan nothing = PlanNow(again);
  EXPECT_TRUE(nothing.steps.empty()) << nothing.steps.front().path;
  EXPECT_EQ(nothing.unchanged, again.entries.size());
}

TEST_F(FlushPlanTest, AChangedFileIsAllThatIsPlanned) {
  CapturedTree capture = Capture();
  ASSERT_NO_FATAL_FAILURE(Flush(capture, PlanNow(capture)));
  // Rewritten in place, same size: the directory's mtime does not change
  // on the tier, but placing the file changes it on the volume.
  WriteFile(tier_ + "/proj/node_modules/becomes_dir/child.js", "CHILD", 0600);
  SetMeta(tier_ + "/proj/node_modules/becomes_dir/child.js", 1000, 1000, 0600, kTime + 100);
  capture = Capture();
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
  capture = Capture();
  plan = PlanNow(capture);
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(plan.steps[0].kind, StepKind::kDirectory);
  EXPECT_EQ(plan.steps[0].path, "proj/node_modules/new");
  EXPECT_TRUE(plan.stage.empty());
  ASSERT_NO_FATAL_FAILURE(Flush(capture, std::move(plan)));
  EXPECT_EQ(Dump(vol_), Dump(tier_));
}

TEST_F(FlushPlanTest, AHardLinkBrokenOnTheTierIsBrokenOnTheVolume) {
  CapturedTree capture = Capture();
  ASSERT_NO_FATAL_FAILURE(Flush(capture, PlanNow(capture)));
  // b.js becomes a file of its own with the same size, mode and times.
  const std::string b = tier_ + "/proj/node_modules/new/b.js";
  ASSERT_EQ(::unlink(b.c_str()), 0);
  WriteFile(b, "shared");
  SetMeta(b, 1000, 1000, 0644, kTime + 5);
  capture = Capture();
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
  capture = Capture();
  ASSERT_NO_FATAL_FAILURE(Flush(capture, PlanNow(capture)));
  EXPECT_EQ(Dump(vol_), Dump(tier_));
}

TEST_F(FlushPlanTest, AFileChangedKeepingItsSizeAndMtimeIsFlushed) {
  CapturedTree capture = Capture();
  ASSERT_NO_FATAL_FAILURE(Flush(capture, PlanNow(capture)));
  // As npm does: every file it extracts gets the same mtime, and an upgrade
  // may keep a file's size.
  const std::string keep = tier_ + "/proj/node_modules/keep.js";
  WriteFile(keep, "V2", 0755);
  SetMeta(keep, 1000, 1000, 0755, kTime + 3);
  capture = Capture();
  Plan plan = PlanNow(capture);
  ASSERT_EQ(plan.stage.size(), 1U);
  EXPECT_EQ(plan.steps[plan.stage[0].step].path, "proj/node_modules/keep.js");
  ASSERT_NO_FATAL_FAILURE(Flush(capture, std::move(plan)));
  EXPECT_EQ(ReadFile(vol_ + "/proj/node_modules/keep.js"), "V2");
  EXPECT_EQ(Dump(vol_), Dump(tier_));
}

TEST_F(FlushPlanTest, ACrashAfterAnyStepOfAPlannedEpochIsFinishedByRecovery) {
  const size_t steps = PlanNow(Capture()).steps.size();
  ASSERT_GT(steps, 8U);
  for (size_t k = 0; k <= steps; ++k) {
    SCOPED_TRACE("crash after step " + std::to_string(k));
    ASSERT_NO_FATAL_FAILURE(NewVolume("vol-crash-" + std::to_string(k)));
    const CapturedTree capture = Capture();
    Manifest m;
    ASSERT_NO_FATAL_FAILURE(StageAndCommit(capture, PlanNow(capture), &m));
    ASSERT_EQ(m.steps.size(), steps);
    Manifest done_part = m;
    done_part.steps.resize(k);
    Result<UniqueFd> data = area_.OpenData(m.epoch);
    ASSERT_TRUE(data.ok());
    ASSERT_TRUE(ApplyManifest(done_part, volume_.get(), data->get()).ok());
    ASSERT_NO_FATAL_FAILURE(OpenArea());  // as a new start would
    Result<RecoveryReport> report = RecoverEpochs(&area_, volume_.get());
    ASSERT_TRUE(report.ok());
    EXPECT_EQ(report->finished, std::vector<uint64_t>{m.epoch});
    EXPECT_TRUE(report->unfinished.empty()) << report->unfinished.front();
    EXPECT_EQ(Dump(vol_), Dump(tier_));
  }
}

TEST_F(FlushPlanTest, ACaptureRootWhoseParentIsNotOnTheVolumeIsRefused) {
  ASSERT_EQ(::rename((vol_ + "/proj").c_str(), (vol_ + "/gone").c_str()), 0);
  Plan plan;
  uint64_t next = 1;
  Result<void> r = PlanSubtree(Capture(), volume_.get(), &next, &plan);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), ENOENT);
  WriteFile(vol_ + "/proj", "a file where the parent should be");
  r = PlanSubtree(Capture(), volume_.get(), &next, &plan);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), ENOTDIR);
}

TEST_F(FlushPlanTest, ACaptureThatIsNotAPreOrderTreeOfSafePathsIsRefused) {
  auto entry = [](std::string path, mode_t mode) {
    CapturedEntry e;
    e.path = std::move(path);
    e.mode = mode;
    return e;
  };
  const CapturedEntry root = entry("proj/nm", S_IFDIR | 0755);
  const std::vector<std::vector<CapturedEntry>> bad = {
      {},
      {entry("proj/nm", S_IFREG | 0644)},             // root not a directory
      {root, entry("proj/other/x", S_IFREG | 0644)},  // not beneath it
      {root, entry("proj/nm/a", S_IFREG | 0644), entry("proj/nm/a", S_IFREG | 0644)},  // twice
      {root, entry("proj/nm/../../etc", S_IFREG | 0644)},                              // escapes
      {root, entry("proj/nm/d", S_IFDIR | 0755), entry("proj/nm/e", S_IFDIR | 0755),
       entry("proj/nm/d/x", S_IFREG | 0644),
       entry("proj/nm/e/y", S_IFREG | 0644)},  // not pre-order
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
