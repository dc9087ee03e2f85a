// Verifies compact-JWS bearer tokens against the configured issuers.
// Model: google/jwt_verify_lib — one reason code per failed check.
#pragma once

#include <chrono>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "config/config.h"
#include "identity/identity.h"
#include "identity/keys.h"

namespace volguard::identity {

// Stable reason codes (the Status `reason` of every authentication failure).
namespace reason {
inline constexpr char kTokenTooLarge[] = "token_too_large";
inline constexpr char kTokenMalformed[] = "token_malformed";
inline constexpr char kHeaderBadBase64[] = "header_bad_base64";
inline constexpr char kHeaderBadJson[] = "header_bad_json";
inline constexpr char kHeaderMemberRepeated[] = "header_member_repeated";
inline constexpr char kAlgMissing[] = "alg_missing";
inline constexpr char kAlgNone[] = "alg_none";
inline constexpr char kAlgUnsupported[] = "alg_unsupported";
inline constexpr char kAlgKeyMismatch[] = "alg_key_mismatch";
inline constexpr char kCritUnsupported[] = "crit_unsupported";
inline constexpr char kPayloadBadBase64[] = "payload_bad_base64";
inline constexpr char kPayloadBadJson[] = "payload_bad_json";
inline constexpr char kClaimRepeated[] = "claim_repeated";
inline constexpr char kIssMissing[] = "iss_missing";
inline constexpr char kIssuerUnknown[] = "issuer_unknown";
inline constexpr char kKeysUnavailable[] = "keys_unavailable";
inline constexpr char kKidUnknown[] = "kid_unknown";
inline constexpr char kSignatureBadBase64[] = "signature_bad_base64";
inline constexpr char kSignatureBadLength[] = "signature_bad_length";
inline constexpr char kSignatureInvalid[] = "signature_invalid";
inline constexpr char kExpMissing[] = "exp_missing";
inline constexpr char kExpNotNumber[] = "exp_not_number";
inline constexpr char kExpOutOfRange[] = "exp_out_of_range";
inline constexpr char kTokenExpired[] = "token_expired";
inline constexpr char kNbfNotNumber[] = "nbf_not_number";
inline constexpr char kNbfOutOfRange[] = "nbf_out_of_range";
inline constexpr char kTokenNotYetValid[] = "token_not_yet_valid";
inline constexpr char kIatNotNumber[] = "iat_not_number";
inline constexpr char kIatOutOfRange[] = "iat_out_of_range";
inline constexpr char kIatInFuture[] = "iat_in_future";
inline constexpr char kIatMissing[] = "iat_missing";
inline constexpr char kLifetimeTooLong[] = "lifetime_too_long";
inline constexpr char kAudMissing[] = "aud_missing";
inline constexpr char kAudMismatch[] = "aud_mismatch";
inline constexpr char kClaimBadType[] = "claim_bad_type";
inline constexpr char kUsernameMissing[] = "username_missing";
inline constexpr char kUsernameInvalid[] = "username_invalid";
inline constexpr char kEmailUnverified[] = "email_unverified";
}  // namespace reason

// How current a fetched key set is (a JWKS source), for the keys-age gauge of /metrics.
struct KeyFetchState {
  // When the last successful fetch ended; nullopt: none yet (tokens refused keys_unavailable).
  std::optional<std::chrono::steady_clock::time_point> last_success;
};

// Where an issuer's keys come from. A static key ignores `kid`; a JWKS source (OIDC) selects
// by it. Implementations are thread-safe.
class KeySource {
 public:
  virtual ~KeySource() = default;
  // A key for this token, or UNAUTHENTICATED with kKeysUnavailable / kKidUnknown.
  virtual Result<std::shared_ptr<const VerificationKey>> key_for(std::string_view kid,
                                                                   Alg alg) const = 0;
  // Keys fetched from a provider say how current they are; keys from the config (nullopt) are
  // as current as the config.
  virtual std::optional<KeyFetchState> fetch_state() const { return std::nullopt; }
};

class StaticKeySource : public KeySource {
 public:
  explicit StaticKeySource(std::shared_ptr<const VerificationKey> key) : key_(std::move(key)) {}
  Result<std::shared_ptr<const VerificationKey>> key_for(std::string_view, Alg) const override {
    return key_;
  }

 private:
  std::shared_ptr<const VerificationKey> key_;
};

// One trusted issuer, compiled from config.
struct TrustedIssuer {
  std::string issuer;
  std::shared_ptr<const KeySource> keys;
  std::vector<std::string> audiences;  // empty = aud not checked
  // Where roles and groups live when not top-level "roles"/"groups" (OIDC providers):
  // "<namespace>roles" first, then the JSON pointer ("/realm_access/roles").
  std::string claims_namespace;
  std::string roles_pointer;   // empty = "/roles"
  std::string groups_pointer;  // empty = "/groups"
  std::string group_domain;    // whose groups its tokens claim; empty = the issuer itself
};

struct VerifierOptions {
  config::UsernameClaim username_claim = config::UsernameClaim::kSub;
  int64_t clock_skew_seconds = 30;
  int64_t max_token_lifetime_seconds = 0;
  // Verified tokens remembered (LRU), 0 = none: see VerifiedTokenCache. A quarter as many
  // tokens whose signature did not verify are remembered apart (a client retrying a bad token).
  size_t token_cache_entries = 4096;
};

// Tokens that verified, by SHA-256 of the whole token: a tenant's CSI token is presented
// thousands of times, and an RS256/ES256 signature check costs 20-70 µs. The verifier keeps
// successes in one cache and signature refusals in another (a misconfigured client retries its
// bad token as often as a good one is presented), so the cache can never turn a refusal into an
// acceptance, and a flood of distinct bad tokens evicts only other refusals. A hit is used only while the
// key that verified the token is still the one its issuer serves for it (a JWKS rotation or a
// changed key drops it), and every time-based check (exp, nbf, iat) runs again on every hit,
// with the same functions as a full verification; an entry that fails one is dropped. Bounded:
// the least recently used entry goes first. Thread-safe.
class VerifiedTokenCache {
 public:
  struct Entry {
    Identity identity;
    int64_t not_before = 0;  // nbf, when present
    bool has_not_before = false;
    std::shared_ptr<const VerificationKey> key;  // what verified the signature
    std::string kid;
    Alg alg{};
    const struct TrustedIssuer* issuer = nullptr;  // owned by the Verifier, as long-lived
    Status refusal;  // the refusals cache: why the signature did not verify with `key`
  };
  explicit VerifiedTokenCache(size_t capacity) : capacity_(capacity) {}
  std::optional<Entry> get(const std::string& digest);
  void put(const std::string& digest, Entry entry);
  void erase(const std::string& digest);
  size_t size() const;

 private:
  using Lru = std::list<std::pair<std::string, Entry>>;
  const size_t capacity_;
  mutable std::mutex mu_;
  Lru lru_;  // most recent first; guarded by mu_
  std::unordered_map<std::string, Lru::iterator> index_;  // guarded by mu_
};

inline constexpr size_t kMaxTokenBytes = 16 * 1024;
// exp, nbf and iat must lie in [0, 9999-12-31T23:59:59Z]: beyond, a date is an attack or a bug
// (and the arithmetic with clock_skew must never overflow).
inline constexpr int64_t kMaxNumericDate = 253402300799;

// What the pipeline needs of token verification: a narrow interface, so that a unit test of
// the pipeline can stand in a fake and production has exactly one implementation (Verifier).
class TokenVerifier {
 public:
  virtual ~TokenVerifier() = default;
  // The identity a compact-JWS bearer token proves, or UNAUTHENTICATED with one reason.
  virtual Result<Identity> verify(std::string_view token) const = 0;
  // Drops whatever is remembered of `token` (a revocation now covers it).
  virtual void forget(std::string_view token) const = 0;
};

class Verifier : public TokenVerifier {
 public:
  Verifier(VerifierOptions options, std::vector<TrustedIssuer> issuers);

  // Builds issuers from config: reads secret files/env and PEM keys now, once. Errors name
  // the config file, the key and the reason.
  // `fetch_keys_now`: fetch OIDC providers' keys before returning (the CLI's one-shot verify);
  // the server leaves it false so that a provider that is down delays nothing.
  static Result<std::shared_ptr<const Verifier>> from_config(const config::SecurityConfig& cfg,
                                                             bool fetch_keys_now = false);

  Result<Identity> verify(std::string_view token) const override;
  void forget(std::string_view token) const override;
  Result<Identity> verify_at(std::string_view token, int64_t now_unix) const;

  size_t issuer_count() const { return issuers_.size(); }
  // Each issuer whose keys are fetched (OIDC), by name: how current its keys are.
  std::map<std::string, KeyFetchState> key_fetch_states() const;
  size_t cached_tokens() const { return cache_.size(); }
  size_t cached_refusals() const { return refused_.size(); }

 private:
  // A full verification; `entry` receives what a cache hit needs to repeat its checks.
  Result<Identity> verify_uncached(std::string_view token, int64_t now, VerifiedTokenCache::Entry* entry) const;
  // The time checks, one function each, shared by full verifications and cache hits.
  Status check_not_expired(int64_t exp, int64_t now) const;
  Status check_not_before(int64_t nbf, int64_t now) const;
  Status check_issued_at(int64_t iat, int64_t now) const;

  VerifierOptions options_;
  std::map<std::string, TrustedIssuer, std::less<>> issuers_;
  mutable VerifiedTokenCache cache_;
  mutable VerifiedTokenCache refused_;  // tokens whose signature did not verify
};

// Loads a shared secret from a file (one trailing newline dropped) or an env variable.
Result<std::string> load_secret(const config::IssuerConfig& issuer);

}  // namespace volguard::identity
