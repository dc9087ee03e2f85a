#include "identity/jwk.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>

#include <nlohmann/json.hpp>

#include "support/test_keys.h"

namespace volguard::identity {
namespace {

using nlohmann::json;
using volguard::testing::generate_key_pair;

using volguard::testing::jwk_of;

TEST(JwkTest, KeysFromJwksVerifyTheirOwnersSignatures) {
  std::vector<std::pair<volguard::testing::KeyPair, Alg>> cases = {
      {generate_key_pair("RSA", "2048"), Alg::kRS256}, {generate_key_pair("RSA", "2048"), Alg::kPS384},
      {generate_key_pair("EC", "P-256"), Alg::kES256}, {generate_key_pair("EC", "P-384"), Alg::kES384},
      {generate_key_pair("EC", "P-521"), Alg::kES512}, {generate_key_pair("ED25519"), Alg::kEdDSA}};
  json set = {{"keys", json::array()}};
  for (size_t i = 0; i < cases.size(); ++i) set["keys"].push_back(jwk_of(cases[i].first.private_pem, "k" + std::to_string(i)));
  set["keys"].push_back({{"kty", "oct"}, {"kid", "sym"}, {"k", "c2VjcmV0"}});          // skipped
  set["keys"].push_back({{"kty", "RSA"}, {"kid", "enc"}, {"use", "enc"}, {"n", "AQ"}, {"e", "AQAB"}});  // skipped
  auto parsed = parse_jwks(set.dump());
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  ASSERT_EQ(parsed->keys.size(), cases.size());
  EXPECT_EQ(parsed->skipped.size(), 2u);
  for (size_t i = 0; i < cases.size(); ++i) {
    auto signer = SigningKey::from_private_pem(cases[i].first.private_pem).value().with_alg(cases[i].second).value();
    std::string input = "header.payload";
    std::string sig = signer.sign(input).value();
    const auto& jwk = parsed->keys[i];
    EXPECT_EQ(jwk.kid, "k" + std::to_string(i));
    EXPECT_EQ(jwk.key->verify(cases[i].second, input, sig), SignatureCheck::kValid) << i;
    EXPECT_EQ(jwk.key->verify(cases[i].second, input + "x", sig), SignatureCheck::kInvalid) << i;
  }
}

TEST(JwkTest, RefusesWhatCannotBeTrusted) {
  auto ec = jwk_of(generate_key_pair("EC", "P-256").private_pem, "ec");
  auto why = [](const json& j) {
    auto r = parse_jwk(j.dump());
    EXPECT_FALSE(r.is_ok()) << j.dump();
    return r.is_ok() ? std::string() : r.status().message();
  };
  json with_d = ec;
  with_d["d"] = "AAAA";
  EXPECT_NE(why(with_d).find("private member 'd'"), std::string::npos);
  json off_curve = ec;
  std::string y = base64url_decode(ec["y"].get<std::string>()).value();
  y[31] ^= 1;
  off_curve["y"] = base64url_encode(y);
  EXPECT_NE(why(off_curve).find("not on P-256"), std::string::npos);
  json short_x = ec;
  short_x["x"] = "AAAA";
  EXPECT_NE(why(short_x).find("wrong length"), std::string::npos);
  json bad_crv = ec;
  bad_crv["crv"] = "secp256k1";
  EXPECT_NE(why(bad_crv).find("not P-256"), std::string::npos);
  json wrong_alg = ec;
  wrong_alg["alg"] = "RS256";
  EXPECT_NE(why(wrong_alg).find("does not fit"), std::string::npos);
  EXPECT_NE(why({{"kty", "oct"}, {"k", "AAAA"}}).find("private member 'k'"), std::string::npos);
  EXPECT_NE(why({{"kty", "XYZ"}}).find("kty 'XYZ'"), std::string::npos);
  EXPECT_NE(why({{"kty", "RSA"}, {"n", "!!"}, {"e", "AQAB"}}).find("'n'"), std::string::npos);
  auto weak = jwk_of(generate_key_pair("RSA", "1024").private_pem, "weak");
  EXPECT_NE(why(weak).find("2048"), std::string::npos);
  json with_alg = ec;
  with_alg["alg"] = "ES256";
  auto ok = parse_jwk(with_alg.dump());
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(ok->alg, Alg::kES256);
  EXPECT_FALSE(parse_jwks(R"({"keys": []})").is_ok());
  EXPECT_FALSE(parse_jwks(R"({"nokeys": 1})").is_ok());
  EXPECT_FALSE(parse_jwks("[").is_ok());
}

}  // namespace
}  // namespace volguard::identity
