// How the CLI reports a failure: one place, so that `-o json` (or `-j`) makes every failure
// of every command, argument parsing included, one JSON object {"code","reason","message"} on
// stderr, and text mode prints "error: ..." — and so that no failure path prints a token.
#pragma once

#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace volguard::cli {

enum class ErrorFormat { kText, kJson };

// Read off the raw command line (before parsing, so that parse errors follow it too): -o json,
// -ojson, --output json, --output=json or -j anywhere on the line.
ErrorFormat error_format_from_args(int argc, const char* const* argv);

// The process's format: chosen once by main before any command runs (the default is text).
void choose_error_format(ErrorFormat f);
[[nodiscard]] ErrorFormat error_format();

// Prints `s` to stderr in the chosen format and returns `exit_code`.
int report_failure(const Status& s, int exit_code);

// A usage or local failure (bad flag value, unreadable file): INVALID_ARGUMENT `usage`, exit 2.
// The parts are streamed together ("--since: ", status.message()).
int usage_failure(const std::string& message);
template <typename... Parts>
int usage_error(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return usage_failure(out.str());
}

// A warning on stderr (text: "warning: ...", JSON: {"warning": ...}); never fails the command.
void report_warning(std::string_view message);

// Parse errors of the argument parser, rewritten so that no value given on the command line
// appears in them: every argv word that is not an option name or a subcommand name in
// `known` is replaced by <value> (a mistyped --tokn "$T" must not echo the token).
std::string redact_values(std::string message, int argc, const char* const* argv,
                          const std::vector<std::string>& known_words);

}  // namespace volguard::cli
