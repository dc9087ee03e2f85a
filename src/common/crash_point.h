// Test-only crash points: named steps where a test can make the server die exactly as `kill -9`
// would, to test crash recovery at that step rather than at a moment a sleep happened to hit.
//
// Armed only when crash_point.cc is compiled with VOLGUARD_CRASH_POINTS (the test build; in
// `make run`'s release build the function returns at once and nothing reads the variable).
// There, the environment variable
//   VOLGUARD_CRASH_AT=<point>:<method>    e.g. after_act:volume.create
// read once at the first call makes the process SIGKILL itself at that point of that method.
#pragma once

#include <string_view>

namespace volguard {

void crash_point(std::string_view point, std::string_view method);

}  // namespace volguard
