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

}  // namespace

Result<uint64_t> parse_size(const std::string& text) {
  size_t i = 0;
  uint64_t n = 0;
  // Digits only: a sign, a fraction or whitespace is refused rather than guessed at.
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    const uint64_t d = static_cast<uint64_t>(text[i] - '0');
    if (n > (UINT64_MAX - d) / 10) return bad_size(text, "too large");
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
  if (shift != 0 && n > (UINT64_MAX >> shift)) return bad_size(text, "too large");
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
