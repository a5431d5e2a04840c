// IntentLog: the record format (encode, decode, torn and corrupt records),
// and records written durably, found again after a restart, removed when
// done.
#include "store/intent_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "scratch_dir.h"

namespace detourfs {
namespace {

IntentPath P(Layer layer, Area area, std::string path) {
  return IntentPath{layer, area, std::move(path)};
}

Intent Sample() {
  Intent intent;
  intent.steps.push_back({StepKind::kRename, P(Layer::kMemory, Area::kWork, "dir.0123"),
                          P(Layer::kMemory, Area::kTree, "a/b c/d")});
  intent.steps.push_back({StepKind::kRenameNoReplace, P(Layer::kDisk, Area::kTree, "x"),
                          P(Layer::kDisk, Area::kTree, "y")});
  intent.steps.push_back({StepKind::kWhiteout, P(Layer::kMemory, Area::kTree, "gone"), {}});
  intent.steps.push_back({StepKind::kTrash, P(Layer::kDisk, Area::kTree, "old/file"), {}});
  intent.steps.push_back({StepKind::kHold, P(Layer::kVolume, Area::kTree, "v"),
                          P(Layer::kVolume, Area::kHeld, "4000000000000001")});
  intent.steps.push_back({StepKind::kHoldWhole, P(Layer::kVolume, Area::kTree, "w/t"),
                          P(Layer::kVolume, Area::kHeld, "tree.0123")});
  intent.steps.push_back({StepKind::kDropWhiteout, P(Layer::kDisk, Area::kTree, "p/dist"), {}});
  intent.steps.push_back({StepKind::kRenameNoReplace, P(Layer::kDisk, Area::kWork, "index.1"),
                          P(Layer::kDisk, Area::kIndex, "0000000000a7d039")});
  intent.steps.push_back(
      {StepKind::kTrash, P(Layer::kMemory, Area::kIndex, "0000000000a7d039"), {}});
  intent.steps.push_back({StepKind::kRenameNoReplace, P(Layer::kMemory, Area::kTree, "stale"),
                          P(Layer::kMemory, Area::kKept, "kept.0123")});
  return intent;
}

void ExpectSame(const Intent& got, const Intent& want) {
  ASSERT_EQ(got.steps.size(), want.steps.size());
  for (size_t i = 0; i < want.steps.size(); ++i) {
    const IntentStep& g = got.steps[i];
    const IntentStep& w = want.steps[i];
    EXPECT_EQ(g.kind, w.kind) << i;
    EXPECT_EQ(g.a.layer, w.a.layer) << i;
    EXPECT_EQ(g.a.area, w.a.area) << i;
    EXPECT_EQ(g.a.path, w.a.path) << i;
    if (IsMove(w.kind)) {
      EXPECT_EQ(g.b.layer, w.b.layer) << i;
      EXPECT_EQ(g.b.area, w.b.area) << i;
      EXPECT_EQ(g.b.path, w.b.path) << i;
    }
  }
}

// A record with a correct checksum over `body` (header and step lines).
std::string Sealed(const std::string& body) {
  char sum[17];
  std::snprintf(sum, sizeof(sum), "%016llx",
                static_cast<unsigned long long>(XXH64(body.data(), body.size(), 0)));  // NOLINT
  return body + "end " + sum + "\n";
}

// --- The format ------------------------------------------------------------

TEST(IntentFormatTest, EncodesOneLinePerStepAndAChecksum) {
  Intent intent;
  intent.steps.push_back(
      {StepKind::kRename, P(Layer::kVolume, Area::kTree, "a"), P(Layer::kDisk, Area::kWork, "b")});
  intent.steps.push_back({StepKind::kTrash, P(Layer::kMemory, Area::kTrash, "c"), {}});
  const std::string body = "detourfs-intent 1\nrename 0:0:a 2:1:b\ntrash 1:2:c\n";
  EXPECT_EQ(EncodeIntent(intent), Sealed(body));
}

TEST(IntentFormatTest, PathsArePercentEncoded) {
  Intent intent;
  intent.steps.push_back(
      {StepKind::kTrash, P(Layer::kMemory, Area::kTree, "a b/c%d\ne_f-g.h"), {}});
  const std::string text = EncodeIntent(intent);
  EXPECT_NE(text.find("trash 1:0:a%20b/c%25d%0Ae_f-g.h\n"), std::string::npos) << text;
}

TEST(IntentFormatTest, RoundTripsEveryStepKind) {
  const Intent want = Sample();
  Result<Intent> got = DecodeIntent(EncodeIntent(want));
  ASSERT_TRUE(got.ok()) << got.error();
  ExpectSame(*got, want);
}

TEST(IntentFormatTest, RoundTripsAwkwardPaths) {
  Intent want;
  std::string all_bytes;
  for (int c = 1; c < 256; ++c) all_bytes.push_back(static_cast<char>(c));
  for (const std::string& path :
       {std::string("end x"), std::string("end "), std::string("100%"), std::string("new\nline"),
        std::string("spaces  and\ttabs"), std::string("ünïcødé"), all_bytes}) {
    want.steps.push_back({StepKind::kRename, P(Layer::kDisk, Area::kTree, path),
                          P(Layer::kDisk, Area::kTree, path + "2")});
  }
  Result<Intent> got = DecodeIntent(EncodeIntent(want));
  ASSERT_TRUE(got.ok()) << got.error();
  ExpectSame(*got, want);
}

TEST(IntentFormatTest, AnEmptyIntentRoundTrips) {
  Result<Intent> got = DecodeIntent(EncodeIntent(Intent{}));
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->steps.empty());
}

TEST(IntentFormatTest, EveryTornPrefixIsRejected) {
  const std::string text = EncodeIntent(Sample());
  // Everything short of the checksum line's last digit is torn (the final
  // newline alone may be missing).
  for (size_t len = 0; len + 1 < text.size(); ++len) {
    Result<Intent> r = DecodeIntent(std::string_view(text).substr(0, len));
    EXPECT_FALSE(r.ok()) << "prefix of " << len << " bytes";
    EXPECT_EQ(r.error(), EUCLEAN);
  }
  EXPECT_TRUE(DecodeIntent(std::string_view(text).substr(0, text.size() - 1)).ok());
}

TEST(IntentFormatTest, AnyChangedByteIsCaughtByTheChecksum) {
  const std::string text = EncodeIntent(Sample());
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    std::string bad = text;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    Result<Intent> r = DecodeIntent(bad);
    EXPECT_FALSE(r.ok()) << "byte " << i << " flipped";
  }
}

TEST(IntentFormatTest, GarbageIsRejected) {
  for (const std::string& text :
       {std::string(), std::string("detourfs-intent 1\n"), std::string("end 0\n"),
        std::string("detourfs-intent 2\nend 0000000000000000\n"),
        std::string("\0\0\0\0\0\0\0\0", 8)}) {
    Result<Intent> r = DecodeIntent(text);
    EXPECT_FALSE(r.ok()) << "'" << text << "'";
    EXPECT_EQ(r.error(), EUCLEAN);
  }
}

TEST(IntentFormatTest, WrongVersionIsRejectedEvenWithAGoodChecksum) {
  EXPECT_EQ(DecodeIntent(Sealed("detourfs-intent 2\ntrash 1:0:a\n")).error(), EUCLEAN);
  EXPECT_TRUE(DecodeIntent(Sealed("detourfs-intent 1\ntrash 1:0:a\n")).ok());
}

// Records whose checksum matches but whose lines do not parse: never acted
// on (a record written by a buggy or later version).
TEST(IntentFormatTest, MalformedStepsAreRejectedBehindAGoodChecksum) {
  const std::string h = "detourfs-intent 1\n";
  for (const std::string& lines : {
           std::string("frobnicate 1:0:a\n"),    // unknown step
           std::string("trash\n"),               // no path
           std::string("trash 3:0:a\n"),         // no such layer
           std::string("trash 1:6:a\n"),         // no such area
           std::string("trash x:0:a\n"),         //
           std::string("trash 1-0-a\n"),         //
           std::string("trash 1:0\n"),           // too short
           std::string("trash 1:0:%G1\n"),       // bad escape
           std::string("trash 1:0:a%4\n"),       // escape cut short
           std::string("rename 1:0:a\n"),        // second path missing
           std::string("rename 1:0:a 9:0:b\n"),  //
           std::string("hold 0:0:a\n"),          //
           std::string("trash 1:0:a"),           // no final newline
       }) {
    Result<Intent> r = DecodeIntent(Sealed(h + lines));
    EXPECT_FALSE(r.ok()) << lines;
    EXPECT_EQ(r.error(), EUCLEAN) << lines;
  }
}

// --- The log on disk ---------------------------------------------------------

class IntentLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(scratch_.ok());
    dir_ = Open();
  }
  SharedFd Open() {
    const int fd = ::open(scratch_.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    return std::make_shared<const UniqueFd>(fd);
  }
  std::set<std::string> Names() {
    std::set<std::string> names;
    DIR* d = ::opendir(scratch_.path().c_str());
    if (d == nullptr) return names;
    while (struct dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") names.insert(n);
    }
    ::closedir(d);
    return names;
  }
  std::string Read(const std::string& name) {
    std::ifstream in(scratch_.path() + "/" + name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  void Put(const std::string& name, const std::string& text) {
    std::ofstream out(scratch_.path() + "/" + name, std::ios::binary);
    out << text;
  }

  ScratchDir scratch_{"/dev/shm/detourfs-intents"};
  SharedFd dir_;
};

TEST_F(IntentLogTest, WriteLeavesExactlyTheEncodedRecord) {
  IntentLog log(dir_);
  Result<std::string> name = log.Write(Sample());
  ASSERT_TRUE(name.ok()) << name.error();
  EXPECT_EQ(Names(), std::set<std::string>{*name}) << "nothing else, no temporary name";
  EXPECT_EQ(Read(*name), EncodeIntent(Sample()));
}

TEST_F(IntentLogTest, RecordsSurviveARestart) {
  std::string name;
  {
    IntentLog log(dir_);
    Result<std::string> written = log.Write(Sample());
    ASSERT_TRUE(written.ok());
    name = *written;
  }
  IntentLog after(Open());  // the daemon restarted
  Result<std::vector<std::pair<std::string, Intent>>> pending = after.Pending();
  ASSERT_TRUE(pending.ok()) << pending.error();
  ASSERT_EQ(pending->size(), 1U);
  EXPECT_EQ((*pending)[0].first, name);
  ExpectSame((*pending)[0].second, Sample());
}

TEST_F(IntentLogTest, RemovedRecordsAreGone) {
  IntentLog log(dir_);
  Result<std::string> a = log.Write(Sample());
  Result<std::string> b = log.Write(Intent{});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  ASSERT_TRUE(log.Remove(*a).ok());
  EXPECT_TRUE(log.Remove(*a).ok()) << "removing twice is fine";
  Result<std::vector<std::pair<std::string, Intent>>> pending = IntentLog(Open()).Pending();
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 1U);
  EXPECT_EQ((*pending)[0].first, *b);
  ASSERT_TRUE(log.Remove(*b).ok());
  EXPECT_TRUE(Names().empty());
  pending = log.Pending();
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->empty());
}

TEST_F(IntentLogTest, PendingListsOldestFirst) {
  IntentLog log(dir_);
  std::vector<std::string> written;
  for (int i = 0; i < 20; ++i) {
    Intent intent;
    intent.steps.push_back(
        {StepKind::kTrash, P(Layer::kMemory, Area::kTree, "f" + std::to_string(i)), {}});
    Result<std::string> name = log.Write(intent);
    ASSERT_TRUE(name.ok());
    written.push_back(*name);
  }
  Result<std::vector<std::pair<std::string, Intent>>> pending = IntentLog(Open()).Pending();
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), written.size());
  for (size_t i = 0; i < written.size(); ++i) {
    EXPECT_EQ((*pending)[i].first, written[i]);
    ASSERT_EQ((*pending)[i].second.steps.size(), 1U);
    EXPECT_EQ((*pending)[i].second.steps[0].a.path, "f" + std::to_string(i));
  }
}

TEST_F(IntentLogTest, TornAndCorruptRecordsAreDroppedAndDeleted) {
  IntentLog log(dir_);
  Result<std::string> good = log.Write(Sample());
  ASSERT_TRUE(good.ok());
  const std::string text = EncodeIntent(Sample());
  Put("00000000000000000000-000000-torn", text.substr(0, text.size() / 2));
  std::string flipped = text;
  flipped[20] = static_cast<char>(flipped[20] ^ 0x20);
  Put("00000000000000000000-000001-flipped", flipped);
  Put("00000000000000000000-000002-empty", "");

  Result<std::vector<std::pair<std::string, Intent>>> pending = IntentLog(Open()).Pending();
  ASSERT_TRUE(pending.ok()) << pending.error();
  ASSERT_EQ(pending->size(), 1U);
  EXPECT_EQ((*pending)[0].first, *good);
  EXPECT_EQ(Names(), std::set<std::string>{*good}) << "the torn records were deleted";
}

TEST_F(IntentLogTest, WriteFailsCleanlyWhereTheDirectoryIsGone) {
  SharedFd sub;
  {
    ASSERT_EQ(::mkdir((scratch_.path() + "/sub").c_str(), 0700), 0);
    const int fd = ::open((scratch_.path() + "/sub").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    sub = std::make_shared<const UniqueFd>(fd);
    ASSERT_EQ(::rmdir((scratch_.path() + "/sub").c_str()), 0);
  }
  IntentLog log(sub);
  Result<std::string> name = log.Write(Sample());
  EXPECT_FALSE(name.ok());
}

}  // namespace
}  // namespace detourfs
