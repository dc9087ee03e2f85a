#include "common/size.h"

#include "common/text.h"

namespace volguard {
namespace {

Status bad_size(std::string_view text, const std::string& why) {
  return Status(Code::kInvalidArgument, "invalid_size",
                "invalid size \"" + std::string(text) + "\": " + why);
}

// A well-formed size that no volume can have: file sizes are off_t and the store keeps a signed
// 64-bit INTEGER, so 2^63 and above would wrap somewhere below us. OUT_OF_RANGE (not a 500):
// the request is valid syntax asking for too much.
Status too_large(std::string_view text) {
  return Status(Code::kOutOfRange, "size_out_of_range",
                "size \"" + std::string(text) + "\" is too large (at most 2^63 - 1 bytes)");
}

// The power of two a unit letter stands for; 0 for anything else.
unsigned unit_shift(char c) {
  switch (c) {
    case 'k':
      return 10;
    case 'm':
      return 20;
    case 'g':
      return 30;
    case 't':
      return 40;
    default:
      return 0;
  }
}

}  // namespace

Result<uint64_t> parse_size(std::string_view text) {
  size_t i = 0;
  uint64_t n = 0;
  // Digits only: a sign, a fraction or whitespace is refused rather than guessed at.
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    const uint64_t d = static_cast<uint64_t>(text[i] - '0');
    if (n > (UINT64_MAX - d) / 10) {
      // Still read the rest: a malformed tail is INVALID_ARGUMENT whatever the number.
      n = UINT64_MAX;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
      break;
    }
    n = n * 10 + d;
    ++i;
  }
  if (i == 0) return bad_size(text, "expected a whole number with an optional K/M/G/T unit");

  const std::string unit = to_lower(text.substr(i));
  const unsigned shift = unit.empty() ? 0 : unit_shift(unit[0]);
  const std::string_view rest = std::string_view(unit).substr(shift == 0 ? 0 : 1);
  // After a unit letter: "", "i", "ib" or "b"; a bare number may carry only "b".
  const bool suffix_ok = shift != 0 ? (rest.empty() || rest == "i" || rest == "ib" || rest == "b")
                                    : (rest.empty() || rest == "b");
  if (!suffix_ok) return bad_size(text, "unknown unit (use K, M, G or T, powers of 1024)");
  if (n == 0) return bad_size(text, "must be greater than zero");
  constexpr uint64_t kMax = static_cast<uint64_t>(INT64_MAX);
  if (n > (kMax >> shift)) return too_large(text);
  return n << shift;
}

std::string format_size(uint64_t bytes) {
  if (bytes == 0) return "0";
  static constexpr struct {
    unsigned shift;
    char letter;
  } kUnits[] = {{40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}};
  for (const auto& u : kUnits) {
    const uint64_t mask = (uint64_t{1} << u.shift) - 1;
    if ((bytes & mask) == 0) return std::to_string(bytes >> u.shift) + u.letter;
  }
  return std::to_string(bytes);
}

}  // namespace volguard
