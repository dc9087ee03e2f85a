#include "identity/jwk.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <nlohmann/json.hpp>

#include "common/openssl.h"
#include "common/text.h"

namespace volguard::identity {

namespace {

using nlohmann::json;

Status bad(const std::string& kid, const std::string& why) {
  return Status(Code::kInvalidArgument, "bad_jwk", "JWK" + (kid.empty() ? "" : " '" + kid + "'") + ": " + why);
}

Result<std::string> member(const json& j, const char* name, const std::string& kid) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) return bad(kid, std::string("member '") + name + "' is missing");
  auto raw = base64url_decode(it->get<std::string>());
  if (!raw || raw->empty()) return bad(kid, std::string("member '") + name + "' is not base64url");
  return *raw;
}

Result<PkeyPtr> from_params(const char* type, OSSL_PARAM_BLD* bld, const std::string& kid) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return bad(kid, std::string("not a valid ") + type + " public key");
  }
  return PkeyPtr(pkey);
}

Result<PkeyPtr> rsa_key(const json& j, const std::string& kid) {
  ASSIGN_OR_RETURN(const std::string n, member(j, "n", kid));
  ASSIGN_OR_RETURN(const std::string e, member(j, "e", kid));
  BnPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr));
  BnPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr));
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    return bad(kid, "cannot build RSA key");
  }
  return from_params("RSA", bld.get(), kid);
}

Result<PkeyPtr> ec_key(const json& j, const std::string& kid) {
  auto crv_it = j.find("crv");
  std::string crv = crv_it != j.end() && crv_it->is_string() ? crv_it->get<std::string>() : "";
  const char* group = crv == "P-256" ? "prime256v1" : crv == "P-384" ? "secp384r1" : crv == "P-521" ? "secp521r1" : nullptr;
  size_t size = crv == "P-256" ? 32 : crv == "P-384" ? 48 : 66;
  if (group == nullptr) return bad(kid, "EC curve '" + crv + "' is not P-256, P-384 or P-521");
  ASSIGN_OR_RETURN(const std::string x, member(j, "x", kid));
  ASSIGN_OR_RETURN(const std::string y, member(j, "y", kid));
  if (x.size() != size || y.size() != size) return bad(kid, "EC coordinates have the wrong length for " + crv);
  std::string point = "\x04" + x + y;  // uncompressed SEC1 point
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1) {
    return bad(kid, "cannot build EC key");
  }
  // fromdata does not check the point is on the curve; the key check below does.
  auto pkey = from_params("EC", bld.get(), kid);
  if (!pkey) return bad(kid, "EC point is not on " + crv);
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey->get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) return bad(kid, "EC point is not on " + crv);
  return pkey;
}

Result<PkeyPtr> okp_key(const json& j, const std::string& kid) {
  auto crv_it = j.find("crv");
  std::string crv = crv_it != j.end() && crv_it->is_string() ? crv_it->get<std::string>() : "";
  if (crv != "Ed25519") return bad(kid, "OKP curve '" + crv + "' is not Ed25519");
  ASSIGN_OR_RETURN(const std::string x, member(j, "x", kid));
  if (x.size() != 32) return bad(kid, "Ed25519 public key must be 32 bytes");
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, x.data(), x.size()) != 1) {
    return bad(kid, "cannot build Ed25519 key");
  }
  return from_params("ED25519", bld.get(), kid);
}

Result<Jwk> parse_jwk_json(const json& j) {
  if (!j.is_object()) return bad("", "not a JSON object");
  Jwk out;
  if (auto it = j.find("kid"); it != j.end() && it->is_string()) out.kid = it->get<std::string>();
  for (const char* priv : {"d", "p", "q", "dp", "dq", "qi", "k"}) {
    if (j.contains(priv)) return bad(out.kid, std::string("holds private member '") + priv + "'");
  }
  auto kty_it = j.find("kty");
  std::string kty = kty_it != j.end() && kty_it->is_string() ? kty_it->get<std::string>() : "";
  Result<PkeyPtr> pkey = Status(Code::kInvalidArgument, "bad_jwk", "");
  if (kty == "RSA") pkey = rsa_key(j, out.kid);
  else if (kty == "EC") pkey = ec_key(j, out.kid);
  else if (kty == "OKP") pkey = okp_key(j, out.kid);
  else return bad(out.kid, "kty '" + kty + "' is not RSA, EC or OKP");
  if (!pkey) return pkey.status();
  auto key = VerificationKey::from_pkey(std::move(pkey).value(), "JWK '" + out.kid + "'");
  if (!key) return key.status();
  out.key = *key;
  if (auto it = j.find("alg"); it != j.end() && it->is_string()) {
    auto alg = alg_from_name(it->get<std::string>());
    if (!alg || !out.key->allows(*alg)) {
      return bad(out.kid, "alg '" + it->get<std::string>() + "' does not fit its " +
                              key_kind_name(out.key->kind()) + " key");
    }
    out.alg = *alg;
  }
  return out;
}

}  // namespace

Result<Jwk> parse_jwk(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return bad("", "not valid JSON");
  return parse_jwk_json(j);
}

Result<JwkSet> parse_jwks(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("keys") || !j["keys"].is_array()) {
    return Status(Code::kInvalidArgument, "bad_jwks", "JWKS is not a JSON object with a 'keys' array");
  }
  JwkSet set;
  for (const auto& k : j["keys"]) {
    std::string kid = k.is_object() && k.contains("kid") && k["kid"].is_string() ? k["kid"].get<std::string>() : "";
    if (k.is_object() && k.contains("use") && k["use"] != "sig") {
      set.skipped.push_back("kid " + kid + ": use is not sig");
      continue;
    }
    auto parsed = parse_jwk_json(k);
    if (!parsed) {
      set.skipped.push_back(parsed.status().message());
      continue;
    }
    set.keys.push_back(std::move(parsed).value());
  }
  if (set.keys.empty()) {
    std::string why;
    for (const auto& s : set.skipped) why += (why.empty() ? "" : "; ") + s;
    return Status(Code::kInvalidArgument, "bad_jwks", "JWKS has no usable signing key" + (why.empty() ? std::string() : " (" + why + ")"));
  }
  return set;
}

}  // namespace volguard::identity
