// The server config (YAML): any bytes, no crash, every refusal names the file.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  auto cfg = volguard::config::parse_config(yaml, "fuzz.yaml");
  if (!cfg.is_ok() && cfg.status().message().find("fuzz.yaml") == std::string::npos) std::abort();
  return 0;
}
