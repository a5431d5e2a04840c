// Glob syntax and matching: a table of gitignore-style cases.
#include "route/glob.h"

#include <gtest/gtest.h>

#include <string>

namespace detourfs {
namespace {

struct Case {
  const char* pattern;
  const char* path;
  bool is_dir;
  bool expect;
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  return os << "'" << c.pattern << "' vs '" << c.path << "'" << (c.is_dir ? "/" : "") << " -> "
            << c.expect;
}

class GlobCaseTest : public ::testing::TestWithParam<Case> {};

TEST_P(GlobCaseTest, Matches) {
  const Case& c = GetParam();
  Glob glob;
  ASSERT_TRUE(Glob::Compile(c.pattern, &glob).ok()) << c.pattern;
  EXPECT_EQ(glob.Matches(c.path, c.is_dir), c.expect) << c;
}

constexpr bool kDir = true;
constexpr bool kFile = false;

INSTANTIATE_TEST_SUITE_P(
    Table, GlobCaseTest,
    ::testing::Values(
        // A bare name matches at any depth.
        Case{"node_modules", "node_modules", kDir, true},
        Case{"node_modules", "app/node_modules", kDir, true},
        Case{"node_modules", "a/b/c/node_modules", kDir, true},
        Case{"node_modules", "node_modules_old", kDir, false},
        Case{"node_modules", "my_node_modules", kDir, false},
        Case{"node_modules", "node_modules/x", kFile, false},  // the subtree is the router's job
        // "**/" prefix: zero or more directories.
        Case{"**/node_modules", "node_modules", kDir, true},
        Case{"**/node_modules", "x/y/node_modules", kDir, true},
        Case{"**/dist", "dist", kFile, true},
        // Anchors: a leading slash, or a slash in the middle.
        Case{"/.cache", ".cache", kDir, true}, Case{"/.cache", "x/.cache", kDir, false},
        Case{".local/share/pnpm/store", ".local/share/pnpm/store", kDir, true},
        Case{".local/share/pnpm/store", "x/.local/share/pnpm/store", kDir, false},
        Case{"/a/b", "a/b", kFile, true}, Case{"/a/b", "a/b/c", kFile, false},
        // "**" in the middle: zero or more components.
        Case{"a/**/b", "a/b", kDir, true}, Case{"a/**/b", "a/x/b", kDir, true},
        Case{"a/**/b", "a/x/y/z/b", kDir, true}, Case{"a/**/b", "a/x/y/z/c", kDir, false},
        Case{"a/**/b", "x/a/b", kDir, false},
        // Trailing "/**": everything inside, not the directory itself.
        Case{"build/**", "build/x", kFile, true}, Case{"build/**", "build/x/y", kFile, true},
        Case{"build/**", "build", kDir, false},
        // A lone "**" matches everything.
        Case{"**", "anything", kFile, true}, Case{"**", "a/b/c", kFile, true},
        // Several "**".
        Case{"**/src/**/gen", "p/src/q/r/gen", kDir, true},
        Case{"**/src/**/gen", "src/gen", kDir, true},
        Case{"**/src/**/gen", "p/src/q/r/gen/x", kDir, false},
        // "*" and "?" stay inside one component.
        Case{"*.log", "x.log", kFile, true}, Case{"*.log", "a/b/x.log", kFile, true},
        Case{"/*.log", "a/x.log", kFile, false}, Case{"a/*", "a/b", kFile, true},
        Case{"a/*", "a/b/c", kFile, false},
        Case{"*", ".hidden", kFile, true},  // like gitignore, '*' matches a leading dot
        Case{"?.txt", "a.txt", kFile, true}, Case{"?.txt", "ab.txt", kFile, false},
        Case{"?.txt", "\xc3\xa9.txt", kFile, true},  // '?' is one UTF-8 character
        Case{".next*", ".next-cache", kDir, true}, Case{"a*b*c", "aXbYbZc", kFile, true},
        Case{"a*b*c", "aXbYbZ", kFile, false},
        // Character classes.
        Case{"[abc].js", "b.js", kFile, true}, Case{"[abc].js", "d.js", kFile, false},
        Case{"[a-c]x", "bx", kFile, true}, Case{"[!a-c]x", "bx", kFile, false},
        Case{"[^a-c]x", "dx", kFile, true}, Case{"[]]", "]", kFile, true},
        Case{"[a-]", "-", kFile, true}, Case{"v[[:digit:]]", "v7", kFile, true},
        Case{"v[[:digit:]]", "vx", kFile, false},
        // Escapes make wildcard characters literal.
        Case{"\\*", "*", kFile, true}, Case{"\\*", "x", kFile, false},
        Case{"a\\?b", "a?b", kFile, true},
        // Directory-only patterns.
        Case{"target/", "target", kDir, true}, Case{"target/", "target", kFile, false},
        Case{"target/", "x/target", kDir, true}, Case{"/out/", "out", kDir, true},
        Case{"/out/", "out", kFile, false}));

TEST(GlobTest, AnchoringIsReported) {
  Glob g;
  ASSERT_TRUE(Glob::Compile("node_modules", &g).ok());
  EXPECT_FALSE(g.anchored());
  ASSERT_TRUE(Glob::Compile("/x", &g).ok());
  EXPECT_TRUE(g.anchored());
  ASSERT_TRUE(Glob::Compile("a/b", &g).ok());
  EXPECT_TRUE(g.anchored());
  ASSERT_TRUE(Glob::Compile("dir/", &g).ok());
  EXPECT_FALSE(g.anchored());
  EXPECT_TRUE(g.dir_only());
}

class BadGlobTest : public ::testing::TestWithParam<const char*> {};

TEST_P(BadGlobTest, IsRejectedWithAReason) {
  Glob g;
  Status s = Glob::Compile(GetParam(), &g);
  ASSERT_FALSE(s.ok()) << GetParam();
  EXPECT_NE(s.ToString().find("bad glob"), std::string::npos) << s.ToString();
}

INSTANTIATE_TEST_SUITE_P(Table, BadGlobTest,
                         ::testing::Values("", "/", "//", "a//b", "[abc", "a[", "x\\", "[z-a]",
                                           "[[:nope:]]", "a/./b", "../x", "a/..",
                                           "[[:alpha:", "[[.a.]]", "[[=a=]]", "[a=..-[=]",
                                           "[.-[.a.]]", "[a-[:alpha:]]"));

TEST(GlobTest, LongPathsWithManyStarsStayFast) {
  // Greedy matching: no exponential backtracking on adversarial patterns.
  Glob g;
  ASSERT_TRUE(Glob::Compile("**/a/**/a/**/a/**/a/**/b", &g).ok());
  std::string path;
  for (int i = 0; i < 2000; ++i) path += "a/";
  path += "c";
  EXPECT_FALSE(g.Matches(path, false));
  EXPECT_TRUE(WildcardMatches("*a*a*a*a*a*a*b", std::string(4000, 'a') + "b"));
  EXPECT_FALSE(WildcardMatches("*a*a*a*a*a*a*b", std::string(4000, 'a')));
}

TEST(GlobTest, SplitPathSkipsEmptyComponents) {
  EXPECT_EQ(SplitPath("a//b/"), (std::vector<std::string_view>{"a", "b"}));
  EXPECT_TRUE(SplitPath("").empty());
}

}  // namespace
}  // namespace detourfs
