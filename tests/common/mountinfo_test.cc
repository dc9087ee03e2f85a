#include "common/mountinfo.h"

#include <gtest/gtest.h>

namespace volguard {
namespace {

TEST(MountinfoTest, ParsesEveryField) {
  const auto mounts = parse_mountinfo(
      "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
      "25 1 7:3 / /var/lib/volguard/mnt rw,relatime shared:5 master:2 - ext4 /dev/loop3 rw\n"
      "26 1 0:22 / /proc rw,nosuid - proc proc rw\n");
  ASSERT_EQ(mounts.size(), 3u);
  const MountInfo& m = mounts[0];
  EXPECT_EQ(m.mount_id, 36u);
  EXPECT_EQ(m.parent_id, 35u);
  EXPECT_EQ(m.devnum, "98:0");
  EXPECT_EQ(m.root, "/mnt1");
  EXPECT_EQ(m.mount_point, "/mnt2");
  EXPECT_EQ(m.options, "rw,noatime");
  EXPECT_EQ(m.optional_fields, std::vector<std::string>{"master:1"});
  EXPECT_EQ(m.fs_type, "ext3");
  EXPECT_EQ(m.source, "/dev/root");
  EXPECT_EQ(m.super_options, "rw,errors=continue");
  EXPECT_EQ(mounts[1].optional_fields, (std::vector<std::string>{"shared:5", "master:2"}));
  EXPECT_EQ(mounts[1].source, "/dev/loop3");
  EXPECT_EQ(mounts[1].devnum, "7:3");
  EXPECT_TRUE(mounts[2].optional_fields.empty());  // no optional fields: "-" right after options
  EXPECT_EQ(mounts[2].fs_type, "proc");
}

// The kernel writes space, tab, newline and backslash in paths as \ooo.
TEST(MountinfoTest, UnescapesOctalEscapes) {
  EXPECT_EQ(unescape_mountinfo("/mnt/a\\040b\\011c\\012d\\134e"), "/mnt/a b\tc\nd\\e");
  EXPECT_EQ(unescape_mountinfo("plain"), "plain");
  // Not an escape: kept as written.
  EXPECT_EQ(unescape_mountinfo("a\\09b"), "a\\09b");
  EXPECT_EQ(unescape_mountinfo("end\\04"), "end\\04");
  EXPECT_EQ(unescape_mountinfo("\\"), "\\");
  const auto mounts = parse_mountinfo(
      "40 1 7:1 / /var/lib/kubelet/pods/x/my\\040volume rw - ext4 /dev/loop1\\040(deleted) rw\n");
  ASSERT_EQ(mounts.size(), 1u);
  EXPECT_EQ(mounts[0].mount_point, "/var/lib/kubelet/pods/x/my volume");
  EXPECT_EQ(mounts[0].source, "/dev/loop1 (deleted)");
}

TEST(MountinfoTest, SkipsMalformedLinesAndKeepsTheRest) {
  const std::string good = "26 1 0:22 / /proc rw - proc proc rw";
  const auto mounts = parse_mountinfo(
      "\n"
      "garbage\n"
      "1 2 3\n"
      "x 1 0:22 / /a rw - proc proc rw\n"          // id not a number
      "26 y 0:22 / /b rw - proc proc rw\n"         // parent not a number
      "26 1 022 / /c rw - proc proc rw\n"          // devnum without ':'
      "26 1 0:22 / /d rw shared:1 proc proc rw\n"  // no separator
      "26 1 0:22 / /e rw - proc proc\n"            // nothing after the source
      "26 1 0:22 / /f rw shared:1 - proc\n" +
      good + "\n" + good);  // the last line may lack its newline
  ASSERT_EQ(mounts.size(), 2u);
  EXPECT_EQ(mounts[0].mount_point, "/proc");
  EXPECT_EQ(mounts[1].mount_point, "/proc");
  EXPECT_TRUE(parse_mountinfo("").empty());
}

TEST(MountinfoTest, ReadsThisProcess) {
  const auto mounts = read_mountinfo();
  ASSERT_FALSE(mounts.empty());
  bool root = false;
  for (const auto& m : mounts) root |= m.mount_point == "/";
  EXPECT_TRUE(root);
  EXPECT_TRUE(read_mountinfo("/nonexistent/mountinfo").empty());
}

}  // namespace
}  // namespace volguard
