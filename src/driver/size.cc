// Sizes and filesystem names as users type them.
#include <cstdint>
#include <string>

#include "common/text.h"
#include "driver/driver.h"

namespace volguard::driver {

const char* fs_name(FsType fs) {
  switch (fs) {
    case FsType::kExt4:
      return "ext4";
    case FsType::kXfs:
      return "xfs";
  }
  return "ext4";
}

Result<FsType> parse_fs(const std::string& s) {
  const std::string t = to_lower(s);
  if (t == "ext4") return FsType::kExt4;
  if (t == "xfs") return FsType::kXfs;
  return Status(Code::kInvalidArgument, "invalid_fs",
                "unsupported filesystem \"" + s + "\" (expected ext4 or xfs)");
}

namespace {

Status bad_size(const std::string& text, const std::string& why) {
  return Status(Code::kInvalidArgument, "invalid_size", "invalid size \"" + text + "\": " + why);
}

// A well-formed size that no volume can have: file sizes are off_t and the store keeps a signed
// 64-bit INTEGER, so 2^63 and above would wrap somewhere below us. OUT_OF_RANGE (not a 500):
// the request is valid syntax asking for too much.
Status too_large(const std::string& text) {
  return Status(Code::kOutOfRange, "size_out_of_range",
                "size \"" + text + "\" is too large (at most 2^63 - 1 bytes)");
}

}  // namespace

Result<uint64_t> parse_size(const std::string& text) {
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

  const std::string unit = to_lower(std::string_view(text).substr(i));
  unsigned shift = 0;
  std::string rest = unit;
  if (!unit.empty()) {
    switch (unit[0]) {
      case 'k':
        shift = 10;
        break;
      case 'm':
        shift = 20;
        break;
      case 'g':
        shift = 30;
        break;
      case 't':
        shift = 40;
        break;
      default:
        shift = 0;
        break;
    }
    rest = shift == 0 ? unit : unit.substr(1);
  }
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

}  // namespace volguard::driver
