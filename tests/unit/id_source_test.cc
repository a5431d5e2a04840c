// IdSource: ids are unique, above every volume inode number, and never
// repeat across restarts while any layer remembers the last start.
#include "store/id_source.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "scratch_dir.h"

namespace detourfs {
namespace {

class IdSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(scratch_.ok());
    for (const char* name : {"volume", "memory", "disk"}) {
      const std::string path = scratch_.path() + "/" + name;
      ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
      paths_.push_back(path);
    }
    Reopen();
  }
  void TearDown() override {
    for (int fd : fds_) ::close(fd);
  }
  // Fresh O_PATH fds of every layer directory (a restart).
  void Reopen() {
    for (int fd : fds_) ::close(fd);
    fds_.clear();
    for (const std::string& p : paths_) {
      fds_.push_back(::open(p.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      ASSERT_GE(fds_.back(), 0);
    }
  }
  std::unique_ptr<IdSource> Start(std::vector<int> dirs) {
    std::unique_ptr<IdSource> source;
    Status s = IdSource::Open(std::move(dirs), &source);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return source;
  }
  std::string ReadIds(size_t layer) {
    std::ifstream in(paths_[layer] + "/ids");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  void WriteIds(size_t layer, const std::string& text) {
    std::ofstream out(paths_[layer] + "/ids", std::ios::trunc);
    out << text;
  }
  void Wipe(size_t layer) { ::unlink((paths_[layer] + "/ids").c_str()); }

  ScratchDir scratch_{"/tmp/detourfs-ids"};
  std::vector<std::string> paths_;
  std::vector<int> fds_;
};

TEST_F(IdSourceTest, FirstStartIsIncarnationOneRecordedEverywhere) {
  std::unique_ptr<IdSource> ids = Start(fds_);
  ASSERT_NE(ids, nullptr);
  EXPECT_EQ(ids->incarnation(), 1U);
  for (size_t l = 0; l < paths_.size(); ++l) EXPECT_EQ(ReadIds(l), "1\n") << paths_[l];
}

TEST_F(IdSourceTest, IdsAreUniqueAndCarryBaseAndIncarnation) {
  std::unique_ptr<IdSource> ids = Start(fds_);
  ASSERT_NE(ids, nullptr);
  std::set<uint64_t> seen;
  for (int i = 0; i < 100000; ++i) {
    const uint64_t id = ids->Next();
    EXPECT_NE(id & kIdBase, 0U);
    EXPECT_EQ((id & ~kIdBase) >> 32, ids->incarnation());
    EXPECT_TRUE(seen.insert(id).second) << "id " << id << " repeated";
  }
}

TEST_F(IdSourceTest, IdsAreUniqueAcrossThreads) {
  std::unique_ptr<IdSource> ids = Start(fds_);
  ASSERT_NE(ids, nullptr);
  std::vector<std::vector<uint64_t>> got(4);
  std::vector<std::thread> threads;
  for (auto& out : got) {
    threads.emplace_back([&ids, &out] {
      for (int i = 0; i < 20000; ++i) out.push_back(ids->Next());
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<uint64_t> all;
  for (const auto& out : got) all.insert(out.begin(), out.end());
  EXPECT_EQ(all.size(), 80000U);
}

TEST_F(IdSourceTest, ARestartNeverReusesAnId) {
  std::set<uint64_t> first;
  {
    std::unique_ptr<IdSource> ids = Start(fds_);
    ASSERT_NE(ids, nullptr);
    for (int i = 0; i < 1000; ++i) first.insert(ids->Next());
  }
  Reopen();
  std::unique_ptr<IdSource> again = Start(fds_);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->incarnation(), 2U);
  for (size_t l = 0; l < paths_.size(); ++l) EXPECT_EQ(ReadIds(l), "2\n");
  for (int i = 0; i < 1000; ++i) {
    const uint64_t id = again->Next();
    EXPECT_EQ(first.count(id), 0U) << "id " << id << " given out again";
    EXPECT_GT(id, *first.rbegin());
  }
}

TEST_F(IdSourceTest, AWipedTierAloneCannotMakeIdsRepeat) {
  { ASSERT_NE(Start(fds_), nullptr); }
  { ASSERT_NE(Start(fds_), nullptr); }  // incarnation 2
  Wipe(1);                              // the memory tier lost everything
  Reopen();
  std::unique_ptr<IdSource> ids = Start(fds_);
  ASSERT_NE(ids, nullptr);
  EXPECT_EQ(ids->incarnation(), 3U);
  EXPECT_EQ(ReadIds(1), "3\n") << "written back to the wiped layer too";
}

TEST_F(IdSourceTest, TheLargestIncarnationAnyLayerRemembersWins) {
  WriteIds(0, "7\n");
  WriteIds(1, "41\n");
  WriteIds(2, "3\n");
  std::unique_ptr<IdSource> ids = Start(fds_);
  ASSERT_NE(ids, nullptr);
  EXPECT_EQ(ids->incarnation(), 42U);
  for (size_t l = 0; l < paths_.size(); ++l) EXPECT_EQ(ReadIds(l), "42\n");
}

TEST_F(IdSourceTest, ALayerThatCannotRecordIsToleratedIfAnotherCan) {
  std::vector<int> dirs = fds_;
  dirs.push_back(-1);  // a layer whose directory cannot be written
  std::unique_ptr<IdSource> ids = Start(dirs);
  ASSERT_NE(ids, nullptr);
  EXPECT_EQ(ReadIds(0), "1\n");
}

TEST_F(IdSourceTest, OpenFailsWhenNoLayerCanRecord) {
  std::unique_ptr<IdSource> ids;
  Status s = IdSource::Open({-1}, &ids);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(ids, nullptr) << "no source handed out";
}

TEST_F(IdSourceTest, RefusesToStartRatherThanOverflowTheIncarnation) {
  // An incarnation must fit below kIdBase (bits 32..61).
  WriteIds(0, std::to_string((uint64_t{1} << 30) - 1) + "\n");
  std::unique_ptr<IdSource> ids;
  Status s = IdSource::Open({fds_[0]}, &ids);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(ids, nullptr);
}

TEST_F(IdSourceTest, NoTemporaryFilesAreLeftBehind) {
  { ASSERT_NE(Start(fds_), nullptr); }
  { ASSERT_NE(Start(fds_), nullptr); }
  for (const std::string& p : paths_) {
    EXPECT_NE(::access((p + "/ids").c_str(), F_OK), -1);
    EXPECT_EQ(::access((p + "/ids.new").c_str(), F_OK), -1) << p;
  }
}

TEST(IdSourceTransientTest, IdsAreUniqueWithinTheRun) {
  std::unique_ptr<IdSource> ids = IdSource::Transient();
  ASSERT_NE(ids, nullptr);
  std::set<uint64_t> seen;
  for (int i = 0; i < 10000; ++i) {
    const uint64_t id = ids->Next();
    EXPECT_GE(id, kIdBase);
    EXPECT_TRUE(seen.insert(id).second);
  }
}

}  // namespace
}  // namespace detourfs
