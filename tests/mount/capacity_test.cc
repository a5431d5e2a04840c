// Tier capacity on real mounts: a 64 MiB tmpfs memory tier and a directory
// disk tier configured to 16 MiB (on a 256 MiB filesystem it shares). Writing past
// either never fails and loses nothing (memory files' data moves to the disk
// tier, then files move to the volume); statfs on a routed path reports the
// tier's capacity and what is left.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lib/files.h"
#include "mount/routing_fixture.h"

namespace detourfs::testing {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

class CapacityTest : public TieredMountTest {
 protected:
  CapacityTest()
      : CapacityTest("64M",
                     "[[route]]\nmatch = \"**/node_modules\"\ntier = \"memory\"\n"
                     "[[route]]\nmatch = \"**/dist/\"\ntier = \"disk\"\n") {}
  // The disk tier's "big filesystem" is a 256 MiB tmpfs of the test's own:
  // a tier sharing its filesystem counts what that filesystem gains, so
  // unrelated writes and deletions on a shared /tmp would move its numbers.
  CapacityTest(const std::string& memory_size, const std::string& routes)
      : TieredMountTest(memory_size, "capacity = \"16MiB\"\n", routes, "256M") {}
  static uint64_t UsedBytes(const std::string& path) {
    struct statvfs s {};
    if (::statvfs(path.c_str(), &s) != 0) return 0;
    return static_cast<uint64_t>(s.f_blocks - s.f_bfree) * s.f_frsize;
  }
  // Writes `size` bytes of Pattern(size, seed) to `path` in 1 MiB writes.
  static int WriteBig(const std::string& path, size_t size, unsigned seed) {
    const std::string data = Pattern(size, seed);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return errno;
    for (size_t off = 0; off < size; off += kMiB) {
      const size_t n = std::min(kMiB, size - off);
      if (::write(fd, data.data() + off, n) != static_cast<ssize_t>(n)) {
        int err = errno;
        ::close(fd);
        return err;
      }
    }
    return ::close(fd) == 0 ? 0 : errno;
  }
};

TEST_P(CapacityTest, TwoHundredMiBIntoASixtyFourMiBTierLosesNothing) {
  ASSERT_TRUE(memory_.ok());
  ASSERT_EQ(::mkdir(M("app").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M("app/node_modules").c_str(), 0755), 0);
  // 120 packages of 1 MiB, then one 80 MiB file: more than the tier holds,
  // and one file larger than the whole tier.
  for (int i = 0; i < 120; ++i) {
    const std::string dir = M("app/node_modules/pkg" + std::to_string(i));
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    ASSERT_EQ(WriteBig(dir + "/index.js", kMiB, static_cast<unsigned>(i)), 0) << "package " << i;
  }
  ASSERT_EQ(WriteBig(M("app/node_modules/huge.bin"), 80 * kMiB, 999), 0) << strerror(errno);
  auto check = [&] {
    for (int i = 0; i < 120; ++i) {
      const std::string file = M("app/node_modules/pkg" + std::to_string(i) + "/index.js");
      ASSERT_EQ(ReadFile(file), Pattern(kMiB, static_cast<unsigned>(i))) << file;
    }
    ASSERT_EQ(ReadFile(M("app/node_modules/huge.bin")), Pattern(80 * kMiB, 999));
  };
  check();
  // The tier stayed within its size; the volume's spill store took the
  // rest — never the live volume tree, which only a flush writes.
  EXPECT_LE(UsedBytes(memory_.path()), 64 * kMiB);
  EXPECT_FALSE(Exists(V("app/node_modules/huge.bin")));
  EXPECT_GE(ListDir(V(".detourfs/spill")).size(), 1U);
  EXPECT_EQ(ListDir(M("app/node_modules")).size(), 121U);
  Restart();
  check();
  EXPECT_NE(fs_->Log().find("moved to the volume"), std::string::npos);
}

TEST_P(CapacityTest, ConfiguredCapacityBoundsATierOnABigFilesystem) {
  ASSERT_EQ(::mkdir(M("dist").c_str(), 0755), 0);
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(WriteBig(M("dist/chunk" + std::to_string(i) + ".js"), kMiB, static_cast<unsigned>(i)),
              0);
  }
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(ReadFile(M("dist/chunk" + std::to_string(i) + ".js")),
              Pattern(kMiB, static_cast<unsigned>(i)));
  }
  // At most the capacity (and a refresh interval's worth) landed on the
  // tier — and about that much did: the tier's usage is what it holds, not
  // what the filesystem it shares holds.
  const std::string tier = disk_ + "/tier/upper/dist";
  const uint64_t on_tier = std::stoull(ShellOutput("du -sb '" + tier + "' | cut -f1"));
  EXPECT_LE(on_tier, 20 * kMiB);
  EXPECT_GE(on_tier, 12 * kMiB);
  EXPECT_GE(ListDir(V(".detourfs/spill")).size(), 20U);
  EXPECT_FALSE(Exists(V("dist")));
}

TEST_P(CapacityTest, AFileSpillsWhileItIsOpenAndKeepsItsWrites) {
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  // Fill most of the tier, then grow one file through one fd past the rest.
  ASSERT_EQ(WriteBig(M("node_modules/filler"), 56 * kMiB, 1), 0);
  const std::string data = Pattern(24 * kMiB, 2);
  int fd = ::open(M("node_modules/growing").c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  for (size_t off = 0; off < data.size(); off += kMiB) {
    ASSERT_EQ(::pwrite(fd, data.data() + off, kMiB, static_cast<off_t>(off)),
              static_cast<ssize_t>(kMiB))
        << strerror(errno);
    ASSERT_EQ(::fsync(fd), 0) << strerror(errno);  // each write reaches the daemon now
  }
  // Read back through the same fd, then by name.
  std::string back(data.size(), '\0');
  ASSERT_EQ(::pread(fd, back.data(), back.size(), 0), static_cast<ssize_t>(back.size()));
  EXPECT_TRUE(back == data);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(ReadFile(M("node_modules/growing")), data);
  EXPECT_EQ(Lstat(M("node_modules/growing")).st_mode & 07777, 0600U);
}

// A spilled file keeps its name (a stub) on the tier: found by name after the
// kernel forgets it, its data read from the store.
TEST_P(CapacityTest, SpilledFilesAreFoundByNameAfterTheKernelForgetsThem) {
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M("node_modules/pkg").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("node_modules/pkg/small.js"), "s"), 0);
  ASSERT_EQ(WriteBig(M("node_modules/pkg/big.bin"), 80 * kMiB, 7), 0);
  ASSERT_EQ(ListDir(V(".detourfs/spill")).size(), 1U);  // its data: the stub stays on the tier
  // The kernel forgets the files' names (the open directory keeps the
  // directories known); each is looked up again.
  const int dir = ::open(M("node_modules/pkg").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dir, 0);
  ASSERT_EQ(Shell("sync && echo 2 > /proc/sys/vm/drop_caches"), 0);
  EXPECT_TRUE(ReadFile(M("node_modules/pkg/big.bin")) == Pattern(80 * kMiB, 7));
  EXPECT_EQ(ReadFile(M("node_modules/pkg/small.js")), "s");
  EXPECT_EQ(ListDir(M("node_modules/pkg")), (std::vector<std::string>{"big.bin", "small.js"}));
  ::close(dir);
}

// Review 3 #3: a spilled file replaced by a rename (write a temporary,
// rename it over: what npm and build caches do) takes its spilled data with
// it, as an unlink does; it used to stay in the spill store, unnamed, and be
// set aside as "orphaned" at the next start.
TEST_P(CapacityTest, ASpilledFileReplacedByARenameTakesItsDataAlong) {
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteBig(M("node_modules/cache.bin"), 80 * kMiB, 3), 0);
  ASSERT_EQ(ListDir(V(".detourfs/spill")).size(), 1U);  // its data
  ASSERT_EQ(WriteFile(M("node_modules/cache.bin.tmp"), "new"), 0);
  ASSERT_EQ(::rename(M("node_modules/cache.bin.tmp").c_str(), M("node_modules/cache.bin").c_str()),
            0);
  EXPECT_EQ(ReadFile(M("node_modules/cache.bin")), "new");
  Restart();
  // The trash drops the data (its thread, or the start): waited for.
  std::vector<std::string> left = ListDir(V(".detourfs/spill"));
  for (int i = 0; i < 1000 && !left.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    left = ListDir(V(".detourfs/spill"));
  }
  EXPECT_EQ(left, std::vector<std::string>{});
  EXPECT_EQ(ReadFile(M("node_modules/cache.bin")), "new");
  EXPECT_EQ(fs_->Log().find("orphaned"), std::string::npos) << fs_->Log();
}

TEST_P(CapacityTest, SpillingUnderAnOpaqueDirectoryKeepsTheOldContentHidden) {
  ASSERT_EQ(::mkdir(V("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(V("node_modules/stale.js"), "old install"), 0);
  ASSERT_EQ(Shell("rm -rf '" + M("node_modules") + "'"), 0);
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);  // opaque over the volume's
  for (int i = 0; i < 80; ++i) {
    ASSERT_EQ(WriteBig(M("node_modules/f" + std::to_string(i)), kMiB, static_cast<unsigned>(i)), 0);
  }
  std::vector<std::string> names = ListDir(M("node_modules"));
  EXPECT_EQ(names.size(), 80U);
  int err = 0;
  Lstat(M("node_modules/stale.js"), &err);
  EXPECT_EQ(err, ENOENT);
  for (int i = 0; i < 80; ++i) {
    ASSERT_EQ(ReadFile(M("node_modules/f" + std::to_string(i))),
              Pattern(kMiB, static_cast<unsigned>(i)));
  }
  Restart();
  Lstat(M("node_modules/stale.js"), &err);
  EXPECT_EQ(err, ENOENT);
  EXPECT_EQ(ListDir(M("node_modules")).size(), 80U);
}

// The opaque directory is an ancestor, not the parent, of the files that
// spill, and the volume has stale copies of directories on the way: the
// spilled files stay visible (found by the model checker: they vanished, and
// a later rename of the tree lost them), the stale content stays hidden, and
// both survive a rename of the tree and a restart.
TEST_P(CapacityTest, SpillingBelowAnOpaqueAncestorKeepsFilesVisibleAndOldContentHidden) {
  // More than the memory tier (64 MiB) and the disk tier (16 MiB) hold:
  // files spill to both.
  constexpr int kFiles = 100;
  ASSERT_EQ(Shell("mkdir -p '" + V("node_modules/pkg/lib") + "'"), 0);
  ASSERT_EQ(WriteFile(V("node_modules/pkg/lib/stale.js"), "old"), 0);
  ASSERT_EQ(WriteFile(V("node_modules/pkg/stale.json"), "old"), 0);
  ASSERT_EQ(WriteFile(V("node_modules/gone.js"), "old"), 0);
  ASSERT_EQ(Shell("rm -rf '" + M("node_modules") + "'"), 0);
  ASSERT_EQ(Shell("mkdir -p '" + M("node_modules/pkg/lib") + "'"), 0);  // opaque at the top
  for (int i = 0; i < kFiles; ++i) {
    ASSERT_EQ(
        WriteBig(M("node_modules/pkg/lib/f" + std::to_string(i)), kMiB, static_cast<unsigned>(i)),
        0);
  }
  auto check = [&](const std::string& root) {
    EXPECT_EQ(ListDir(M(root + "/pkg/lib")).size(), static_cast<size_t>(kFiles)) << root;
    EXPECT_EQ(ListDir(M(root + "/pkg")), std::vector<std::string>{"lib"}) << root;
    EXPECT_EQ(ListDir(M(root)), std::vector<std::string>{"pkg"}) << root;
    for (int i = 0; i < kFiles; ++i) {
      ASSERT_EQ(ReadFile(M(root + "/pkg/lib/f" + std::to_string(i))),
                Pattern(kMiB, static_cast<unsigned>(i)))
          << root << " f" << i;
    }
  };
  check("node_modules");
  EXPECT_GE(ListDir(V(".detourfs/spill")).size(), 10U);  // some spilled to the volume's store
  EXPECT_GE(ListDir(disk_ + "/tier/spill").size(), 5U);  // to disk, first
  ASSERT_EQ(::rename(M("node_modules/pkg").c_str(), M("node_modules/moved").c_str()), 0);
  ASSERT_EQ(::rename(M("node_modules/moved").c_str(), M("node_modules/pkg").c_str()), 0);
  check("node_modules");
  Restart();
  check("node_modules");
}

// Writers racing each other (and readers) past the tier's size: spills,
// copies and handle swaps under concurrency (TSan runs this one).
TEST_P(CapacityTest, ConcurrentWritersSpillWithoutLoss) {
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  constexpr int kWriters = 4;
  constexpr int kFiles = 12;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int f = 0; f < kFiles; ++f) {
        const unsigned seed = static_cast<unsigned>(w * 100 + f);
        const std::string path = M("node_modules/w" + std::to_string(w) + "-" + std::to_string(f));
        if (WriteBig(path, 2 * kMiB, seed) != 0) failures++;
        // Read back while the others keep writing (and spilling).
        if (ReadFile(path) != Pattern(2 * kMiB, seed)) failures++;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (int w = 0; w < kWriters; ++w) {
    for (int f = 0; f < kFiles; ++f) {
      const std::string path = M("node_modules/w" + std::to_string(w) + "-" + std::to_string(f));
      EXPECT_EQ(ReadFile(path), Pattern(2 * kMiB, static_cast<unsigned>(w * 100 + f))) << path;
    }
  }
}

// Stats and lookups of files while they spill: with no attribute or entry
// caching, every stat and path walk reaches the daemon, some in the middle
// of a spill. Each must see the live file — never a failure, a file with no
// links, or another file (which the kernel would answer with EIO).
class SpillRaceTest : public CapacityTest {
 protected:
  MountConfig Config() const override {
    MountConfig c = CapacityTest::Config();
    c.extra_args.insert(c.extra_args.end(), {"--attr-timeout", "0", "--entry-timeout", "0"});
    return c;
  }
};

TEST_P(SpillRaceTest, StatsAndLookupsDuringSpillsSeeTheLiveFile) {
  ASSERT_EQ(::mkdir(M("dist").c_str(), 0755), 0);
  // Fill the 16 MiB disk tier to within 1 MiB: every file written next
  // starts on the tier and spills part way through.
  for (int i = 0; i < 15; ++i) {
    ASSERT_EQ(WriteBig(M("dist/fill" + std::to_string(i)), kMiB, static_cast<unsigned>(i)), 0);
  }
  constexpr int kFiles = 24;
  constexpr size_t kSize = 3 * kMiB;
  std::atomic<int> current{-1};
  std::atomic<bool> done{false};
  std::atomic<int> stats{0};
  std::vector<std::string> problems;
  std::mutex problems_mu;
  auto problem = [&](const std::string& what) {
    std::lock_guard lock(problems_mu);
    if (problems.size() < 10) problems.push_back(what);
  };
  std::vector<std::thread> statters;
  for (int t = 0; t < 2; ++t) {
    statters.emplace_back([&] {
      while (!done.load()) {
        const int i = current.load();
        if (i < 0) {
          std::this_thread::yield();
          continue;
        }
        const std::string path = M("dist/f" + std::to_string(i));
        struct statx stx {};
        if (::statx(AT_FDCWD, path.c_str(), AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &stx) != 0) {
          if (errno != ENOENT || current.load() == i) {
            problem("stat " + path + ": " + std::strerror(errno));
          }
          continue;
        }
        stats++;
        if ((stx.stx_nlink != 1 || !S_ISREG(stx.stx_mode)) && current.load() == i) {
          problem("stat " + path + ": nlink " + std::to_string(stx.stx_nlink) + " mode " +
                  std::to_string(stx.stx_mode));
        }
      }
    });
  }
  for (int i = 0; i < kFiles; ++i) {
    const std::string path = M("dist/f" + std::to_string(i));
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    ASSERT_GE(fd, 0) << strerror(errno);
    current.store(i);
    const std::string data = Pattern(kSize, static_cast<unsigned>(100 + i));
    for (size_t off = 0; off < kSize; off += 64 * 1024) {
      ASSERT_EQ(::pwrite(fd, data.data() + off, 64 * 1024, static_cast<off_t>(off)), 64 * 1024)
          << strerror(errno);
      // Written back now, so the spill happens while the stats run.
      if (off % kMiB == 0) {
        ASSERT_EQ(::fdatasync(fd), 0) << strerror(errno);
      }
    }
    ASSERT_EQ(::close(fd), 0);
    EXPECT_EQ(ReadFile(path), data) << path;
    // The tier has room again for the next file to start there.
    current.store(-1);
    ASSERT_EQ(::unlink(path.c_str()), 0);
  }
  done.store(true);
  for (std::thread& t : statters) t.join();
  EXPECT_TRUE(problems.empty()) << problems.front();
  EXPECT_GT(stats.load(), 0);
  // Every file spilled: each started on the tier and outgrew it.
  size_t spills = 0;
  const std::string log = fs_->Log();
  for (size_t at = log.find("moved to the volume"); at != std::string::npos;
       at = log.find("moved to the volume", at + 1)) {
    ++spills;
  }
  EXPECT_GE(spills, static_cast<size_t>(kFiles));
}

TEST_P(CapacityTest, StatfsOnARoutedPathReportsItsTier) {
  ASSERT_EQ(::mkdir(M("dist").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  struct statvfs dist {
  }, nm{}, root{}, volume{}, tmpfs{};
  ASSERT_EQ(::statvfs(M("dist").c_str(), &dist), 0);
  ASSERT_EQ(::statvfs(M("node_modules").c_str(), &nm), 0);
  ASSERT_EQ(::statvfs(M("").c_str(), &root), 0);
  ASSERT_EQ(::statvfs(V("").c_str(), &volume), 0);
  ASSERT_EQ(::statvfs(memory_.path().c_str(), &tmpfs), 0);
  // The disk tier: its configured 16 MiB.
  EXPECT_EQ(static_cast<uint64_t>(dist.f_blocks) * dist.f_frsize, 16 * kMiB);
  EXPECT_LE(static_cast<uint64_t>(dist.f_bavail) * dist.f_frsize, 16 * kMiB);
  // The memory tier: the tmpfs's size.
  EXPECT_EQ(static_cast<uint64_t>(nm.f_blocks) * nm.f_frsize,
            static_cast<uint64_t>(tmpfs.f_blocks) * tmpfs.f_frsize);
  // Elsewhere: the volume.
  EXPECT_EQ(root.f_blocks * root.f_frsize, volume.f_blocks * volume.f_frsize);
  // Writing into the tier shows in its free space.
  ASSERT_EQ(WriteBig(M("dist/a.bin"), 4 * kMiB, 3), 0);
  struct statvfs after {};
  ASSERT_EQ(::statvfs(M("dist").c_str(), &after), 0);
  EXPECT_LE(static_cast<uint64_t>(after.f_bavail) * after.f_frsize, 12 * kMiB + kMiB);
}

// A cache routed to a 4 MiB memory tier with no fallback (persist never,
// fallback []): when a file cannot fit, the caller learns why (ENOSPC, as
// from a full disk) and the volume's copy stays whole.
class NoFallbackTest : public CapacityTest {
 protected:
  NoFallbackTest()
      : CapacityTest("4M",
                     "[[route]]\nmatch = \"/.cache\"\ntier = \"memory\"\n"
                     "persist = \"never\"\nfallback = []\n") {
    expect_clean_log_ = false;  // the failures are logged: checked below
  }
};

TEST_P(NoFallbackTest, AFileThatFitsNowhereIsENOSPCAndTheVolumeCopyStays) {
  ASSERT_EQ(::mkdir(V(".cache").c_str(), 0755), 0);
  const std::string data = Pattern(6 * kMiB, 7);
  ASSERT_EQ(WriteFile(V(".cache/big.bin"), data), 0);
  // Changing it needs a copy on the tier: there is no room, and nowhere else.
  errno = 0;
  EXPECT_EQ(::open(M(".cache/big.bin").c_str(), O_WRONLY), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(ReadFile(M(".cache/big.bin")), data);
  EXPECT_EQ(ReadFile(V(".cache/big.bin")), data);
  // A new file that outgrows the tier: ENOSPC too, from the write.
  EXPECT_EQ(WriteBig(M(".cache/new.bin"), 6 * kMiB, 8), ENOSPC);
  EXPECT_NE(fs_->Log().find("open failed: No space left on device"), std::string::npos);
}

DETOURFS_MOUNT_TEST_P(CapacityTest);
DETOURFS_MOUNT_TEST_P(SpillRaceTest);
DETOURFS_MOUNT_TEST_P(NoFallbackTest);

}  // namespace
}  // namespace detourfs::testing
