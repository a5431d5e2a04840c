// Directory listings through a real mount: every name once with its type,
// telldir/seekdir positions that stay valid, listings while the directory
// changes, readdirplus attributes (ls -l) equal to stat.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "lib/files.h"
#include "lib/mount_test.h"

namespace detourfs::testing {
namespace {

using ReaddirTest = MountTest;

std::map<std::string, unsigned char> List(const std::string& dir) {
  std::map<std::string, unsigned char> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) out[e->d_name] = e->d_type;
  ::closedir(d);
  return out;
}

TEST_P(ReaddirTest, ListsEveryNameOnceWithItsType) {
  for (int i = 0; i < 1500; ++i) ASSERT_EQ(WriteFile(M("f" + std::to_string(i)), ""), 0);
  ASSERT_EQ(::mkdir(M("sub").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("f0", M("link").c_str()), 0);
  std::multiset<std::string> seen;
  DIR* d = ::opendir(fs_->tree().c_str());
  ASSERT_NE(d, nullptr);
  std::map<std::string, unsigned char> types;
  while (struct dirent* e = ::readdir(d)) {
    seen.insert(e->d_name);
    types[e->d_name] = e->d_type;
  }
  ::closedir(d);
  EXPECT_EQ(seen.size(), 1500U + 4U);  // files, sub, link, ".", ".."
  for (const std::string& name : seen) EXPECT_EQ(seen.count(name), 1U) << name;
  EXPECT_EQ(types["sub"], DT_DIR);
  EXPECT_EQ(types["link"], DT_LNK);
  EXPECT_EQ(types["f7"], DT_REG);
  EXPECT_EQ(types["."], DT_DIR);
}

TEST_P(ReaddirTest, ListingMatchesTheReferenceDirectory) {
  for (const std::string& root : {fs_->tree(), fs_->ref()}) {
    for (int i = 0; i < 300; ++i) ASSERT_EQ(WriteFile(root + "/n" + std::to_string(i * 7), ""), 0);
    ASSERT_EQ(::mkdir((root + "/dir").c_str(), 0755), 0);
  }
  EXPECT_EQ(List(fs_->tree()), List(fs_->ref()));
}

TEST_P(ReaddirTest, LsLongAttributesEqualStat) {
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(WriteFile(M("a" + std::to_string(i)), std::string(static_cast<size_t>(i), 'x')), 0);
  }
  // `ls -l` uses readdirplus; compare its sizes with stat of each file.
  std::string out = ShellOutput("ls -ln --time-style=+%s " + fs_->tree());
  for (int i = 0; i < 50; ++i) {
    struct stat st = Lstat(M("a" + std::to_string(i)));
    EXPECT_EQ(st.st_size, i);
    EXPECT_NE(out.find(" " + std::to_string(i) + " "), std::string::npos);
  }
  // And d_ino from readdir equals st_ino, as find and du expect.
  DIR* d = ::opendir(fs_->tree().c_str());
  ASSERT_NE(d, nullptr);
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    EXPECT_EQ(e->d_ino, Lstat(M(e->d_name)).st_ino) << e->d_name;
  }
  ::closedir(d);
}

TEST_P(ReaddirTest, TelldirSeekdirResumeAtTheSameEntry) {
  for (int i = 0; i < 500; ++i) ASSERT_EQ(WriteFile(M("e" + std::to_string(i)), ""), 0);
  DIR* d = ::opendir(fs_->tree().c_str());
  ASSERT_NE(d, nullptr);
  std::vector<std::pair<long, std::string>> marks;  // NOLINT
  for (int i = 0; i < 300; ++i) {
    long pos = ::telldir(d);  // NOLINT
    struct dirent* e = ::readdir(d);
    ASSERT_NE(e, nullptr);
    if (i % 37 == 0) marks.emplace_back(pos, e->d_name);
  }
  for (auto it = marks.rbegin(); it != marks.rend(); ++it) {
    ::seekdir(d, it->first);
    struct dirent* e = ::readdir(d);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(it->second, e->d_name);
  }
  ::closedir(d);
}

TEST_P(ReaddirTest, ConcurrentChangesNeverHideOrRepeatStableNames) {
  for (int i = 0; i < 400; ++i) ASSERT_EQ(WriteFile(M("stable" + std::to_string(i)), ""), 0);
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    for (int i = 0; !stop; ++i) {
      const std::string p = M("churn" + std::to_string(i % 200));
      if (WriteFile(p, "") == 0) ::unlink(p.c_str());
    }
  });
  for (int round = 0; round < 20; ++round) {
    std::multiset<std::string> stable;
    DIR* d = ::opendir(fs_->tree().c_str());
    ASSERT_NE(d, nullptr);
    while (struct dirent* e = ::readdir(d)) {
      if (std::string(e->d_name).rfind("stable", 0) == 0) stable.insert(e->d_name);
    }
    ::closedir(d);
    EXPECT_EQ(stable.size(), 400U);
    EXPECT_EQ(std::set<std::string>(stable.begin(), stable.end()).size(), 400U);
  }
  stop = true;
  churn.join();
}

TEST_P(ReaddirTest, RemovedDirectoryListsNothingAndRmRfWorks) {
  ASSERT_EQ(Shell("mkdir -p " + M("t/a/b/c") + " && touch " + M("t/a/b/c/f") + " " + M("t/a/x")),
            0);
  ASSERT_EQ(Shell("rm -rf " + M("t")), 0);
  int err = 0;
  Lstat(M("t"), &err);
  EXPECT_EQ(err, ENOENT);
  EXPECT_EQ(List(fs_->tree()).size(), 2U);  // "." and ".."
}

DETOURFS_MOUNT_TEST_P(ReaddirTest);

}  // namespace
}  // namespace detourfs::testing
