// Bytes as lowercase hex: ids, digests and MACs written into logs, files and names.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace volguard {

// "\x01\xab" → "01ab": two lowercase digits per byte, nothing else.
std::string to_hex(std::string_view bytes);
std::string to_hex(std::span<const unsigned char> bytes);

// 0-15 for a hex digit of either case, -1 for any other character.
int hex_digit_value(char c);

// The bytes of lowercase or uppercase hex digits (what to_hex wrote); nullopt for an odd length
// or any other character. Not for key material (the result is a std::string).
std::optional<std::string> from_hex(std::string_view hex);

// `bytes` random bytes as 2 * `bytes` hex digits: for identifiers (volume ids, request ids, token
// ids) that must not repeat, never for key material. When OpenSSL's generator fails (it should
// not), the kernel's is used: an id is always produced, never from uninitialised bytes.
std::string random_hex(size_t bytes);

}  // namespace volguard
