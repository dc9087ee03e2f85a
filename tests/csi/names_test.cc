// How CO names become volguard names: no server needed.
#include <gtest/gtest.h>

#include "common/text.h"
#include "csi/internal.h"

namespace volguard::csi {
namespace {

TEST(VolguardNameTest, ValidNamesAreKept) {
  for (const std::string& name :
       std::vector<std::string>{"pvc-0001", "a", "data.v2_x", std::string(kMaxNameLength, 'p')}) {
    EXPECT_EQ(volguard_name(name), name);
  }
}

// A changed name carries the first 8 bytes of the SHA-256 of the original, in hex: the same CO
// name maps to the same volguard name in every release (existing volumes are found again).
TEST(VolguardNameTest, ChangedNamesGetAStableHash) {
  EXPECT_EQ(volguard_name("My Volume/1"), "My-Volume-1-0ed186635ae081ed");
  EXPECT_EQ(volguard_name(".hidden"), "v.hidden-1692419006a88aab");
  const std::string long_name = volguard_name(std::string(200, 'x'));
  EXPECT_EQ(long_name.size(), kMaxNameLength);
  EXPECT_EQ(long_name, std::string(111, 'x') + "-aa20c23e32018340");
  for (const std::string& co :
       std::vector<std::string>{"My Volume/1", ".hidden", std::string(200, 'x'), "-x", "é"}) {
    EXPECT_TRUE(is_valid_name(volguard_name(co))) << co;
  }
  EXPECT_NE(volguard_name("a b"), volguard_name("a/b"));  // both become "a-b" before the hash
}

}  // namespace
}  // namespace volguard::csi
