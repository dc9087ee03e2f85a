// JSON Web Keys (RFC 7517/7518/8037) → verification keys, for OIDC providers' JWKS.
// Parsed once per fetch, never per request.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "identity/keys.h"

namespace volguard::identity {

struct Jwk {
  std::string kid;
  std::optional<Alg> alg;  // when the JWK names one, only that algorithm may use the key
  std::shared_ptr<const VerificationKey> key;
};

struct JwkSet {
  std::vector<Jwk> keys;
  std::vector<std::string> skipped;  // "kid x: why" for keys that cannot verify signatures
};

// One public JWK: RSA (n, e), EC (crv P-256/384/521, x, y), OKP (crv Ed25519, x). Private
// members ("d", ...) are refused: a provider must never publish them.
Result<Jwk> parse_jwk(std::string_view json);
// {"keys": [...]}: keys with "use" other than "sig", or of kinds we cannot use, are skipped
// (and listed); a set with no usable key is an error.
Result<JwkSet> parse_jwks(std::string_view json);

}  // namespace volguard::identity
