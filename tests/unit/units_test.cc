// Human units: sizes, durations, fractions, and printing them back.
#include "config/units.h"

#include <gtest/gtest.h>

namespace detourfs {
namespace {

TEST(UnitsTest, Sizes) {
  uint64_t b = 0;
  EXPECT_EQ(ParseSize("16GiB", &b), "");
  EXPECT_EQ(b, uint64_t{16} << 30);
  EXPECT_EQ(ParseSize("512M", &b), "");
  EXPECT_EQ(b, uint64_t{512} << 20);
  EXPECT_EQ(ParseSize("1.5 KiB", &b), "");
  EXPECT_EQ(b, 1536U);
  EXPECT_EQ(ParseSize("2GB", &b), "");
  EXPECT_EQ(b, 2000000000U);
  EXPECT_EQ(ParseSize("4096", &b), "");
  EXPECT_EQ(b, 4096U);
  EXPECT_EQ(ParseSize("7b", &b), "");
  EXPECT_EQ(b, 7U);
  EXPECT_NE(ParseSize("", &b), "");
  EXPECT_NE(ParseSize("GiB", &b), "");
  EXPECT_NE(ParseSize("12 parsecs", &b), "");
  EXPECT_NE(ParseSize("1GiB extra", &b), "");
  EXPECT_NE(ParseSize("99999999999TiB", &b), "");
  EXPECT_NE(ParseSize("-1G", &b), "");
}

TEST(UnitsTest, Durations) {
  std::chrono::milliseconds d{};
  EXPECT_EQ(ParseDuration("30s", &d), "");
  EXPECT_EQ(d, std::chrono::seconds(30));
  EXPECT_EQ(ParseDuration("1m30s", &d), "");
  EXPECT_EQ(d, std::chrono::seconds(90));
  EXPECT_EQ(ParseDuration("250ms", &d), "");
  EXPECT_EQ(d, std::chrono::milliseconds(250));
  EXPECT_EQ(ParseDuration("1.5h", &d), "");
  EXPECT_EQ(d, std::chrono::minutes(90));
  EXPECT_NE(ParseDuration("30", &d), "");
  EXPECT_NE(ParseDuration("5 fortnights", &d), "");
  EXPECT_NE(ParseDuration("", &d), "");
  EXPECT_NE(ParseDuration("1000d", &d), "");
}

TEST(UnitsTest, Fractions) {
  double f = 0;
  EXPECT_EQ(ParseFraction("90%", &f), "");
  EXPECT_DOUBLE_EQ(f, 0.9);
  EXPECT_EQ(ParseFraction("0.25", &f), "");
  EXPECT_DOUBLE_EQ(f, 0.25);
  EXPECT_NE(ParseFraction("101%", &f), "");
  EXPECT_NE(ParseFraction("lots", &f), "");
}

TEST(UnitsTest, PrintsBack) {
  EXPECT_EQ(FormatSize(uint64_t{16} << 30), "16 GiB");
  EXPECT_EQ(FormatSize(1536), "1.50 KiB");
  EXPECT_EQ(FormatSize(12), "12 B");
  EXPECT_EQ(FormatDuration(std::chrono::seconds(90)), "1m30s");
  EXPECT_EQ(FormatDuration(std::chrono::milliseconds(250)), "250ms");
  EXPECT_EQ(FormatDuration(std::chrono::milliseconds(0)), "0s");
}

}  // namespace
}  // namespace detourfs
