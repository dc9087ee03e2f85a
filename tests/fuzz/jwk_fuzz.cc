// JWK and JWKS parsing (what an OIDC provider's jwks_uri serves): any bytes, no crash; a key
// that parses is one the verifier can use.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "identity/jwk.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto set = volguard::identity::parse_jwks(json);
  auto one = volguard::identity::parse_jwk(json);
  if (!set.is_ok() && set.status().reason().empty()) std::abort();
  if (!one.is_ok() && one.status().reason().empty()) std::abort();
  return 0;
}
