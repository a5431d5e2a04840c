// Config parsing and validation: the issue's example, defaults, and errors
// that name the line.
#include "config/config.h"

#include <gtest/gtest.h>

#include <string>

namespace detourfs {
namespace {

constexpr const char* kExample = R"(
[tiers.memory]
root = "/run/detourfs/memory"   # a tmpfs
capacity = "16GiB"

[tiers.disk]
root = "/var/lib/detourfs/disk" # node-local disk

[flush]
interval = "30s"

[[route]]
match = "**/node_modules"
tier = "memory"

[[route]]
match = ["**/dist", "**/build"]
tier = "disk"

[[route]]
match = "/.cache"
tier = "memory"
persist = "never"
)";

TEST(ConfigTest, TheDocumentedExampleIsAccepted) {
  Config c;
  Status s = ParseConfig(kExample, "example.toml", &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(c.memory);
  EXPECT_EQ(c.memory->root, "/run/detourfs/memory");
  EXPECT_EQ(c.memory->capacity, uint64_t{16} << 30);
  ASSERT_TRUE(c.disk);
  EXPECT_EQ(c.disk->capacity, 0U);
  EXPECT_EQ(c.flush.interval, std::chrono::seconds(30));
  ASSERT_EQ(c.routes.size(), 3U);
  EXPECT_EQ(c.routes[0].tier, TierId::kMemory);
  EXPECT_EQ(c.routes[0].line, 12);
  EXPECT_EQ(c.routes[0].fallback, (std::vector<TierId>{TierId::kDisk, TierId::kVolume}));
  EXPECT_EQ(c.routes[1].globs.size(), 2U);
  EXPECT_EQ(c.routes[1].fallback, (std::vector<TierId>{TierId::kVolume}));
  EXPECT_EQ(c.routes[2].persist, Persist::kNever);
}

TEST(ConfigTest, EmptyFileMeansPassThrough) {
  Config c;
  ASSERT_TRUE(ParseConfig("", "empty.toml", &c).ok());
  EXPECT_TRUE(c.routes.empty());
  EXPECT_FALSE(c.memory);
  EXPECT_NE(DescribeConfig(c).find("routes: none"), std::string::npos);
}

TEST(ConfigTest, ExplicitFallbackAndWatermarks) {
  Config c;
  Status s = ParseConfig(R"(
[tiers.memory]
root = "/m"
high_watermark = "95%"
low_watermark = 0.5
[tiers.disk]
root = "/d"
[[route]]
match = "x"
tier = "memory"
fallback = ["volume"]
)",
                         "t.toml", &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_DOUBLE_EQ(c.memory->high_watermark, 0.95);
  EXPECT_DOUBLE_EQ(c.memory->low_watermark, 0.5);
  EXPECT_EQ(c.routes[0].fallback, (std::vector<TierId>{TierId::kVolume}));
}

struct BadCase {
  const char* name;
  const char* text;
  const char* expect;  // substring of the message, which starts with "bad.toml:LINE:"
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BadConfigTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfigTest, IsRejectedNamingTheLine) {
  Config c;
  Status s = ParseConfig(GetParam().text, "bad.toml", &c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.ToString().find(GetParam().expect), std::string::npos) << s.ToString();
  EXPECT_EQ(s.ToString().rfind("bad.toml:", 0), 0U) << s.ToString();
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadConfigTest,
    ::testing::Values(
        BadCase{"syntax", "[tiers.memory\nroot = 1", "bad.toml:1:"},
        BadCase{"unknown_top_key", "\n\nmystery = 1", "bad.toml:3: unknown key 'mystery'"},
        BadCase{"unknown_tier_key", "[tiers.memory]\nroot = \"/m\"\nsize = \"1G\"",
                "bad.toml:3: unknown key 'size' in [tiers.memory]"},
        BadCase{"unknown_tier_section", "[tiers.ssd]\nroot = \"/s\"", "unknown key 'ssd'"},
        BadCase{"relative_root", "[tiers.disk]\nroot = \"var/disk\"",
                "bad.toml:2: [tiers.disk] root must be an absolute path"},
        BadCase{"missing_root", "[tiers.disk]\ncapacity = 5", "needs a root"},
        BadCase{"bad_size", "[tiers.memory]\nroot = \"/m\"\ncapacity = \"16 gigs\"",
                "bad.toml:3: [tiers.memory] capacity: unknown size unit"},
        BadCase{"negative_size", "[tiers.memory]\nroot = \"/m\"\ncapacity = -1",
                "must not be negative"},
        BadCase{"watermarks_reversed",
                "[tiers.memory]\nroot = \"/m\"\nhigh_watermark = \"50%\"\nlow_watermark = \"60%\"",
                "low_watermark is above high_watermark"},
        BadCase{"watermark_over_100", "[tiers.memory]\nroot = \"/m\"\nhigh_watermark = \"150%\"",
                "above 100%"},
        BadCase{"bad_duration", "[flush]\ninterval = \"30\"",
                "bad.toml:2: [flush] interval: "
                "duration needs a unit"},
        BadCase{"bad_duration_unit", "[flush]\ninterval = \"3 weeks\"", "unknown duration unit"},
        BadCase{"zero_interval", "[flush]\ninterval = \"0s\"", "must be more than 0"},
        BadCase{"bad_concurrency", "[flush]\nconcurrency = 0", "concurrency must be"},
        BadCase{"bad_verify", "[flush]\nverify = \"yes\"", "verify must be true or false"},
        BadCase{"route_not_array", "route = 5", "route must be an array of tables"},
        BadCase{"route_without_match", "[[route]]\ntier = \"volume\"", "needs match"},
        BadCase{"route_without_tier", "[[route]]\nmatch = \"x\"", "needs tier"},
        BadCase{"bad_glob",
                "[tiers.memory]\nroot = \"/m\"\n[[route]]\nmatch = [\"ok\", \"[oops\"]\n"
                "tier = \"memory\"",
                "bad.toml:4: [[route]] #1: bad glob '[oops': unclosed '['"},
        BadCase{"unknown_tier", "[[route]]\nmatch = \"x\"\ntier = \"ssd\"",
                "bad.toml:3: unknown tier 'ssd'"},
        BadCase{"unconfigured_tier", "[[route]]\nmatch = \"x\"\ntier = \"memory\"",
                "names tier 'memory', which has no [tiers.memory] section"},
        BadCase{"bad_persist",
                "[tiers.memory]\nroot = \"/m\"\n[[route]]\nmatch = \"x\"\ntier = \"memory\"\n"
                "persist = \"sometimes\"",
                "bad.toml:6: [[route]] #1 persist must be \"batch\" or \"never\""},
        BadCase{"fallback_repeats",
                "[tiers.memory]\nroot = \"/m\"\n[[route]]\nmatch = \"x\"\ntier = \"memory\"\n"
                "fallback = [\"memory\"]",
                "fallback repeats tier 'memory'"},
        BadCase{"fallback_upwards",
                "[tiers.memory]\nroot = \"/m\"\n[tiers.disk]\nroot = \"/d\"\n[[route]]\n"
                "match = \"x\"\ntier = \"disk\"\nfallback = [\"memory\"]",
                "bad.toml:8: [[route]] #1 fallback cannot go from 'disk' to 'memory'"},
        BadCase{"fallback_past_the_volume",
                "[tiers.memory]\nroot = \"/m\"\n[tiers.disk]\nroot = \"/d\"\n[[route]]\n"
                "match = \"x\"\ntier = \"memory\"\nfallback = [\"volume\", \"disk\"]",
                "fallback cannot go from 'volume' to 'disk'"},
        BadCase{"match_wrong_type", "[[route]]\nmatch = 3\ntier = \"volume\"",
                "match (a string or a list of strings) must be a string"},
        BadCase{"empty_match_list", "[[route]]\nmatch = []\ntier = \"volume\"",
                "match must not be empty"},
        BadCase{"unknown_route_key", "[[route]]\nmatch = \"x\"\ntier = \"volume\"\nprio = 1",
                "bad.toml:4: unknown key 'prio' in [[route]] #1"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return std::string(info.param.name); });

Config WithRoots(const std::string& memory, const std::string& disk) {
  Config c;
  std::string text =
      "[tiers.memory]\nroot = \"" + memory + "\"\n[tiers.disk]\nroot = \"" + disk + "\"\n";
  EXPECT_TRUE(ParseConfig(text, "p.toml", &c).ok());
  return c;
}

TEST(ConfigPlacementTest, TierRootsOutsideTheMountAndApartAreFine) {
  EXPECT_TRUE(CheckPlacement(WithRoots("/run/m", "/var/d"), "/home/coder").ok());
}

TEST(ConfigPlacementTest, TierInsideTheMountpointIsRejected) {
  Status s = CheckPlacement(WithRoots("/home/coder/.tier", "/var/d"), "/home/coder/");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.ToString().find("p.toml:1: [tiers.memory] root '/home/coder/.tier' is inside the "
                              "mountpoint"),
            std::string::npos)
      << s.ToString();
  EXPECT_FALSE(CheckPlacement(WithRoots("/home/coder", "/var/d"), "/home/coder").ok());
  EXPECT_FALSE(CheckPlacement(WithRoots("/home/./coder/../coder/x", "/var/d"), "/home/coder").ok());
}

TEST(ConfigPlacementTest, TierContainingTheMountpointIsRejected) {
  EXPECT_FALSE(CheckPlacement(WithRoots("/run/m", "/home"), "/home/coder").ok());
}

TEST(ConfigPlacementTest, OverlappingTierRootsAreRejected) {
  Status s = CheckPlacement(WithRoots("/srv/tiers", "/srv/tiers/disk"), "/home/coder");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.ToString().find("overlaps"), std::string::npos) << s.ToString();
  // A shared prefix of characters is not an overlap.
  EXPECT_TRUE(CheckPlacement(WithRoots("/srv/tier", "/srv/tier2"), "/home/coder").ok());
}

TEST(ConfigExplainTest, SaysWhichRuleAndWhy) {
  Config c;
  ASSERT_TRUE(ParseConfig(kExample, "example.toml", &c).ok());
  std::string e = ExplainRoute(c, "/app/node_modules/react/index.js", false);
  EXPECT_NE(e.find("memory tier, persist batch"), std::string::npos) << e;
  EXPECT_NE(e.find("rule 1 (example.toml:12) glob '**/node_modules'"), std::string::npos) << e;
  EXPECT_NE(e.find("its parent /app/node_modules"), std::string::npos) << e;
  EXPECT_NE(e.find("memory -> disk -> volume"), std::string::npos) << e;
  e = ExplainRoute(c, "src/app.ts", false);
  EXPECT_NE(e.find("volume (pass-through)"), std::string::npos) << e;
  e = ExplainRoute(c, ".cache", true);
  EXPECT_NE(e.find("persist never"), std::string::npos) << e;
  EXPECT_NE(e.find("the path itself"), std::string::npos) << e;
}

TEST(ConfigDescribeTest, ListsTiersFlushAndRules) {
  Config c;
  ASSERT_TRUE(ParseConfig(kExample, "example.toml", &c).ok());
  std::string d = DescribeConfig(c);
  EXPECT_NE(d.find("tier memory: root /run/detourfs/memory, capacity 16 GiB"), std::string::npos)
      << d;
  EXPECT_NE(d.find("flush: every 30s"), std::string::npos) << d;
  EXPECT_NE(d.find("route 2 (line 16): **/dist, **/build -> disk -> volume, persist batch"),
            std::string::npos)
      << d;
}

}  // namespace
}  // namespace detourfs
