// Small text helpers shared by config, identity and the CLI.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace volguard {

// "30s", "15m", "24h", "7d", "1y" (365 days), or a bare number of seconds ("0").
Result<std::chrono::seconds> parse_duration(std::string_view text);
std::string format_duration(std::chrono::seconds d);

// base64url without padding (RFC 7515 §2). Decoding refuses padding, whitespace and any
// character outside the URL-safe alphabet, and non-canonical trailing bits.
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

std::vector<std::string> split(std::string_view text, char sep);
std::string to_lower(std::string_view text);

// Seconds since the epoch → RFC 3339 UTC ("2026-11-22T18:00:00Z").
std::string rfc3339(int64_t unix_seconds);

// Reads a whole file; the error names the path and errno text.
Result<std::string> read_file(const std::string& path);
// Writes with the given mode (created or truncated), fsync'd.
Status write_file(const std::string& path, std::string_view content, unsigned mode);

// Short, non-reversible fingerprint of a secret for logs: first 12 hex of SHA-256.
std::string fingerprint(std::string_view secret);

}  // namespace volguard
