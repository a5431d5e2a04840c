// TreeWalk: listing, walk order, parallel trees, bounded fds however deep
// the tree, moves underneath detected, RemoveTree and DiskUsage.
#include "store/tree_walk.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "scratch_dir.h"

namespace detourfs {
namespace {

size_t OpenFdCount() {
  size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;  // the listing's own fd
}

class TreeWalkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(scratch_.ok());
    root_ = ::open(scratch_.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(root_, 0);
  }
  void TearDown() override {
    if (root_ >= 0) ::close(root_);
  }
  void MakeDir(const std::string& rel) { ASSERT_EQ(::mkdirat(root_, rel.c_str(), 0755), 0) << rel; }
  void MakeFile(const std::string& rel, const std::string& data = "") {
    const int fd = ::openat(root_, rel.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << rel;
    ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ::close(fd);
  }
  int OpenDir(const std::string& rel) {
    const int fd = ::openat(root_, rel.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    EXPECT_GE(fd, 0) << rel;
    return fd;
  }
  bool Exists(const std::string& rel) {
    struct stat st {};
    return ::fstatat(root_, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  }
  // `depth` nested directories named `name` under `rel` (made relative to an
  // fd, one level at a time: the path would be far beyond PATH_MAX).
  void MakeChain(const std::string& rel, size_t depth, const char* name) {
    int fd = OpenDir(rel);
    ASSERT_GE(fd, 0);
    for (size_t i = 0; i < depth; ++i) {
      ASSERT_EQ(::mkdirat(fd, name, 0755), 0) << "depth " << i;
      const int next = ::openat(fd, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
      ::close(fd);
      ASSERT_GE(next, 0) << "depth " << i;
      fd = next;
    }
    ::close(fd);
  }

  // Sorted listing: a deterministic order for the walk.
  static Result<std::vector<WalkItem>> Sorted(const WalkDir& d) {
    Result<std::vector<WalkItem>> items = ListDir(d.fds[0]);
    if (items.ok()) {
      std::sort(items->begin(), items->end(),
                [](const WalkItem& a, const WalkItem& b) { return a.name < b.name; });
    }
    return items;
  }

  ScratchDir scratch_{"/tmp/detourfs-walk"};
  int root_ = -1;
};

TEST_F(TreeWalkTest, ListDirGivesNamesAndTypesWithoutDots) {
  MakeDir("d");
  MakeFile("f");
  ASSERT_EQ(::symlinkat("f", root_, "l"), 0);
  ASSERT_EQ(::mkfifoat(root_, "p", 0600), 0);
  Result<std::vector<WalkItem>> items = ListDir(root_);  // an O_PATH fd
  ASSERT_TRUE(items.ok()) << items.error();
  std::map<std::string, mode_t> got;
  for (const WalkItem& i : *items) got[i.name] = i.type;
  const std::map<std::string, mode_t> want = {
      {"d", S_IFDIR}, {"f", S_IFREG}, {"l", S_IFLNK}, {"p", S_IFIFO}};
  EXPECT_EQ(got, want);
}

TEST_F(TreeWalkTest, ListDirOfAnEmptyDirectoryIsEmpty) {
  Result<std::vector<WalkItem>> items = ListDir(root_);
  ASSERT_TRUE(items.ok());
  EXPECT_TRUE(items->empty());
}

TEST_F(TreeWalkTest, ListDirManyEntries) {
  for (int i = 0; i < 3000; ++i) MakeFile("file-with-a-longish-name-" + std::to_string(i));
  Result<std::vector<WalkItem>> items = ListDir(root_);
  ASSERT_TRUE(items.ok());
  std::set<std::string> names;
  for (const WalkItem& i : *items) names.insert(i.name);
  EXPECT_EQ(names.size(), 3000U) << "getdents over several buffers";
}

TEST_F(TreeWalkTest, VisitsBeforeContentsAndLeavesAfterInOrder) {
  MakeDir("a");
  MakeDir("a/b");
  MakeFile("a/b/c");
  MakeFile("a/f");
  MakeFile("z");
  std::vector<std::string> events;
  WalkCallbacks cb;
  cb.list = Sorted;
  cb.visit = [&](const WalkDir& parent, const WalkItem& item) -> Result<bool> {
    events.push_back("visit " + *parent.path + "|" + item.name + "@" +
                     std::to_string(parent.depth));
    return true;
  };
  cb.leave = [&](const WalkDir& parent, const WalkItem& item) -> Result<void> {
    events.push_back("leave " + *parent.path + "|" + item.name);
    return {};
  };
  ASSERT_TRUE(WalkTrees({root_, -1, -1, -1}, cb).ok());
  const std::vector<std::string> want = {
      "visit |a@0",  "visit a|b@1", "visit a/b|c@2", "leave a|b",
      "visit a|f@1", "leave |a",    "visit |z@0",
  };
  EXPECT_EQ(events, want);
}

TEST_F(TreeWalkTest, SelfNamesTheDirectoryBeingListed) {
  MakeDir("a");
  MakeDir("a/b");
  std::vector<std::string> selves;
  WalkCallbacks cb;
  cb.list = [&](const WalkDir& d) {
    selves.push_back(d.self == nullptr ? "(top)" : d.self->name + "=" + *d.path);
    return ListDir(d.fds[0]);
  };
  ASSERT_TRUE(WalkTrees({root_, -1, -1, -1}, cb).ok());
  EXPECT_EQ(selves, (std::vector<std::string>{"(top)", "a=a", "b=a/b"}));
}

TEST_F(TreeWalkTest, VisitDecidesWhetherToDescend) {
  MakeDir("skip");
  MakeFile("skip/hidden");
  MakeDir("keep");
  MakeFile("keep/seen");
  std::set<std::string> visited;
  WalkCallbacks cb;
  cb.visit = [&](const WalkDir& parent, const WalkItem& item) -> Result<bool> {
    visited.insert(*parent.path + "/" + item.name);
    return item.name != "skip";
  };
  ASSERT_TRUE(WalkTrees({root_, -1, -1, -1}, cb).ok());
  EXPECT_EQ(visited, (std::set<std::string>{"/skip", "/keep", "keep/seen"}));
}

TEST_F(TreeWalkTest, AVisitErrorStopsTheWalk) {
  MakeDir("a");
  MakeFile("a/x");
  MakeDir("b");
  int visits = 0;
  WalkCallbacks cb;
  cb.list = Sorted;
  cb.visit = [&](const WalkDir&, const WalkItem& item) -> Result<bool> {
    ++visits;
    if (item.name == "x") return Errno{EPERM};
    return true;
  };
  Result<void> r = WalkTrees({root_, -1, -1, -1}, cb);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), EPERM);
  EXPECT_EQ(visits, 2) << "b is never visited";
}

TEST_F(TreeWalkTest, AListErrorStopsTheWalk) {
  MakeDir("a");
  WalkCallbacks cb;
  cb.list = [](const WalkDir& d) -> Result<std::vector<WalkItem>> {
    if (d.depth == 1) return Errno{EIO};
    return ListDir(d.fds[0]);
  };
  EXPECT_EQ(WalkTrees({root_, -1, -1, -1}, cb).error(), EIO);
}

TEST_F(TreeWalkTest, ParallelTreesShowWhereEachHasTheDirectory) {
  MakeDir("one");
  MakeDir("one/both");
  MakeDir("one/both/deep");
  MakeDir("one/only");
  MakeDir("two");
  MakeDir("two/both");
  MakeFile("two/both/deep");  // a file where tree one has a directory
  const int one = OpenDir("one");
  const int two = OpenDir("two");
  std::map<std::string, std::pair<bool, bool>> there;  // path -> (tree 0, tree 1)
  WalkCallbacks cb;
  cb.list = [&](const WalkDir& d) {
    there[*d.path] = {d.fds[0] >= 0, d.fds[1] >= 0};
    EXPECT_EQ(d.fds[2], -1);
    EXPECT_EQ(d.fds[3], -1);
    return ListDir(d.fds[0]);
  };
  ASSERT_TRUE(WalkTrees({one, two, -1, -1}, cb).ok());
  EXPECT_EQ(there[""], std::make_pair(true, true));
  EXPECT_EQ(there["both"], std::make_pair(true, true));
  EXPECT_EQ(there["only"], std::make_pair(true, false));
  EXPECT_EQ(there["both/deep"], std::make_pair(true, false)) << "a file is no directory";
  ::close(one);
  ::close(two);
}

// A tree that ends above the deepest levels (a volume part two levels
// deep under a tier part twenty deep): its directory's fd cannot be reopened
// through ".." of a child it lacks, so it is kept, and the walk goes back up
// (it answered ESTALE: home checker seed 95, a deep node_modules moved).
TEST_F(TreeWalkTest, ATreeEndingAboveTheDeepestLevelsIsWalkedBackUp) {
  constexpr size_t kDepth = 20;
  MakeDir("deep");
  MakeChain("deep", kDepth, "d");
  MakeDir("shallow");
  MakeDir("shallow/d");
  MakeFile("shallow/d/f");
  MakeDir("mid");
  MakeChain("mid", 12, "d");
  MakeDir("top");
  const int deep = OpenDir("deep");
  const int shallow = OpenDir("shallow");
  const int mid = OpenDir("mid");
  const int top = OpenDir("top");
  const size_t fds_before = OpenFdCount();
  size_t listed = 0;
  size_t with_shallow = 0;
  size_t most_fds = 0;
  WalkCallbacks cb;
  cb.list = [&](const WalkDir& d) {
    ++listed;
    if (d.fds[1] >= 0) ++with_shallow;
    most_fds = std::max(most_fds, OpenFdCount());
    return ListDir(d.fds[0]);
  };
  Result<void> r = WalkTrees({deep, shallow, mid, top}, cb);
  EXPECT_TRUE(r.ok()) << (r.ok() ? 0 : r.error());
  EXPECT_EQ(listed, kDepth + 1);
  EXPECT_EQ(with_shallow, 2U);
  // Four trees ending at four depths: the window's fds, one kept where each
  // shallower tree ends, and the walk's copies of the roots.
  EXPECT_LE(most_fds - fds_before, 48U);
  EXPECT_EQ(OpenFdCount(), fds_before) << "every fd closed after the walk";
  for (int fd : {deep, shallow, mid, top}) ::close(fd);
}

TEST_F(TreeWalkTest, WalkNeverFollowsSymlinks) {
  MakeDir("outside");
  MakeFile("outside/secret");
  MakeDir("tree");
  ASSERT_EQ(::symlinkat("../outside", root_, "tree/link"), 0);
  const int tree = OpenDir("tree");
  std::vector<std::string> seen;
  WalkCallbacks cb;
  cb.visit = [&](const WalkDir&, const WalkItem& item) -> Result<bool> {
    seen.push_back(item.name);
    return true;
  };
  ASSERT_TRUE(WalkTrees({tree, -1, -1, -1}, cb).ok());
  EXPECT_EQ(seen, std::vector<std::string>{"link"});
  ::close(tree);
}

// 10,000 levels: no recursion, and a bounded number of fds at every depth.
TEST_F(TreeWalkTest, TenThousandLevelsWithFewFds) {
  constexpr size_t kDepth = 10000;
  MakeDir("deep");
  MakeChain("deep", kDepth, "d");
  const int top = OpenDir("deep");
  const size_t before = OpenFdCount();
  size_t max_fds = 0;
  size_t max_depth = 0;
  size_t visits = 0;
  size_t leaves = 0;
  WalkCallbacks cb;
  cb.visit = [&](const WalkDir& parent, const WalkItem& item) -> Result<bool> {
    ++visits;
    max_depth = std::max(max_depth, parent.depth + 1);
    if (parent.depth % 250 == 0 || parent.depth + 1 == kDepth) {
      max_fds = std::max(max_fds, OpenFdCount());
    }
    EXPECT_EQ(item.name, "d");
    return true;
  };
  cb.leave = [&](const WalkDir& parent, const WalkItem&) -> Result<void> {
    ++leaves;
    if (parent.depth % 250 == 0) max_fds = std::max(max_fds, OpenFdCount());
    return {};
  };
  Result<void> r = WalkTrees({top, -1, -1, -1}, cb);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(visits, kDepth);
  EXPECT_EQ(leaves, kDepth);
  EXPECT_EQ(max_depth, kDepth);
  EXPECT_LE(max_fds, before + 16) << "the walk keeps a window of fds, not one per level";
  EXPECT_EQ(OpenFdCount(), before) << "every fd the walk opened is closed";

  // Removing it is a walk too.
  ASSERT_TRUE(RemoveTree(root_, "deep").ok());
  EXPECT_FALSE(Exists("deep"));
  ::close(top);
  EXPECT_EQ(OpenFdCount(), before - 1);
}

TEST_F(TreeWalkTest, ADirectoryMovedUnderneathStopsTheWalkWithEstale) {
  constexpr size_t kDepth = 30;
  MakeDir("top");
  MakeChain("top", kDepth, "d");
  const int top = OpenDir("top");
  std::string moved_path = "top";
  for (int i = 0; i < 5; ++i) moved_path += "/d";  // the directory at depth 5
  bool moved = false;
  size_t visits_after = 0;
  WalkCallbacks cb;
  cb.visit = [&](const WalkDir& parent, const WalkItem&) -> Result<bool> {
    if (moved) ++visits_after;
    if (parent.depth == 25 && !moved) {
      // Deep below: depth 5's fd was let go long ago; move it elsewhere.
      EXPECT_EQ(::renameat(root_, moved_path.c_str(), root_, "elsewhere"), 0);
      moved = true;
    }
    return true;
  };
  Result<void> r = WalkTrees({top, -1, -1, -1}, cb);
  ASSERT_TRUE(moved);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), ESTALE);
  EXPECT_LT(visits_after, kDepth) << "stopped on the way back up";
  ::close(top);
}

TEST_F(TreeWalkTest, RemoveTreeRemovesEverythingAndToldOfEachFile) {
  MakeDir("t");
  MakeDir("t/a");
  MakeDir("t/a/empty");
  MakeFile("t/a/f1", "hello");
  MakeFile("t/f2");
  ASSERT_EQ(::symlinkat("/etc/passwd", root_, "t/a/link"), 0);
  ASSERT_EQ(::mkfifoat(root_, "t/fifo", 0600), 0);
  std::map<std::string, mode_t> told;
  RemovingFn removing = [&](int dirfd, const char* name, const struct stat& st) {
    struct stat now {};
    EXPECT_EQ(::fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW), 0) << "told before it goes";
    told[name] = st.st_mode & S_IFMT;
    if (S_ISDIR(st.st_mode)) {
      int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY);
      EXPECT_GE(fd, 0);
      Result<std::vector<WalkItem>> left = ListDir(fd);
      EXPECT_TRUE(left.ok() && left->empty()) << name << ": a directory is told once it is empty";
      ::close(fd);
    }
    return false;
  };
  ASSERT_TRUE(RemoveTree(root_, "t", removing).ok());
  EXPECT_FALSE(Exists("t"));
  const std::map<std::string, mode_t> want = {{"t", S_IFDIR},   {"a", S_IFDIR},  {"empty", S_IFDIR},
                                              {"f1", S_IFREG},  {"f2", S_IFREG}, {"link", S_IFLNK},
                                              {"fifo", S_IFIFO}};
  EXPECT_EQ(told, want);
  struct stat st {};
  EXPECT_EQ(::stat("/etc/passwd", &st), 0) << "a symlink's target is not touched";
}

// An entry `removing` keeps (answers true for) is not unlinked, and so its
// directories stay (ENOTEMPTY); the rest goes.
TEST_F(TreeWalkTest, RemoveTreeLeavesWhatRemovingKeeps) {
  MakeDir("t");
  MakeDir("t/a");
  MakeFile("t/a/keep", "k");
  MakeFile("t/a/go");
  MakeFile("t/go2");
  RemovingFn removing = [](int, const char* name, const struct stat&) {
    return std::string(name) == "keep";
  };
  Result<void> r = RemoveTree(root_, "t", removing);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), ENOTEMPTY);
  EXPECT_TRUE(Exists("t/a/keep"));
  EXPECT_FALSE(Exists("t/a/go"));
  EXPECT_FALSE(Exists("t/go2"));
  MakeFile("single");
  EXPECT_TRUE(
      RemoveTree(root_, "single", [](int, const char*, const struct stat&) { return true; }).ok());
  EXPECT_TRUE(Exists("single"));
}

// A directory `removing` keeps (to move it away whole, as the volume trash
// holds a directory whose number a tier copy reports) stays, emptied; so
// does the directory above it. A directory that still holds a kept entry
// is not offered: it stays with that entry where it is.
TEST_F(TreeWalkTest, RemoveTreeLeavesADirectoryRemovingKeepsEmptied) {
  MakeDir("t");
  MakeDir("t/a");
  MakeFile("t/a/f");
  MakeFile("t/g");
  RemovingFn removing = [](int, const char* name, const struct stat&) {
    return std::string(name) == "a";
  };
  Result<void> r = RemoveTree(root_, "t", removing);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), ENOTEMPTY);
  EXPECT_TRUE(Exists("t/a"));
  EXPECT_FALSE(Exists("t/a/f"));
  EXPECT_FALSE(Exists("t/g"));
  MakeDir("top");
  MakeFile("top/f");
  EXPECT_TRUE(RemoveTree(root_, "top", [](int, const char* name, const struct stat&) {
                return std::string(name) == "top";
              }).ok());
  EXPECT_TRUE(Exists("top"));
  EXPECT_FALSE(Exists("top/f"));
  MakeDir("u");
  MakeDir("u/a");
  MakeFile("u/a/keep");
  std::vector<std::string> offered;
  r = RemoveTree(root_, "u", [&](int, const char* name, const struct stat&) {
    offered.emplace_back(name);
    return std::string(name) == "keep" || std::string(name) == "a";
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), ENOTEMPTY);
  EXPECT_EQ(offered, std::vector<std::string>{"keep"});
  EXPECT_TRUE(Exists("u/a/keep"));
}

TEST_F(TreeWalkTest, RemoveTreeOfAFileOrSymlinkUnlinksJustIt) {
  MakeDir("target");
  MakeFile("target/keep");
  ASSERT_EQ(::symlinkat("target", root_, "link"), 0);
  MakeFile("file");
  int told = 0;
  RemovingFn removing = [&](int, const char*, const struct stat&) {
    ++told;
    return false;
  };
  ASSERT_TRUE(RemoveTree(root_, "link", removing).ok());
  ASSERT_TRUE(RemoveTree(root_, "file", removing).ok());
  EXPECT_EQ(told, 2);
  EXPECT_FALSE(Exists("link"));
  EXPECT_FALSE(Exists("file"));
  EXPECT_TRUE(Exists("target/keep"));
}

TEST_F(TreeWalkTest, RemoveTreeOfNothingIsENOENT) {
  EXPECT_EQ(RemoveTree(root_, "missing").error(), ENOENT);
}

TEST_F(TreeWalkTest, DiskUsageCountsEachInodeOnce) {
  MakeDir("u");
  MakeDir("u/a");
  MakeFile("u/a/big", std::string(256 * 1024, 'x'));
  MakeFile("u/small", "abc");
  ASSERT_EQ(::linkat(root_, "u/a/big", root_, "u/link-to-big", 0), 0);
  ASSERT_EQ(::symlinkat("a/big", root_, "u/sym"), 0);
  // What du counts beneath u: each entry's blocks, the hard link once.
  uint64_t want = 0;
  std::set<ino_t> seen;
  for (const char* rel : {"u/a", "u/a/big", "u/small", "u/link-to-big", "u/sym"}) {
    struct stat st {};
    ASSERT_EQ(::fstatat(root_, rel, &st, AT_SYMLINK_NOFOLLOW), 0);
    if (seen.insert(st.st_ino).second) want += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  const int u = OpenDir("u");
  Result<uint64_t> used = DiskUsage(u);
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(*used, want);
  EXPECT_GE(*used, 256U * 1024) << "the big file is counted";
  EXPECT_LT(*used, 2U * 256 * 1024) << "but only once";
  ::close(u);
}

}  // namespace
}  // namespace detourfs
