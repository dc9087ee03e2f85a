// Small system helpers private to the driver: owned file descriptors, running external tools
// without a shell, errno-carrying errors.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace volguard::driver {

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
  void reset(int fd = -1);
  // Closes now and reports the error close(2) gives (it can carry a deferred write error).
  int close_checked();

 private:
  int fd_ = -1;
};

// "<what>: <strerror(err)>" with the given code and reason.
Status errno_status(Code code, std::string reason, const std::string& what, int err);

struct CommandOutput {
  int exit_code = 0;  // 128+N when killed by signal N
  std::string out;
  std::string err;
};

// Runs argv[0] (looked up in a fixed root-owned PATH, never the caller's) with argv, stdin
// from /dev/null, a minimal environment (LC_ALL=C for stable messages) and no inherited fds.
// Fails only if the program could not be started.
Result<CommandOutput> run_process(const std::vector<std::string>& argv);

// run_process that also requires exit code 0; the error carries the tool's stderr.
Result<std::string> run_command(const std::vector<std::string>& argv);

// Joins argv for messages (no quoting: for humans, never for a shell).
std::string join_argv(const std::vector<std::string>& argv);

}  // namespace volguard::driver
