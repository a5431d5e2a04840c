// ChangeLayer over real directories (no mount): a memory tier on tmpfs and a
// volume in /tmp, opened as the daemon opens them. Records come out in
// order with kind, path and id; entries built aside are published whole;
// a failpoint failing a step leaves the old state with nothing of the
// change visible outside work/; multi-step changes complete after a
// restart. Needs root (trusted.* xattrs, whiteouts, chown).
#include "store/change_layer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "scratch_dir.h"
#include "store/id_source.h"
#include "store/markers.h"
#include "store/tree_walk.h"
#include "util/random_token.h"

namespace detourfs {
namespace {

class CaptureSink : public ChangeSink {
 public:
  explicit CaptureSink(std::vector<ChangeRecord>* out) : out_(out) {}
  void Append(const ChangeRecord& record) override { out_->push_back(record); }

 private:
  std::vector<ChangeRecord>* out_;
};

std::set<std::string> Names(int dirfd) {
  std::set<std::string> names;
  Result<std::vector<WalkItem>> items = ListDir(dirfd);
  EXPECT_TRUE(items.ok()) << items.error();
  if (items.ok()) {
    for (const WalkItem& i : *items) names.insert(i.name);
  }
  return names;
}

bool Exists(int dirfd, const char* name) {
  struct stat st {};
  return ::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

bool IsWhiteoutAt(int dirfd, const char* name) {
  struct stat st {};
  if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
  Result<bool> w = markers::IsWhiteout(dirfd, name, st);
  return w.ok() && *w;
}

std::string ReadAll(int dirfd, const char* name) {
  const int fd = ::openat(dirfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "<cannot open>";
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

void WriteFile(int dirfd, const char* name, const std::string& data, mode_t mode = 0644) {
  const int fd = ::openat(dirfd, name, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, mode);
  ASSERT_GE(fd, 0) << name;
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ::close(fd);
}

// Waits for the background thread to make `done` true: a condition with a
// generous bound (so a broken build fails instead of hanging), no timing.
template <typename Pred>
bool Eventually(Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

constexpr uint64_t kId = kIdBase | (uint64_t{1} << 32) | 5;

class ChangeLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (trusted.* xattrs, whiteouts, chown)";
    ASSERT_TRUE(tier_scratch_.ok());
    ASSERT_TRUE(volume_scratch_.ok());
    OpenLayers();
  }
  void TearDown() override { changes_.reset(); }

  // Opens the layers as a (re)started daemon does.
  void OpenLayers() {
    layers_ = {};
    TierConfig memory;
    memory.id = TierId::kMemory;
    memory.root = tier_scratch_.path() + "/memory";
    Status s = OpenTierDirs(memory, &layers_[Index(Layer::kMemory)]);
    ASSERT_TRUE(s.ok()) << s.ToString();
    const int lower = ::open(volume_scratch_.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(lower, 0);
    s = OpenVolumeDirs(UniqueFd(lower), true, &layers_[Index(Layer::kVolume)]);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  // A change layer over the layers, with failpoints armed by `spec`.
  void Start(std::string_view spec = "") {
    changes_.reset();
    std::unique_ptr<Failpoints> fp;
    if (!spec.empty()) {
      Result<std::unique_ptr<Failpoints>> parsed = Failpoints::Parse(spec);
      ASSERT_TRUE(parsed.ok()) << spec;
      fp = std::move(*parsed);
    }
    changes_ = std::make_unique<ChangeLayer>(layers_, std::move(fp),
                                             std::make_unique<CaptureSink>(&records_));
  }
  // A restart: the layers opened again, a new change layer, recovery.
  void Restart() {
    changes_.reset();
    OpenLayers();
    Start();
    Status s = changes_->Recover();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  const LayerDirs& mem() const { return layers_[Index(Layer::kMemory)]; }
  const LayerDirs& vol() const { return layers_[Index(Layer::kVolume)]; }
  int tree() const { return mem().tree->get(); }
  int vtree() const { return vol().tree->get(); }
  At TierAt(const char* name) const { return At{Layer::kMemory, tree(), name, name, false}; }
  At VolumeAt(const char* name, bool routed) const {
    return At{Layer::kVolume, vtree(), name, name, routed};
  }
  // Nothing built aside is left, and the tier's tree holds exactly `names`.
  void ExpectTree(const std::set<std::string>& names) {
    EXPECT_EQ(Names(tree()), names);
    EXPECT_TRUE(Names(mem().work->get()).empty()) << "work/ is empty between changes";
  }
  Result<Made> MakeFile(const char* name, uint64_t id = kId, bool replace_whiteout = false) {
    MakeSpec spec;
    spec.type = S_IFREG;
    spec.mode = 0640;
    spec.id = id;
    spec.replace_whiteout = replace_whiteout;
    return changes_->Make(TierAt(name), spec, caller_, tree());
  }

  ScratchDir tier_scratch_{"/dev/shm/detourfs-changes"};
  ScratchDir volume_scratch_{"/tmp/detourfs-changes-volume"};
  std::array<LayerDirs, kLayerCount> layers_;
  std::vector<ChangeRecord> records_;
  std::unique_ptr<ChangeLayer> changes_;
  Caller caller_;  // root
};

// --- Records ----------------------------------------------------------------

TEST_F(ChangeLayerTest, MakeRecordsTheEntryWithItsId) {
  Start();
  Result<Made> f = MakeFile("f");
  ASSERT_TRUE(f.ok()) << f.error();
  EXPECT_TRUE(S_ISREG(f->st.st_mode));
  EXPECT_EQ(f->st.st_mode & 07777, 0640U);
  Result<markers::IdRecord> rec = markers::GetIdRecordAt(tree(), "f");
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->id, kId);

  MakeSpec dir;
  dir.type = S_IFDIR;
  dir.mode = 0755;
  dir.id = kId + 1;
  dir.opaque = true;
  ASSERT_TRUE(changes_->Make(TierAt("d"), dir, caller_, tree()).ok());
  rec = markers::GetIdRecordAt(tree(), "d");
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->id, kId + 1);
  EXPECT_TRUE(rec->opaque);

  ASSERT_EQ(records_.size(), 3U);
  EXPECT_EQ(records_[0].kind, ChangeKind::kCreate);
  EXPECT_EQ(records_[0].layer, Layer::kMemory);
  EXPECT_EQ(records_[0].path, "f");
  EXPECT_EQ(records_[0].id, kId);
  EXPECT_EQ(records_[1].kind, ChangeKind::kMkdir);
  EXPECT_EQ(records_[1].path, "d");
  EXPECT_EQ(records_[1].id, kId + 1);
  EXPECT_EQ(records_[2].kind, ChangeKind::kOpaque);
  EXPECT_EQ(records_[2].path, "d");
  ExpectTree({"d", "f"});
}

TEST_F(ChangeLayerTest, RecordsComeInChangeOrderWithTypePathAndId) {
  Start();
  Result<Made> f = MakeFile("f", kId);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(changes_->Link(f->fd.get(), TierAt("g"), false, kId).ok());
  ASSERT_TRUE(changes_->Rename(TierAt("g"), TierAt("h"), 0, kId).ok());
  ASSERT_TRUE(changes_->Remove(TierAt("h"), false, false, false, kId).ok());
  MakeSpec dir;
  dir.type = S_IFDIR;
  dir.id = kId + 1;
  ASSERT_TRUE(changes_->Make(TierAt("d"), dir, caller_, tree()).ok());
  ASSERT_TRUE(changes_->Remove(TierAt("d"), true, false, false, kId + 1).ok());
  ASSERT_TRUE(changes_->Whiteout(TierAt("w")).ok());
  changes_->Record(ChangeKind::kWrite, TierAt("f"), kId, 4096, 10);

  struct Want {
    ChangeKind kind;
    const char* path;
    const char* path2;
    uint64_t id;
  };
  const Want want[] = {
      {ChangeKind::kCreate, "f", "", kId},    {ChangeKind::kLink, "g", "", kId},
      {ChangeKind::kRename, "g", "h", kId},   {ChangeKind::kUnlink, "h", "", kId},
      {ChangeKind::kMkdir, "d", "", kId + 1}, {ChangeKind::kRmdir, "d", "", kId + 1},
      {ChangeKind::kWhiteout, "w", "", 0},    {ChangeKind::kWrite, "f", "", kId},
  };
  ASSERT_EQ(records_.size(), std::size(want));
  for (size_t i = 0; i < records_.size(); ++i) {
    EXPECT_EQ(records_[i].seq, i + 1) << i;
    EXPECT_EQ(records_[i].kind, want[i].kind) << i;
    EXPECT_EQ(records_[i].layer, Layer::kMemory) << i;
    EXPECT_EQ(records_[i].path, want[i].path) << i;
    EXPECT_EQ(records_[i].path2, want[i].path2) << i;
    EXPECT_EQ(records_[i].id, want[i].id) << i;
  }
  EXPECT_EQ(records_.back().offset, 4096U);
  EXPECT_EQ(records_.back().length, 10U);
  EXPECT_TRUE(IsWhiteoutAt(tree(), "w"));
  ExpectTree({"f", "w"});
}

TEST_F(ChangeLayerTest, VolumeChangesAreRecordedOnlyForRoutedContent) {
  Start();
  MakeSpec spec;
  ASSERT_TRUE(changes_->Make(VolumeAt("plain", false), spec, caller_, vtree()).ok());
  EXPECT_TRUE(records_.empty());
  ASSERT_TRUE(changes_->Make(VolumeAt("routed", true), spec, caller_, vtree()).ok());
  ASSERT_EQ(records_.size(), 1U);
  EXPECT_EQ(records_[0].layer, Layer::kVolume);
  EXPECT_EQ(records_[0].path, "routed");
  EXPECT_EQ(markers::GetIdRecordAt(vtree(), "routed")->id, 0U) << "no id record on the volume";
}

// --- Atomic publishing ----------------------------------------------------------

TEST_F(ChangeLayerTest, RemoveWithWhiteoutLeavesAWhiteoutInOneStep) {
  Start();
  ASSERT_TRUE(MakeFile("f").ok());
  WriteFile(tree(), "f", "data");
  ASSERT_EQ(::linkat(tree(), "f", tree(), "g", 0), 0);
  records_.clear();
  ASSERT_TRUE(changes_->Remove(TierAt("f"), false, true, false, kId).ok());
  EXPECT_TRUE(IsWhiteoutAt(tree(), "f"));
  // The name is gone at once, not kept in the trash: the file's other name
  // counts one link.
  EXPECT_EQ(Names(mem().trash->get()).size(), 0U);
  struct stat g {};
  ASSERT_EQ(::fstatat(tree(), "g", &g, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(g.st_nlink, 1U);
  ASSERT_EQ(records_.size(), 1U);
  EXPECT_EQ(records_[0].kind, ChangeKind::kWhiteout);
  EXPECT_EQ(records_[0].id, kId);
  ExpectTree({"f", "g"});
}

TEST_F(ChangeLayerTest, RemoveWithWhiteoutOfADirectoryLeavesItToTheTrash) {
  Start();  // no trash thread
  ASSERT_EQ(::mkdirat(tree(), "d", 0755), 0);
  ASSERT_EQ(::mknodat(tree(), "d/w", S_IFCHR | 0000, makedev(0, 0)), 0);
  ASSERT_TRUE(changes_->Remove(TierAt("d"), true, true, false, kId).ok());
  EXPECT_TRUE(IsWhiteoutAt(tree(), "d"));
  EXPECT_EQ(Names(mem().trash->get()).size(), 1U) << "the drain deletes it";
}

TEST_F(ChangeLayerTest, MakeOverAWhiteoutIsBuiltAsideAndSwappedIn) {
  Start();
  ASSERT_TRUE(changes_->Whiteout(TierAt("f")).ok());
  ASSERT_TRUE(changes_->Whiteout(TierAt("d")).ok());
  EXPECT_EQ(changes_->Whiteout(TierAt("d")).error(), EEXIST);
  Result<Made> f = MakeFile("f", kId, /*replace_whiteout=*/true);
  ASSERT_TRUE(f.ok()) << f.error();
  EXPECT_TRUE(S_ISREG(f->st.st_mode));
  EXPECT_EQ(markers::GetIdRecordAt(tree(), "f")->id, kId);

  MakeSpec dir;
  dir.type = S_IFDIR;
  dir.id = kId + 1;
  dir.replace_whiteout = true;
  Result<Made> d = changes_->Make(TierAt("d"), dir, caller_, tree());
  ASSERT_TRUE(d.ok()) << d.error();
  struct stat st {};
  ASSERT_EQ(::fstatat(tree(), "d", &st, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_TRUE(Names(mem().trash->get()).empty());
  ExpectTree({"d", "f"});
}

TEST_F(ChangeLayerTest, AUsersZeroZeroDeviceIsNoWhiteout) {
  Start();
  MakeSpec dev;
  dev.type = S_IFCHR;
  dev.rdev = makedev(0, 0);
  dev.mode = 0600;
  ASSERT_TRUE(changes_->Make(TierAt("dev"), dev, caller_, tree()).ok());
  struct stat st {};
  ASSERT_EQ(::fstatat(tree(), "dev", &st, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_TRUE(markers::MaybeWhiteout(st));
  EXPECT_FALSE(IsWhiteoutAt(tree(), "dev")) << "it carries the device mark";
  ExpectTree({"dev"});
}

// --- Failpoints: an error at a step leaves the old state ---------------------

TEST_F(ChangeLayerTest, FailureBeforeMakePublishesLeavesTheWhiteout) {
  Start("make.built=eio");
  ASSERT_TRUE(changes_->Whiteout(TierAt("f")).ok());
  records_.clear();
  Result<Made> f = MakeFile("f", kId, true);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error(), EIO);
  EXPECT_TRUE(IsWhiteoutAt(tree(), "f")) << "still the whiteout, no partial entry";
  EXPECT_TRUE(records_.empty()) << "nothing recorded for a change not made";
  ExpectTree({"f"});
  // The failpoint fired once: the same change now goes through.
  ASSERT_TRUE(MakeFile("f", kId, true).ok());
  EXPECT_FALSE(IsWhiteoutAt(tree(), "f"));
}

TEST_F(ChangeLayerTest, FailureBeforeAWhiteoutLeavesTheEntry) {
  Start("remove.whiteout=eio");
  ASSERT_TRUE(MakeFile("f").ok());
  WriteFile(tree(), "f", "still here");
  records_.clear();
  Result<void> r = changes_->Remove(TierAt("f"), false, true, false, kId);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), EIO);
  EXPECT_EQ(ReadAll(tree(), "f"), "still here");
  EXPECT_TRUE(Names(mem().trash->get()).empty());
  EXPECT_TRUE(records_.empty());
  ExpectTree({"f"});
}

TEST_F(ChangeLayerTest, FailureBeforeACopyUpIsLinkedInLeavesNothing) {
  Start("copyup.copied=eio");
  WriteFile(vtree(), "v", "volume data", 0604);
  const int src = ::openat(vtree(), "v", O_PATH | O_CLOEXEC);
  ASSERT_GE(src, 0);
  struct stat st {};
  ASSERT_EQ(::fstat(src, &st), 0);
  Result<Made> copy = changes_->CopyIn(TierAt("v"), src, -1, st, kId);
  ASSERT_FALSE(copy.ok());
  EXPECT_EQ(copy.error(), EIO);
  EXPECT_TRUE(records_.empty());
  ExpectTree({});

  // Again (the failpoint has fired): a complete copy, published whole.
  copy = changes_->CopyIn(TierAt("v"), src, -1, st, kId);
  ASSERT_TRUE(copy.ok()) << copy.error();
  EXPECT_EQ(ReadAll(tree(), "v"), "volume data");
  EXPECT_EQ(copy->st.st_mode & 07777, 0604U);
  EXPECT_EQ(markers::GetIdRecordAt(tree(), "v")->id, kId);
  ASSERT_EQ(records_.size(), 1U);
  EXPECT_EQ(records_[0].kind, ChangeKind::kCopyUp);
  EXPECT_EQ(records_[0].path, "v");
  EXPECT_EQ(records_[0].id, kId);
  EXPECT_EQ(Names(vtree()), (std::set<std::string>{".detourfs", "v"})) << "the source stays";
  ExpectTree({"v"});
  ::close(src);
}

TEST_F(ChangeLayerTest, FailureBeforeASymlinkCopyUpIsRenamedInLeavesNothing) {
  Start("copyup.copied=eio");
  ASSERT_EQ(::symlinkat("target", vtree(), "l"), 0);
  const int src = ::openat(vtree(), "l", O_PATH | O_NOFOLLOW | O_CLOEXEC);
  ASSERT_GE(src, 0);
  struct stat st {};
  ASSERT_EQ(::fstatat(vtree(), "l", &st, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(changes_->CopyIn(TierAt("l"), src, -1, st, kId).error(), EIO);
  EXPECT_TRUE(records_.empty());
  ExpectTree({});
  ASSERT_TRUE(changes_->CopyIn(TierAt("l"), src, -1, st, kId).ok());
  char target[16] = {};
  EXPECT_EQ(::readlinkat(tree(), "l", target, sizeof(target)), 6);
  EXPECT_STREQ(target, "target");
  EXPECT_EQ(markers::GetIdRecordAt(tree(), "l")->id, kId);
  ExpectTree({"l"});
  ::close(src);
}

TEST_F(ChangeLayerTest, FailureBeforeADirectoryPartIsRenamedInLeavesNothing) {
  Start("dir.built=eio");
  ASSERT_EQ(::mkdirat(vtree(), "vd", 0750), 0);
  const int model = ::openat(vtree(), "vd", O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(model, 0);
  struct stat st {};
  ASSERT_EQ(::fstat(model, &st), 0);
  Result<UniqueFd> d = changes_->EnsureDir(TierAt("vd"), model, st, kId);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error(), EIO);
  EXPECT_TRUE(records_.empty());
  ExpectTree({});

  d = changes_->EnsureDir(TierAt("vd"), model, st, kId);
  ASSERT_TRUE(d.ok()) << d.error();
  struct stat made {};
  ASSERT_EQ(::fstat(d->get(), &made), 0);
  EXPECT_EQ(made.st_mode & 07777, 0750U) << "made like its model";
  EXPECT_EQ(made.st_mtim.tv_sec, st.st_mtim.tv_sec);
  EXPECT_EQ(markers::GetIdRecordAt(tree(), "vd")->id, kId);
  ASSERT_EQ(records_.size(), 1U);
  EXPECT_EQ(records_[0].kind, ChangeKind::kMkdir);
  // Already there: that one, and nothing recorded.
  Result<UniqueFd> again = changes_->EnsureDir(TierAt("vd"), model, st, kId);
  ASSERT_TRUE(again.ok());
  struct stat again_st {};
  ASSERT_EQ(::fstat(again->get(), &again_st), 0);
  EXPECT_EQ(again_st.st_ino, made.st_ino);
  EXPECT_EQ(records_.size(), 1U);
  ExpectTree({"vd"});
  ::close(model);
}

// --- Multi-step changes -----------------------------------------------------------

class ChangeLayerIntentTest : public ChangeLayerTest {
 protected:
  // Tier tree: a file "a" and a directory "old" with a file in it.
  void SetUp() override {
    ChangeLayerTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    WriteFile(tree(), "a", "moving");
    ASSERT_EQ(::mkdirat(tree(), "old", 0755), 0);
    WriteFile(tree(), "old/x", "x");
  }
  // Two visible steps: "a" renamed to "b", "old" to the trash.
  static Intent TwoSteps() {
    Intent intent;
    intent.steps.push_back({StepKind::kRename, IntentPath{Layer::kMemory, Area::kTree, "a"},
                            IntentPath{Layer::kMemory, Area::kTree, "b"}});
    intent.steps.push_back({StepKind::kTrash, IntentPath{Layer::kMemory, Area::kTree, "old"}, {}});
    return intent;
  }
  bool OldState() { return Names(tree()) == std::set<std::string>{"a", "old"}; }
  bool NewState() {
    return Names(tree()) == std::set<std::string>{"b"} && ReadAll(tree(), "b") == "moving";
  }
  size_t Records() { return Names(mem().intents->get()).size(); }
};

TEST_F(ChangeLayerIntentTest, RunDoesEveryStepAndDropsTheRecord) {
  Start();
  ASSERT_TRUE(changes_->Run(TwoSteps()).ok());
  EXPECT_TRUE(NewState());
  EXPECT_EQ(Records(), 0U);
  EXPECT_EQ(Names(mem().trash->get()).size(), 1U);
}

TEST_F(ChangeLayerIntentTest, RunWithoutATierHasNowhereToKeepRecords) {
  layers_[Index(Layer::kMemory)] = LayerDirs{};
  Start();
  EXPECT_EQ(changes_->Run(Intent{}).error(), ENOTSUP);
}

// Failed before its first step: the caller is told, and nothing happens,
// now or at the next start (the record goes).
TEST_F(ChangeLayerIntentTest, FailureBeforeTheFirstStepLeavesTheOldState) {
  Start("intent.written=eio");
  EXPECT_EQ(changes_->Run(TwoSteps()).error(), EIO);
  EXPECT_TRUE(OldState());
  EXPECT_EQ(Records(), 0U);
  Restart();
  EXPECT_TRUE(OldState());
}

// An error between two steps (its progress cannot be recorded): no step
// runs unrecorded — replayed after a crash, a sequence of steps that all
// ran is not idempotent (a swap would swap back; review 2026-12-07 #1).
// The change stops, the caller is told, the record stays, and the next
// start finishes it.
TEST_F(ChangeLayerIntentTest, ErrorBetweenStepsStopsTheChangeForTheNextStartToFinish) {
  Start("intent.step=eio");
  bool kept = false;
  EXPECT_EQ(changes_->Run(TwoSteps(), &kept).error(), EIO);
  EXPECT_TRUE(kept);
  EXPECT_EQ(Names(tree()), (std::set<std::string>{"b", "old"}));  // step 1 of 2
  EXPECT_EQ(Records(), 1U);
  // The mount goes on serving: what the stopped change would clear is
  // written to meanwhile (review 2026-12-07 #1). Its replay sets that
  // aside in kept/, never in the trash.
  WriteFile(tree(), "old/x", "written since");
  Restart();
  EXPECT_TRUE(NewState());
  EXPECT_EQ(Records(), 0U);
  const std::set<std::string> aside = Names(mem().kept->get());
  ASSERT_EQ(aside.size(), 1U);
  EXPECT_EQ(ReadAll(mem().kept->get(), (*aside.begin() + "/x").c_str()), "written since");
}

// Regression (review 2026-12, C1): a crash after a step that published
// into a name a previous step cleared. Recovery resumes after the steps
// recorded done, so the clearing step never runs over what was published.
TEST_F(ChangeLayerIntentTest, ARestartResumesAfterTheStepsRecordedDone) {
  Start();
  IntentLog log(mem().intents);
  Intent intent;  // "b" cleared, then "a" published as "b"
  intent.steps.push_back({StepKind::kTrash, IntentPath{Layer::kMemory, Area::kTree, "b"}, {}});
  intent.steps.push_back({StepKind::kRenameNoReplace, IntentPath{Layer::kMemory, Area::kTree, "a"},
                          IntentPath{Layer::kMemory, Area::kTree, "b"}});
  Result<std::string> record = log.Write(intent);
  ASSERT_TRUE(record.ok());
  ASSERT_TRUE(log.MarkDone(*record, 1).ok());
  // Both steps ran; the crash came before the second was recorded done.
  ASSERT_EQ(::renameat(tree(), "a", tree(), "b"), 0);
  Restart();
  EXPECT_EQ(ReadAll(tree(), "b"), "moving");
  EXPECT_EQ(Records(), 0U);
}

// Review 2026-12-07 #1: a replay records its progress, so when a later
// step fails (the start fails) and the next start replays again, it does
// not clear a name a step of the first replay published to.
TEST_F(ChangeLayerIntentTest, AReplayCutShortIsTakenUpWhereItStopped) {
  Start();
  IntentLog log(mem().intents);
  Intent intent;  // "b" cleared, "a" renamed to "b", "c" moved into "sub/"
  intent.steps.push_back({StepKind::kTrash, IntentPath{Layer::kMemory, Area::kTree, "b"}, {}});
  intent.steps.push_back({StepKind::kRenameNoReplace, IntentPath{Layer::kMemory, Area::kTree, "a"},
                          IntentPath{Layer::kMemory, Area::kTree, "b"}});
  intent.steps.push_back({StepKind::kRename, IntentPath{Layer::kMemory, Area::kTree, "c"},
                          IntentPath{Layer::kMemory, Area::kTree, "sub/c"}});
  WriteFile(tree(), "b", "replaced");
  WriteFile(tree(), "c", "third");
  Result<std::string> record = log.Write(intent);
  ASSERT_TRUE(record.ok());  // a crash before any step
  // The first replay clears "b", publishes "a" as "b", then fails at the
  // third step.
  changes_.reset();
  OpenLayers();
  Start();
  EXPECT_FALSE(changes_->Recover().ok());
  EXPECT_EQ(ReadAll(tree(), "b"), "moving");
  ASSERT_EQ(::mkdirat(tree(), "sub", 0755), 0);
  Restart();
  EXPECT_EQ(ReadAll(tree(), "b"), "moving");
  EXPECT_EQ(ReadAll(tree(), "sub/c"), "third");
  EXPECT_EQ(Records(), 0U);
}

// Review 2026-12-07 #3: a change left half-made (its step failed, its
// record kept) and a name it publishes to taken meanwhile — the mount went
// on serving. The next start neither fails nor deletes what was to go
// there: it is set aside in kept/, and the change goes on.
TEST_F(ChangeLayerIntentTest, AReplayFindingItsNameTakenSetsTheCopyAside) {
  Start();
  IntentLog log(mem().intents);
  Intent intent;
  intent.steps.push_back({StepKind::kRenameNoReplace,
                          IntentPath{Layer::kMemory, Area::kWork, "staged"},
                          IntentPath{Layer::kMemory, Area::kTree, "b"}});
  intent.steps.push_back({StepKind::kTrash, IntentPath{Layer::kMemory, Area::kTree, "old"}, {}});
  WriteFile(mem().work->get(), "staged", "the moved copy");
  WriteFile(tree(), "b", "made meanwhile");
  ASSERT_TRUE(log.Write(intent).ok());
  Restart();
  EXPECT_EQ(ReadAll(tree(), "b"), "made meanwhile");
  EXPECT_FALSE(Exists(tree(), "old"));
  const std::set<std::string> kept = Names(mem().kept->get());
  ASSERT_EQ(kept.size(), 1U);
  EXPECT_EQ(ReadAll(mem().kept->get(), kept.begin()->c_str()), "the moved copy");
  EXPECT_EQ(Records(), 0U);
}

// Every step ran: the change is made (the caller must not take it for
// undone: it would not follow a moved tree), whatever became of its record.
TEST_F(ChangeLayerIntentTest, FailureAfterTheLastStepIsNoFailure) {
  Start("intent.done=eio");
  EXPECT_TRUE(changes_->Run(TwoSteps()).ok());
  EXPECT_TRUE(NewState());
  EXPECT_EQ(Records(), 1U);
  // Made since (the mount serves on): the record left says every step is
  // done, so its last step ("old" to the trash) does not run again.
  ASSERT_EQ(::mkdirat(tree(), "old", 0755), 0);
  WriteFile(tree(), "old/y", "new");
  Restart();
  EXPECT_EQ(ReadAll(tree(), "old/y"), "new");
  EXPECT_EQ(Records(), 0U);
}

TEST_F(ChangeLayerIntentTest, RecoveryWhiteoutsAndHoldsAreIdempotent) {
  WriteFile(vtree(), "held-file", "keep my number");
  Intent intent;
  intent.steps.push_back({StepKind::kWhiteout, IntentPath{Layer::kMemory, Area::kTree, "a"}, {}});
  intent.steps.push_back(
      {StepKind::kWhiteout, IntentPath{Layer::kMemory, Area::kTree, "never-there"}, {}});
  intent.steps.push_back({StepKind::kHold, IntentPath{Layer::kVolume, Area::kTree, "held-file"},
                          IntentPath{Layer::kVolume, Area::kHeld, markers::IndexName(kId)}});
  Start("intent.done=eio");
  EXPECT_TRUE(changes_->Run(intent).ok());
  Restart();  // the last step again
  EXPECT_TRUE(IsWhiteoutAt(tree(), "a"));
  EXPECT_TRUE(IsWhiteoutAt(tree(), "never-there"));
  EXPECT_FALSE(Exists(vtree(), "held-file"));
  EXPECT_EQ(Names(vol().held->get()), std::set<std::string>{markers::IndexName(kId)});
  EXPECT_EQ(Records(), 0U);
}

// A `drop-whiteout` step takes a whiteout away, and nothing else: a name a
// user made there since (a record replayed after the mount went on serving)
// stays where it is.
TEST_F(ChangeLayerIntentTest, ADropWhiteoutStepClearsOnlyAWhiteout) {
  ASSERT_EQ(::mknodat(tree(), "wh", S_IFCHR | 0000, makedev(0, 0)), 0);
  ASSERT_EQ(::mkdirat(tree(), "users", 0755), 0);
  WriteFile(tree(), "users/f", "made since");
  Intent intent;
  intent.steps.push_back(
      {StepKind::kDropWhiteout, IntentPath{Layer::kMemory, Area::kTree, "wh"}, {}});
  intent.steps.push_back(
      {StepKind::kDropWhiteout, IntentPath{Layer::kMemory, Area::kTree, "users"}, {}});
  intent.steps.push_back(
      {StepKind::kDropWhiteout, IntentPath{Layer::kMemory, Area::kTree, "never-there"}, {}});
  Start();
  ASSERT_TRUE(changes_->Run(intent).ok());
  EXPECT_FALSE(Exists(tree(), "wh"));
  EXPECT_EQ(ReadAll(tree(), "users/f"), "made since");
  EXPECT_EQ(Records(), 0U);
}

// A `hold-whole` step keeps a held tree's files that have names elsewhere
// (a `hold` lets them go at once): until the caller knows those names are
// on the volume, the held ones may be all that is left. LetGoOfLinked
// then lets them go, and keeps the files with no other name.
TEST_F(ChangeLayerIntentTest, AWholeHoldKeepsLinkedFilesUntilLetGo) {
  ASSERT_EQ(::mkdirat(vtree(), "t", 0755), 0);
  WriteFile(vtree(), "t/linked", "linked into a copy");
  WriteFile(vtree(), "t/alone", "one name");
  ASSERT_EQ(::linkat(vtree(), "t/linked", vtree(), "copy-of-linked", 0), 0);
  Intent intent;
  intent.steps.push_back({StepKind::kHoldWhole, IntentPath{Layer::kVolume, Area::kTree, "t"},
                          IntentPath{Layer::kVolume, Area::kHeld, "tree.0123"}});
  intent.steps.push_back({StepKind::kTrash, IntentPath{Layer::kMemory, Area::kTree, "x"}, {}});
  Start();
  ASSERT_TRUE(changes_->Run(intent).ok());
  EXPECT_FALSE(Exists(vtree(), "t"));
  EXPECT_TRUE(Exists(vol().held->get(), "tree.0123/linked"));
  EXPECT_TRUE(Exists(vol().held->get(), "tree.0123/alone"));
  ASSERT_TRUE(changes_->LetGoOfLinked("tree.0123").ok());
  EXPECT_FALSE(Exists(vol().held->get(), "tree.0123/linked"));
  EXPECT_TRUE(Exists(vol().held->get(), "tree.0123/alone"));
  EXPECT_EQ(ReadAll(vtree(), "copy-of-linked"), "linked into a copy");
  EXPECT_TRUE(changes_->LetGoOfLinked("no-such-tree").ok());
}

// A change with a hold-whole step keeps its record until the caller knows
// whether the volume shows what it published (SettleHold); a start that
// finds that record lets go of the held tree's linked files only when the
// volume shows the published name.
TEST_F(ChangeLayerIntentTest, AWholeHoldsRecordIsSettledAtTheNextStart) {
  for (const bool shown : {true, false}) {
    const std::string t = shown ? "shown" : "lost";
    ASSERT_EQ(::mkdirat(vtree(), t.c_str(), 0755), 0);
    WriteFile(vtree(), (t + "/f").c_str(), "data");
    ASSERT_EQ(::mkdirat(vol().work->get(), ("tree." + t).c_str(), 0755), 0);
    ASSERT_EQ(
        ::linkat(vtree(), (t + "/f").c_str(), vol().work->get(), ("tree." + t + "/f").c_str(), 0),
        0);
    Intent intent;
    intent.steps.push_back({StepKind::kRename, IntentPath{Layer::kVolume, Area::kWork, "tree." + t},
                            IntentPath{Layer::kVolume, Area::kTree, t + ".moved"}});
    intent.steps.push_back({StepKind::kHoldWhole, IntentPath{Layer::kVolume, Area::kTree, t},
                            IntentPath{Layer::kVolume, Area::kHeld, "held." + t}});
    Start();
    std::string record;
    ASSERT_TRUE(changes_->Run(intent, nullptr, &record).ok());
    EXPECT_FALSE(record.empty());
    EXPECT_EQ(Records(), 1U);
    EXPECT_TRUE(Exists(vol().held->get(), ("held." + t + "/f").c_str()));
    // The volume lost the published name before the crash.
    if (!shown) {
      ASSERT_EQ(::unlinkat(vtree(), (t + ".moved/f").c_str(), 0), 0);
      ASSERT_EQ(::unlinkat(vtree(), (t + ".moved").c_str(), AT_REMOVEDIR), 0);
    }
    Restart();  // no SettleHold: a crash
    EXPECT_EQ(Records(), 0U);
    EXPECT_EQ(Exists(vol().held->get(), ("held." + t + "/f").c_str()), !shown) << t;
  }
}

// --- Recovery, trash, spills, hold -----------------------------------------------

TEST_F(ChangeLayerTest, RecoverClearsWorkAndTheTrashThreadEmptiesIt) {
  ASSERT_EQ(::mkdirat(mem().work->get(), "make.0123", 0700), 0);
  WriteFile(mem().work->get(), "make.0123/half", "unpublished");
  WriteFile(vol().work->get(), "copy.4567", "unpublished");
  Start();
  ASSERT_TRUE(changes_->Recover().ok());
  EXPECT_TRUE(Names(mem().work->get()).empty());
  EXPECT_TRUE(Names(vol().work->get()).empty());
  EXPECT_EQ(Names(mem().trash->get()), std::set<std::string>{"make.0123"});
  changes_->Start();  // a first round at start
  EXPECT_TRUE(Eventually(
      [&] { return Names(mem().trash->get()).empty() && Names(vol().trash->get()).empty(); }));
  changes_->Stop();
}

TEST_F(ChangeLayerTest, SpilledDataRoundTripsAndIsDroppedWithItsStub) {
  Start();
  WriteFile(tree(), "src", std::string(100000, 'q'));
  const int data = ::openat(tree(), "src", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(data, 0);
  Result<uint64_t> token = changes_->SpillIn(Layer::kMemory, data);
  ::close(data);
  ASSERT_TRUE(token.ok()) << token.error();
  const markers::SpillRef ref{Layer::kMemory, *token};
  Result<UniqueFd> spilled = changes_->OpenSpilled(ref, O_RDONLY);
  ASSERT_TRUE(spilled.ok());
  EXPECT_EQ(ReadAll(mem().spill->get(), TokenName(*token).c_str()), std::string(100000, 'q'));
  EXPECT_EQ(changes_->SpillIn(Layer::kDisk, 0).error(), ENOSPC) << "no disk tier";

  // A stub pointing at it goes to the trash: its data goes first.
  WriteFile(tree(), "stub", "");
  ASSERT_TRUE(markers::SetIdRecordAt(tree(), "stub", markers::IdRecord{kId, false, ref}).ok());
  ASSERT_TRUE(changes_->Remove(TierAt("stub"), false, false, true, kId).ok());
  EXPECT_FALSE(Exists(tree(), "stub"));
  EXPECT_EQ(Names(mem().trash->get()).size(), 1U) << "a stub goes to the trash, not unlinked";
  changes_->Start();
  EXPECT_TRUE(Eventually([&] { return Names(mem().trash->get()).empty(); }));
  EXPECT_EQ(changes_->OpenSpilled(ref, O_RDONLY).error(), ENOENT) << "its data went too";
  changes_->Stop();
}

// Regression (found by its unit test): DrainTrash() asks for two trash rounds (trash_rounds_ + 2)
// but schedules one (trash_pending_ = true). When the background thread is
// idle — no round in progress — one round runs and nothing asks for the
// second, so DrainTrash() waits forever (until Stop()). The watchdog below
// stops the change layer to unblock it and fails instead of hanging.
TEST_F(ChangeLayerTest, DrainTrashReturnsOnceTheTrashIsEmpty) {
  Start();
  changes_->Start();
  ASSERT_EQ(::mkdirat(tree(), "t", 0755), 0);
  ASSERT_TRUE(Eventually([&] { return Names(mem().trash->get()).empty(); }));
  ASSERT_TRUE(changes_->Trash(TierAt("t")).ok());
  std::future<void> drained = std::async(std::launch::async, [&] { changes_->DrainTrash(); });
  const bool returned = drained.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  if (!returned) changes_->Stop();  // unblocks DrainTrash
  drained.get();
  EXPECT_TRUE(returned) << "DrainTrash did not return with the background thread idle";
  EXPECT_TRUE(Names(mem().trash->get()).empty());
  changes_->Stop();
}

TEST_F(ChangeLayerTest, DropSpilledDeletesTheData) {
  Start();
  WriteFile(tree(), "src", "abc");
  const int data = ::openat(tree(), "src", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(data, 0);
  Result<uint64_t> token = changes_->SpillIn(Layer::kMemory, data);
  ::close(data);
  ASSERT_TRUE(token.ok());
  changes_->DropSpilled(markers::SpillRef{Layer::kMemory, *token});
  EXPECT_EQ(changes_->OpenSpilled(markers::SpillRef{Layer::kMemory, *token}, O_RDONLY).error(),
            ENOENT);
  EXPECT_TRUE(Names(mem().spill->get()).empty());
}

TEST_F(ChangeLayerTest, HoldKeepsTheInodeButLetsGoOfLinkedFiles) {
  Start();
  ASSERT_EQ(::mkdirat(vtree(), "hd", 0755), 0);
  WriteFile(vtree(), "hd/single", "1");
  WriteFile(vtree(), "hd/linked", "2");
  ASSERT_EQ(::linkat(vtree(), "hd/linked", vtree(), "elsewhere", 0), 0);
  struct stat before {};
  ASSERT_EQ(::fstatat(vtree(), "hd", &before, 0), 0);
  ASSERT_TRUE(changes_->Hold(VolumeAt("hd", true), kId).ok());
  EXPECT_FALSE(Exists(vtree(), "hd"));
  std::set<std::string> held = Names(vol().held->get());
  ASSERT_EQ(held.size(), 1U);
  const std::string name = *held.begin();
  EXPECT_EQ(name.substr(0, 17), TokenName(kId) + ".");
  const int h = ::openat(vol().held->get(), name.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(h, 0);
  struct stat after {};
  ASSERT_EQ(::fstat(h, &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "the same inode, kept";
  EXPECT_EQ(Names(h), std::set<std::string>{"single"}) << "the linked file has another name";
  struct stat other {};
  ASSERT_EQ(::fstatat(vtree(), "elsewhere", &other, 0), 0);
  EXPECT_EQ(other.st_nlink, 1U);
  ::close(h);
  ASSERT_EQ(records_.size(), 1U);
  EXPECT_EQ(records_[0].kind, ChangeKind::kUnlink);
  EXPECT_EQ(records_[0].layer, Layer::kVolume);
}

// The volume's trash holds a directory whose number a node the mount
// knows reports (a tree's copy on a tier keeps its volume numbers), emptied
// first so it keeps no data; the directory beside it, and every file, go.
TEST_F(ChangeLayerTest, TheVolumeTrashHoldsAnEmptiedDirectoryWhoseNumberIsInUse) {
  Start();
  ASSERT_EQ(::mkdirat(vtree(), "p", 0755), 0);
  ASSERT_EQ(::mkdirat(vtree(), "p/kept", 0755), 0);
  ASSERT_EQ(::mkdirat(vtree(), "p/freed", 0755), 0);
  WriteFile(vtree(), "p/kept/f", "data");
  struct stat kept {};
  ASSERT_EQ(::fstatat(vtree(), "p/kept", &kept, 0), 0);
  changes_->SetNumbersInUse([&](uint64_t n) { return n == static_cast<uint64_t>(kept.st_ino); });
  ASSERT_TRUE(changes_->Trash(VolumeAt("p", false)).ok());
  changes_->Start();
  ASSERT_TRUE(Eventually([&] { return Names(vol().trash->get()).empty(); }));
  changes_->Stop();
  const std::set<std::string> held = Names(vol().held->get());
  ASSERT_EQ(held.size(), 1U);
  const int h =
      ::openat(vol().held->get(), held.begin()->c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(h, 0);
  struct stat after {};
  ASSERT_EQ(::fstat(h, &after), 0);
  EXPECT_EQ(after.st_ino, kept.st_ino) << "the same inode, kept";
  EXPECT_TRUE(Names(h).empty()) << "held emptied";
  ::close(h);
}

TEST_F(ChangeLayerTest, TrashMovesAnEntryOutOfTheTree) {
  Start();
  ASSERT_EQ(::mkdirat(tree(), "t", 0755), 0);
  WriteFile(tree(), "t/f", "x");
  ASSERT_TRUE(changes_->Trash(TierAt("t")).ok());
  ExpectTree({});
  EXPECT_EQ(Names(mem().trash->get()).size(), 1U);
}

}  // namespace
}  // namespace detourfs
