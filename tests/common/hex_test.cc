#include "common/hex.h"

#include <gtest/gtest.h>

#include <set>

namespace volguard {
namespace {

TEST(HexTest, TwoLowercaseDigitsPerByte) {
  EXPECT_EQ(to_hex(std::string_view()), "");
  EXPECT_EQ(to_hex(std::string_view("\x01\xab\xff\x00", 4)), "01abff00");
  const unsigned char raw[] = {0xde, 0xad, 0xbe, 0xef, 0x00, 0x7f};
  EXPECT_EQ(to_hex(raw), "deadbeef007f");
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string hex = to_hex(all);
  ASSERT_EQ(hex.size(), 512u);
  EXPECT_EQ(hex.substr(0, 4), "0001");
  EXPECT_EQ(hex.substr(508), "feff");
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(HexTest, FromHexInvertsToHexAndRefusesAnythingElse) {
  const std::string bytes("\x00\x01\xab\xff\n", 5);
  EXPECT_EQ(from_hex(to_hex(bytes)), bytes);
  EXPECT_EQ(from_hex("ABcd"), std::string("\xab\xcd", 2));
  EXPECT_EQ(from_hex(""), std::string());
  EXPECT_EQ(from_hex("abc"), std::nullopt);   // odd length
  EXPECT_EQ(from_hex("zz"), std::nullopt);    // not a digit
  EXPECT_EQ(from_hex("0x12"), std::nullopt);  // no prefixes
}

TEST(HexTest, RandomHexHasTheLengthAndDoesNotRepeat) {
  EXPECT_EQ(random_hex(0), "");
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string id = random_hex(8);
    ASSERT_EQ(id.size(), 16u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    EXPECT_TRUE(seen.insert(id).second) << id;
  }
}

}  // namespace
}  // namespace volguard
