// FindUnroutedContent on a real directory tree standing in for a tier's upper
// tree (root: whiteouts are device nodes with a trusted.* xattr): what the
// rules route elsewhere, or not at all, is reported; the directories above
// routed subtrees are not; a directory of unrouted files is reported once.
#include "overlay/unrouted_content.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "overlay/markers.h"
#include "route_rules.h"
#include "scratch_dir.h"

namespace detourfs {
namespace {

class UnroutedContentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (trusted.* xattrs, mknod)";
    ASSERT_TRUE(dir_.ok());
  }
  void Make(const std::string& rel, bool is_dir) {
    const std::string p = dir_.path() + "/" + rel;
    if (is_dir) {
      ASSERT_EQ(::mkdir(p.c_str(), 0755), 0) << rel;
    } else {
      int fd = ::open(p.c_str(), O_CREAT | O_WRONLY, 0644);
      ASSERT_GE(fd, 0) << rel;
      ::close(fd);
    }
  }
  void Whiteout(const std::string& dir, const char* name) {
    int fd = ::open((dir_.path() + "/" + dir).c_str(), O_PATH | O_DIRECTORY);
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(markers::MakeWhiteout(fd, name).ok());
    ::close(fd);
  }
  std::vector<UnroutedEntry> Find(TierId tier) {
    int fd = ::open(dir_.path().c_str(), O_PATH | O_DIRECTORY);
    EXPECT_GE(fd, 0);
    Result<std::vector<UnroutedEntry>> found = FindUnroutedContent(fd, tier, router_);
    ::close(fd);
    EXPECT_TRUE(found.ok());
    if (!found.ok()) return {};
    std::sort(found->begin(), found->end(),
              [](const UnroutedEntry& a, const UnroutedEntry& b) { return a.path < b.path; });
    return std::move(*found);
  }
  static std::vector<std::string> Paths(const std::vector<UnroutedEntry>& entries) {
    std::vector<std::string> paths;
    for (const UnroutedEntry& e : entries) paths.push_back(e.path);
    return paths;
  }

  ScratchDir dir_{"/dev/shm/detourfs-unrouted"};
  Router router_{{
      MakeRule({"**/node_modules"}, TierId::kMemory, Persist::kBatch, 3),  // 0
      MakeRule({"**/dist/"}, TierId::kDisk, Persist::kBatch, 7),           // 1: directories only
      MakeRule({"/.npm"}, TierId::kMemory, Persist::kBatch, 11),           // 2
  }};
};

TEST_F(UnroutedContentTest, WhatTheRulesStillRouteThereIsNotReported) {
  Make("app", true);
  Make("app/node_modules", true);
  Make("app/node_modules/a.js", false);
  Make("app/node_modules/lib", true);
  Make("app/node_modules/lib/dist", true);  // nested: still node_modules' subtree
  Make(".npm", true);
  Make(".npm/index", false);
  Make("old", true);
  Whiteout("old", "node_modules");  // a deleted routed directory
  Make("empty", true);              // scaffolding left behind: nothing to report
  EXPECT_EQ(Paths(Find(TierId::kMemory)), std::vector<std::string>{});
}

TEST_F(UnroutedContentTest, ContentRoutedElsewhereOrNowhereIsReported) {
  Make("app", true);
  Make("app/dist", true);  // routed to disk now
  Make("app/dist/out.js", false);
  Make("app/node_modules", true);  // still memory's
  Make("app/stray.txt", false);    // a file no rule routes
  Make("tools", true);
  Make("tools/cache", true);  // unrouted files beneath: reported as one directory
  Make("tools/cache/x", false);
  Make("tools/cache/y", true);
  Make("tools/cache/y/z", false);
  Make("web", true);
  Whiteout("web", "dist");  // a deletion of a directory routed to disk now
  Whiteout("web", "notes");
  std::vector<UnroutedEntry> found = Find(TierId::kMemory);
  ASSERT_EQ(Paths(found), (std::vector<std::string>{"app/dist", "app/stray.txt", "tools/cache",
                                                    "web/dist", "web/notes"}));
  EXPECT_EQ(found[0].now, TierId::kDisk);
  EXPECT_EQ(found[0].rule_line, 7);
  EXPECT_TRUE(S_ISDIR(found[0].type));
  EXPECT_FALSE(found[0].whiteout);
  EXPECT_EQ(found[1].rule_line, 0);
  EXPECT_TRUE(S_ISREG(found[1].type));
  EXPECT_TRUE(S_ISDIR(found[2].type));
  EXPECT_TRUE(found[3].whiteout);
  EXPECT_EQ(found[3].now, TierId::kDisk);
  EXPECT_TRUE(found[4].whiteout);
  EXPECT_EQ(found[4].rule_line, 0);
}

TEST_F(UnroutedContentTest, ATierNoRuleNamesHasAllItsContentReported) {
  Make("app", true);
  Make("app/node_modules", true);
  Make("app/node_modules/a.js", false);
  EXPECT_EQ(Paths(Find(TierId::kDisk)), std::vector<std::string>{"app/node_modules"});
}

}  // namespace
}  // namespace detourfs
