// The verified-token cache (identity/verifier.h): a hit must never accept what a full
// verification would refuse — expiry, not-before and issued-in-the-future are re-checked on every
// hit, a changed issuer key drops the entry, refusals are never remembered, and the cache is
// bounded.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <nlohmann/json.hpp>

#include "identity/keys.h"
#include "identity/token.h"
#include "identity/verifier.h"
#include "support/test_keys.h"

namespace volguard::identity {
namespace {

using json = nlohmann::json;
using volguard::testing::make_token;
constexpr int64_t kNow = 1'800'000'000;
const std::string kSecret = "0123456789abcdef0123456789abcdef-cache-secret";

// A key source whose key the test can replace (a JWKS rotation), counting lookups.
class SwappableKeys : public KeySource {
 public:
  explicit SwappableKeys(std::shared_ptr<const VerificationKey> key) : key_(std::move(key)) {}
  Result<std::shared_ptr<const VerificationKey>> key_for(std::string_view, Alg) const override {
    std::lock_guard lock(mu_);
    return key_;
  }
  void swap(std::shared_ptr<const VerificationKey> key) {
    std::lock_guard lock(mu_);
    key_ = std::move(key);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const VerificationKey> key_;
};

std::shared_ptr<const VerificationKey> hmac_key(const std::string& secret) {
  return VerificationKey::from_secret(secret).value();
}

std::string token(json claims, const std::string& secret = kSecret) {
  return make_token(SigningKey::from_secret(secret).value(), {{"alg", "HS256"}, {"typ", "JWT"}}, claims);
}

json claims(int64_t exp, std::optional<int64_t> nbf = std::nullopt, std::optional<int64_t> iat = kNow - 10) {
  json c = {{"iss", "hs"}, {"sub", "alice"}, {"roles", {"system.user"}}, {"exp", exp}};
  if (nbf) c["nbf"] = *nbf;
  if (iat) c["iat"] = *iat;
  return c;
}

class TokenCacheTest : public ::testing::Test {
 protected:
  void build(size_t entries, int64_t skew = 30) {
    keys_ = std::make_shared<SwappableKeys>(hmac_key(kSecret));
    std::vector<TrustedIssuer> issuers;
    issuers.push_back({"hs", keys_, {}});
    verifier_ = std::make_unique<Verifier>(
        VerifierOptions{.clock_skew_seconds = skew, .token_cache_entries = entries}, std::move(issuers));
  }
  std::string reason_at(const std::string& tok, int64_t now) {
    auto r = verifier_->verify_at(tok, now);
    return r.is_ok() ? "accepted" : r.status().reason();
  }

  std::shared_ptr<SwappableKeys> keys_;
  std::unique_ptr<Verifier> verifier_;
};

TEST_F(TokenCacheTest, ATokenThatExpiresWhileCachedIsRefusedAsExpired) {
  build(16, 0);
  const std::string t = token(claims(kNow + 60));
  ASSERT_EQ(reason_at(t, kNow), "accepted");
  EXPECT_EQ(verifier_->cached_tokens(), 1u);
  ASSERT_EQ(reason_at(t, kNow + 60), "accepted");  // a hit, at the last valid second
  EXPECT_EQ(reason_at(t, kNow + 61), "token_expired");
  EXPECT_EQ(verifier_->cached_tokens(), 0u) << "an expired entry is dropped";
  EXPECT_EQ(reason_at(t, kNow + 61), "token_expired") << "and a full verification agrees";
}

TEST_F(TokenCacheTest, TimeChecksRepeatOnEveryHitWithTheSameSkew) {
  build(16, 30);
  const std::string t = token(claims(kNow + 60, kNow - 5, kNow - 10));
  ASSERT_EQ(reason_at(t, kNow), "accepted");
  EXPECT_EQ(reason_at(t, kNow + 90), "accepted");  // exp + skew
  EXPECT_EQ(reason_at(t, kNow + 91), "token_expired");
  // Verified (and cached) at a late clock, then asked about at an early one (a clock stepped
  // back): nbf and iat refuse on the hit as they would on a full verification.
  ASSERT_EQ(reason_at(t, kNow), "accepted");
  EXPECT_EQ(reason_at(t, kNow - 36), "token_not_yet_valid");
  ASSERT_EQ(reason_at(t, kNow), "accepted");
  const std::string no_nbf = token(claims(kNow + 60, std::nullopt, kNow - 10));
  ASSERT_EQ(reason_at(no_nbf, kNow), "accepted");
  EXPECT_EQ(reason_at(no_nbf, kNow - 41), "iat_in_future");
}

TEST_F(TokenCacheTest, RefusalsAreNeverAcceptedAndOneByteMakesAnotherToken) {
  build(16);
  const std::string good = token(claims(kNow + 600));
  const std::string forged = token(claims(kNow + 600), "an-attacker-guessed-secret-0123456789abcd");
  EXPECT_EQ(reason_at(forged, kNow), "signature_invalid");
  EXPECT_EQ(verifier_->cached_refusals(), 1u) << "a bad signature is remembered as a refusal";
  EXPECT_EQ(reason_at(forged, kNow), "signature_invalid");
  EXPECT_EQ(verifier_->cached_tokens(), 0u) << "and never as a verified token";
  ASSERT_EQ(reason_at(good, kNow), "accepted");
  std::string tampered = good;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(reason_at(tampered, kNow), "signature_invalid") << "a cached token's neighbour is not a hit";
  const std::string early = token(claims(kNow + 600, kNow + 3600));
  EXPECT_EQ(reason_at(early, kNow), "token_not_yet_valid");
  EXPECT_EQ(verifier_->cached_tokens(), 1u);
  EXPECT_EQ(verifier_->cached_refusals(), 2u) << "only signature refusals are remembered";
}

// A remembered refusal is tied to the key that refused it: when the issuer's key changes to
// one the token was signed with, the token is verified afresh and accepted.
TEST_F(TokenCacheTest, ARefusalIsForgottenWhenTheIssuerKeyChanges) {
  build(16);
  const std::string next_secret = "the-next-secret-0123456789abcdef0123456789";
  const std::string t = token(claims(kNow + 600), next_secret);
  ASSERT_EQ(reason_at(t, kNow), "signature_invalid");
  ASSERT_EQ(reason_at(t, kNow), "signature_invalid");
  keys_->swap(hmac_key(next_secret));
  EXPECT_EQ(reason_at(t, kNow), "accepted");
  EXPECT_EQ(verifier_->cached_refusals(), 0u);
  EXPECT_EQ(verifier_->cached_tokens(), 1u);
}

// A flood of distinct bad tokens evicts only remembered refusals, never verified tokens.
TEST_F(TokenCacheTest, BadTokensCannotEvictVerifiedOnes) {
  build(8);  // 8 verified, 2 refusals
  const std::string good = token(claims(kNow + 600));
  ASSERT_EQ(reason_at(good, kNow), "accepted");
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(reason_at(token(claims(kNow + 600 + i), "flood-secret-0123456789abcdef0123456789ab"), kNow),
              "signature_invalid");
  }
  EXPECT_EQ(verifier_->cached_refusals(), 2u);
  EXPECT_EQ(verifier_->cached_tokens(), 1u) << "the verified token is still remembered";
  EXPECT_EQ(reason_at(good, kNow), "accepted");
}

TEST_F(TokenCacheTest, AChangedIssuerKeyDropsTheEntry) {
  build(16);
  const std::string t = token(claims(kNow + 600));
  ASSERT_EQ(reason_at(t, kNow), "accepted");
  keys_->swap(hmac_key("a-rotated-secret-0123456789abcdef0123456789"));
  EXPECT_EQ(reason_at(t, kNow), "signature_invalid");
  EXPECT_EQ(verifier_->cached_tokens(), 0u);
  // The same key material in a new key object (a JWKS refetch) verifies afresh.
  keys_->swap(hmac_key(kSecret));
  EXPECT_EQ(reason_at(t, kNow), "accepted");
}

TEST_F(TokenCacheTest, BoundedLeastRecentlyUsedGoesFirst) {
  build(2);
  const std::string a = token(claims(kNow + 601)), b = token(claims(kNow + 602)), c = token(claims(kNow + 603));
  ASSERT_EQ(reason_at(a, kNow), "accepted");
  ASSERT_EQ(reason_at(b, kNow), "accepted");
  ASSERT_EQ(reason_at(a, kNow), "accepted");  // a is now the most recent
  ASSERT_EQ(reason_at(c, kNow), "accepted");  // evicts b
  EXPECT_EQ(verifier_->cached_tokens(), 2u);
  // b is verified afresh (a swapped key shows which ones are hits: a hit of b would need the
  // old key object, and there is none).
  keys_->swap(hmac_key("another-secret-0123456789abcdef0123456789ab"));
  EXPECT_EQ(reason_at(b, kNow), "signature_invalid");
  build(0);
  ASSERT_EQ(reason_at(a, kNow), "accepted");
  EXPECT_EQ(verifier_->cached_tokens(), 0u) << "0 entries: no cache";
}

TEST_F(TokenCacheTest, ConcurrentHitsAndMissesAgreeWithFullVerification) {
  build(8);
  std::vector<std::string> tokens;
  for (int i = 0; i < 32; ++i) tokens.push_back(token(claims(kNow + 600 + i)));
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 400; ++i) {
        const auto& tok = tokens[(i * 7 + t) % tokens.size()];
        auto r = verifier_->verify_at(tok, kNow);
        if (!r.is_ok() || r->username != "alice") ++wrong;
        if (verifier_->verify_at(tok, kNow + 700).is_ok()) ++wrong;  // expired for every token
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_LE(verifier_->cached_tokens(), 8u);
}

}  // namespace
}  // namespace volguard::identity
