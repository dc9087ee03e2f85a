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

// Whether run_process would find `name` (in the same fixed PATH).
[[nodiscard]] bool tool_available(const std::string& name);

// What the local driver needs of the host, checked once at start: CAP_SYS_ADMIN (loop devices,
// mount, fscrypt), a usable /dev/loop-control and the tools it runs. Without them the server
// would start and then fail every attach or mount with a tool's "Permission denied";
// instead it refuses to start, FAILED_PRECONDITION `insufficient_privileges`, naming each
// missing piece. Tools for XFS only are not required: their absence is returned in
// `optional_missing` (XFS volumes then fail at create, naming the tool).
struct HostCheck {
  Status required;  // ok, or the refusal listing everything missing
  std::vector<std::string> optional_missing;
};
HostCheck check_host();

// Joins argv for messages (no quoting: for humans, never for a shell).
std::string join_argv(const std::vector<std::string>& argv);

}  // namespace volguard::driver
