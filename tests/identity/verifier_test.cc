#include "identity/verifier.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "identity/token.h"
#include "support/test_keys.h"

namespace volguard::identity {
namespace {

using nlohmann::json;
using volguard::testing::generate_key_pair;
using volguard::testing::KeyPair;
using volguard::testing::make_token;

constexpr int64_t kNow = 1'800'000'000;
const std::string kSecret = "0123456789abcdef0123456789abcdef-test-secret";

// Keys are costly to generate (RSA): once per test binary.
struct Keys {
  KeyPair rsa = generate_key_pair("RSA", "2048");
  KeyPair p256 = generate_key_pair("EC", "P-256");
  KeyPair p384 = generate_key_pair("EC", "P-384");
  KeyPair p521 = generate_key_pair("EC", "P-521");
  KeyPair ed = generate_key_pair("ED25519");
};
const Keys& keys() {
  static const Keys k;
  return k;
}

json claims_for(const std::string& iss) {
  return {{"iss", iss},     {"sub", "alice"},          {"name", "Alice"},
          {"email", "a@x"}, {"roles", {"system.user"}}, {"groups", {"eng", "ops"}},
          {"iat", kNow - 10}, {"exp", kNow + 3600}};
}

class VerifierTest : public ::testing::Test {
 protected:
  VerifierTest() { rebuild(); }

  void rebuild(VerifierOptions options = {}) {
    std::vector<TrustedIssuer> issuers;
    auto add = [&](const std::string& iss, Result<std::shared_ptr<const VerificationKey>> key,
                   std::vector<std::string> aud = {}) {
      ASSERT_TRUE(key.is_ok()) << key.status().to_string();
      issuers.push_back({iss, std::make_shared<StaticKeySource>(*key), std::move(aud)});
    };
    add("hs", VerificationKey::from_secret(kSecret));
    add("rsa", VerificationKey::from_public_pem(keys().rsa.public_pem));
    add("p256", VerificationKey::from_public_pem(keys().p256.public_pem));
    add("p384", VerificationKey::from_public_pem(keys().p384.public_pem));
    add("p521", VerificationKey::from_public_pem(keys().p521.public_pem));
    add("ed", VerificationKey::from_public_pem(keys().ed.public_pem));
    add("aud", VerificationKey::from_secret(kSecret), {"volguard-api", "other"});
    verifier_ = std::make_unique<Verifier>(options, std::move(issuers));
  }

  static SigningKey signer(const std::string& iss, Alg alg) {
    std::map<std::string, std::string> pems = {{"rsa", keys().rsa.private_pem},
                                               {"p256", keys().p256.private_pem},
                                               {"p384", keys().p384.private_pem},
                                               {"p521", keys().p521.private_pem},
                                               {"ed", keys().ed.private_pem}};
    auto base = pems.count(iss) ? SigningKey::from_private_pem(pems[iss])
                                : SigningKey::from_secret(kSecret);
    return base.value().with_alg(alg).value();
  }

  std::string token(const std::string& iss, Alg alg, json payload = {}, json header = {}) {
    if (payload.is_null()) payload = claims_for(iss);
    if (header.is_null()) header = {{"alg", alg_name(alg)}, {"typ", "JWT"}};
    return make_token(signer(iss, alg), header, payload);
  }

  std::string reason_of(const std::string& tok) {
    auto r = verifier_->verify_at(tok, kNow);
    EXPECT_FALSE(r.is_ok()) << "token unexpectedly accepted";
    if (r.is_ok()) return "accepted";
    EXPECT_EQ(r.status().code(), Code::kUnauthenticated);
    EXPECT_FALSE(r.status().message().empty());
    return r.status().reason();
  }

  std::unique_ptr<Verifier> verifier_;
};

struct AlgCase {
  const char* issuer;
  Alg alg;
};

TEST_F(VerifierTest, AcceptsEveryAlgorithmWithItsKey) {
  const AlgCase cases[] = {
      {"hs", Alg::kHS256},  {"hs", Alg::kHS384},  {"hs", Alg::kHS512},  {"rsa", Alg::kRS256},
      {"rsa", Alg::kRS384}, {"rsa", Alg::kRS512}, {"rsa", Alg::kPS256}, {"rsa", Alg::kPS384},
      {"rsa", Alg::kPS512}, {"p256", Alg::kES256}, {"p384", Alg::kES384}, {"p521", Alg::kES512},
      {"ed", Alg::kEdDSA},
  };
  for (const auto& c : cases) {
    auto r = verifier_->verify_at(token(c.issuer, c.alg), kNow);
    ASSERT_TRUE(r.is_ok()) << alg_name(c.alg) << ": " << r.status().to_string();
    EXPECT_EQ(r->issuer, c.issuer);
    EXPECT_EQ(r->username, "alice");
    EXPECT_EQ(r->subject, "alice");
    EXPECT_EQ(r->name, "Alice");
    EXPECT_EQ(r->email, "a@x");
    EXPECT_EQ(r->roles, std::vector<std::string>{"system.user"});
    EXPECT_EQ(r->groups, (std::vector<std::string>{"eng", "ops"}));
    EXPECT_EQ(r->expires_at, kNow + 3600);
    EXPECT_EQ(r->principal(), std::string(c.issuer) + "/alice");
  }
}

TEST_F(VerifierTest, GeneratedTokensVerify) {
  TokenClaims c{.issuer = "p256", .subject = "bob", .roles = {"system.admin"}, .groups = {"*"}};
  auto key = SigningKey::from_private_pem(keys().p256.private_pem).value();
  EXPECT_EQ(key.alg(), Alg::kES256);
  auto tok = generate_token(key, c, kNow);
  ASSERT_TRUE(tok.is_ok());
  auto r = verifier_->verify_at(*tok, kNow);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->username, "bob");
  EXPECT_EQ(r->token_id.size(), 32u);
  EXPECT_EQ(SigningKey::from_private_pem(keys().p384.private_pem)->alg(), Alg::kES384);
  EXPECT_EQ(SigningKey::from_private_pem(keys().rsa.private_pem)->alg(), Alg::kRS256);
}

TEST_F(VerifierTest, RefusesOversizedTokenBeforeParsing) {
  std::string huge(kMaxTokenBytes + 1, 'a');
  EXPECT_EQ(reason_of(huge), reason::kTokenTooLarge);
}

TEST_F(VerifierTest, RefusesMalformedStructure) {
  EXPECT_EQ(reason_of(""), reason::kTokenMalformed);
  EXPECT_EQ(reason_of("abc"), reason::kTokenMalformed);
  EXPECT_EQ(reason_of("a.b"), reason::kTokenMalformed);
  EXPECT_EQ(reason_of("a.b.c.d"), reason::kTokenMalformed);
  EXPECT_EQ(reason_of(".b.c"), reason::kTokenMalformed);
  EXPECT_EQ(reason_of("a..c"), reason::kTokenMalformed);
  EXPECT_EQ(reason_of("a+b.c.d"), reason::kHeaderBadBase64);
  EXPECT_EQ(reason_of(base64url_encode("not json") + ".e30.c"), reason::kHeaderBadJson);
  EXPECT_EQ(reason_of(base64url_encode("[1]") + ".e30.c"), reason::kHeaderBadJson);
}

TEST_F(VerifierTest, RefusesAlgNoneAndUnknownAndMissing) {
  std::string payload = base64url_encode(claims_for("hs").dump());
  EXPECT_EQ(reason_of(base64url_encode(R"({"alg":"none"})") + "." + payload + ".x"),
            reason::kAlgNone);
  EXPECT_EQ(reason_of(base64url_encode(R"({"alg":"NoNe"})") + "." + payload + ".x"),
            reason::kAlgNone);
  // An unsigned token with an empty signature is refused just the same.
  EXPECT_EQ(reason_of(base64url_encode(R"({"alg":"none"})") + "." + payload + "."),
            reason::kAlgNone);
  EXPECT_EQ(reason_of(base64url_encode(R"({"alg":"HS1"})") + "." + payload + ".x"),
            reason::kAlgUnsupported);
  EXPECT_EQ(reason_of(base64url_encode(R"({"typ":"JWT"})") + "." + payload + ".x"),
            reason::kAlgMissing);
  EXPECT_EQ(reason_of(base64url_encode(R"({"alg":256})") + "." + payload + ".x"),
            reason::kAlgMissing);
}

TEST_F(VerifierTest, RefusesAlgorithmConfusion) {
  // HS256 "signed" with the RSA public key's PEM text as the HMAC secret: the classic attack.
  auto pem_as_secret = SigningKey::from_secret(keys().rsa.public_pem).value();
  std::string forged = make_token(pem_as_secret, {{"alg", "HS256"}}, claims_for("rsa"));
  EXPECT_EQ(reason_of(forged), reason::kAlgKeyMismatch);
  // An RSA token for an HMAC issuer, and EC algorithms on the wrong curve.
  EXPECT_EQ(reason_of(make_token(signer("rsa", Alg::kRS256), {{"alg", "HS256"}}, claims_for("hs"))),
            reason::kSignatureBadLength);
  EXPECT_EQ(reason_of(make_token(signer("rsa", Alg::kRS256), {{"alg", "RS256"}}, claims_for("hs"))),
            reason::kAlgKeyMismatch);
  EXPECT_EQ(reason_of(make_token(signer("p384", Alg::kES384), {{"alg", "ES384"}},
                                 claims_for("p256"))),
            reason::kAlgKeyMismatch);
  EXPECT_EQ(reason_of(make_token(signer("ed", Alg::kEdDSA), {{"alg", "EdDSA"}},
                                 claims_for("p256"))),
            reason::kAlgKeyMismatch);
}

TEST_F(VerifierTest, RefusesCriticalHeader) {
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, {}, {{"alg", "HS256"}, {"crit", {"exp"}}})),
            reason::kCritUnsupported);
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, {},
                            {{"alg", "HS256"}, {"b64", false}, {"crit", {"b64"}}})),
            reason::kCritUnsupported);
}

TEST_F(VerifierTest, EmbeddedKeysNeverChooseTheKey) {
  // A token signed by an attacker's own EC key, carrying that key in jwk/jku/x5u/x5c and a kid,
  // must still be checked against the issuer's configured key.
  auto attacker = generate_key_pair("EC", "P-256");
  auto attacker_key = SigningKey::from_private_pem(attacker.private_pem).value();
  json header = {{"alg", "ES256"},
                 {"kid", "attacker"},
                 {"jku", "https://evil.example/jwks"},
                 {"x5u", "https://evil.example/cert"},
                 {"x5c", {"MIIB..."}},
                 {"jwk", {{"kty", "EC"}, {"crv", "P-256"}, {"x", "AA"}, {"y", "AA"}}}};
  EXPECT_EQ(reason_of(make_token(attacker_key, header, claims_for("p256"))),
            reason::kSignatureInvalid);
  // The genuine key with a random kid still verifies: a static key ignores kid.
  header["kid"] = "whatever";
  auto ok = verifier_->verify_at(make_token(signer("p256", Alg::kES256), header, claims_for("p256")),
                                 kNow);
  EXPECT_TRUE(ok.is_ok()) << ok.status().to_string();
}

TEST_F(VerifierTest, RefusesBadPayload) {
  std::string header = base64url_encode(R"({"alg":"HS256"})");
  EXPECT_EQ(reason_of(header + ".***.c"), reason::kPayloadBadBase64);
  EXPECT_EQ(reason_of(header + "." + base64url_encode("{oops") + ".c"), reason::kPayloadBadJson);
  EXPECT_EQ(reason_of(header + "." + base64url_encode("\"str\"") + ".c"), reason::kPayloadBadJson);
}

TEST_F(VerifierTest, RefusesRepeatedClaims) {
  // Two parsers could read different values from {"sub":"a","sub":"b"}: refuse, don't guess.
  std::string payload = R"({"iss":"hs","sub":"alice","sub":"root","exp":)" +
                        std::to_string(kNow + 60) + "}";
  std::string input = base64url_encode(R"({"alg":"HS256"})") + "." + base64url_encode(payload);
  auto key = SigningKey::from_secret(kSecret).value();
  EXPECT_EQ(reason_of(input + "." + base64url_encode(key.sign(input).value())),
            reason::kClaimRepeated);
  // Any member, not only the claims volguard reads: the signer's intent is ambiguous either way.
  payload = R"({"iss":"hs","sub":"alice","tenant":"a","tenant":"b","exp":)" +
            std::to_string(kNow + 60) + "}";
  input = base64url_encode(R"({"alg":"HS256"})") + "." + base64url_encode(payload);
  auto r = verifier_->verify_at(input + "." + base64url_encode(key.sign(input).value()), kNow);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().reason(), reason::kClaimRepeated);
  EXPECT_NE(r.status().message().find("'tenant'"), std::string::npos) << r.status().message();
}

// {"alg":"none","alg":"HS256"}: one parser sees none, another HS256. Refused before any member
// is read, whatever the values and wherever the repeat.
TEST_F(VerifierTest, RefusesRepeatedHeaderMembers) {
  auto key = SigningKey::from_secret(kSecret).value();
  const std::string payload = base64url_encode(claims_for("hs").dump());
  for (const char* header : {R"({"alg":"none","alg":"HS256"})", R"({"alg":"HS256","alg":"HS256"})",
                             R"({"alg":"HS256","typ":"JWT","kid":"a","kid":"b"})",
                             R"({"crit":["x"],"alg":"HS256","crit":[]})"}) {
    std::string input = base64url_encode(header) + "." + payload;
    auto r = verifier_->verify_at(input + "." + base64url_encode(key.sign(input).value()), kNow);
    ASSERT_FALSE(r.is_ok()) << header;
    EXPECT_EQ(r.status().code(), Code::kUnauthenticated) << header;
    EXPECT_EQ(r.status().reason(), reason::kHeaderMemberRepeated) << header;
    EXPECT_NE(r.status().message().find("appears more than once"), std::string::npos);
  }
  // The same header without the repeat verifies: the refusal is the repeat, nothing else.
  std::string input = base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." + payload;
  EXPECT_TRUE(verifier_->verify_at(input + "." + base64url_encode(key.sign(input).value()), kNow)
                  .is_ok());
}

TEST_F(VerifierTest, RefusesIssuerProblems) {
  json p = claims_for("hs");
  p.erase("iss");
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kIssMissing);
  p["iss"] = 7;
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kIssMissing);
  p["iss"] = "";
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kIssMissing);
  p["iss"] = "HS";  // exact, case-sensitive match
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kIssuerUnknown);
  p["iss"] = "hs ";
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kIssuerUnknown);
}

TEST_F(VerifierTest, RefusesBadSignatures) {
  std::string good = token("hs", Alg::kHS256);
  std::string tampered_sig = good;
  tampered_sig.back() = tampered_sig.back() == 'A' ? 'Q' : 'A';
  EXPECT_EQ(reason_of(tampered_sig), reason::kSignatureInvalid);
  // Payload changed after signing (privilege escalation attempt).
  json p = claims_for("hs");
  std::string signed_tok = token("hs", Alg::kHS256, p);
  p["roles"] = {"system.admin"};
  std::string forged = signed_tok.substr(0, signed_tok.find('.')) + "." +
                       base64url_encode(p.dump()) +
                       signed_tok.substr(signed_tok.rfind('.'));
  EXPECT_EQ(reason_of(forged), reason::kSignatureInvalid);
  EXPECT_EQ(reason_of(good.substr(0, good.rfind('.')) + ".!!"), reason::kSignatureBadBase64);
  EXPECT_EQ(reason_of(good.substr(0, good.rfind('.')) + ".AAAA"), reason::kSignatureBadLength);
  EXPECT_EQ(reason_of(good.substr(0, good.rfind('.')) + "."), reason::kSignatureBadLength);
  // Wrong secret.
  auto other = SigningKey::from_secret(std::string(40, 'z')).value();
  EXPECT_EQ(reason_of(make_token(other, {{"alg", "HS256"}}, claims_for("hs"))),
            reason::kSignatureInvalid);
  // Forged RSA and Ed25519 signatures from other keys of the same kind.
  auto rsa2 = SigningKey::from_private_pem(generate_key_pair("RSA", "2048").private_pem).value();
  EXPECT_EQ(reason_of(make_token(rsa2, {{"alg", "RS256"}}, claims_for("rsa"))),
            reason::kSignatureInvalid);
  auto ed2 = SigningKey::from_private_pem(generate_key_pair("ED25519").private_pem).value();
  EXPECT_EQ(reason_of(make_token(ed2, {{"alg", "EdDSA"}}, claims_for("ed"))),
            reason::kSignatureInvalid);
}

TEST_F(VerifierTest, EcdsaSignatureMustBeRawOfExactLength) {
  std::string good = token("p256", Alg::kES256);
  std::string input = good.substr(0, good.rfind('.'));
  auto raw = base64url_decode(good.substr(good.rfind('.') + 1)).value();
  ASSERT_EQ(raw.size(), 64u);
  // One byte short, one byte long, and the DER form OpenSSL itself produces: all refused.
  EXPECT_EQ(reason_of(input + "." + base64url_encode(raw.substr(0, 63))),
            reason::kSignatureBadLength);
  EXPECT_EQ(reason_of(input + "." + base64url_encode(raw + std::string(1, '\0'))), reason::kSignatureBadLength);
  std::string der = "\x30\x44\x02\x20" + raw.substr(0, 32) + "\x02\x20" + raw.substr(32);
  EXPECT_EQ(reason_of(input + "." + base64url_encode(der)), reason::kSignatureBadLength);
  // Right length, wrong value.
  raw[5] ^= 1;
  EXPECT_EQ(reason_of(input + "." + base64url_encode(raw)), reason::kSignatureInvalid);
  EXPECT_EQ(reason_of(input + "." + base64url_encode(std::string(64, '\0'))),
            reason::kSignatureInvalid);
}

TEST_F(VerifierTest, ExpirationRules) {
  json p = claims_for("hs");
  p.erase("exp");
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kExpMissing);
  p["exp"] = "1900000000";
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kExpNotNumber);
  p["exp"] = true;
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kExpNotNumber);
  p["exp"] = 0;  // OpenStorage treats 0 as "never expires"; we don't.
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kTokenExpired);
  p["exp"] = kNow - 31;  // beyond the 30 s skew
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kTokenExpired);
  p["exp"] = kNow - 29;  // within the skew
  EXPECT_TRUE(verifier_->verify_at(token("hs", Alg::kHS256, p), kNow).is_ok());
  p["exp"] = static_cast<double>(kNow) + 100.5;  // NumericDate may be fractional
  EXPECT_TRUE(verifier_->verify_at(token("hs", Alg::kHS256, p), kNow).is_ok());
  p["exp"] = kMaxNumericDate;  // 9999-12-31T23:59:59Z: the last accepted date
  EXPECT_TRUE(verifier_->verify_at(token("hs", Alg::kHS256, p), kNow).is_ok());
}

// Dates outside [0, 9999-12-31] are refused, each naming its claim: absurd values must never
// reach arithmetic with the skew (overflow) nor pass as "far future".
TEST_F(VerifierTest, DatesOutOfRangeAreRefused) {
  const json bad_values[] = {-1, -1e10, 1e308, kMaxNumericDate + 1, 18446744073709551615ull,
                             static_cast<double>(kMaxNumericDate) + 1.5};
  struct Case {
    const char* claim;
    const char* reason;
  };
  for (const Case& c : {Case{"exp", reason::kExpOutOfRange}, Case{"nbf", reason::kNbfOutOfRange},
                        Case{"iat", reason::kIatOutOfRange}}) {
    for (const json& v : bad_values) {
      json p = claims_for("hs");
      p[c.claim] = v;
      auto r = verifier_->verify_at(token("hs", Alg::kHS256, p), kNow);
      ASSERT_FALSE(r.is_ok()) << c.claim << "=" << v.dump();
      EXPECT_EQ(r.status().code(), Code::kUnauthenticated);
      EXPECT_EQ(r.status().reason(), c.reason) << c.claim << "=" << v.dump();
      EXPECT_NE(r.status().message().find(std::string("'") + c.claim + "'"), std::string::npos)
          << r.status().message();
    }
  }
  // 0 is in range (and expired, unlike OpenStorage's "never").
  json p = claims_for("hs");
  p["exp"] = 0;
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kTokenExpired);
}

TEST_F(VerifierTest, NotBeforeAndIssuedAt) {
  json p = claims_for("hs");
  p["nbf"] = kNow + 31;
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kTokenNotYetValid);
  p["nbf"] = kNow + 29;
  EXPECT_TRUE(verifier_->verify_at(token("hs", Alg::kHS256, p), kNow).is_ok());
  p["nbf"] = "soon";
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kNbfNotNumber);
  p.erase("nbf");
  p["iat"] = kNow + 31;
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kIatInFuture);
  p["iat"] = "now";
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kIatNotNumber);
}

TEST_F(VerifierTest, ClockSkewIsConfigurable) {
  rebuild({.clock_skew_seconds = 0});
  json p = claims_for("hs");
  p["exp"] = kNow - 1;
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kTokenExpired);
}

TEST_F(VerifierTest, MaxTokenLifetime) {
  rebuild({.max_token_lifetime_seconds = 3600});
  json p = claims_for("hs");
  p["iat"] = kNow;
  p["exp"] = kNow + 3601;
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kLifetimeTooLong);
  p["exp"] = kNow + 3600;
  EXPECT_TRUE(verifier_->verify_at(token("hs", Alg::kHS256, p), kNow).is_ok());
  p.erase("iat");
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kIatMissing);
}

TEST_F(VerifierTest, AudienceWhereConfigured) {
  json p = claims_for("aud");
  EXPECT_EQ(reason_of(token("aud", Alg::kHS256, p)), reason::kAudMissing);
  p["aud"] = "someone-else";
  EXPECT_EQ(reason_of(token("aud", Alg::kHS256, p)), reason::kAudMismatch);
  p["aud"] = {"a", "b"};
  EXPECT_EQ(reason_of(token("aud", Alg::kHS256, p)), reason::kAudMismatch);
  p["aud"] = 5;
  EXPECT_EQ(reason_of(token("aud", Alg::kHS256, p)), reason::kClaimBadType);
  p["aud"] = "volguard-api";
  EXPECT_TRUE(verifier_->verify_at(token("aud", Alg::kHS256, p), kNow).is_ok());
  p["aud"] = {"x", "other"};
  EXPECT_TRUE(verifier_->verify_at(token("aud", Alg::kHS256, p), kNow).is_ok());
  // Issuers without audiences ignore aud.
  json q = claims_for("hs");
  q["aud"] = "anything";
  EXPECT_TRUE(verifier_->verify_at(token("hs", Alg::kHS256, q), kNow).is_ok());
}

TEST_F(VerifierTest, ClaimTypes) {
  for (const char* field : {"roles", "groups"}) {
    json p = claims_for("hs");
    p[field] = "system.admin";  // a string where an array is required
    EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kClaimBadType) << field;
    p[field] = {"ok", 3};
    EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kClaimBadType) << field;
  }
  for (const char* field : {"sub", "name", "email"}) {
    json p = claims_for("hs");
    p[field] = 12;
    EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kClaimBadType) << field;
  }
}

TEST_F(VerifierTest, UsernameClaim) {
  json p = claims_for("hs");
  p["sub"] = "";
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kUsernameMissing);
  p.erase("sub");
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kUsernameMissing);
  rebuild({.username_claim = config::UsernameClaim::kEmail});
  auto r = verifier_->verify_at(token("hs", Alg::kHS256, p), kNow);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->username, "a@x");
  rebuild({.username_claim = config::UsernameClaim::kName});
  r = verifier_->verify_at(token("hs", Alg::kHS256, p), kNow);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->username, "Alice");
  p.erase("name");
  EXPECT_EQ(reason_of(token("hs", Alg::kHS256, p)), reason::kUsernameMissing);
}

// A username names a principal in grants and logs: a control character (a newline forging a log
// line, a NUL cutting a string) is refused, naming the configured claim.
TEST_F(VerifierTest, UsernameWithControlCharactersIsRefused) {
  for (const char* bad : {"alice\nroot", "alice\r", "\tbob", "a\x7f", "x\x01y"}) {
    json p = claims_for("hs");
    p["sub"] = bad;
    auto r = verifier_->verify_at(token("hs", Alg::kHS256, p), kNow);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kUnauthenticated);
    EXPECT_EQ(r.status().reason(), reason::kUsernameInvalid) << bad;
    EXPECT_NE(r.status().message().find("claim 'sub'"), std::string::npos) << r.status().message();
  }
  // Only the username claim is held to it: with username_claim email, a name with a tab passes.
  rebuild({.username_claim = config::UsernameClaim::kEmail});
  json p = claims_for("hs");
  p["name"] = "Alice\tA.";
  EXPECT_TRUE(verifier_->verify_at(token("hs", Alg::kHS256, p), kNow).is_ok());
  p["email"] = "a@x\n";
  auto r = verifier_->verify_at(token("hs", Alg::kHS256, p), kNow);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().reason(), reason::kUsernameInvalid);
  EXPECT_NE(r.status().message().find("claim 'email'"), std::string::npos) << r.status().message();
  // '/' and '%' are fine: the principal escapes them.
  rebuild();
  p = claims_for("hs");
  p["sub"] = "eu/alice%";
  auto ok = verifier_->verify_at(token("hs", Alg::kHS256, p), kNow);
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(ok->principal(), "hs/eu%2Falice%25");
}

// Groups are the issuer's unless the config shares them: the identity carries the group domain.
TEST_F(VerifierTest, GroupDomainComesFromTheIssuer) {
  auto a = verifier_->verify_at(token("hs", Alg::kHS256), kNow);
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->group_domain, "hs");  // default: the issuer itself
  EXPECT_EQ(a->qualified_group("eng"), "hs/eng");
  std::vector<TrustedIssuer> issuers;
  issuers.push_back({"hs", std::make_shared<StaticKeySource>(VerificationKey::from_secret(kSecret).value()), {}});
  issuers.back().group_domain = "corp";
  verifier_ = std::make_unique<Verifier>(VerifierOptions{}, std::move(issuers));
  auto b = verifier_->verify_at(token("hs", Alg::kHS256), kNow);
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(b->group_domain, "corp");
  EXPECT_EQ(b->qualified_group("x/y"), "corp/x%2Fy");
}

// issuer "corp" + sub "eu/alice" vs issuer "corp/eu" + sub "alice": one string before, two now.
TEST_F(VerifierTest, ConfusablePrincipalsAreDistinct) {
  std::vector<TrustedIssuer> issuers;
  for (const char* iss : {"corp", "corp/eu"}) {
    issuers.push_back({iss, std::make_shared<StaticKeySource>(VerificationKey::from_secret(kSecret).value()), {}});
  }
  verifier_ = std::make_unique<Verifier>(VerifierOptions{}, std::move(issuers));
  json p = claims_for("corp");
  p["sub"] = "eu/alice";
  json q = claims_for("corp/eu");
  q["sub"] = "alice";
  auto a = verifier_->verify_at(token("hs", Alg::kHS256, p), kNow);
  auto b = verifier_->verify_at(token("hs", Alg::kHS256, q), kNow);
  ASSERT_TRUE(a.is_ok() && b.is_ok()) << a.status().to_string() << b.status().to_string();
  EXPECT_NE(a->principal(), b->principal());
  EXPECT_EQ(a->principal(), "corp/eu%2Falice");
  EXPECT_EQ(b->principal(), "corp/eu/alice");
}

TEST_F(VerifierTest, SameUsernameFromTwoIssuersIsTwoPrincipals) {
  auto a = verifier_->verify_at(token("hs", Alg::kHS256), kNow);
  auto b = verifier_->verify_at(token("rsa", Alg::kRS256), kNow);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a->username, b->username);
  EXPECT_NE(a->principal(), b->principal());
}

TEST_F(VerifierTest, FailureMessagesNeverContainTheToken) {
  std::vector<std::string> bad = {
      token("hs", Alg::kHS256, {{"iss", "hs"}, {"sub", "x"}}),
      token("hs", Alg::kHS256, {{"iss", "nope"}, {"exp", kNow + 10}}),
      token("rsa", Alg::kRS256, claims_for("rsa"), {{"alg", "RS256"}, {"crit", {"x"}}}),
  };
  std::string t = token("hs", Alg::kHS256);
  bad.push_back(t.substr(0, t.size() - 2) + "AA");
  for (const auto& tok : bad) {
    auto r = verifier_->verify_at(tok, kNow);
    ASSERT_FALSE(r.is_ok());
    for (const auto& part : split(tok, '.')) {
      if (part.size() < 8) continue;
      EXPECT_EQ(r.status().message().find(part), std::string::npos) << r.status().message();
    }
  }
}

TEST(VerificationKeyTest, RefusesWeakOrUnsupportedKeys) {
  EXPECT_EQ(VerificationKey::from_secret(std::string(31, 'x')).status().reason(),
            "secret_too_weak");
  EXPECT_TRUE(VerificationKey::from_secret(std::string(32, 'x')).is_ok());
  auto rsa1024 = generate_key_pair("RSA", "1024");
  EXPECT_EQ(VerificationKey::from_public_pem(rsa1024.public_pem).status().reason(),
            "key_too_weak");
  auto k1 = generate_key_pair("EC", "secp256k1");
  EXPECT_EQ(VerificationKey::from_public_pem(k1.public_pem).status().reason(), "key_unsupported");
  EXPECT_EQ(VerificationKey::from_public_pem("garbage").status().reason(), "key_unparsable");
  // A private key where a public key belongs is refused rather than guessed at.
  EXPECT_EQ(VerificationKey::from_public_pem(keys().rsa.private_pem).status().reason(),
            "key_unparsable");
}

}  // namespace
}  // namespace volguard::identity
