// Mints tokens: `volguard token generate`, `make run`'s admin and user tokens, and tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "identity/keys.h"

namespace volguard::identity {

struct TokenClaims {
  std::string issuer;
  std::string subject;
  std::string name;
  std::string email;
  std::vector<std::string> roles;
  std::vector<std::string> groups;
  std::vector<std::string> audiences;  // empty: no aud; one: a string; more: an array
  int64_t lifetime_seconds = 24 * 3600;
};

// Signs with the key's algorithm; sets iat = now, exp = now + lifetime, a random 128-bit jti.
Result<std::string> generate_token(const SigningKey& key, const TokenClaims& claims,
                                   int64_t now_unix);

// Claims from a pxctl-style --auth-config YAML (name, email, sub, roles, groups).
Result<TokenClaims> claims_from_auth_config(const std::string& path);

}  // namespace volguard::identity
