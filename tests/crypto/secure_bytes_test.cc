#include "crypto/secure_bytes.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

namespace volguard::crypto {
namespace {

// No way to print, convert or copy a key by accident: these must not compile.
template <typename T>
concept Streamable = requires(std::ostream& os, const T& v) {
  os << v;
};
static_assert(Streamable<int>);
static_assert(!Streamable<SecureBytes>);
static_assert(!std::is_convertible_v<SecureBytes, std::string>);
static_assert(!std::is_constructible_v<std::string, SecureBytes>);
static_assert(!std::is_convertible_v<std::string, SecureBytes>);
static_assert(!std::is_convertible_v<size_t, SecureBytes>);
static_assert(!std::is_copy_constructible_v<SecureBytes>);
static_assert(!std::is_copy_assignable_v<SecureBytes>);
static_assert(std::is_nothrow_move_constructible_v<SecureBytes>);

bool all_zero(const unsigned char* p, size_t n) {
  return std::all_of(p, p + n, [](unsigned char c) { return c == 0; });
}

// The VmFlags of the mapping of this process that contains `addr` (/proc/self/smaps), or "" if
// none does.
std::string vm_flags_of(const void* addr) {
  std::ifstream smaps("/proc/self/smaps");
  const auto a = reinterpret_cast<uintptr_t>(addr);
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t start = 0, end = 0;
    char dash = 0;
    std::istringstream head(line);
    // A mapping's header line: "start-end perms offset dev inode [path]" in hex.
    if (head >> std::hex >> start >> dash >> end && dash == '-' &&
        line.find(':') > line.find(' ')) {
      inside = a >= start && a < end;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line.substr(8) + " ";
  }
  return "";
}

TEST(SecureBytesTest, StartsZeroedPageAlignedAndExcludedFromCoreDumps) {
  SecureBytes key(64);
  ASSERT_EQ(key.size(), 64u);
  EXPECT_FALSE(key.empty());
  EXPECT_TRUE(all_zero(key.data(), key.size()));
  EXPECT_EQ(
      reinterpret_cast<uintptr_t>(key.data()) % static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE)),
      0u);
  EXPECT_TRUE(key.excluded_from_core_dumps());
  const std::string flags = vm_flags_of(key.data());
  ASSERT_FALSE(flags.empty()) << "no mapping holds the buffer";
  // "dd": do not include in core dumps (MADV_DONTDUMP); "wf": wipe on fork (MADV_WIPEONFORK).
  EXPECT_NE(flags.find(" dd "), std::string::npos) << flags;
  EXPECT_NE(flags.find(" wf "), std::string::npos) << flags;
  // mlock is best effort; what locked() says is what the kernel has ("lo": locked).
  EXPECT_EQ(flags.find(" lo ") != std::string::npos, key.locked()) << flags;
  if (::geteuid() == 0) {
    EXPECT_TRUE(key.locked()) << "root has CAP_IPC_LOCK";
  }
}

TEST(SecureBytesTest, DestructorCleansBeforeUnmapping) {
  static size_t observed_size;
  static bool observed_zero;
  observed_size = 0;
  observed_zero = false;
  secure_bytes_testing::set_release_observer([](const unsigned char* mapping, size_t size) {
    observed_size = size;
    observed_zero = all_zero(mapping, size);
  });
  {
    SecureBytes key(100);
    std::fill(key.data(), key.data() + key.size(), 0xA5);
  }
  secure_bytes_testing::set_release_observer(nullptr);
  EXPECT_EQ(observed_size, static_cast<size_t>(::sysconf(_SC_PAGESIZE)));
  EXPECT_TRUE(observed_zero) << "the destructor unmapped key bytes it had not cleansed";
}

TEST(SecureBytesTest, MoveAssignmentCleansTheReplacedBytes) {
  static bool observed_zero;
  static int releases;
  observed_zero = false;
  releases = 0;
  SecureBytes a(32), b(32);
  std::fill(a.data(), a.data() + a.size(), 0x11);
  std::fill(b.data(), b.data() + b.size(), 0x22);
  const unsigned char* b_data = b.data();
  secure_bytes_testing::set_release_observer([](const unsigned char* mapping, size_t size) {
    ++releases;
    observed_zero = all_zero(mapping, size);
  });
  a = std::move(b);
  secure_bytes_testing::set_release_observer(nullptr);
  EXPECT_EQ(releases, 1);
  EXPECT_TRUE(observed_zero);
  EXPECT_EQ(a.data(), b_data);  // the buffer moved, it was not copied
  EXPECT_EQ(a.data()[0], 0x22);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_EQ(b.data(), nullptr);
  SecureBytes c(std::move(a));
  EXPECT_EQ(c.data(), b_data);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(SecureBytesTest, WipeAndTruncateZero) {
  SecureBytes key(48);
  std::fill(key.data(), key.data() + key.size(), 0xFF);
  key.truncate(16);
  EXPECT_EQ(key.size(), 16u);
  EXPECT_TRUE(std::all_of(key.data(), key.data() + 16, [](unsigned char c) { return c == 0xFF; }));
  // The cut-off bytes are still this buffer's page: they must read zero.
  EXPECT_TRUE(all_zero(key.data() + 16, 32));
  key.truncate(100);  // never grows
  EXPECT_EQ(key.size(), 16u);
  key.wipe();
  EXPECT_EQ(key.size(), 16u);
  EXPECT_TRUE(all_zero(key.data(), 16));
}

TEST(SecureBytesTest, ForkedChildSeesZeros) {
  SecureBytes key(32);
  std::fill(key.data(), key.data() + key.size(), 0x5A);
  if (vm_flags_of(key.data()).find(" wf ") == std::string::npos)
    GTEST_SKIP() << "no MADV_WIPEONFORK";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(all_zero(key.data(), key.size()) ? 0 : 1);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "a forked child could read the key";
  EXPECT_EQ(key.data()[0], 0x5A);  // the parent keeps it
}

TEST(SecureBytesTest, RandomCopyAndConstantTimeEquality) {
  auto a = SecureBytes::random(64);
  auto b = SecureBytes::random(64);
  ASSERT_TRUE(a.is_ok());
  ASSERT_TRUE(b.is_ok());
  EXPECT_FALSE(a->equals(b->span()));
  EXPECT_FALSE(all_zero(a->data(), a->size()));
  SecureBytes c = SecureBytes::copy_of(a->span());
  EXPECT_TRUE(c.equals(a->span()));
  EXPECT_NE(c.data(), a->data());
  c.truncate(63);
  EXPECT_FALSE(c.equals(a->span()));  // a prefix is not equal
  EXPECT_TRUE(SecureBytes::copy_of(std::string_view("abc"))
                  .equals(std::span(reinterpret_cast<const unsigned char*>("abc"), 3)));
  SecureBytes empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_TRUE(empty.equals({}));
  EXPECT_TRUE(SecureBytes(0).empty());
}

}  // namespace
}  // namespace volguard::crypto
