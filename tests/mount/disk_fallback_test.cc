// The memory tier's fallback to the disk tier, on real mounts: a 4 MiB tmpfs
// memory tier, a tmpfs disk tier of its own, node_modules routed to memory
// (default chain: memory -> disk -> volume). A file that outgrows the full
// memory tier — or a volume file changed while it would not fit there —
// keeps its names, inode number and attributes; its data lands in the disk
// tier's spill store, never on the volume, survives a restart, and leaves
// the store with its last name.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "lib/files.h"
#include "mount/routing_fixture.h"

namespace detourfs::testing {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

class DiskFallbackTest : public TieredMountTest {
 protected:
  explicit DiskFallbackTest(const std::string& disk_size = "64M")
      : TieredMountTest("4M", "", "[[route]]\nmatch = \"**/node_modules\"\ntier = \"memory\"\n",
                        disk_size) {}

  // The spill store's files: name -> size.
  std::vector<std::pair<std::string, off_t>> Stored() const {
    std::vector<std::pair<std::string, off_t>> out;
    for (const std::string& name : ListDir(disk_ + "/tier/spill")) {
      out.emplace_back(name, Lstat(disk_ + "/tier/spill/" + name).st_size);
    }
    return out;
  }
  // Writes `size` bytes of Pattern(size, seed) through `fd` in 1 MiB writes.
  static int WriteAll(int fd, size_t size, unsigned seed) {
    const std::string data = Pattern(size, seed);
    for (size_t off = 0; off < size; off += kMiB) {
      const size_t n = std::min(kMiB, size - off);
      if (::write(fd, data.data() + off, n) != static_cast<ssize_t>(n)) return errno;
    }
    return 0;
  }
  // Creates `path` (mode 0640) and writes `size` bytes; its st_ino from
  // before the first byte in `ino`.
  static int Create(const std::string& path, size_t size, unsigned seed, ino_t* ino = nullptr) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0640);
    if (fd < 0) return errno;
    struct stat st {};
    if (ino != nullptr && ::fstat(fd, &st) == 0) *ino = st.st_ino;
    int err = WriteAll(fd, size, seed);
    if (::close(fd) != 0 && err == 0) err = errno;
    return err;
  }
};

TEST_P(DiskFallbackTest, AFileOutgrowingTheMemoryTierMovesToDiskNotToTheVolume) {
  ASSERT_TRUE(memory_.ok());
  ASSERT_FALSE(disk_.empty());
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  ino_t ino = 0;
  ASSERT_EQ(Create(M("node_modules/big.bin"), 16 * kMiB, 7, &ino), 0) << strerror(errno);
  EXPECT_EQ(ReadFile(M("node_modules/big.bin")), Pattern(16 * kMiB, 7));
  // Not on the volume; on the memory tier only an empty stub (the file's own
  // inode: mode, owner, names) whose id record points at the data in the
  // disk tier's spill store.
  EXPECT_FALSE(Exists(V("node_modules/big.bin")));
  struct stat stub = Lstat(Mem("node_modules/big.bin"));
  EXPECT_TRUE(S_ISREG(stub.st_mode));
  EXPECT_EQ(stub.st_size, 0);
  EXPECT_EQ(stub.st_mode & 07777, 0640U);
  EXPECT_EQ(::getxattr(Mem("node_modules/big.bin").c_str(), "trusted.detourfs.id", nullptr, 0), 18);
  std::vector<std::pair<std::string, off_t>> stored = Stored();
  ASSERT_EQ(stored.size(), 1U);
  EXPECT_EQ(stored[0].second, static_cast<off_t>(16 * kMiB));
  EXPECT_NE(fs_->Log().find("moved to the disk tier"), std::string::npos);
  // Through the mount it is the same file: number, mode, size.
  struct stat st = Lstat(M("node_modules/big.bin"));
  EXPECT_EQ(st.st_ino, ino);
  EXPECT_EQ(st.st_mode & 07777, 0640U);
  EXPECT_EQ(st.st_size, static_cast<off_t>(16 * kMiB));
  EXPECT_EQ(st.st_nlink, 1U);
  // Changes reach the data: mode, an xattr, an append.
  ASSERT_EQ(::chmod(M("node_modules/big.bin").c_str(), 0604), 0);
  EXPECT_EQ(Lstat(M("node_modules/big.bin")).st_mode & 07777, 0604U);
  ASSERT_EQ(::setxattr(M("node_modules/big.bin").c_str(), "user.k", "v", 1, 0), 0);
  char v = 0;
  EXPECT_EQ(::getxattr(M("node_modules/big.bin").c_str(), "user.k", &v, 1), 1);
  EXPECT_EQ(::getxattr(M("node_modules/big.bin").c_str(), "trusted.detourfs.id", nullptr, 0), -1);
  {
    int fd = ::open(M("node_modules/big.bin").c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "tail", 4), 4);
    ASSERT_EQ(::close(fd), 0);
  }
  const std::string want = Pattern(16 * kMiB, 7) + "tail";
  EXPECT_EQ(ReadFile(M("node_modules/big.bin")), want);
  // A rename within the tier moves the stub; the data stays where it is.
  ASSERT_EQ(::rename(M("node_modules/big.bin").c_str(), M("node_modules/moved.bin").c_str()), 0);
  EXPECT_EQ(ReadFile(M("node_modules/moved.bin")), want);
  EXPECT_EQ(Stored().size(), 1U);
  // A hard link is a link of the stub: one file, two names, one copy of
  // the data; the data stays while a name is left.
  ASSERT_EQ(::link(M("node_modules/moved.bin").c_str(), M("node_modules/link.bin").c_str()), 0);
  st = Lstat(M("node_modules/link.bin"));
  EXPECT_EQ(st.st_ino, ino);
  EXPECT_EQ(st.st_nlink, 2U);
  EXPECT_EQ(Lstat(M("node_modules/moved.bin")).st_nlink, 2U);
  EXPECT_EQ(ReadFile(M("node_modules/link.bin")), want);
  ASSERT_EQ(::unlink(M("node_modules/link.bin").c_str()), 0);
  EXPECT_EQ(Stored().size(), 1U);
  EXPECT_EQ(Lstat(M("node_modules/moved.bin")).st_nlink, 1U);
  // A restart adopts stub and data as they are.
  Restart();
  EXPECT_EQ(ReadFile(M("node_modules/moved.bin")), want);
  st = Lstat(M("node_modules/moved.bin"));
  EXPECT_EQ(st.st_ino, ino);
  EXPECT_EQ(st.st_mode & 07777, 0604U);
  EXPECT_EQ(Stored().size(), 1U);
  // The last name goes: so does the data.
  ASSERT_EQ(::unlink(M("node_modules/moved.bin").c_str()), 0);
  EXPECT_TRUE(Eventually([&] { return Stored().empty(); }));  // trash empties behind
  EXPECT_FALSE(Exists(Mem("node_modules/moved.bin")));
  EXPECT_TRUE(ListDir(M("node_modules")).empty());
}

TEST_P(DiskFallbackTest, AFileWithTwoNamesSpillsWithBoth) {
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M("node_modules/b").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("node_modules/a"), "start"), 0);
  ASSERT_EQ(::link(M("node_modules/a").c_str(), M("node_modules/b/a").c_str()), 0);
  int fd = ::open(M("node_modules/b/a").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(WriteAll(fd, 10 * kMiB, 4), 0);
  ASSERT_EQ(::close(fd), 0);
  const std::string want = "start" + Pattern(10 * kMiB, 4);
  EXPECT_EQ(ReadFile(M("node_modules/a")), want);
  EXPECT_EQ(ReadFile(M("node_modules/b/a")), want);
  EXPECT_EQ(Stored().size(), 1U);
  EXPECT_EQ(Lstat(M("node_modules/a")).st_nlink, 2U);
  EXPECT_EQ(Lstat(M("node_modules/a")).st_ino, Lstat(M("node_modules/b/a")).st_ino);
  ASSERT_EQ(::unlink(M("node_modules/a").c_str()), 0);
  EXPECT_EQ(Stored().size(), 1U);
  EXPECT_EQ(ReadFile(M("node_modules/b/a")), want);
  ASSERT_EQ(::unlink(M("node_modules/b/a").c_str()), 0);
  EXPECT_TRUE(Eventually([&] { return Stored().empty(); }));  // trash empties behind
}

TEST_P(DiskFallbackTest, AnOpenFileKeepsItsDataAfterItsLastNameGoes) {
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  int fd = ::open(M("node_modules/open.bin").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(WriteAll(fd, 12 * kMiB, 3), 0);
  ASSERT_EQ(::fsync(fd), 0);  // the kernel's cached writes reach the daemon
  EXPECT_EQ(Stored().size(), 1U);
  ASSERT_EQ(::unlink(M("node_modules/open.bin").c_str()), 0);
  EXPECT_TRUE(Eventually([&] { return Stored().empty(); }));  // trash empties behind
  // Still readable and writable through the open file.
  ASSERT_EQ(::pwrite(fd, "x", 1, 0), 1);
  std::string back(12 * kMiB, '\0');
  ASSERT_EQ(::pread(fd, back.data(), back.size(), 0), static_cast<ssize_t>(back.size()));
  std::string want = Pattern(12 * kMiB, 3);
  want[0] = 'x';
  EXPECT_EQ(back, want);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(12 * kMiB));
  EXPECT_EQ(st.st_nlink, 0U);
  ASSERT_EQ(::close(fd), 0);
}

TEST_P(DiskFallbackTest, SpilledFilesMoveWithTheirTreeAndLeaveTheStore) {
  ASSERT_EQ(::mkdir(M("app").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M("app/node_modules").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M("app/node_modules/pkg").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M("lib").c_str(), 0755), 0);
  ASSERT_EQ(Create(M("app/node_modules/pkg/a.bin"), 6 * kMiB, 1), 0);
  ASSERT_EQ(Create(M("app/node_modules/pkg/b.bin"), 6 * kMiB, 2), 0);
  ASSERT_EQ(Create(M("app/node_modules/c.bin"), 6 * kMiB, 3), 0);
  ASSERT_GE(Stored().size(), 2U);
  // One file out of the routed tree: its data goes to the volume.
  ASSERT_EQ(::rename(M("app/node_modules/c.bin").c_str(), M("lib/c.bin").c_str()), 0);
  EXPECT_EQ(ReadFile(V("lib/c.bin")), Pattern(6 * kMiB, 3));
  EXPECT_EQ(ReadFile(M("lib/c.bin")), Pattern(6 * kMiB, 3));
  // The whole routed root renamed out of its route (mv node_modules
  // node_modules.old): every file's data lands on the volume.
  ASSERT_EQ(::rename(M("app/node_modules").c_str(), M("app/node_modules.old").c_str()), 0);
  EXPECT_EQ(ReadFile(M("app/node_modules.old/pkg/a.bin")), Pattern(6 * kMiB, 1));
  EXPECT_EQ(ReadFile(M("app/node_modules.old/pkg/b.bin")), Pattern(6 * kMiB, 2));
  EXPECT_EQ(ReadFile(V("app/node_modules.old/pkg/b.bin")), Pattern(6 * kMiB, 2));
  // The sources' stubs went to the trash, deleted in the background with
  // their data.
  EXPECT_TRUE(Eventually([&] { return Stored().empty(); }));
  EXPECT_FALSE(Exists(Mem("app/node_modules")));
}

TEST_P(DiskFallbackTest, RmRfLeavesNothingInTheStore) {
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  // Many small files into a full tier: each spills on its first write.
  for (int i = 0; i < 60; ++i) {
    ASSERT_EQ(Create(M("node_modules/f" + std::to_string(i)), 256 * 1024, static_cast<unsigned>(i)),
              0)
        << i;
  }
  for (int i = 0; i < 60; ++i) {
    ASSERT_EQ(ReadFile(M("node_modules/f" + std::to_string(i))),
              Pattern(256 * 1024, static_cast<unsigned>(i)))
        << i;
  }
  EXPECT_GT(Stored().size(), 30U);
  for (int i = 0; i < 60; ++i) EXPECT_FALSE(Exists(V("node_modules/f" + std::to_string(i)))) << i;
  Restart();
  for (int i = 0; i < 60; ++i) {
    ASSERT_EQ(ReadFile(M("node_modules/f" + std::to_string(i))),
              Pattern(256 * 1024, static_cast<unsigned>(i)))
        << i;
  }
  ASSERT_EQ(Shell("rm -rf '" + M("node_modules") + "'"), 0);
  EXPECT_TRUE(Eventually([&] { return Stored().empty(); }));
}

// Data no stub refers to is never deleted (a tier wiped or dropped from the
// config would otherwise lose it): set aside and reported.
TEST_P(DiskFallbackTest, AStartSetsAsideStoreFilesNoStubRefersTo) {
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(Create(M("node_modules/kept.bin"), 8 * kMiB, 5), 0);
  ASSERT_EQ(Stored().size(), 1U);
  ASSERT_EQ(fs_->Stop(), 0);
  // What a crash between copying the data and marking the stub leaves.
  ASSERT_EQ(WriteFile(disk_ + "/tier/spill/00000000deadbeef", "stray"), 0);
  std::string error;
  ASSERT_TRUE(fs_->Restart(&error)) << error;
  std::vector<std::pair<std::string, off_t>> stored = Stored();
  ASSERT_EQ(stored.size(), 2U);  // kept.bin's data and the orphaned/ directory
  EXPECT_EQ(ReadFile(disk_ + "/tier/spill/orphaned/00000000deadbeef"), "stray");
  EXPECT_EQ(ReadFile(M("node_modules/kept.bin")), Pattern(8 * kMiB, 5));
  EXPECT_NE(fs_->Log().find("1 spilled data files no stub refers to were set aside"),
            std::string::npos);
  expect_clean_log_ = false;  // that report is an error line, rightly
}

TEST_P(DiskFallbackTest, AnEmptyModeZeroFileIsNotTakenForAStub) {
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("node_modules/empty"), "", 0000), 0);
  ASSERT_EQ(::chmod(M("node_modules/empty").c_str(), 0), 0);
  Restart();
  struct stat st = Lstat(M("node_modules/empty"));
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(st.st_mode & 07777, 0U);
  EXPECT_EQ(ReadFile(M("node_modules/empty")), "");
}

TEST_P(DiskFallbackTest, AVolumeFileTooBigForTheMemoryTierIsCopiedUpToDisk) {
  // On the volume before it is first seen: bigger than the whole memory tier.
  ASSERT_EQ(::mkdir(V("node_modules").c_str(), 0755), 0);
  const std::string old = Pattern(6 * kMiB, 3);
  ASSERT_EQ(WriteFile(V("node_modules/old.bin"), old, 0640), 0);
  ASSERT_EQ(::setxattr(V("node_modules/old.bin").c_str(), "user.k", "v", 1, 0), 0);
  const ino_t ino = Lstat(M("node_modules/old.bin")).st_ino;
  {
    int fd = ::open(M("node_modules/old.bin").c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(::write(fd, "tail", 4), 4);
    ASSERT_EQ(::close(fd), 0);
  }
  // The volume's copy is untouched (the change went to the tiers); the
  // memory tier holds a stub, the disk tier's store the data.
  EXPECT_EQ(ReadFile(V("node_modules/old.bin")), old);
  struct stat stub = Lstat(Mem("node_modules/old.bin"));
  EXPECT_EQ(stub.st_size, 0);
  EXPECT_EQ(stub.st_mode & 07777, 0640U);
  std::vector<std::pair<std::string, off_t>> stored = Stored();
  ASSERT_EQ(stored.size(), 1U);
  EXPECT_EQ(stored[0].second, static_cast<off_t>(6 * kMiB + 4));
  EXPECT_NE(fs_->Log().find("copied up with its data on the disk tier"), std::string::npos);
  // Through the mount: the same file, changed — number, mode, xattr kept.
  const std::string want = old + "tail";
  auto check = [&] {
    EXPECT_EQ(ReadFile(M("node_modules/old.bin")), want);
    struct stat st = Lstat(M("node_modules/old.bin"));
    EXPECT_EQ(st.st_ino, ino);
    EXPECT_EQ(st.st_mode & 07777, 0640U);
    EXPECT_EQ(st.st_nlink, 1U);
    char v = 0;
    EXPECT_EQ(::getxattr(M("node_modules/old.bin").c_str(), "user.k", &v, 1), 1);
  };
  check();
  Restart();
  check();
  EXPECT_EQ(Stored().size(), 1U);
  // Removed: the data goes, and the volume's old copy stays hidden.
  ASSERT_EQ(::unlink(M("node_modules/old.bin").c_str()), 0);
  EXPECT_TRUE(Eventually([&] { return Stored().empty(); }));
  EXPECT_FALSE(Exists(M("node_modules/old.bin")));
  EXPECT_TRUE(ListDir(M("node_modules")).empty());
}

// A disk tier too small for the file: its data moves on to the volume's
// spill store (never the live volume tree), the stub stays.
class DiskFullFallbackTest : public DiskFallbackTest {
 protected:
  DiskFullFallbackTest() : DiskFallbackTest("8M") {}
};

TEST_P(DiskFullFallbackTest, AFileTooBigForBothTiersEndsOnTheVolume) {
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  ino_t ino = 0;
  ASSERT_EQ(Create(M("node_modules/huge.bin"), 24 * kMiB, 9, &ino), 0) << strerror(errno);
  EXPECT_EQ(ReadFile(M("node_modules/huge.bin")), Pattern(24 * kMiB, 9));
  EXPECT_FALSE(Exists(V("node_modules/huge.bin")));
  EXPECT_TRUE(Stored().empty());
  EXPECT_TRUE(Exists(Mem("node_modules/huge.bin")));
  ASSERT_EQ(ListDir(V(".detourfs/spill")).size(), 1U);
  EXPECT_EQ(Lstat(V(".detourfs/spill/" + ListDir(V(".detourfs/spill"))[0])).st_size,
            static_cast<off_t>(24 * kMiB));
  EXPECT_EQ(Lstat(M("node_modules/huge.bin")).st_ino, ino);
  Restart();
  EXPECT_EQ(ReadFile(M("node_modules/huge.bin")), Pattern(24 * kMiB, 9));
}

TEST_P(DiskFullFallbackTest, AVolumeFileTooBigForBothTiersIsCopiedUpIntoTheVolumesStore) {
  ASSERT_EQ(::mkdir(V("node_modules").c_str(), 0755), 0);
  const std::string old = Pattern(12 * kMiB, 5);
  ASSERT_EQ(WriteFile(V("node_modules/old.bin"), old, 0640), 0);
  const ino_t ino = Lstat(M("node_modules/old.bin")).st_ino;
  {
    int fd = ::open(M("node_modules/old.bin").c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(::write(fd, "tail", 4), 4);
    ASSERT_EQ(::close(fd), 0);
  }
  // The live volume's copy is as it was; the change lives in the volume's
  // spill store, under a stub on the memory tier.
  EXPECT_EQ(ReadFile(V("node_modules/old.bin")), old);
  EXPECT_TRUE(Exists(Mem("node_modules/old.bin")));
  EXPECT_TRUE(Stored().empty());
  EXPECT_EQ(ListDir(V(".detourfs/spill")).size(), 1U);
  EXPECT_EQ(Lstat(M("node_modules/old.bin")).st_ino, ino);
  EXPECT_EQ(ReadFile(M("node_modules/old.bin")), old + "tail");
}

DETOURFS_MOUNT_TEST_P(DiskFallbackTest);
DETOURFS_MOUNT_TEST_P(DiskFullFallbackTest);

}  // namespace
}  // namespace detourfs::testing
