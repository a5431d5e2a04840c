// MoveIntents on a real directory: records round-trip whatever the names
// hold, ended ones are gone, and a file that is not a record — or names
// anything but a hidden move name — is never handed out.
#include "store/move_intents.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "scratch_dir.h"

namespace detourfs {
namespace {

class MoveIntentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    int fd = ::open(dir_.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    intents_ = std::make_unique<MoveIntents>(std::make_shared<const UniqueFd>(fd));
  }
  void Put(const std::string& name, const std::string& data) {
    int fd = ::open((dir_.path() + "/" + name).c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ::close(fd);
  }

  // A record's layout: each field ended by a NUL.
  static std::string Fields(std::initializer_list<std::string> fields) {
    std::string s;
    for (const std::string& f : fields) {
      s += f;
      s.push_back('\0');
    }
    return s;
  }

  ScratchDir dir_{"/tmp/detourfs-moves"};
  std::unique_ptr<MoveIntents> intents_;
};

TEST_F(MoveIntentsTest, ARecordLastsUntilItsMoveEnds) {
  const MoveIntent a{Layer::kVolume, "home/app", ".detourfs-move.7.0"};
  const MoveIntent b{Layer::kDisk, "", ".detourfs-move.9.1"};
  Result<std::string> ra = intents_->Begin(a);
  Result<std::string> rb = intents_->Begin(b);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_NE(*ra, *rb);
  auto pending = intents_->Pending();
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 2U);
  for (const auto& [record, intent] : *pending) {
    const MoveIntent& want = record == *ra ? a : b;
    EXPECT_EQ(intent.layer, want.layer);
    EXPECT_EQ(intent.parent, want.parent);
    EXPECT_EQ(intent.hidden, want.hidden);
  }
  intents_->End(*ra);
  pending = intents_->Pending();
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 1U);
  EXPECT_EQ(pending->front().first, *rb);
  intents_->End(*rb);
  pending = intents_->Pending();
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->empty());
}

TEST_F(MoveIntentsTest, NamesWithNewlinesAndSpacesRoundTrip) {
  const MoveIntent a{Layer::kMemory, "we ird/line\nbreak/ü", ".detourfs-move.1.0"};
  ASSERT_TRUE(intents_->Begin(a).ok());
  auto pending = intents_->Pending();
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 1U);
  EXPECT_EQ(pending->front().second.parent, a.parent);
  EXPECT_EQ(pending->front().second.layer, Layer::kMemory);
}

TEST_F(MoveIntentsTest, WhatIsNotARecordOfAHiddenNameIsNeverHandedOut) {
  Put("garbage", "not a record at all");
  Put("empty", "");
  // Well-formed, but naming the user's own directory (or a path, or no
  // layer): never acted on.
  Put("not-hidden", Fields({"detourfs-move-intent 1", "0", "home", "app"}));
  Put("nested", Fields({"detourfs-move-intent 1", "0", "", ".detourfs-move.1/x"}));
  Put("bad-layer", Fields({"detourfs-move-intent 1", "9", "", ".detourfs-move.1.0"}));
  Put("short", Fields({"detourfs-move-intent 1", "0", ""}));
  ASSERT_TRUE(intents_->Begin({Layer::kVolume, "a", ".detourfs-move.3.0"}).ok());
  auto pending = intents_->Pending();
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 1U);
  EXPECT_EQ(pending->front().second.hidden, ".detourfs-move.3.0");
  // The others are left where they are, for a person to look at.
  EXPECT_EQ(::access((dir_.path() + "/garbage").c_str(), F_OK), 0);
  EXPECT_EQ(::access((dir_.path() + "/not-hidden").c_str(), F_OK), 0);
}

}  // namespace
}  // namespace detourfs
