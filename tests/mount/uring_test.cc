// FUSE over io_uring (src/fuse/uring_transport.h) on a real mount: with the
// kernel's switch on and --io-uring, requests go through the per-CPU rings,
// and data, metadata and errors come back exactly as through /dev/fuse, also
// from concurrent writers and with replies bigger than a page. Without the
// option, with --no-io-uring, or with the switch off, requests stay on
// /dev/fuse. A ring entry lost while the mount lives ends the mount with an
// error instead of leaving its callers waiting. The switch
// (/sys/module/fuse/parameters/enable_uring) is global: the suite turns it on
// and puts back what it found.
#include <fcntl.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "lib/files.h"
#include "lib/mount_test.h"
#include "lib/process.h"

namespace detourfs::testing {
namespace {

constexpr const char* kSwitch = "/sys/module/fuse/parameters/enable_uring";

std::string ReadSwitch() {
  std::ifstream in(kSwitch);
  std::string v;
  std::getline(in, v);
  return v;
}

bool WriteSwitch(const std::string& v) {
  std::ofstream out(kSwitch);
  out << v;
  out.close();
  return !out.fail();
}

// The count in the daemon's "io_uring: N requests served through rings" line,
// or -1 when the daemon did not use the transport at all.
long ServedThroughRings(const std::string& log) {  // NOLINT(google-runtime-int)
  const std::string tail = " requests served through rings";
  const size_t end = log.find(tail);
  if (end == std::string::npos) return -1;
  size_t begin = end;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(log[begin - 1])) != 0) --begin;
  if (begin == end) return -1;
  return std::stol(log.substr(begin, end - begin));
}

class UringTest : public MountTest {
 protected:
  static void SetUpTestSuite() {
    saved_ = ReadSwitch();
    if (!saved_.empty()) switched_ = WriteSwitch("Y");
  }
  static void TearDownTestSuite() {
    if (switched_) (void)WriteSwitch(saved_);
  }
  void SetUp() override {
    if (!switched_) {
      GTEST_SKIP() << "this kernel has no FUSE over io_uring to switch on (" << kSwitch << ")";
    }
    MountTest::SetUp();
  }
  MountConfig Config() const override {
    MountConfig c = MountTest::Config();
    c.extra_args.push_back("--io-uring");
    return c;
  }

  static inline std::string saved_;
  static inline bool switched_ = false;
};

// Writes `data` with write(2) in `chunk`-sized pieces; 0 or errno.
int WriteInChunks(const std::string& path, const std::string& data, size_t chunk) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return errno;
  for (size_t at = 0; at < data.size(); at += chunk) {
    const size_t n = std::min(chunk, data.size() - at);
    if (::write(fd, data.data() + at, n) != static_cast<ssize_t>(n)) {
      const int err = errno;
      ::close(fd);
      return err;
    }
  }
  return ::close(fd) == 0 ? 0 : errno;
}

TEST_P(UringTest, RequestsGoThroughTheRingsAndEverythingRoundTrips) {
  ASSERT_EQ(::mkdir(M("d").c_str(), 0755), 0);
  for (int i = 0; i < 60; ++i) {
    ASSERT_EQ(WriteFile(M("d/f" + std::to_string(i)), Pattern(100 + i * 37, i)), 0);
  }
  // 5 MiB in pieces bigger than max_write: payloads fill the 1 MiB buffers,
  // reads come back in several full-size replies.
  const std::string big = Pattern(5 << 20, 99);
  ASSERT_EQ(WriteInChunks(M("d/big"), big, 3 << 20), 0);
  ASSERT_EQ(WriteInChunks(R("big"), big, 3 << 20), 0);
  ::sync();
  ASSERT_EQ(ReadFile(M("d/big")), big);
  {
    const int fd = ::open(M("d/big").c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    const std::string patch = Pattern(70000, 5);
    ASSERT_EQ(::pwrite(fd, patch.data(), patch.size(), 1234567), 70000);
    std::string back(70000, '\0');
    ASSERT_EQ(::pread(fd, back.data(), back.size(), 1234567), 70000);
    EXPECT_EQ(back, patch);
    ASSERT_EQ(::ftruncate(fd, 4000000), 0);
    ASSERT_EQ(::close(fd), 0);
  }
  EXPECT_EQ(Lstat(M("d/big")).st_size, 4000000);

  std::vector<std::string> names = ListDir(M("d"));
  EXPECT_EQ(names.size(), 61U);
  for (int i = 0; i < 60; ++i) {
    EXPECT_EQ(ReadFile(M("d/f" + std::to_string(i))), Pattern(100 + i * 37, i)) << i;
  }
  ASSERT_EQ(::rename(M("d/f1").c_str(), M("d/renamed").c_str()), 0);
  ASSERT_EQ(::symlink("renamed", M("d/link").c_str()), 0);
  EXPECT_EQ(ReadFile(M("d/link")), Pattern(137, 1));
  ASSERT_EQ(::setxattr(M("d/renamed").c_str(), "user.k", "value", 5, 0), 0);
  char value[16] = {};
  EXPECT_EQ(::getxattr(M("d/renamed").c_str(), "user.k", value, sizeof(value)), 5);
  EXPECT_STREQ(value, "value");
  // Errors travel back through the ring like replies.
  int err = 0;
  Lstat(M("d/missing"), &err);
  EXPECT_EQ(err, ENOENT);
  EXPECT_EQ(::mkdir(M("d").c_str(), 0755), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(::rmdir(M("d").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  struct statvfs sv {};
  EXPECT_EQ(::statvfs(M("d").c_str(), &sv), 0);
  EXPECT_GT(sv.f_blocks, 0U);
  ASSERT_EQ(::unlink(M("d/f2").c_str()), 0);
  EXPECT_EQ(ListDir(M("d")).size(), 61U);  // f1 renamed, link added, f2 gone

  ASSERT_EQ(fs_->Stop(), 0);
  EXPECT_GT(ServedThroughRings(fs_->Log()), 200) << fs_->Log();
  // What was written is in the backing directory, unchanged.
  EXPECT_EQ(ReadFile(fs_->lower() + "/d/f3"), Pattern(100 + 3 * 37, 3));
}

TEST_P(UringTest, ConcurrentWritersEachGetTheirOwnData) {
  constexpr int kThreads = 6, kFiles = 25;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kFiles; ++i) {
        const std::string path = M("t" + std::to_string(t) + "_" + std::to_string(i));
        const std::string data =
            Pattern(static_cast<size_t>(4096 + (i * 9973) % 300000), t * 100 + i);
        if (WriteFile(path, data) != 0 || ReadFile(path) != data) ++failures[t];
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  EXPECT_EQ(ListDir(fs_->tree()).size(), static_cast<size_t>(kThreads * kFiles));
  ASSERT_EQ(fs_->Stop(), 0);
  EXPECT_GT(ServedThroughRings(fs_->Log()), kThreads * kFiles);
}

// Sets an environment variable for the daemon started in its scope (the
// daemon inherits the test's environment), then puts back what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// No option: /dev/fuse, even with the kernel's switch on (and even in the
// test pass that asks the test library for --io-uring on every mount).
class DefaultTransportTest : public UringTest {
 protected:
  void SetUp() override {
    ScopedEnv plain("DETOURFS_TEST_IO_URING", nullptr);
    UringTest::SetUp();
  }
  MountConfig Config() const override {
    MountConfig c = UringTest::Config();
    std::erase(c.extra_args, "--io-uring");
    return c;
  }
};

TEST_P(DefaultTransportTest, RequestsStayOnDevFuse) {
  ASSERT_EQ(WriteFile(M("f"), "through /dev/fuse"), 0);
  EXPECT_EQ(ReadFile(M("f")), "through /dev/fuse");
  ASSERT_EQ(fs_->Stop(), 0);
  EXPECT_EQ(ServedThroughRings(fs_->Log()), -1) << fs_->Log();
}

// --no-io-uring after --io-uring: the last one wins.
class NoUringTest : public UringTest {
 protected:
  MountConfig Config() const override {
    MountConfig c = UringTest::Config();
    c.extra_args.push_back("--no-io-uring");
    return c;
  }
};

TEST_P(NoUringTest, OptionKeepsRequestsOnDevFuse) {
  ASSERT_EQ(WriteFile(M("f"), "through /dev/fuse"), 0);
  EXPECT_EQ(ReadFile(M("f")), "through /dev/fuse");
  ASSERT_EQ(fs_->Stop(), 0);
  EXPECT_EQ(ServedThroughRings(fs_->Log()), -1) << fs_->Log();
}

// --io-uring with the kernel's switch off: said plainly, then /dev/fuse.
class SwitchOffTest : public UringTest {
 protected:
  void SetUp() override {
    if (!switched_) {
      GTEST_SKIP() << "this kernel has no FUSE over io_uring to switch on (" << kSwitch << ")";
    }
    ASSERT_TRUE(WriteSwitch("N"));
    UringTest::SetUp();
    // The suite's other tests want it on; this daemon has decided already.
    ASSERT_TRUE(WriteSwitch("Y"));
  }
};

TEST_P(SwitchOffTest, RingsAreReportedUnavailableAndDevFuseServes) {
  expect_clean_log_ = false;  // the warning is the point
  ASSERT_EQ(WriteFile(M("f"), "through /dev/fuse"), 0);
  EXPECT_EQ(ReadFile(M("f")), "through /dev/fuse");
  ASSERT_EQ(fs_->Stop(), 0);
  const std::string log = fs_->Log();
  EXPECT_NE(log.find("rings unavailable"), std::string::npos) << log;
  EXPECT_EQ(ServedThroughRings(log), -1) << log;
  for (const std::string& line : fs_->LogProblems()) {
    EXPECT_NE(line.find("rings unavailable"), std::string::npos) << "daemon log: " << line;
  }
}

// The daemon's test hook makes the ring thread that gets the first MKDIR
// lose its entry, as a commit the kernel refused would.
class LostRingEntryTest : public UringTest {
 protected:
  void SetUp() override {
    ScopedEnv hook("DETOURFS_TEST_URING_FAIL_OPCODE", "9");  // FUSE_MKDIR
    UringTest::SetUp();
  }
};

TEST_P(LostRingEntryTest, EndsTheMountWithAnErrorInsteadOfAHang) {
  expect_clean_log_ = false;
  expect_exit_code_ = 5;  // kExitRuntime
  // The kernel uses the rings once every queue has an entry.
  bool rings = false;
  for (int i = 0; i < 400 && !rings; ++i) {
    ASSERT_EQ(WriteFile(M("probe"), "x"), 0);
    rings = fs_->Log().find("serving requests through per-CPU rings") != std::string::npos;
    if (!rings) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(rings) << fs_->Log();

  // The mkdir runs in a child, so that a hang fails this test instead of
  // blocking it.
  const std::string dir = M("lost");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int rc = ::mkdir(dir.c_str(), 0755);
    ::_exit(rc == 0 ? 0 : errno);
  }
  int status = 0;
  if (!WaitChild(pid, std::chrono::seconds(60), &status)) {
    ::kill(pid, SIGKILL);
    FAIL() << "mkdir is still waiting for a reply; log:\n" << fs_->Log();
  }
  ASSERT_TRUE(WIFEXITED(status));
  const int err = WEXITSTATUS(status);
  // ECANCELED: the request was on a ring the kernel cancelled on teardown.
  EXPECT_TRUE(err == ECONNABORTED || err == ENOTCONN || err == ECANCELED)
      << "mkdir: " << std::strerror(err);

  EXPECT_EQ(fs_->Stop(), 5);
  const std::string log = fs_->Log();
  EXPECT_NE(log.find("injected by DETOURFS_TEST_URING_FAIL_OPCODE"), std::string::npos) << log;
  EXPECT_NE(log.find("FUSE session ended with error"), std::string::npos) << log;
  EXPECT_FALSE(IsFuseMount(fs_->tree()));
}

DETOURFS_MOUNT_TEST_P(UringTest);
DETOURFS_MOUNT_TEST_P(DefaultTransportTest);
DETOURFS_MOUNT_TEST_P(NoUringTest);
DETOURFS_MOUNT_TEST_P(SwitchOffTest);
DETOURFS_MOUNT_TEST_P(LostRingEntryTest);

}  // namespace
}  // namespace detourfs::testing
