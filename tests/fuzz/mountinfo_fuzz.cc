// /proc/self/mountinfo parsing (the driver decides what is mounted where from it): any bytes,
// no crash; octal escapes decode to no more bytes than they came from.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/mountinfo.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const auto& m : volguard::parse_mountinfo(text)) {
    if (m.mount_point.size() > size || m.root.size() > size) std::abort();
  }
  if (volguard::unescape_mountinfo(text).size() > size) std::abort();
  return 0;
}
