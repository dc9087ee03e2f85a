// The driver tests' shared ground: a mkdtemp folder in /tmp holding the driver's root and the
// mount points, torn down without the driver (a driver bug cannot leave mounts or loop devices
// behind), and small file helpers.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mount.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/mountinfo.h"
#include "driver/driver.h"
#include "driver/sys.h"

namespace volguard::driver::testing {

inline constexpr uint64_t kMiB = uint64_t{1} << 20;

#define ASSERT_OK(expr)                                         \
  do {                                                          \
    const Status _s = (expr);                                   \
    ASSERT_TRUE(_s.is_ok()) << #expr << ": " << _s.to_string(); \
  } while (0)

#define EXPECT_CODE(expr, code_)                                    \
  do {                                                              \
    const Status _s = (expr);                                       \
    EXPECT_EQ(_s.code(), code_) << #expr << ": " << _s.to_string(); \
  } while (0)

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void spew(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

class DriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/volguard-driver-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = std::filesystem::canonical(templ).string();
    root_ = dir_ + "/root";
    auto d = open_local_driver(root_);
    ASSERT_TRUE(d.is_ok()) << d.status().to_string();
    driver_ = std::move(*d);
  }

  void TearDown() override {
    if (dir_.empty()) return;
    std::vector<std::string> points;
    for (const auto& m : read_mountinfo()) {
      if (m.mount_point.rfind(dir_ + "/", 0) == 0) points.push_back(m.mount_point);
    }
    for (auto it = points.rbegin(); it != points.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/sys/block", ec)) {
      std::ifstream bf(e.path() / "loop" / "backing_file");
      std::string backing;
      if (std::getline(bf, backing) && backing.rfind(dir_ + "/", 0) == 0) {
        (void)run_command({"losetup", "-d", "/dev/" + e.path().filename().string()});
      }
    }
    std::filesystem::remove_all(dir_, ec);
  }

  std::string mnt(const std::string& name) {
    const std::string p = dir_ + "/mnt-" + name;
    std::filesystem::create_directories(p);
    return p;
  }
  std::string vol_file(const std::string& id) { return root_ + "/volumes/" + id + ".img"; }
  std::string snap_file(const std::string& id) { return root_ + "/snapshots/" + id + ".img"; }

  std::string dir_, root_;
  std::unique_ptr<VolumeDriver> driver_;
};

}  // namespace volguard::driver::testing
