// Small text helpers shared by config, identity and the CLI.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace volguard {

// "30s", "15m", "24h", "7d", "1y" (365 days), or a bare number of seconds ("0").
Result<std::chrono::seconds> parse_duration(std::string_view text);
std::string format_duration(std::chrono::seconds d);

// A count written in decimal digits only ("10"); nullopt for anything else or 2^63 and above
// (counts share the signed 64-bit range of the store).
std::optional<uint64_t> parse_count(std::string_view text);

// base64url without padding (RFC 7515 §2). Decoding refuses padding, whitespace and any
// character outside the URL-safe alphabet, and non-canonical trailing bits.
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

std::vector<std::string> split(std::string_view text, char sep);

// `text` without its trailing '\n' and '\r' (any number): the line end that editors, `echo`
// and CRLF files add to a value kept in a file. For secrets and keys: spaces are kept, as they
// can be part of the secret, and the signer and the verifier must read the same bytes.
std::string_view trim_trailing_newlines(std::string_view text);
// `text` without its trailing spaces, tabs, '\n' and '\r': for values that never end in
// whitespace (tokens, pids, device names, a tool's message), as read from files, stdin, a
// Kubernetes Secret or a tool's output.
std::string_view trim_trailing_whitespace(std::string_view text);
std::string to_lower(std::string_view text);

// Seconds since the epoch → RFC 3339 UTC ("2026-11-22T18:00:00Z").
std::string rfc3339(int64_t unix_seconds);
// "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (what rfc3339() and the audit log write) → unix seconds;
// nullopt for anything else (other offsets, missing parts, trailing text).
std::optional<int64_t> parse_rfc3339(std::string_view text);

// Reads a whole file; the error names the path and errno text.
// read_file for a file re-read while serving (a CRL): a regular file of at most `max_bytes`,
// opened without blocking, so that a FIFO or /dev/zero put in its place cannot hang or exhaust
// the reader.
Result<std::string> read_regular_file(const std::string& path, size_t max_bytes);
Result<std::string> read_file(const std::string& path);
// Reads a file that holds a secret (shared secret, private key, audit key). Refused with
// FAILED_PRECONDITION `secret_file_exposed` when group or others may read or write it: a secret
// anyone on the node can read is no secret, and one they can write lets them choose it. The
// mode is checked on the opened file, so a swap between check and read cannot slip through
// (common/private_file.h: open_private_file).
Result<std::string> read_private_file(const std::string& path);
// Writes with the given mode (created or truncated), fsync'd.
Status write_file(const std::string& path, std::string_view content, unsigned mode);
// Creates `path` mode 0700 (its missing parents with the usual mode): a directory volguard
// makes for its own data is never readable by group or others, whatever the umask. An existing
// directory is left as it is (it may be shared with more than volguard).
Status make_private_dir(const std::string& path);

// Bytes below 0x20 and DEL: refused in names, which end up in logs, messages and file paths.
bool has_control_chars(std::string_view text);

// Volume and snapshot names and the driver's ids: 1 to kMaxNameLength characters of
// [A-Za-z0-9._-], not starting with '.' or '-', so that they are safe in logs, URLs and file
// names (never hidden, never read as a command-line option).
inline constexpr size_t kMaxNameLength = 128;
bool is_name_char(char c);
bool is_valid_name(std::string_view name);
// OK for a valid name, else INVALID_ARGUMENT with reason "invalid_<field>" and the message
// "<field>: <what is wrong>".
Status check_name(std::string_view field, std::string_view name);

// Qualified names: principals "<issuer>/<username>" and group grants "<group_domain>/<group>".
// The name is escaped ('%' as %25, '/' as %2F) so the LAST '/' always separates the qualifier
// (issuers may contain '/', e.g. URLs) and no two (qualifier, name) pairs make the same string:
// issuer "corp" with user "eu/alice" is "corp/eu%2Falice", issuer "corp/eu" with "alice" is
// "corp/eu/alice".
std::string escape_name(std::string_view name);
// Decodes %XX; refuses (INVALID_ARGUMENT `bad_name`) a malformed escape, a raw '/', an empty
// result and control characters. Decoding then escape_name() gives the one canonical form.
Result<std::string> unescape_name(std::string_view escaped);
std::string qualify_name(std::string_view qualifier, std::string_view name);
// "<qualifier>/<escaped name>" split at the last '/'; nullopt when there is no '/'.
std::optional<std::pair<std::string_view, std::string_view>> split_qualified(std::string_view text);

// Short, non-reversible fingerprint of a secret for logs: first 12 hex of SHA-256.
std::string fingerprint(std::string_view secret);

}  // namespace volguard
