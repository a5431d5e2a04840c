// ChangeRecord: kind names and the JSON-lines sink tests read records from.
#include "store/change_record.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "scratch_dir.h"

namespace detourfs {
namespace {

constexpr ChangeKind kAllKinds[] = {
    ChangeKind::kCreate, ChangeKind::kMkdir,    ChangeKind::kLink,     ChangeKind::kUnlink,
    ChangeKind::kRmdir,  ChangeKind::kWhiteout, ChangeKind::kOpaque,   ChangeKind::kRename,
    ChangeKind::kCopyUp, ChangeKind::kWrite,    ChangeKind::kTruncate, ChangeKind::kSetattr,
    ChangeKind::kXattr,  ChangeKind::kSpill,    ChangeKind::kMove,
};

TEST(ChangeKindNameTest, EveryKindHasItsOwnName) {
  std::set<std::string> names;
  for (ChangeKind k : kAllKinds) {
    const std::string name = ChangeKindName(k);
    EXPECT_NE(name, "?") << static_cast<int>(k);
    EXPECT_FALSE(name.empty());
    names.insert(name);
  }
  EXPECT_EQ(names.size(), std::size(kAllKinds));
}

TEST(ChangeKindNameTest, NamesAreTheDocumentedOnes) {
  EXPECT_STREQ(ChangeKindName(ChangeKind::kCreate), "create");
  EXPECT_STREQ(ChangeKindName(ChangeKind::kMkdir), "mkdir");
  EXPECT_STREQ(ChangeKindName(ChangeKind::kWhiteout), "whiteout");
  EXPECT_STREQ(ChangeKindName(ChangeKind::kCopyUp), "copyup");
  EXPECT_STREQ(ChangeKindName(ChangeKind::kRename), "rename");
  EXPECT_STREQ(ChangeKindName(ChangeKind::kMove), "move");
  EXPECT_STREQ(ChangeKindName(static_cast<ChangeKind>(200)), "?");
}

ChangeRecord Rec(uint64_t seq, ChangeKind kind, Layer layer, std::string path, std::string path2,
                 uint64_t id, uint64_t offset = 0, uint64_t length = 0) {
  ChangeRecord r;
  r.seq = seq;
  r.kind = kind;
  r.layer = layer;
  r.path = std::move(path);
  r.path2 = std::move(path2);
  r.id = id;
  r.offset = offset;
  r.length = length;
  return r;
}

class JsonLinesSinkTest : public ::testing::Test {
 protected:
  std::vector<nlohmann::json> ReadLines() {
    std::vector<nlohmann::json> out;
    std::ifstream in(file_);
    std::string line;
    while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
    return out;
  }
  ScratchDir scratch_{"/tmp/detourfs-changes"};
  std::string file_ = scratch_.path() + "/changes.jsonl";
};

TEST_F(JsonLinesSinkTest, OneObjectPerRecordInOrder) {
  ASSERT_TRUE(scratch_.ok());
  std::unique_ptr<ChangeSink> sink = OpenJsonLinesSink(file_);
  ASSERT_NE(sink, nullptr);
  ChangeRecord create =
      Rec(1, ChangeKind::kCreate, Layer::kMemory, "a/b", "", 0x4000000100000002ULL);
  ChangeRecord rename = Rec(2, ChangeKind::kRename, Layer::kDisk, "x", "y z", 7);
  ChangeRecord write = Rec(3, ChangeKind::kWrite, Layer::kVolume, "f", "", 9, 4096, 100);
  ChangeRecord trunc = Rec(4, ChangeKind::kTruncate, Layer::kMemory, "f", "", 9, 0, 12);
  for (const ChangeRecord* r : {&create, &rename, &write, &trunc}) sink->Append(*r);
  sink.reset();

  std::vector<nlohmann::json> lines = ReadLines();
  ASSERT_EQ(lines.size(), 4U);
  EXPECT_EQ(lines[0]["seq"], 1);
  EXPECT_EQ(lines[0]["kind"], "create");
  EXPECT_EQ(lines[0]["layer"], "memory tier");
  EXPECT_EQ(lines[0]["path"], "a/b");
  EXPECT_EQ(lines[0]["id"].get<uint64_t>(), 0x4000000100000002ULL) << "ids keep all 64 bits";
  EXPECT_FALSE(lines[0].contains("path2")) << "only when there is one";
  EXPECT_FALSE(lines[0].contains("offset"));
  EXPECT_FALSE(lines[0].contains("length"));

  EXPECT_EQ(lines[1]["kind"], "rename");
  EXPECT_EQ(lines[1]["layer"], "disk tier");
  EXPECT_EQ(lines[1]["path2"], "y z");

  EXPECT_EQ(lines[2]["kind"], "write");
  EXPECT_EQ(lines[2]["layer"], "volume");
  EXPECT_EQ(lines[2]["offset"], 4096);
  EXPECT_EQ(lines[2]["length"], 100);

  EXPECT_EQ(lines[3]["kind"], "truncate");
  EXPECT_EQ(lines[3]["length"], 12);
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i]["seq"], i + 1);
}

TEST_F(JsonLinesSinkTest, PathsThatAreNotUtf8DoNotBreakTheStream) {
  ASSERT_TRUE(scratch_.ok());
  std::unique_ptr<ChangeSink> sink = OpenJsonLinesSink(file_);
  ASSERT_NE(sink, nullptr);
  sink->Append(Rec(1, ChangeKind::kCreate, Layer::kMemory, "bad\xff\xfe", "", 1));
  sink->Append(Rec(2, ChangeKind::kUnlink, Layer::kMemory, "line\nbreak", "", 2));
  sink.reset();
  std::vector<nlohmann::json> lines = ReadLines();
  ASSERT_EQ(lines.size(), 2U) << "each record stays one line";
  EXPECT_EQ(lines[0]["seq"], 1);
  EXPECT_EQ(lines[1]["path"], "line\nbreak");
}

TEST_F(JsonLinesSinkTest, OpeningStartsTheFileAfresh) {
  ASSERT_TRUE(scratch_.ok());
  {
    std::ofstream old(file_);
    old << "stale line\n";
  }
  std::unique_ptr<ChangeSink> sink = OpenJsonLinesSink(file_);
  ASSERT_NE(sink, nullptr);
  sink->Append(Rec(1, ChangeKind::kMkdir, Layer::kDisk, "d", "", 3));
  sink.reset();
  std::vector<nlohmann::json> lines = ReadLines();
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(lines[0]["kind"], "mkdir");
}

TEST_F(JsonLinesSinkTest, AnUnopenablePathGivesNoSink) {
  ASSERT_TRUE(scratch_.ok());
  EXPECT_EQ(OpenJsonLinesSink(scratch_.path() + "/no/such/dir/file"), nullptr);
}

}  // namespace
}  // namespace detourfs
