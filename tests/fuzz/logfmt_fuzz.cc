// The logfmt and JSON encoders round-trip through the decoder whatever the keys and values hold
// (quotes, backslashes, newlines, '=' and spaces in values, any bytes): a claim can never forge
// a field or a second line.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "audit/audit.h"

using namespace volguard::audit;

namespace {
// RFC 3629 UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c >> 5) == 0x6) {
      n = 1, cp = c & 0x1f;
    } else if ((c >> 4) == 0xe) {
      n = 2, cp = c & 0x0f;
    } else if ((c >> 3) == 0x1e) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 0x2) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The input, split at NUL bytes, is alternately values of fixed keys: what a token's claims
  // can put into a record (usernames, groups, resource names, messages).
  Record r;
  r.add("time", "2026-12-07T10:00:00.000000Z");
  r.add("level", "info");
  std::string value;
  int n = 0;
  for (size_t i = 0; i <= size; ++i) {
    if (i == size || data[i] == 0) {
      r.add("k" + std::to_string(n++), value);
      value.clear();
    } else {
      value.push_back(static_cast<char>(data[i]));
    }
  }
  bool utf8 = true;
  for (const auto& f : r.fields) utf8 = utf8 && valid_utf8(f.second);
  for (const std::string& line : {to_logfmt(r), to_json_line(r)}) {
    if (line.find('\n') != std::string::npos) std::abort();  // one record, one line
    auto back = parse_line(line);
    if (!back.is_ok() || back->fields.size() != r.fields.size()) std::abort();
    // logfmt keeps any bytes; JSON must be UTF-8 and writes U+FFFD for what is not.
    const bool exact = line.front() != '{' || utf8;
    for (size_t i = 0; i < r.fields.size(); ++i) {
      if (back->fields[i].first != r.fields[i].first) std::abort();
      if (exact && back->fields[i].second != r.fields[i].second) std::abort();
      if (!valid_utf8(back->fields[i].second) && line.front() == '{') std::abort();
    }
  }
  return 0;
}
