#include "common/fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace volguard {
namespace {

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(UniqueFdTest, ClosesOnceAndMovesOwnership) {
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(raw, 0);
  {
    UniqueFd a(raw);
    EXPECT_TRUE(a);
    EXPECT_EQ(a.get(), raw);
    UniqueFd b(std::move(a));
    EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
    EXPECT_EQ(b.get(), raw);
    UniqueFd c;
    EXPECT_FALSE(c);
    c = std::move(b);
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_FALSE(is_open(raw));
}

TEST(UniqueFdTest, ResetReleaseAndCloseChecked) {
  UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  const int first = fd.get();
  fd.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  EXPECT_NE(fd.get(), first);  // opened before the old one was closed
  EXPECT_FALSE(is_open(first));
  const int released = fd.release();
  EXPECT_FALSE(fd);
  EXPECT_TRUE(is_open(released));
  ::close(released);

  UniqueFd ok(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  EXPECT_EQ(ok.close_checked(), 0);
  EXPECT_FALSE(ok);
  EXPECT_EQ(ok.close_checked(), 0);  // nothing left to close

  // close(2)'s error is returned, not lost: a number no file was ever opened on gives EBADF.
  UniqueFd stale(1'000'000);
  EXPECT_EQ(stale.close_checked(), EBADF);
}

}  // namespace
}  // namespace volguard
