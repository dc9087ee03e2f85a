// Small system helpers private to the driver: running external tools without a shell,
// errno-carrying errors (and the owned fd type, from common/fd.h).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/fd.h"
#include "common/status.h"

namespace volguard::driver {

// The one owned-fd type lives in common/ (every layer opens files); driver code keeps calling it
// driver::UniqueFd.
using volguard::UniqueFd;

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
