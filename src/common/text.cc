#include "common/text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/fd.h"
#include "common/hex.h"
#include "common/openssl.h"
#include "common/private_file.h"

namespace volguard {

Result<std::chrono::seconds> parse_duration(std::string_view text) {
  if (text.empty()) {
    return Status(Code::kInvalidArgument, "bad_duration", "empty duration");
  }
  int64_t number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || number < 0) {
    return Status(Code::kInvalidArgument, "bad_duration",
                  "duration '" + std::string(text) + "' must start with a non-negative integer");
  }
  std::string_view unit(end, text.data() + text.size() - end);
  int64_t scale = 0;
  if (unit.empty() || unit == "s") scale = 1;
  else if (unit == "m") scale = 60;
  else if (unit == "h") scale = 3600;
  else if (unit == "d") scale = 86400;
  else if (unit == "y") scale = 365 * 86400;
  else {
    return Status(Code::kInvalidArgument, "bad_duration",
                  "duration '" + std::string(text) + "' has unknown unit '" + std::string(unit) +
                      "' (use s, m, h, d or y)");
  }
  if (number > INT64_MAX / scale / 2) {
    return Status(Code::kInvalidArgument, "bad_duration",
                  "duration '" + std::string(text) + "' is too large");
  }
  return std::chrono::seconds(number * scale);
}

std::optional<uint64_t> parse_count(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (n > (static_cast<uint64_t>(INT64_MAX) - d) / 10) return std::nullopt;  // never wraps
    n = n * 10 + d;
  }
  return n;
}

std::string format_duration(std::chrono::seconds d) {
  int64_t s = d.count();
  if (s != 0 && s % 86400 == 0) return std::to_string(s / 86400) + "d";
  if (s != 0 && s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s != 0 && s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

namespace {
constexpr char kAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<int8_t, 256> make_decode_table() {
  std::array<int8_t, 256> table{};
  for (auto& v : table) v = -1;
  for (int i = 0; i < 64; ++i) table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  return table;
}
constexpr auto kDecode = make_decode_table();
}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  size_t i = 0;
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest == 1) {
    uint32_t v = b[i] << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
  } else if (rest == 2) {
    uint32_t v = (b[i] << 16) | (b[i + 1] << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  // Sized once and written in place: this runs three times per request.
  std::string out(text.size() / 4 * 3 + (text.size() % 4 == 0 ? 0 : text.size() % 4 - 1), '\0');
  char* dst = out.data();
  const auto* src = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0;
  const size_t full = text.size() / 4 * 4;
  for (; i < full; i += 4) {
    int a = kDecode[src[i]], b = kDecode[src[i + 1]], c = kDecode[src[i + 2]], d = kDecode[src[i + 3]];
    if ((a | b | c | d) < 0) return std::nullopt;
    uint32_t v = (static_cast<uint32_t>(a) << 18) | (b << 12) | (c << 6) | d;
    *dst++ = static_cast<char>(v >> 16);
    *dst++ = static_cast<char>((v >> 8) & 0xFF);
    *dst++ = static_cast<char>(v & 0xFF);
  }
  size_t rest = text.size() - full;
  if (rest >= 2) {
    int a = kDecode[src[i]], b = kDecode[src[i + 1]];
    int c = rest == 3 ? kDecode[src[i + 2]] : 0;
    if ((a | b | c) < 0) return std::nullopt;
    uint32_t v = (static_cast<uint32_t>(a) << 18) | (b << 12) | (c << 6);
    // Leftover bits must be zero: otherwise two encodings decode alike (malleable tokens).
    if (rest == 2 && (v & 0xFFFF) != 0) return std::nullopt;
    if (rest == 3 && (v & 0xFF) != 0) return std::nullopt;
    *dst++ = static_cast<char>(v >> 16);
    if (rest == 3) *dst++ = static_cast<char>((v >> 8) & 0xFF);
  }
  return out;
}

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t pos = text.find(sep, start);
    if (pos == std::string_view::npos) {
      parts.emplace_back(text.substr(start));
      return parts;
    }
    parts.emplace_back(text.substr(start, pos - start));
    start = pos + 1;
  }
}

std::string_view trim_trailing_newlines(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

std::string_view trim_trailing_whitespace(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' ||
                           text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

std::string to_lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string rfc3339(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm_utc {};
  gmtime_r(&t, &tm_utc);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm_utc);
  return buf;
}

std::optional<int64_t> parse_rfc3339(std::string_view text) {
  if (text.size() < 20 || text.size() > 40 || text.back() != 'Z') return std::nullopt;
  std::string whole(text.substr(0, text.size() - 1));
  if (auto dot = whole.find('.'); dot != std::string::npos) {
    const std::string_view fraction = std::string_view(whole).substr(dot + 1);
    if (fraction.empty() || fraction.find_first_not_of("0123456789") != std::string_view::npos) {
      return std::nullopt;
    }
    whole.resize(dot);
  }
  if (whole.size() != 19) return std::nullopt;
  struct tm tm {};
  const char* end = strptime(whole.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return static_cast<int64_t>(timegm(&tm));
}

namespace {

Result<UniqueFd> open_for_reading(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return file_error("file_unreadable", "read", path, errno);
  return fd;
}

// Reads all of `fd`.
Result<std::string> read_all(const UniqueFd& fd, const std::string& path) {
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return file_error("file_unreadable", "read", path, errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

Result<std::string> read_file(const std::string& path) {
  ASSIGN_OR_RETURN(const UniqueFd fd, open_for_reading(path));
  return read_all(fd, path);
}

Result<std::string> read_regular_file(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return file_error("file_unreadable", "read", path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return file_error("file_unreadable", "stat", path, errno);
  if (!S_ISREG(st.st_mode)) {
    return Status(Code::kInvalidArgument, "file_unreadable", path + " is not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return Status(Code::kInvalidArgument, "file_unreadable",
                  path + " is larger than " + std::to_string(max_bytes) + " bytes");
  }
  ASSIGN_OR_RETURN(std::string text, read_all(fd, path));
  if (text.size() > max_bytes) {
    return Status(Code::kInvalidArgument, "file_unreadable", path + " grew past " + std::to_string(max_bytes) + " bytes");
  }
  return text;
}

Result<std::string> read_private_file(const std::string& path) {
  ASSIGN_OR_RETURN(const UniqueFd fd, open_private_file(path));
  return read_all(fd, path);
}

Status write_file(const std::string& path, std::string_view content, unsigned mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) return file_error("file_unwritable", "write", path, errno);
  // The file may have existed with a wider mode: narrow it.
  ::fchmod(fd.get(), mode);
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return file_error("file_unwritable", "write", path, errno);
    }
    off += static_cast<size_t>(n);
  }
  // close(2) can report a deferred write error: it counts as much as fsync's.
  const int err = ::fsync(fd.get()) != 0 ? errno : fd.close_checked();
  if (err != 0) return file_error("file_unwritable", "sync", path, err);
  return Status::ok();
}

bool has_control_chars(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

bool is_valid_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength || name[0] == '.' || name[0] == '-') {
    return false;
  }
  for (char c : name) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

Status check_name(std::string_view field, std::string_view name) {
  if (is_valid_name(name)) return Status::ok();
  const std::string quoted = "'" + std::string(name) + "'";
  const std::string why = name.empty() ? "is required"
                          : name.size() > kMaxNameLength
                              ? "must be at most " + std::to_string(kMaxNameLength) + " characters"
                          : name[0] == '.' || name[0] == '-'
                              ? quoted + " must not start with '.' or '-'"
                              : quoted + " may contain only letters, digits, '.', '-', '_'";
  return Status(Code::kInvalidArgument, "invalid_" + std::string(field),
                std::string(field) + ": " + why);
}

std::string escape_name(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    if (c == '%') out += "%25";
    else if (c == '/') out += "%2F";
    else out += c;
  }
  return out;
}

Result<std::string> unescape_name(std::string_view escaped) {
  auto bad = [&](const std::string& why) {
    return Status(Code::kInvalidArgument, "bad_name", "'" + std::string(escaped) + "' " + why);
  };
  const auto hex = hex_digit_value;
  std::string out;
  out.reserve(escaped.size());
  for (size_t i = 0; i < escaped.size(); ++i) {
    char c = escaped[i];
    if (c == '/') return bad("contains '/' (escape it as %2F)");
    if (c != '%') {
      out += c;
      continue;
    }
    int hi = i + 2 < escaped.size() ? hex(escaped[i + 1]) : -1;
    int lo = i + 2 < escaped.size() ? hex(escaped[i + 2]) : -1;
    if (hi < 0 || lo < 0) return bad("has a '%' that is not followed by two hex digits (write '%' as %25)");
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  if (out.empty()) return bad("is empty");
  if (has_control_chars(out)) return bad("contains control characters");
  return out;
}

std::string qualify_name(std::string_view qualifier, std::string_view name) {
  std::string out(qualifier);
  out += '/';
  out += escape_name(name);
  return out;
}

std::optional<std::pair<std::string_view, std::string_view>> split_qualified(std::string_view text) {
  size_t slash = text.rfind('/');
  if (slash == std::string_view::npos) return std::nullopt;
  return std::pair{text.substr(0, slash), text.substr(slash + 1)};
}

Status make_private_dir(const std::string& path) {
  auto fail = [&](int err) { return file_error("dir_uncreatable", "create", path, err); };
  std::filesystem::path dir = std::filesystem::path(path).lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();  // "data/" is "data"
  std::error_code ec;
  if (dir.has_parent_path()) std::filesystem::create_directories(dir.parent_path(), ec);
  if (ec) return fail(ec.value());
  if (::mkdir(dir.c_str(), 0700) != 0) {
    if (errno != EEXIST) return fail(errno);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return fail(errno);
    if (!S_ISDIR(st.st_mode)) return fail(ENOTDIR);
    return Status::ok();
  }
  // mkdir's mode went through the umask; what we made is exactly 0700.
  if (::chmod(dir.c_str(), 0700) != 0) return fail(errno);
  return Status::ok();
}

std::string fingerprint(std::string_view secret) { return to_hex(sha256(secret).substr(0, 6)); }

}  // namespace volguard
