// The logfmt and JSON encoders round-trip through the decoder whatever the keys and values hold
// (quotes, backslashes, newlines, '=' and spaces in values, any bytes): a claim can never forge
// a field or a second line.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "audit/audit.h"

using namespace volguard::audit;

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
  for (const std::string& line : {to_logfmt(r), to_json_line(r)}) {
    if (line.find('\n') != std::string::npos) std::abort();  // one record, one line
    auto back = parse_line(line);
    if (!back.is_ok() || back->fields != r.fields) std::abort();
  }
  return 0;
}
