// flakyfs on real mounts: each fault kind fires as configured, the counters
// prove it, and nothing fires when it is off.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "lib/files.h"
#include "lib/flaky_mount.h"
#include "lib/mounted_fs.h"

namespace detourfs::testing {
namespace {

class FlakyFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/flakyfs-tree.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    source_ = root_ + "/source";
    mnt_ = root_ + "/mnt";
    ASSERT_EQ(::mkdir(source_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(mnt_.c_str(), 0755), 0);
  }
  void TearDown() override {
    flaky_.reset();
    Shell("rm -rf '" + root_ + "'");
  }
  void Mount(const FlakyConfig& config = {}) {
    std::string error;
    flaky_ = FlakyMount::Start(source_, mnt_, config, &error);
    ASSERT_NE(flaky_, nullptr) << error;
  }
  void Ok(const std::string& command) {
    ASSERT_EQ(flaky_->Control(command).rfind("ok", 0), 0U) << command;
  }
  std::string M(const std::string& rel) const { return mnt_ + "/" + rel; }
  std::string S(const std::string& rel) const { return source_ + "/" + rel; }

  // Writes through the mount with open/write/close, returning the first errno.
  static int TryWrite(const std::string& path, const std::string& data) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return errno;
    ssize_t n = ::write(fd, data.data(), data.size());
    int err = n < 0 ? errno : 0;
    if (::close(fd) != 0 && err == 0) err = errno;
    return err;
  }

  uint64_t TotalInjected() const {
    uint64_t total = 0;
    const nlohmann::json counters = flaky_->Counters();  // kept alive for the loop
    for (const auto& [kind, n] : counters["injected"].items()) total += n.get<uint64_t>();
    return total;
  }

  std::string root_, source_, mnt_;
  std::unique_ptr<FlakyMount> flaky_;
};

TEST_F(FlakyFsTest, PassesEverythingThroughWhenNothingIsConfigured) {
  Mount();
  ASSERT_EQ(::mkdir(M("d").c_str(), 0750), 0);
  ASSERT_EQ(TryWrite(M("d/f"), "hello"), 0);
  EXPECT_EQ(ReadFile(S("d/f")), "hello");
  ASSERT_EQ(::rename(M("d/f").c_str(), M("d/g").c_str()), 0);
  ASSERT_EQ(::link(M("d/g").c_str(), M("d/h").c_str()), 0);
  ASSERT_EQ(::symlink("g", M("d/s").c_str()), 0);
  ASSERT_EQ(::setxattr(M("d/g").c_str(), "user.k", "v", 1, 0), 0);
  char v[8] = {};
  EXPECT_EQ(::getxattr(S("d/g").c_str(), "user.k", v, sizeof(v)), 1);
  ASSERT_EQ(::truncate(M("d/g").c_str(), 2), 0);
  EXPECT_EQ(ReadFile(M("d/h")), "he");
  ASSERT_EQ(::chmod(M("d/g").c_str(), 0600), 0);
  struct stat st {};
  ASSERT_EQ(::stat(S("d/g").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600U);
  EXPECT_EQ(st.st_nlink, 2U);
  ASSERT_EQ(::unlink(M("d/h").c_str()), 0);
  ASSERT_EQ(::unlink(M("d/s").c_str()), 0);
  ASSERT_EQ(::unlink(M("d/g").c_str()), 0);
  ASSERT_EQ(::rmdir(M("d").c_str()), 0);
  EXPECT_NE(::access(S("d").c_str(), F_OK), 0);
  nlohmann::json c = flaky_->Counters();
  EXPECT_GT(c["ops_total"].get<uint64_t>(), 10U);
  EXPECT_EQ(TotalInjected(), 0U);
  EXPECT_EQ(c["stalls"].get<uint64_t>(), 0U);
  EXPECT_EQ(c["delayed_us"].get<uint64_t>(), 0U);
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

// libfuse names no path for an unlinked open file (hard_remove) in the
// operations that carry its handle (a read past the end asks for its size,
// ftruncate, fsync): flakyfs serves them by handle, model or not.
TEST_F(FlakyFsTest, UnlinkedOpenFileStaysUsable) {
  for (bool model : {false, true}) {
    Mount();
    if (model) Ok("durability strict");
    int fd = ::open(M("f").c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::unlink(M("f").c_str()), 0);
    ASSERT_EQ(::pwrite(fd, "data", 4, 0), 4);
    char buf[8] = {};
    EXPECT_EQ(::pread(fd, buf, sizeof(buf), 0), 4);
    ASSERT_EQ(::ftruncate(fd, 2), 0);
    ASSERT_EQ(::fsync(fd), 0);
    EXPECT_EQ(::pread(fd, buf, sizeof(buf), 0), 2);
    ::close(fd);
    EXPECT_EQ(flaky_->Stop(), 0) << (model ? "with" : "without") << " the model";
  }
}

TEST_F(FlakyFsTest, EioByGlobHitsOnlyMatchingPaths) {
  ASSERT_EQ(::mkdir(S("bad").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(S("good").c_str(), 0755), 0);
  Mount({.rules = {"fault eio glob=bad/** ops=create,open"}});
  EXPECT_EQ(TryWrite(M("bad/x"), "x"), EIO);
  EXPECT_EQ(TryWrite(M("good/x"), "x"), 0);
  EXPECT_EQ(flaky_->Injected("eio"), 1U);
  EXPECT_NE(::access(S("bad/x").c_str(), F_OK), 0);
}

TEST_F(FlakyFsTest, EnospcOnWrite) {
  Mount({.rules = {"fault enospc ops=write glob=full*"}});
  EXPECT_EQ(TryWrite(M("full.bin"), "data"), ENOSPC);
  EXPECT_EQ(TryWrite(M("other.bin"), "data"), 0);
  EXPECT_EQ(flaky_->Injected("enospc"), 1U);
}

TEST_F(FlakyFsTest, ErofsRefusesChangesButNotReads) {
  WriteFile(S("r"), "readable");
  Mount({.rules = {"fault erofs"}});
  EXPECT_EQ(ReadFile(M("r")), "readable");
  EXPECT_EQ(::mkdir(M("d").c_str(), 0755), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::unlink(M("r").c_str()), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(flaky_->Injected("erofs"), 2U);
}

TEST_F(FlakyFsTest, DirectoryFsyncReachesFlakyfsAndCanFail) {
  ASSERT_EQ(::mkdir(S("bad").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(S("good").c_str(), 0755), 0);
  Mount({.rules = {"fault eio ops=fsyncdir glob=bad/"}});
  for (const char* dir : {"good", "bad"}) {
    int fd = ::open(M(dir).c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(Err(::fsync(fd)), std::string(dir) == "bad" ? EIO : 0) << dir;
    ::close(fd);
  }
  EXPECT_EQ(flaky_->Counters()["ops"]["fsyncdir"], 2U);
  EXPECT_EQ(flaky_->Injected("eio"), 1U);
}

TEST_F(FlakyFsTest, ShortWriteWritesHalfAndSaysSo) {
  Mount({.rules = {"fault short_write glob=s"}});
  int fd = ::open(M("s").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  std::string data(4096, 'x');
  EXPECT_EQ(::write(fd, data.data(), data.size()), 2048);
  ::close(fd);
  EXPECT_EQ(ReadFile(S("s")).size(), 2048U);
  EXPECT_EQ(flaky_->Injected("short_write"), 1U);
}

// Polls until `done` or 20 s pass.
template <typename F>
bool Eventually(F done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

TEST_F(FlakyFsTest, VanishForAWhileThenComesBack) {
  Mount({.rules = {"fault vanish glob=v/* mode=enoent for=2s"}});
  ASSERT_EQ(::mkdir(M("v").c_str(), 0755), 0);
  ASSERT_EQ(TryWrite(M("v/f"), "written and closed"), 0);
  // Written, closed successfully, and now it is not there.
  struct stat st {};
  EXPECT_EQ(::stat(M("v/f").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(ListDir(M("v")), std::vector<std::string>{});
  EXPECT_EQ(flaky_->Injected("vanish"), 1U);
  EXPECT_GE(flaky_->Counters()["vanish_hits"].get<uint64_t>(), 1U);
  // The data was kept underneath, and the file comes back.
  EXPECT_EQ(ReadFile(S("v/f")), "written and closed");
  EXPECT_TRUE(Eventually([&] { return ::stat(M("v/f").c_str(), &st) == 0; }));
  EXPECT_EQ(ReadFile(M("v/f")), "written and closed");
}

TEST_F(FlakyFsTest, VanishForGoodLosesTheFile) {
  Mount({.rules = {"fault vanish glob=lost"}});
  ASSERT_EQ(TryWrite(M("lost"), "gone"), 0);
  EXPECT_NE(::access(M("lost").c_str(), F_OK), 0);
  EXPECT_NE(::access(S("lost").c_str(), F_OK), 0);
  ASSERT_EQ(TryWrite(M("kept"), "here"), 0);
  EXPECT_EQ(ReadFile(M("kept")), "here");
  EXPECT_EQ(flaky_->Injected("vanish"), 1U);
}

TEST_F(FlakyFsTest, VanishAsWrongSizeOrWrongContent) {
  Mount({.rules = {"fault vanish glob=size mode=size for=60s",
                   "fault vanish glob=content mode=content for=60s",
                   "fault vanish glob=trunc mode=size"}});
  ASSERT_EQ(TryWrite(M("size"), "12345"), 0);
  ASSERT_EQ(TryWrite(M("content"), "12345"), 0);
  ASSERT_EQ(TryWrite(M("trunc"), "12345"), 0);
  struct stat st {};
  ASSERT_EQ(::stat(M("size").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(ReadFile(M("size")), "");
  EXPECT_EQ(ReadFile(M("content")), std::string(5, '\0'));
  EXPECT_EQ(ReadFile(S("content")), "12345");  // underneath it is fine, for a while
  EXPECT_EQ(ReadFile(S("trunc")), "");         // for good: the source lost it
  EXPECT_EQ(flaky_->Injected("vanish"), 3U);
  // Rewriting a file ends its vanish.
  ASSERT_EQ(TryWrite(M("content"), "abc"), 0);
  EXPECT_EQ(flaky_->Control("clear"), "ok");
  EXPECT_EQ(ReadFile(M("content")), "abc");
}

TEST_F(FlakyFsTest, LyingRenameAndUnlinkReportSuccessAndDoNothing) {
  WriteFile(S("a"), "a");
  WriteFile(S("b"), "b");
  Mount({.rules = {"fault lie glob=a", "fault lie glob=b ops=unlink"}});
  EXPECT_EQ(::rename(M("a").c_str(), M("c").c_str()), 0);
  EXPECT_EQ(::unlink(M("b").c_str()), 0);
  EXPECT_EQ(ReadFile(S("a")), "a");
  EXPECT_EQ(ReadFile(S("b")), "b");
  EXPECT_NE(::access(S("c").c_str(), F_OK), 0);
  EXPECT_EQ(flaky_->Injected("lie"), 2U);
}

TEST_F(FlakyFsTest, LatencyAndStallsAreCounted) {
  WriteFile(S("f"), "x");
  Mount({.rules = {"latency meta 1ms", "stall 1 2ms"}});
  struct stat st {};
  for (int i = 0; i < 5; ++i) ASSERT_EQ(::stat(M("f").c_str(), &st), 0);
  nlohmann::json c = flaky_->Counters();
  uint64_t ops = c["ops_total"].get<uint64_t>();
  EXPECT_GE(ops, 5U);
  EXPECT_EQ(c["stalls"].get<uint64_t>(), ops);
  EXPECT_EQ(c["delayed_us"].get<uint64_t>(), ops * 3000);
  EXPECT_EQ(TotalInjected(), 0U);
}

// Which of 200 files fail to open with EIO at probability 0.5.
std::set<int> FailingFiles(const std::string& mnt) {
  std::set<int> failing;
  for (int i = 0; i < 200; ++i) {
    int fd = ::open((mnt + "/f" + std::to_string(i)).c_str(), O_RDONLY);
    if (fd < 0) {
      failing.insert(i);
    } else {
      ::close(fd);
    }
  }
  return failing;
}

TEST_F(FlakyFsTest, ProbabilityFollowsTheSeedRepeatably) {
  for (int i = 0; i < 200; ++i) WriteFile(S("f" + std::to_string(i)), "x");
  const std::vector<std::string> rules = {"fault eio prob=0.5 ops=open"};
  Mount({.rules = rules, .seed = 7});
  std::set<int> first = FailingFiles(mnt_);
  EXPECT_EQ(flaky_->Injected("eio"), first.size());
  ASSERT_EQ(flaky_->Stop(), 0);
  Mount({.rules = rules, .seed = 7});
  EXPECT_EQ(FailingFiles(mnt_), first);
  ASSERT_EQ(flaky_->Stop(), 0);
  Mount({.rules = rules, .seed = 8});
  std::set<int> other = FailingFiles(mnt_);
  EXPECT_NE(other, first);
  // 200 fair coins: far outside [50, 150] would mean the draws are broken.
  EXPECT_GT(first.size(), 50U);
  EXPECT_LT(first.size(), 150U);
}

TEST_F(FlakyFsTest, FaultsChangeAtRunTimeWithoutRemounting) {
  Mount();
  EXPECT_EQ(TryWrite(M("a"), "1"), 0);
  Ok("fault eio ops=create");
  EXPECT_EQ(TryWrite(M("b"), "1"), EIO);
  Ok("clear");
  EXPECT_EQ(TryWrite(M("c"), "1"), 0);
  EXPECT_EQ(flaky_->Injected("eio"), 1U);
  Ok("reset-counters");
  EXPECT_EQ(flaky_->Injected("eio"), 0U);
  EXPECT_EQ(flaky_->Control("fault nonsense").rfind("error unknown fault kind", 0), 0U);
  EXPECT_EQ(flaky_->Control("fault eio glob=[x").rfind("error bad glob", 0), 0U);
}

}  // namespace
}  // namespace detourfs::testing
