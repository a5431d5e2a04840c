// More inodes referenced by the kernel than the daemon may hold fds: the
// daemon runs with RLIMIT_NOFILE 512 and an fd cache of 128 while 100,000
// files are extracted with tar, then found and stat'ed while the kernel keeps
// them all cached. An fd-per-inode design fails here with EMFILE (libfuse's
// passthrough_ll does on a 25k-file tree with the machine's 20,000 limit).
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "lib/files.h"
#include "lib/mount_test.h"

namespace detourfs::testing {
namespace {

constexpr int kDirs = 100;
constexpr int kFilesPerDir = 1000;
constexpr long kDaemonFdLimit = 512;  // NOLINT

class ManyInodesTest : public MountTest {
 protected:
  MountConfig Config() const override {
    MountConfig c = MountTest::Config();
    c.fd_limit = kDaemonFdLimit;
    c.extra_args = {"--fd-cache", "128"};
    return c;
  }
};

std::atomic<long> g_files{0};   // NOLINT: nftw's callback takes no context
std::atomic<long> g_errors{0};  // NOLINT

int CountAndStat(const char* path, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_NS || type == FTW_DNR) ++g_errors;
  if (type == FTW_F) {
    struct stat again {};
    if (::lstat(path, &again) != 0 || again.st_ino != st->st_ino) ++g_errors;
    ++g_files;
  }
  return 0;
}

TEST_P(ManyInodesTest, HundredThousandCachedInodesWithFewFds) {
  // Build the tree on the raw filesystem, then extract it through the mount.
  const std::string src = fs_->ref() + "/src";
  ASSERT_EQ(Shell("mkdir -p " + src + " && cd " + src + " && for d in $(seq 1 " +
                  std::to_string(kDirs) + "); do mkdir d$d; (cd d$d && seq 1 " +
                  std::to_string(kFilesPerDir) + " | xargs touch); done && echo x > d1/1"),
            0);
  const std::string tarball = fs_->work() + "/tree.tar";
  ASSERT_EQ(Shell("tar -C " + src + " -cf " + tarball + " ."), 0);
  ASSERT_EQ(Shell("tar -C " + fs_->tree() + " -xf " + tarball), 0);

  // find, then stat every file while all stay referenced by the kernel.
  std::string out = ShellOutput("find " + fs_->tree() + " -type f | wc -l");
  EXPECT_EQ(std::stol(out), static_cast<long>(kDirs) * kFilesPerDir);  // NOLINT
  g_files = 0;
  g_errors = 0;
  ASSERT_EQ(::nftw(fs_->tree().c_str(), CountAndStat, 16, FTW_PHYS), 0);
  EXPECT_EQ(g_files.load(), static_cast<long>(kDirs) * kFilesPerDir);  // NOLINT
  EXPECT_EQ(g_errors.load(), 0);
  // Opening files re-resolves nodes whose fds were evicted long ago.
  EXPECT_EQ(ReadFile(M("d1/1")), "x\n");
  EXPECT_EQ(WriteFile(M("d50/500"), "late"), 0);
  EXPECT_EQ(ReadFile(M("d50/500")), "late");
  EXPECT_LT(fs_->DaemonFdCount(), kDaemonFdLimit / 2);
  EXPECT_EQ(fs_->Log().find("Too many open files"), std::string::npos);
  ASSERT_EQ(Shell("rm -rf " + fs_->tree() + "/d*"), 0);
}

INSTANTIATE_TEST_SUITE_P(Backings, ManyInodesTest, ::testing::Values(Backing::kPlainDir),
                         BackingName);

}  // namespace
}  // namespace detourfs::testing
