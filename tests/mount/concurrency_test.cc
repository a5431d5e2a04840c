// Many threads creating, writing, renaming and deleting in one directory of a
// real mount: no lost or extra entries, contents intact, no crash.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "lib/files.h"
#include "lib/mount_test.h"

namespace detourfs::testing {
namespace {

using ConcurrencyTest = MountTest;

TEST_P(ConcurrencyTest, ThreadsCreateWriteRenameDeleteInOneDirectory) {
  constexpr int kThreads = 8;
  constexpr int kFiles = 300;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kFiles; ++i) {
        const std::string base = "t" + std::to_string(t) + "_" + std::to_string(i);
        const std::string data =
            Pattern(100 + static_cast<size_t>(i), static_cast<unsigned>(t * 1000 + i));
        if (WriteFile(M(base + ".tmp"), data) != 0) ++failures;
        if (::rename(M(base + ".tmp").c_str(), M(base).c_str()) != 0) ++failures;
        if (i % 3 == 0 && ::unlink(M(base).c_str()) != 0) ++failures;
        if (i % 3 == 1 && ReadFile(M(base)) != data) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);

  std::set<std::string> expected;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kFiles; ++i) {
      if (i % 3 != 0) expected.insert("t" + std::to_string(t) + "_" + std::to_string(i));
    }
  }
  std::set<std::string> seen;
  DIR* d = ::opendir(fs_->tree().c_str());
  ASSERT_NE(d, nullptr);
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') seen.insert(e->d_name);
  }
  ::closedir(d);
  EXPECT_EQ(seen, expected);
  for (int t = 0; t < kThreads; ++t) {
    const int i = 4;  // spot-check contents after the storm
    EXPECT_EQ(ReadFile(M("t" + std::to_string(t) + "_" + std::to_string(i))),
              Pattern(100 + i, static_cast<unsigned>(t * 1000 + i)));
  }
}

TEST_P(ConcurrencyTest, ParallelMkdirTreesAndRemoval) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::string root = M("tree" + std::to_string(t));
      if (Shell("mkdir -p " + root + "/a/b/c && for i in $(seq 1 50); do echo $i > " + root +
                "/a/b/c/f$i; done && rm -rf " + root) != 0) {
        ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  DIR* d = ::opendir(fs_->tree().c_str());
  int names = 0;
  while (struct dirent* e = ::readdir(d)) names += e->d_name[0] != '.';
  ::closedir(d);
  EXPECT_EQ(names, 0);
}

DETOURFS_MOUNT_TEST_P(ConcurrencyTest);

}  // namespace
}  // namespace detourfs::testing
