// The detourfs process: refusals with their exit codes, clean shutdown on
// SIGTERM, and a SIGKILLed daemon's mount that `umount -l` clears.
#include <signal.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "lib/files.h"
#include "lib/mount_test.h"

namespace detourfs::testing {
namespace {

using DaemonTest = MountTest;

TEST_P(DaemonTest, RefusesToMountOverItself) {
  int status = 0;
  std::string out = ShellOutput(DetourfsBinary() + " -f " + fs_->tree() + " 2>&1", &status);
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("already a detourfs mount"), std::string::npos) << out;
}

TEST_P(DaemonTest, DataWrittenBeforeSigtermIsInTheLowerAfterwards) {
  ASSERT_EQ(WriteFile(M("kept"), "written through the mount"), 0);
  ASSERT_EQ(::kill(fs_->pid(), SIGTERM), 0);
  // The daemon unmounts itself and exits 0 (Stop reaps it).
  for (int i = 0; i < 500; ++i) {
    struct statfs sfs {};
    if (::statfs(fs_->tree().c_str(), &sfs) == 0 && sfs.f_type != 0x65735546) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(fs_->Stop(), 0);
  EXPECT_EQ(ReadFile(M("kept")), "written through the mount");
}

TEST_P(DaemonTest, KilledDaemonLeavesAMountThatUmountLazyClears) {
  expect_exit_code_ = -1;  // killed
  ASSERT_EQ(::kill(fs_->pid(), SIGKILL), 0);
  // Dead, not dying: its fds (/dev/fuse) are closed once it is a zombie
  // (not reaped yet: the mount stays for the test). While the kernel tears
  // the connection down a request is answered ECONNABORTED, or ECANCELED
  // when it was queued on an io_uring ring being cancelled (CI saw all
  // three); once it is down, always ENOTCONN.
  const std::string stat_path = "/proc/" + std::to_string(fs_->pid()) + "/stat";
  bool zombie = false;
  for (int i = 0; i < 2000 && !zombie; ++i) {
    const std::string st = ReadFile(stat_path);
    const size_t paren = st.rfind(')');
    zombie = paren != std::string::npos && paren + 2 < st.size() && st[paren + 2] == 'Z';
    if (!zombie) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(zombie) << "the killed daemon did not die";
  int err = 0;
  for (int i = 0; i < 500; ++i) {
    Lstat(M("anything"), &err);
    if (err == ENOTCONN) break;
    ASSERT_TRUE(err == ECONNABORTED || err == ECANCELED) << std::strerror(err);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(err, ENOTCONN) << std::strerror(err);
  ASSERT_EQ(::umount2(fs_->tree().c_str(), MNT_DETACH), 0);
  struct statfs sfs {};
  ASSERT_EQ(::statfs(fs_->tree().c_str(), &sfs), 0);
  EXPECT_NE(sfs.f_type, 0x65735546);
  // A fresh daemon mounts over the same directory again.
  int status = Shell(DetourfsBinary() + " " + fs_->tree());
  EXPECT_EQ(status, 0);
  EXPECT_EQ(Shell("fusermount3 -u " + fs_->tree()), 0);
}

// The test library's own cleanup: a test whose daemon died (a sanitizer
// halting it, a crash) leaves no mount behind. statfs on such a mount answers
// ENOTCONN; Stop used to take that for "not mounted" and keep it.
TEST_P(DaemonTest, StopClearsTheMountOfADaemonThatDied) {
  expect_exit_code_ = -1;  // killed
  ASSERT_EQ(::kill(fs_->pid(), SIGKILL), 0);
  int err = 0;
  for (int i = 0; i < 500 && err != ENOTCONN; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    Lstat(M("anything"), &err);
  }
  ASSERT_EQ(err, ENOTCONN);
  EXPECT_EQ(fs_->Stop(), -1);
  EXPECT_EQ(ReadFile("/proc/self/mountinfo").find(" " + fs_->tree() + " "), std::string::npos);
}

DETOURFS_MOUNT_TEST_P(DaemonTest);

TEST(DaemonCliTest, RefusesMissingMountpointAndUnreadableLower) {
  int status = 0;
  std::string out = ShellOutput(DetourfsBinary() + " -f /nonexistent/detourfs-test 2>&1", &status);
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("No such file or directory"), std::string::npos) << out;
  out = ShellOutput(DetourfsBinary() + " -f --lower /nonexistent/lower /tmp 2>&1", &status);
  EXPECT_EQ(status, 3) << out;
  EXPECT_NE(out.find("cannot open lower directory"), std::string::npos) << out;
  out = ShellOutput(DetourfsBinary() + " -f /etc/hostname 2>&1", &status);
  EXPECT_EQ(status, 2) << out;
  out = ShellOutput(DetourfsBinary() + " --bogus /tmp 2>&1", &status);
  EXPECT_EQ(status, 1) << out;
  out = ShellOutput(DetourfsBinary() + " --help 2>&1", &status);
  EXPECT_EQ(status, 0);
  EXPECT_NE(out.find("--lower"), std::string::npos);
}

TEST(DaemonCliTest, BackgroundModeDetachesAndServes) {
  std::string why;
  if (!CanMount(&why)) GTEST_SKIP() << why;
  char tmpl[] = "/tmp/detourfs-bg.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  ASSERT_EQ(WriteFile(dir + "/f", "bg"), 0);
  // Without -f the command returns once the mount is up.
  int status = Shell(DetourfsBinary() + " " + dir);
  EXPECT_EQ(status, 0);
  struct statfs sfs {};
  ASSERT_EQ(::statfs(dir.c_str(), &sfs), 0);
  EXPECT_EQ(sfs.f_type, 0x65735546);
  EXPECT_EQ(ReadFile(dir + "/f"), "bg");
  // The background thread (trash drain, tiers' sync) runs in the process that
  // serves: started after the fork, which keeps only the forking thread.
  int st = 0;
  const std::string threads =
      ShellOutput("for p in $(pgrep -x detourfs); do grep -q '" + dir +
                      "' /proc/$p/cmdline && cat /proc/$p/task/*/comm; done",
                  &st);
  EXPECT_NE(threads.find("detourfs-bg"), std::string::npos) << threads;
  EXPECT_NE(threads.find("detourfs-sync"), std::string::npos) << threads;
  EXPECT_EQ(Shell("fusermount3 -u " + dir), 0);
  Shell("rm -rf " + dir);
}

}  // namespace
}  // namespace detourfs::testing
