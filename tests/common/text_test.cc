#include "common/text.h"

#include <gtest/gtest.h>

namespace volguard {
namespace {

TEST(DurationTest, ParsesUnits) {
  EXPECT_EQ(parse_duration("30s")->count(), 30);
  EXPECT_EQ(parse_duration("15m")->count(), 900);
  EXPECT_EQ(parse_duration("24h")->count(), 86400);
  EXPECT_EQ(parse_duration("7d")->count(), 7 * 86400);
  EXPECT_EQ(parse_duration("1y")->count(), 365 * 86400);
  EXPECT_EQ(parse_duration("0")->count(), 0);
  for (const char* bad : {"", "h", "-1s", "1w", "1.5h", "1h30m", "99999999999999999999y"}) {
    EXPECT_FALSE(parse_duration(bad).is_ok()) << bad;
  }
}

TEST(Base64UrlTest, RoundTripAndStrictness) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\x00"}) {
    EXPECT_EQ(base64url_decode(base64url_encode(s)).value(), s);
  }
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_FALSE(base64url_decode("Zm9v=").has_value());   // padding
  EXPECT_FALSE(base64url_decode("Zm+v").has_value());    // standard alphabet
  EXPECT_FALSE(base64url_decode("Zm 9v").has_value());   // whitespace
  EXPECT_FALSE(base64url_decode("Z").has_value());       // impossible length
  EXPECT_FALSE(base64url_decode("Zh").has_value());      // non-zero trailing bits
  EXPECT_TRUE(base64url_decode("Zg").has_value());
}

TEST(TextTest, Rfc3339) { EXPECT_EQ(rfc3339(0), "1970-01-01T00:00:00Z"); }

}  // namespace
}  // namespace volguard
