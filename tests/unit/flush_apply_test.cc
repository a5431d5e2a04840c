// Applying flush epochs to a volume tree: a committed manifest makes the
// tree exactly its new state, from the start or from wherever a crash
// stopped it (every step idempotent); an uncommitted epoch is discarded and
// leaves the old state; verify reports what is not as the manifest says;
// no step reaches outside the tree through a symlink.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "flush/epoch_area.h"
#include "flush/epoch_recovery.h"
#include "flush/manifest_apply.h"
#include "flush_trees.h"
#include "scratch_dir.h"
#include "sys/sys.h"

namespace detourfs::flush {
namespace {

using namespace flush_trees;  // NOLINT(google-build-using-namespace)

ManifestStep Dir(const std::string& path, uint64_t staged, mode_t mode, int64_t mtime) {
  ManifestStep s = MakeStep(StepKind::kDirectory, path);
  s.staged = staged;
  s.mode = S_IFDIR | mode;
  s.uid = s.gid = 1000;
  s.mtime_sec = mtime;
  return s;
}

ManifestStep File(const std::string& path, uint64_t staged, const std::string& content,
                  mode_t mode) {
  ManifestStep s = MakeStep(StepKind::kPlace, path);
  s.staged = staged;
  s.mode = S_IFREG | mode;
  s.uid = s.gid = 1000;
  s.size = content.size();
  s.hash = XXH3_64bits(content.data(), content.size());
  return s;
}

class FlushApplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(scratch_.ok());
    ASSERT_EQ(::mkdir(Expected().c_str(), 0755), 0);
    BuildNew(Expected());
    ASSERT_NO_FATAL_FAILURE(Fresh());
  }

  std::string Expected() const { return scratch_.path() + "/expected"; }

  // A new volume holding the old tree, and its flush area.
  void Fresh() {
    vol_ = scratch_.path() + "/vol" + std::to_string(++volumes_);
    ASSERT_EQ(::mkdir(vol_.c_str(), 0755), 0);
    BuildOld(vol_);
    ASSERT_EQ(::mkdir((vol_ + "/.detourfs").c_str(), 0700), 0);
    OpenArea();
  }

  void OpenArea() {
    Result<UniqueFd> tree = sys::OpenPath(vol_.c_str(), O_PATH | O_DIRECTORY);
    ASSERT_TRUE(tree.ok());
    tree_ = std::move(*tree);
    ReopenArea(tree_.get(), &area_);
  }

  std::string Data(uint64_t epoch) const {
    return vol_ + "/.detourfs/flush/" + EpochDirName(epoch) + "/data/";
  }

  // Begins epoch 1 and stages its objects; returns its manifest.
  Manifest Stage() {
    Manifest m;
    m.epoch = 1;
    Result<UniqueFd> data = area_.Begin(tree_.get(), 1);
    EXPECT_TRUE(data.ok());
    const std::string d = Data(1);
    auto dir = [&](uint64_t n, mode_t mode) {
      EXPECT_EQ(::mkdir((d + StagedName(n)).c_str(), mode), 0);
      SetMeta(d + StagedName(n), 1000, 1000, mode, 1);
    };
    auto file = [&](uint64_t n, const std::string& content, mode_t mode, int64_t mtime) {
      WriteFile(d + StagedName(n), content, mode);
      SetMeta(d + StagedName(n), 1000, 1000, mode, mtime);
    };
    dir(1, 0711);
    EXPECT_EQ(::lsetxattr((d + StagedName(1)).c_str(), "trusted.flush-test", "on", 2, 0), 0);
    dir(2, 0750);
    file(3, "child", 0600, kTime + 1);
    file(4, "now a file", 0644, kTime + 2);
    file(5, "v2", 0755, kTime + 3);
    dir(6, 0700);
    EXPECT_EQ(::symlink("../keep.js", (d + StagedName(7)).c_str()), 0);
    SetMeta(d + StagedName(7), 1000, 1000, 0777, kTime + 4);
    file(8, "shared", 0644, kTime + 5);
    ManifestStep symlink = MakeStep(StepKind::kPlace, "proj/node_modules/new/link", "../keep.js");
    symlink.staged = 7;
    symlink.mode = S_IFLNK | 0777;
    symlink.uid = symlink.gid = 1000;
    m.steps = {
        Dir("proj/node_modules", 1, 0711, kTime + 12),
        MakeStep(StepKind::kRemove, "proj/node_modules/left"),
        Dir("proj/node_modules/becomes_dir", 2, 0750, kTime + 10),
        File("proj/node_modules/becomes_dir/child.js", 3, "child", 0600),
        File("proj/node_modules/becomes_file", 4, "now a file", 0644),
        File("proj/node_modules/keep.js", 5, "v2", 0755),
        Dir("proj/node_modules/new", 6, 0700, kTime + 11),
        symlink,
        File("proj/node_modules/new/a.js", 8, "shared", 0644),
        MakeStep(StepKind::kLink, "proj/node_modules/new/b.js", "proj/node_modules/new/a.js"),
    };
    return m;
  }

  ScratchDir scratch_{"/dev/shm/detourfs-flush-apply"};
  std::string vol_;
  int volumes_ = 0;
  UniqueFd tree_;
  EpochArea area_;
};

TEST_F(FlushApplyTest, ACommittedEpochMakesTheTreeItsNewState) {
  const std::string old = Dump(vol_);
  const Manifest m = Stage();
  ASSERT_TRUE(area_.Commit(m).ok());
  EXPECT_EQ(Dump(vol_), old) << "nothing changes before apply";
  std::string why;
  ASSERT_TRUE(FinishEpoch(&area_, m, tree_.get(), &why).ok()) << why;
  EXPECT_EQ(Dump(vol_), Dump(Expected()));
  char value[8] = {};
  EXPECT_EQ(::lgetxattr((vol_ + "/proj/node_modules").c_str(), "trusted.flush-test", value,
                        sizeof(value)),
            2);
  EXPECT_STREQ(value, "on");
  EXPECT_EQ(area_.last_done(), 1U);
  Result<std::vector<uint64_t>> left = area_.InFlight();
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
  // Applying it again (its staged objects gone) changes nothing.
  ASSERT_EQ(::mkdir((scratch_.path() + "/no-data").c_str(), 0700), 0);
  Result<UniqueFd> data = sys::OpenPath((scratch_.path() + "/no-data").c_str(), O_PATH);
  ASSERT_TRUE(data.ok());
  ASSERT_TRUE(ApplyManifest(m, tree_.get(), data->get()).ok());
  EXPECT_EQ(Dump(vol_), Dump(Expected()));
}

TEST_F(FlushApplyTest, ACrashAfterAnyStepIsFinishedByRecovery) {
  const size_t steps = Stage().steps.size();
  for (size_t k = 0; k <= steps; ++k) {
    SCOPED_TRACE("crash after step " + std::to_string(k));
    ASSERT_NO_FATAL_FAILURE(Fresh());
    Manifest m = Stage();
    ASSERT_TRUE(area_.Commit(m).ok());
    Manifest done_part = m;
    done_part.steps.resize(k);
    Result<UniqueFd> data = area_.OpenData(1);
    ASSERT_TRUE(data.ok());
    ASSERT_TRUE(ApplyManifest(done_part, tree_.get(), data->get()).ok());
    if (k == 2) {
      // A removal cut halfway: part of the tree already gone.
      ASSERT_EQ(::mkdir((vol_ + "/proj/node_modules/left").c_str(), 0755), 0);
      WriteFile(vol_ + "/proj/node_modules/left/half", "h");
    }
    ASSERT_NO_FATAL_FAILURE(OpenArea());  // as a new start would
    Result<RecoveryReport> report = RecoverEpochs(&area_, tree_.get());
    ASSERT_TRUE(report.ok());
    EXPECT_EQ(report->finished, std::vector<uint64_t>{1});
    EXPECT_TRUE(report->unfinished.empty()) << report->unfinished.front();
    EXPECT_EQ(Dump(vol_), Dump(Expected()));
  }
}

TEST_F(FlushApplyTest, AnUncommittedEpochIsDiscardedAndTheOldStateStays) {
  const std::string old = Dump(vol_);
  (void)Stage();
  ASSERT_NO_FATAL_FAILURE(OpenArea());
  Result<RecoveryReport> report = RecoverEpochs(&area_, tree_.get());
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->discarded, std::vector<uint64_t>{1});
  EXPECT_TRUE(report->finished.empty());
  EXPECT_EQ(Dump(vol_), old);
  EXPECT_EQ(area_.last_done(), 0U);
  Result<std::vector<uint64_t>> left = area_.InFlight();
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
}

TEST_F(FlushApplyTest, AnEpochDoneBeforeTheCrashIsNotAppliedAgain) {
  // Epoch 1 recorded done, its directory still there with its manifest (a
  // crash while removing it), a manifest that would now be wrong to apply.
  ASSERT_TRUE(area_.Begin(tree_.get(), 1).ok());
  ASSERT_TRUE(area_.Commit(Manifest{1, {MakeStep(StepKind::kRemove, "proj/src")}}).ok());
  WriteFile(vol_ + "/.detourfs/flush/last", "1\n", 0600);
  ASSERT_NO_FATAL_FAILURE(OpenArea());
  EXPECT_EQ(area_.last_done(), 1U);
  // A done epoch's leftovers hold up no new epoch.
  ASSERT_TRUE(area_.Begin(tree_.get(), 2).ok());
  const std::string before = Dump(vol_);
  Result<RecoveryReport> report = RecoverEpochs(&area_, tree_.get());
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->cleared, std::vector<uint64_t>{1});
  EXPECT_EQ(report->discarded, std::vector<uint64_t>{2});  // begun, never committed
  EXPECT_EQ(Dump(vol_), before);
}

TEST_F(FlushApplyTest, ANewEpochWaitsForACommittedOneAndNeverReusesANumber) {
  Manifest m = Stage();
  EXPECT_EQ(area_.Begin(tree_.get(), 1).error(), EEXIST);  // begun already
  ASSERT_TRUE(area_.Commit(m).ok());
  // Planned over a volume the committed one has not finished with, a later
  // epoch would be undone by the replay of the earlier one.
  EXPECT_EQ(area_.Begin(tree_.get(), 2).error(), EBUSY);
  std::string why;
  ASSERT_TRUE(FinishEpoch(&area_, m, tree_.get(), &why).ok()) << why;
  EXPECT_EQ(area_.Begin(tree_.get(), 1).error(), EEXIST);  // done
  Result<uint64_t> next = area_.NextEpoch();
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, 2U);
  EXPECT_TRUE(area_.Begin(tree_.get(), 2).ok());
  // One process at a time holds the area.
  Result<UniqueFd> priv = sys::OpenBeneath(tree_.get(), ".detourfs", O_PATH | O_DIRECTORY);
  ASSERT_TRUE(priv.ok());
  EXPECT_EQ(EpochArea::Open(priv->get()).error(), EBUSY);
}

TEST_F(FlushApplyTest, AStagedFileTheVolumeLostIsNeverCommitted) {
  Manifest m = Stage();
  WriteFile(Data(1) + StagedName(5), "v3", 0755);  // "v2" became something else
  EXPECT_EQ(area_.Commit(m).error(), EIO);
  ASSERT_EQ(::unlink((Data(1) + StagedName(5)).c_str()), 0);
  EXPECT_EQ(area_.Commit(m).error(), EIO);
  WriteFile(Data(1) + StagedName(5), "v2", 0755);
  ASSERT_EQ(::rmdir((Data(1) + StagedName(6)).c_str()), 0);  // a staged directory lost
  EXPECT_EQ(area_.Commit(m).error(), EIO);
  WriteFile(Data(1) + StagedName(6), "");  // ... or not a directory
  EXPECT_EQ(area_.Commit(m).error(), EIO);
  ASSERT_EQ(::unlink((Data(1) + StagedName(6)).c_str()), 0);
  ASSERT_EQ(::mkdir((Data(1) + StagedName(6)).c_str(), 0700), 0);
  // A manifest recovery would refuse is not written either.
  Manifest remade = m;
  remade.steps.insert(remade.steps.begin(), MakeStep(StepKind::kRemove, "proj/node_modules/new"));
  EXPECT_EQ(area_.Commit(remade).error(), EINVAL);
  EXPECT_FALSE(
      sys::StatAt(tree_.get(), (".detourfs/flush/" + EpochDirName(1) + "/manifest").c_str()).ok());
}

TEST_F(FlushApplyTest, AFlushAreaAUserMadeIsNeverApplied) {
  const std::string old = Dump(vol_);
  Manifest m = Stage();
  ASSERT_TRUE(area_.Commit(m).ok());
  area_ = EpochArea();
  ASSERT_EQ(::chown((vol_ + "/.detourfs").c_str(), 1000, 1000), 0);
  EXPECT_EQ(RecoverVolume(tree_.get()).error(), EPERM);
  ASSERT_EQ(::chown((vol_ + "/.detourfs").c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod((vol_ + "/.detourfs/flush").c_str(), 0777), 0);
  EXPECT_EQ(RecoverVolume(tree_.get()).error(), EPERM);
  EXPECT_EQ(Dump(vol_), old);
  ASSERT_EQ(::chmod((vol_ + "/.detourfs/flush").c_str(), 0700), 0);
  Result<RecoveryReport> report = RecoverVolume(tree_.get());
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->finished, std::vector<uint64_t>{1});
  EXPECT_EQ(Dump(vol_), Dump(Expected()));
}

TEST_F(FlushApplyTest, ARemoveBelowASymlinkIsDoneAlready) {
  ASSERT_EQ(::symlink("/tmp", (vol_ + "/proj/node_modules/left/l").c_str()), 0);
  ASSERT_TRUE(area_.Begin(tree_.get(), 1).ok());
  const Manifest m{1, {MakeStep(StepKind::kRemove, "proj/node_modules/left/l/x/y")}};
  ASSERT_TRUE(area_.Commit(m).ok());
  std::string why;
  ASSERT_TRUE(FinishEpoch(&area_, m, tree_.get(), &why).ok()) << why;
  struct stat st {};
  EXPECT_EQ(::lstat("/tmp", &st), 0);
}

TEST_F(FlushApplyTest, ACorruptManifestIsNeverApplied) {
  const std::string old = Dump(vol_);
  Manifest m = Stage();
  ASSERT_TRUE(area_.Commit(m).ok());
  const std::string manifest = vol_ + "/.detourfs/flush/" + EpochDirName(1) + "/manifest";
  std::string bytes = ReadFile(manifest);
  bytes[bytes.size() / 2] ^= 0x20;
  WriteFile(manifest, bytes, 0600);
  ASSERT_NO_FATAL_FAILURE(OpenArea());
  Result<RecoveryReport> report = RecoverEpochs(&area_, tree_.get());
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->finished.empty());
  ASSERT_EQ(report->unfinished.size(), 1U);
  EXPECT_NE(report->unfinished[0].find("checksum"), std::string::npos) << report->unfinished[0];
  EXPECT_EQ(Dump(vol_), old);
  Result<std::vector<uint64_t>> left = area_.InFlight();
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(*left, std::vector<uint64_t>{1}) << "kept for a look, not deleted";
}

TEST_F(FlushApplyTest, VerifyReportsWhatTheVolumeLostOrChanged) {
  Manifest m = Stage();
  ASSERT_TRUE(area_.Commit(m).ok());
  std::string why;
  ASSERT_TRUE(FinishEpoch(&area_, m, tree_.get(), &why).ok()) << why;
  Result<std::vector<VerifyFinding>> clean = VerifyManifest(m, tree_.get());
  ASSERT_TRUE(clean.ok());
  EXPECT_TRUE(clean->empty());
  const std::string nm = vol_ + "/proj/node_modules/";
  WriteFile(nm + "keep.js", "v3", 0755);                          // same size, other bytes
  ASSERT_EQ(::unlink((nm + "becomes_dir/child.js").c_str()), 0);  // vanished
  ASSERT_EQ(::chmod((nm + "new").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((nm + "left").c_str(), 0755), 0);  // came back
  ASSERT_EQ(::unlink((nm + "new/b.js").c_str()), 0);
  WriteFile(nm + "new/b.js", "shared");  // same content, not the same file
  ASSERT_EQ(::truncate((nm + "becomes_file").c_str(), 3), 0);
  Result<std::vector<VerifyFinding>> found = VerifyManifest(m, tree_.get());
  ASSERT_TRUE(found.ok());
  std::map<std::string, std::string> what;
  for (const VerifyFinding& f : *found) what[f.path] = f.what;
  EXPECT_EQ(what, (std::map<std::string, std::string>{
                      {"proj/node_modules/keep.js", "content differs"},
                      {"proj/node_modules/becomes_dir/child.js", "missing"},
                      {"proj/node_modules/new", "mode 493, expected 448"},
                      {"proj/node_modules/left", "still present"},
                      {"proj/node_modules/new/b.js", "not a link to proj/node_modules/new/a.js"},
                      {"proj/node_modules/becomes_file", "size 3, expected 10"},
                  }));
}

TEST_F(FlushApplyTest, AStepNeverFollowsASymlinkOutOfTheTree) {
  const std::string outside = scratch_.path() + "/outside";
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (vol_ + "/proj/evil").c_str()), 0);
  ASSERT_TRUE(area_.Begin(tree_.get(), 1).ok());
  WriteFile(Data(1) + StagedName(1), "planted");
  Manifest m{1,
             {File("proj/evil/x", 1, "planted", 0644), MakeStep(StepKind::kRemove, "proj/evil/y")}};
  WriteFile(outside + "/y", "stays");
  size_t failed = 99;
  Result<void> r = ApplyManifest(m, tree_.get(), area_.OpenData(1)->get(), &failed);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(failed, 0U);
  EXPECT_EQ(ReadFile(outside + "/x"), "<missing>");
  m.steps.erase(m.steps.begin());
  ASSERT_TRUE(ApplyManifest(m, tree_.get(), area_.OpenData(1)->get()).ok());
  EXPECT_EQ(ReadFile(outside + "/y"), "stays");
}

}  // namespace
}  // namespace detourfs::flush
