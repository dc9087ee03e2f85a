#include <gtest/gtest.h>

#include "common/size.h"

namespace volguard {
namespace {

constexpr uint64_t kKiB = 1024, kMiB = kKiB << 10, kGiB = kMiB << 10, kTiB = kGiB << 10;

TEST(ParseSizeTest, AcceptsUnitsAndSuffixes) {
  const struct {
    const char* text;
    uint64_t bytes;
  } cases[] = {
      {"1073741824", kGiB}, {"1", 1},          {"100B", 100},        {"100K", 100 * kKiB},
      {"512M", 512 * kMiB}, {"1G", kGiB},      {"10GiB", 10 * kGiB}, {"10gib", 10 * kGiB},
      {"3Gi", 3 * kGiB},    {"2GB", 2 * kGiB}, {"4t", 4 * kTiB},     {"64m", 64 * kMiB},
  };
  for (const auto& c : cases) {
    auto r = parse_size(c.text);
    ASSERT_TRUE(r.is_ok()) << c.text << ": " << r.status().to_string();
    EXPECT_EQ(*r, c.bytes) << c.text;
  }
}

TEST(ParseSizeTest, RefusesGarbageZeroNegativeAndOverflow) {
  for (const char* bad : {"",          "G",
                          "abc",       "0",
                          "0G",        "-1",
                          "-1G",       "+1G",
                          "1.5G",      " 1G",
                          "1G ",       "1 G",
                          "1X",        "1iB",
                          "1Gx",       "1GiBB",
                          "1KK",       "99999999999999999999999X"}) {
    auto r = parse_size(bad);
    ASSERT_FALSE(r.is_ok()) << bad << " parsed as " << *r;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find(std::string("\"") + bad + "\""), std::string::npos)
        << r.status().message();
  }
}

// 2^63 and above cannot be a file size (off_t) nor a stored INTEGER: OUT_OF_RANGE, whether the
// number fits in 64 bits or not, never a wrapped small value.
TEST(ParseSizeTest, TooLargeIsOutOfRange) {
  for (const char* big : {"9223372036854775808", "18446744073709551615", "18446744073709551616",
                          "8388608T", "16777216T", "99999999999999999999K",
                          "340282366920938463463374607431768211456"}) {
    auto r = parse_size(big);
    ASSERT_FALSE(r.is_ok()) << big << " parsed as " << *r;
    EXPECT_EQ(r.status().code(), Code::kOutOfRange) << big;
    EXPECT_EQ(r.status().reason(), "size_out_of_range") << big;
    EXPECT_NE(r.status().message().find(big), std::string::npos) << r.status().message();
  }
  // The largest value that fits is still accepted.
  EXPECT_EQ(*parse_size("9223372036854775807"), uint64_t{INT64_MAX});
  EXPECT_EQ(*parse_size("8388607T"), 8388607 * kTiB);
}

// One meaning everywhere: a unit is a power of 1024 however it is written, so "1G", "1Gi", "1GiB"
// and "1GB" are one size (the config file's limits and the API's volume sizes agree).
TEST(ParseSizeTest, EverySpellingOfAUnitIsThePowerOf1024) {
  for (const char* g : {"1G", "1g", "1Gi", "1gi", "1GiB", "1gib", "1GB", "1gb"}) {
    EXPECT_EQ(*parse_size(g), kGiB) << g;
  }
  for (const char* k : {"4K", "4Ki", "4KiB", "4KB", "4096", "4096B"}) {
    EXPECT_EQ(*parse_size(k), 4 * kKiB) << k;
  }
  EXPECT_EQ(*parse_size("16T"), 16 * kTiB);
  // A view is read to its end, not to a terminating NUL.
  EXPECT_EQ(*parse_size(std::string_view("512Mtrailing").substr(0, 4)), 512 * kMiB);
  const auto zero = parse_size("0");
  ASSERT_FALSE(zero.is_ok());
  EXPECT_EQ(zero.status().reason(), "invalid_size");
}

TEST(FormatSizeTest, PicksLargestExactUnit) {
  EXPECT_EQ(format_size(0), "0");
  EXPECT_EQ(format_size(100), "100");
  EXPECT_EQ(format_size(1536 * kKiB), "1536K");
  EXPECT_EQ(format_size(512 * kMiB), "512M");
  EXPECT_EQ(format_size(kGiB), "1G");
  EXPECT_EQ(format_size(3 * kTiB), "3T");
  EXPECT_EQ(format_size(kGiB + 1), "1073741825");
  for (uint64_t v : {uint64_t{1}, 4096 * kKiB, 300 * kMiB, 7 * kTiB, kGiB + kKiB}) {
    EXPECT_EQ(*parse_size(format_size(v)), v) << v;
  }
}

}  // namespace
}  // namespace volguard
