// Role JSON (Portworx/OpenStorage format, `role create --role-config`): any bytes, no crash; a
// role that parses survives its own JSON round trip unchanged.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto role = volguard::policy::role_from_json(json);
  if (!role.is_ok()) {
    if (role.status().reason().empty()) std::abort();
    return 0;
  }
  auto again = volguard::policy::role_from_json(volguard::policy::role_to_json(*role));
  if (!again.is_ok() || volguard::policy::role_to_json(*again) != volguard::policy::role_to_json(*role)) std::abort();
  return 0;
}
