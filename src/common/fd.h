// An owned file descriptor, shared by every layer that opens files: an fd closed on every path,
// including early returns, without a ::close() before each of them.
#pragma once

#include <utility>

namespace volguard {

// Closes on destruction; move-only so that every fd has exactly one owner.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  // Closes the fd held (if any) and takes `fd`.
  void reset(int fd = -1);
  // Gives up ownership (e.g. to fdopendir, which closes it with the DIR).
  [[nodiscard]] int release() { return std::exchange(fd_, -1); }
  // Closes now and returns the errno close(2) gives, 0 on success (it can carry a deferred
  // write error, which a destructor would lose).
  int close_checked();

 private:
  int fd_ = -1;
};

}  // namespace volguard
