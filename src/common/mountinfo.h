// /proc/<pid>/mountinfo (proc(5)), read fresh by whoever needs to know what is mounted where:
// the driver (which mounts belong to a loop device) and the CSI node (is a path a mount point).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace volguard {

// One line: "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue".
// Paths and the source are unescaped; everything is as the kernel wrote it otherwise.
struct MountInfo {
  uint64_t mount_id = 0;
  uint64_t parent_id = 0;
  std::string devnum;                        // "major:minor" of the filesystem, e.g. "7:3"
  std::string root;                          // the directory of the filesystem that is mounted here
  std::string mount_point;                   // where it is mounted
  std::string options;                       // per-mount options, e.g. "rw,noatime"
  std::vector<std::string> optional_fields;  // "shared:1", "master:2", ... (often none)
  std::string fs_type;                       // "ext4", "fuse.sshfs", ...
  std::string source;                        // "/dev/loop3", "none", ...
  std::string super_options;                 // per-superblock options
};

// Decodes the \ooo octal escapes the kernel writes for space (\040), tab (\011), newline (\012)
// and backslash (\134) in paths; any other byte, and a backslash not followed by three octal
// digits, is kept as it is.
std::string unescape_mountinfo(std::string_view field);

// Every well-formed line of mountinfo `text`, in order. A malformed line (too few fields, ids or
// devnum not numbers, no " - " separator, nothing after it) is skipped: the rest still counts.
std::vector<MountInfo> parse_mountinfo(std::string_view text);

// parse_mountinfo of /proc/self/mountinfo (or `path`); empty when it cannot be read.
std::vector<MountInfo> read_mountinfo(const std::string& path = "/proc/self/mountinfo");

}  // namespace volguard
