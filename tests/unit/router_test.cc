// Router precedence: first rule in file order, decided at the shortest
// matching prefix, subtree coverage.
#include "route/router.h"

#include <gtest/gtest.h>

#include "route_rules.h"

namespace detourfs {
namespace {

RouteRule Rule(std::initializer_list<const char*> patterns, TierId tier,
               Persist persist = Persist::kBatch) {
  return MakeRule(patterns, tier, persist);
}

class RouterTest : public ::testing::Test {
 protected:
  Router router_{{
      Rule({"**/node_modules"}, TierId::kMemory),           // 0
      Rule({"**/dist", "**/build"}, TierId::kDisk),         // 1
      Rule({"/.cache"}, TierId::kMemory, Persist::kNever),  // 2
      Rule({"/keep/build"}, TierId::kVolume),               // 3: too late for build
      Rule({"/work/**/out/"}, TierId::kDisk),               // 4
  }};
};

TEST_F(RouterTest, UnmatchedPathsPassThrough) {
  EXPECT_FALSE(router_.Route("src/main.c", false).routed());
  EXPECT_FALSE(router_.Route("notes.txt", false).routed());
}

TEST_F(RouterTest, RuleCoversTheWholeSubtree) {
  RouteDecision d = router_.Route("app/node_modules/react/index.js", false);
  ASSERT_TRUE(d.routed());
  EXPECT_EQ(d.rule_index, 0U);
  EXPECT_EQ(d.routed_root, "app/node_modules");
  EXPECT_EQ(d.rule->tier, TierId::kMemory);
}

TEST_F(RouterTest, NestedMatchDoesNotReRoute) {
  // node_modules/pkg/dist would match rule 1, but its ancestor matched rule 0.
  RouteDecision d = router_.Route("node_modules/pkg/dist/x.js", false);
  EXPECT_EQ(d.rule_index, 0U);
  EXPECT_EQ(d.routed_root, "node_modules");
  // And the other way round: dist first, node_modules inside it stays on disk.
  d = router_.Route("dist/node_modules/a", false);
  EXPECT_EQ(d.rule_index, 1U);
  EXPECT_EQ(d.routed_root, "dist");
}

TEST_F(RouterTest, FirstRuleInFileOrderWins) {
  // /keep/build matches rules 1 and 3: rule 1 comes first.
  RouteDecision d = router_.Route("keep/build", true);
  EXPECT_EQ(d.rule_index, 1U);
  EXPECT_EQ(d.glob_index, 1U);
}

TEST_F(RouterTest, AnchoredRuleOnlyAtTheRoot) {
  RouteDecision d = router_.Route(".cache/pip/x", false);
  ASSERT_TRUE(d.routed());
  EXPECT_EQ(d.rule->persist, Persist::kNever);
  EXPECT_FALSE(router_.Route("proj/.cache/x", false).routed());
}

TEST_F(RouterTest, DirectoryOnlyRuleIgnoresAFileButRoutesADirectorysContents) {
  EXPECT_FALSE(router_.Route("work/a/out", false).routed());   // a file named out
  EXPECT_TRUE(router_.Route("work/a/out", true).routed());     // a directory
  EXPECT_TRUE(router_.Route("work/a/out/f", false).routed());  // inside it: out is a directory
}

TEST_F(RouterTest, MatchExactLooksAtTheWholePathOnly) {
  size_t rule = 99;
  size_t glob = 99;
  EXPECT_EQ(router_.MatchExact({"a", "build"}, true, &rule, &glob), &router_.rules()[1]);
  EXPECT_EQ(rule, 1U);
  EXPECT_EQ(glob, 1U);
  EXPECT_EQ(router_.MatchExact({"a", "build", "x"}, false, nullptr, nullptr), nullptr);
}

TEST(RouterEmptyTest, NoRulesNothingRouted) {
  Router r;
  EXPECT_TRUE(r.empty());
  EXPECT_FALSE(r.Route("node_modules", true).routed());
}

}  // namespace
}  // namespace detourfs
