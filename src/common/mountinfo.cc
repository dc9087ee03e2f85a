#include "common/mountinfo.h"

#include <optional>

#include "common/text.h"

namespace volguard {
namespace {

bool is_octal(char c) { return c >= '0' && c <= '7'; }

// "major:minor", both decimal.
bool is_devnum(std::string_view text) {
  const size_t colon = text.find(':');
  return colon != std::string_view::npos && parse_count(text.substr(0, colon)) &&
         parse_count(text.substr(colon + 1));
}

std::optional<MountInfo> parse_line(std::string_view line) {
  // Fields are separated by single spaces; the kernel escapes any space inside one. Splitting on
  // each space (not runs of them) keeps an empty field empty instead of shifting the rest.
  const std::vector<std::string> f = split(line, ' ');
  // id parent major:minor root mount_point options [optional...] - fstype source super_options
  if (f.size() < 10) return std::nullopt;
  size_t dash = 6;
  while (dash < f.size() && f[dash] != "-") ++dash;
  // Three fields follow the separator; later kernels may add more, which are ignored.
  if (dash + 3 >= f.size()) return std::nullopt;
  const auto id = parse_count(f[0]);
  const auto parent = parse_count(f[1]);
  if (!id || !parent || !is_devnum(f[2]) || f[4].empty()) return std::nullopt;
  MountInfo m;
  m.mount_id = *id;
  m.parent_id = *parent;
  m.devnum = f[2];
  m.root = unescape_mountinfo(f[3]);
  m.mount_point = unescape_mountinfo(f[4]);
  m.options = f[5];
  for (size_t i = 6; i < dash; ++i) m.optional_fields.emplace_back(f[i]);
  m.fs_type = unescape_mountinfo(f[dash + 1]);
  m.source = unescape_mountinfo(f[dash + 2]);
  m.super_options = unescape_mountinfo(f[dash + 3]);
  return m;
}

}  // namespace

std::string unescape_mountinfo(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && is_octal(field[i + 1]) &&
        is_octal(field[i + 2]) && is_octal(field[i + 3])) {
      out.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                      (field[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(field[i]);
    }
  }
  return out;
}

std::vector<MountInfo> parse_mountinfo(std::string_view text) {
  std::vector<MountInfo> mounts;
  for (const std::string& line : split(text, '\n')) {
    if (auto m = parse_line(line)) mounts.push_back(std::move(*m));
  }
  return mounts;
}

std::vector<MountInfo> read_mountinfo(const std::string& path) {
  auto text = read_file(path);
  if (!text) return {};
  return parse_mountinfo(*text);
}

}  // namespace volguard
