// Locks through a real mount: flock and POSIX byte-range locks conflict
// between processes as on a local filesystem (the kernel keeps them).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "lib/as_user.h"
#include "lib/files.h"
#include "lib/mount_test.h"

namespace detourfs::testing {
namespace {

using LocksTest = MountTest;

TEST_P(LocksTest, FlockConflictsBetweenProcesses) {
  ASSERT_EQ(WriteFile(M("lock"), ""), 0);
  int fd = ::open(M("lock").c_str(), O_RDWR);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  const std::string p = M("lock");
  auto try_lock = [&] {
    int f = ::open(p.c_str(), O_RDWR);
    int r = ::flock(f, LOCK_EX | LOCK_NB) == 0 ? 0 : errno;
    ::close(f);
    return r;
  };
  EXPECT_EQ(InChild(try_lock), EWOULDBLOCK);
  ASSERT_EQ(::flock(fd, LOCK_UN), 0);
  EXPECT_EQ(InChild(try_lock), 0);
  ::close(fd);
}

TEST_P(LocksTest, PosixRangeLocksConflictOnlyWhereTheyOverlap) {
  ASSERT_EQ(WriteFile(M("ranges"), std::string(100, 'x')), 0);
  int fd = ::open(M("ranges").c_str(), O_RDWR);
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 10;
  fl.l_len = 20;
  ASSERT_EQ(::fcntl(fd, F_SETLK, &fl), 0);
  const std::string p = M("ranges");
  auto lock_range = [&](off_t start, off_t len) {
    return InChild([&, start, len] {
      int f = ::open(p.c_str(), O_RDWR);
      struct flock l {};
      l.l_type = F_WRLCK;
      l.l_whence = SEEK_SET;
      l.l_start = start;
      l.l_len = len;
      int r = ::fcntl(f, F_SETLK, &l) == 0 ? 0 : errno;
      ::close(f);
      return r;
    });
  };
  int busy = lock_range(25, 10);
  EXPECT_TRUE(busy == EAGAIN || busy == EACCES) << busy;
  EXPECT_EQ(lock_range(30, 10), 0);
  // F_GETLK names the holder.
  int holder = InChild([&] {
    int f = ::open(p.c_str(), O_RDWR);
    struct flock l {};
    l.l_type = F_WRLCK;
    l.l_whence = SEEK_SET;
    l.l_start = 0;
    l.l_len = 100;
    int r = ::fcntl(f, F_GETLK, &l) == 0 ? l.l_pid : -errno;
    ::close(f);
    return r;
  });
  EXPECT_EQ(holder, ::getpid());
  ::close(fd);
  EXPECT_EQ(lock_range(25, 10), 0) << "close releases POSIX locks";
}

DETOURFS_MOUNT_TEST_P(LocksTest);

}  // namespace
}  // namespace detourfs::testing
