// Sizes as users write them, one meaning everywhere: the CLI, the API (volume sizes), the config
// file (limits, quotas, audit rotation) and the driver's messages.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace volguard {

// A whole number of bytes with an optional unit; units are powers of 1024 whichever way they
// are written: "1G" = "1Gi" = "1GiB" = "1GB" = 2^30 (no decimal units: one spelling must never
// mean two sizes). Units K, M, G, T in either case; after the unit letter "", "i", "iB" or "B";
// a bare number ("1073741824") or with "B" is bytes. Digits only: a sign, a fraction,
// whitespace or an unknown unit is INVALID_ARGUMENT `invalid_size` naming the text, and so is
// zero; 2^63 bytes and above (off_t and the store's signed INTEGER cannot hold them) is
// OUT_OF_RANGE `size_out_of_range`, however many digits.
Result<uint64_t> parse_size(std::string_view text);

// The largest exact unit: "1G", "512M", "1536K", "100" (bytes); "0" for zero. parse_size reads
// it back to the same value.
std::string format_size(uint64_t bytes);

}  // namespace volguard
