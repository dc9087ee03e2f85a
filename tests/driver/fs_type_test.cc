#include <gtest/gtest.h>

#include "driver/driver.h"

namespace volguard::driver {
namespace {

TEST(FsNameTest, RoundTrips) {
  EXPECT_STREQ(fs_name(FsType::kExt4), "ext4");
  EXPECT_STREQ(fs_name(FsType::kXfs), "xfs");
  EXPECT_EQ(*parse_fs("ext4"), FsType::kExt4);
  EXPECT_EQ(*parse_fs("XFS"), FsType::kXfs);
  auto bad = parse_fs("btrfs");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("btrfs"), std::string::npos);
}

// One figure for the driver (which refuses less) and the CSI controller (which provisions at least
// this much).
TEST(FsNameTest, SmallestVolumes) {
  EXPECT_EQ(min_volume_size(FsType::kExt4), uint64_t{16} << 20);
  EXPECT_EQ(min_volume_size(FsType::kXfs), uint64_t{300} << 20);
}

// The driver's callers (service, CLI) name the one size syntax of common/size.h as driver::.
TEST(DriverSizeTest, IsTheCommonParser) {
  EXPECT_EQ(*driver::parse_size("10Gi"), uint64_t{10} << 30);
  EXPECT_EQ(driver::format_size(uint64_t{512} << 20), "512M");
}

}  // namespace
}  // namespace volguard::driver
