#include "identity/token.h"

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <set>

#include "common/hex.h"
#include "common/text.h"

namespace volguard::identity {

Result<std::string> generate_token(const SigningKey& key, const TokenClaims& claims,
                                   int64_t now) {
  if (claims.issuer.empty()) {
    return Status(Code::kInvalidArgument, "bad_claims", "an issuer is required");
  }
  if (claims.lifetime_seconds <= 0) {
    return Status(Code::kInvalidArgument, "bad_claims", "the token lifetime must be positive");
  }
  // A token id, not a secret: it only has to be unique.
  const std::string jti = random_hex(16);
  nlohmann::json header = {{"alg", alg_name(key.alg())}, {"typ", "JWT"}};
  nlohmann::json payload = {
      {"iss", claims.issuer}, {"sub", claims.subject}, {"name", claims.name},
      {"email", claims.email}, {"roles", claims.roles}, {"groups", claims.groups},
      {"iat", now}, {"exp", now + claims.lifetime_seconds}, {"jti", jti},
  };
  if (claims.audiences.size() == 1) payload["aud"] = claims.audiences[0];
  if (claims.audiences.size() > 1) payload["aud"] = claims.audiences;
  std::string input = base64url_encode(header.dump()) + "." + base64url_encode(payload.dump());
  ASSIGN_OR_RETURN(const std::string sig, key.sign(input));
  return input + "." + base64url_encode(sig);
}

Result<TokenClaims> claims_from_auth_config(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.status();
  auto bad = [&](const std::string& key, const std::string& why) {
    return Status(Code::kInvalidArgument, "bad_auth_config", path + ": " + key + ": " + why);
  };
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return bad("line " + std::to_string(e.mark.line + 1), "invalid YAML: " + e.msg);
  }
  if (!root.IsMap()) return bad("(root)", "must be a mapping of name, email, sub, roles, groups");
  static const std::set<std::string> kAllowed = {"name", "email", "sub", "roles", "groups"};
  TokenClaims claims;
  for (const auto& kv : root) {
    std::string key = kv.first.as<std::string>();
    if (!kAllowed.count(key)) return bad(key, "unknown key (allowed: name, email, sub, roles, groups)");
    const YAML::Node& v = kv.second;
    if (key == "roles" || key == "groups") {
      if (!v.IsSequence()) return bad(key, "must be a list of strings");
      auto& list = key == "roles" ? claims.roles : claims.groups;
      for (const auto& item : v) {
        if (!item.IsScalar()) return bad(key, "must be a list of strings");
        list.push_back(item.as<std::string>());
      }
    } else {
      if (!v.IsScalar()) return bad(key, "must be a string");
      (key == "name" ? claims.name : key == "email" ? claims.email : claims.subject) =
          v.as<std::string>();
    }
  }
  return claims;
}

}  // namespace volguard::identity
