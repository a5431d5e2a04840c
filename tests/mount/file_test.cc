// Regular files through a real mount: open and create flags, read and write at
// offsets, O_APPEND, O_DIRECT, truncation, fsync, fallocate, copy_file_range,
// SEEK_DATA/SEEK_HOLE, unlinked-but-open files, mmap, statfs.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "lib/files.h"
#include "lib/mount_test.h"

namespace detourfs::testing {
namespace {

using FileTest = MountTest;

int Err(long rc) { return rc < 0 ? errno : 0; }  // NOLINT

TEST_P(FileTest, CreateExclusiveAndTruncate) {
  int fd = ::open(M("f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0640);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "hello world", 11), 11);
  ::close(fd);
  EXPECT_EQ(Err(::open(M("f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0640)), EEXIST);
  EXPECT_EQ(Lstat(M("f")).st_mode & 0777, 0640U);
  fd = ::open(M("f").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_EQ(Lstat(M("f")).st_size, 0);
  EXPECT_EQ(Err(::open(M("missing").c_str(), O_RDONLY)), ENOENT);
  EXPECT_EQ(Err(::open(M("f/below").c_str(), O_CREAT | O_WRONLY, 0644)), ENOTDIR);
  ASSERT_EQ(::mkdir(M("d").c_str(), 0755), 0);
  EXPECT_EQ(Err(::open(M("d").c_str(), O_WRONLY)), EISDIR);
}

TEST_P(FileTest, ReadsAndWritesAtOffsetsMatchAReferenceFile) {
  const std::string data = Pattern(3 * 1024 * 1024 + 17, 1);
  for (const std::string& p : {M("big"), R("big")}) {
    int fd = ::open(p.c_str(), O_CREAT | O_RDWR, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
    ASSERT_EQ(::pwrite(fd, "XYZ", 3, 4095), 3);              // across a page
    ASSERT_EQ(::pwrite(fd, "tail", 4, 5 * 1024 * 1024), 4);  // leaves a hole
    ::close(fd);
  }
  EXPECT_EQ(ReadFile(M("big")), ReadFile(R("big")));
  int fd = ::open(M("big").c_str(), O_RDONLY);
  char buf[7] = {};
  ASSERT_EQ(::pread(fd, buf, 6, 4094), 6);
  EXPECT_EQ(std::string(buf, 6), ReadFile(R("big")).substr(4094, 6));
  ::close(fd);
}

TEST_P(FileTest, AppendFromTwoDescriptorsNeverOverwrites) {
  ASSERT_EQ(WriteFile(M("log"), ""), 0);
  int a = ::open(M("log").c_str(), O_WRONLY | O_APPEND);
  int b = ::open(M("log").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(::write(a, "aaaa", 4), 4);
    ASSERT_EQ(::write(b, "bb", 2), 2);
  }
  ::close(a);
  ::close(b);
  EXPECT_EQ(Lstat(M("log")).st_size, 600);
  const std::string s = ReadFile(M("log"));
  EXPECT_EQ(std::count(s.begin(), s.end(), 'a'), 400);
  EXPECT_EQ(std::count(s.begin(), s.end(), 'b'), 200);
}

TEST_P(FileTest, DirectIoWritesAndReadsAlignedBlocks) {
  const size_t kBlock = 4096 * 4;
  void* buf = nullptr;
  ASSERT_EQ(::posix_memalign(&buf, 4096, kBlock), 0);
  std::memcpy(buf, Pattern(kBlock, 7).data(), kBlock);
  int fd = ::open(M("direct").c_str(), O_CREAT | O_RDWR | O_DIRECT, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::pwrite(fd, buf, kBlock, 0), static_cast<ssize_t>(kBlock));
  std::memset(buf, 0, kBlock);
  ASSERT_EQ(::pread(fd, buf, kBlock, 0), static_cast<ssize_t>(kBlock));
  EXPECT_EQ(std::string(static_cast<char*>(buf), kBlock), Pattern(kBlock, 7));
  ::close(fd);
  std::free(buf);
  EXPECT_EQ(ReadFile(M("direct")), Pattern(kBlock, 7));
}

TEST_P(FileTest, TruncateGrowsWithZerosAndShrinks) {
  ASSERT_EQ(WriteFile(M("t"), "abcdef"), 0);
  ASSERT_EQ(::truncate(M("t").c_str(), 3), 0);
  EXPECT_EQ(ReadFile(M("t")), "abc");
  ASSERT_EQ(::truncate(M("t").c_str(), 6), 0);
  EXPECT_EQ(ReadFile(M("t")), std::string("abc\0\0\0", 6));
  int fd = ::open(M("t").c_str(), O_RDWR);
  ASSERT_EQ(::ftruncate(fd, 1), 0);
  ::close(fd);
  EXPECT_EQ(ReadFile(M("t")), "a");
  ASSERT_EQ(::mkdir(M("d").c_str(), 0755), 0);
  EXPECT_EQ(Err(::truncate(M("d").c_str(), 0)), EISDIR);
}

TEST_P(FileTest, FsyncAndFdatasyncSucceed) {
  int fd = ::open(M("s").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "durable", 7), 7);
  EXPECT_EQ(::fsync(fd), 0);
  EXPECT_EQ(::fdatasync(fd), 0);
  ::close(fd);
  int dfd = ::open(fs_->tree().c_str(), O_RDONLY | O_DIRECTORY);
  EXPECT_EQ(::fsync(dfd), 0);
  ::close(dfd);
  // The data reached the directory underneath, not just the page cache.
  EXPECT_EQ(ReadFile(M("s")), "durable");
}

TEST_P(FileTest, FallocatePunchHoleAndSeekDataHole) {
  int fd = ::open(M("sparse").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  const off_t kMiB = 1 << 20;
  ASSERT_EQ(::fallocate(fd, 0, 0, 4 * kMiB), 0);
  EXPECT_EQ(Lstat(M("sparse")).st_size, 4 * kMiB);
  ASSERT_EQ(::pwrite(fd, "data", 4, 3 * kMiB), 4);
  ASSERT_EQ(::fsync(fd), 0);
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 2 * kMiB), 0);
  EXPECT_EQ(::lseek(fd, 0, SEEK_HOLE), 0);
  off_t data = ::lseek(fd, 0, SEEK_DATA);
  EXPECT_GE(data, 2 * kMiB);
  EXPECT_LE(data, 3 * kMiB);
  EXPECT_EQ(Err(::lseek(fd, 5 * kMiB, SEEK_DATA)), ENXIO);
  char buf[4];
  ASSERT_EQ(::pread(fd, buf, 4, 0), 4);
  EXPECT_EQ(std::string(buf, 4), std::string(4, '\0'));
  ::close(fd);
}

TEST_P(FileTest, CopyFileRangeCopiesData) {
  const std::string data = Pattern(1 << 20, 3);
  ASSERT_EQ(WriteFile(M("src"), data), 0);
  int in = ::open(M("src").c_str(), O_RDONLY);
  int out = ::open(M("dst").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(in, 0);
  ASSERT_GE(out, 0);
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, left, 0);
    ASSERT_GT(n, 0) << std::strerror(errno);
    left -= static_cast<size_t>(n);
  }
  ::close(in);
  ::close(out);
  EXPECT_EQ(ReadFile(M("dst")), data);
}

TEST_P(FileTest, UnlinkedOpenFileKeepsWorking) {
  int fd = ::open(M("ghost").c_str(), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "boo", 3), 3);
  ASSERT_EQ(::unlink(M("ghost").c_str()), 0);
  int err = 0;
  Lstat(M("ghost"), &err);
  EXPECT_EQ(err, ENOENT);
  ASSERT_EQ(::pwrite(fd, "!!", 2, 3), 2);
  char buf[8] = {};
  EXPECT_EQ(::pread(fd, buf, sizeof(buf), 0), 5);
  EXPECT_STREQ(buf, "boo!!");
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 0U);
  EXPECT_EQ(::fchmod(fd, 0640), 0);
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640U);
  EXPECT_EQ(::ftruncate(fd, 1), 0);
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 1);
  EXPECT_EQ(::close(fd), 0);
  // A new file with the old name is a different file.
  ASSERT_EQ(WriteFile(M("ghost"), "new"), 0);
  EXPECT_EQ(ReadFile(M("ghost")), "new");
}

TEST_P(FileTest, SharedMmapWritesReachTheFile) {
  ASSERT_EQ(WriteFile(M("map"), std::string(8192, 'a')), 0);
  int fd = ::open(M("map").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  void* p = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  std::memcpy(static_cast<char*>(p) + 4096, "mapped", 6);
  ASSERT_EQ(::msync(p, 8192, MS_SYNC), 0);
  ::munmap(p, 8192);
  ::close(fd);
  EXPECT_EQ(ReadFile(M("map")).substr(4096, 6), "mapped");
}

TEST_P(FileTest, ExecutableWrittenThroughTheMountRuns) {
  ASSERT_EQ(WriteFile(M("run.sh"), "#!/bin/sh\necho ran\n", 0755), 0);
  // Exec right after close: no cached writable fd may leave it busy.
  EXPECT_EQ(ShellOutput(M("run.sh")), "ran\n");
}

TEST_P(FileTest, StatfsReportsTheBackingFilesystem) {
  struct statvfs on_mount {
  }, on_ref{};
  ASSERT_EQ(::statvfs(fs_->tree().c_str(), &on_mount), 0);
  ASSERT_EQ(::statvfs(fs_->ref().c_str(), &on_ref), 0);
  EXPECT_EQ(on_mount.f_blocks, on_ref.f_blocks);
  EXPECT_EQ(on_mount.f_bsize, on_ref.f_bsize);
  EXPECT_EQ(on_mount.f_files, on_ref.f_files);
}

DETOURFS_MOUNT_TEST_P(FileTest);

}  // namespace
}  // namespace detourfs::testing
