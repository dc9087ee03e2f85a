// Key material for JWS: parsed once when an issuer is loaded, never per request.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/openssl.h"
#include "common/status.h"

namespace volguard::identity {

// The JWS algorithms volguard knows (RFC 7518 §3.1, RFC 8037). "none" is deliberately absent.
enum class Alg { kHS256, kHS384, kHS512, kRS256, kRS384, kRS512, kPS256, kPS384, kPS512,
                 kES256, kES384, kES512, kEdDSA };

std::optional<Alg> alg_from_name(std::string_view name);
const char* alg_name(Alg alg);

// What a key is; decides which algorithms it may verify (no algorithm confusion).
enum class KeyKind { kHmac, kRsa, kEcP256, kEcP384, kEcP521, kEd25519 };
const char* key_kind_name(KeyKind kind);

enum class SignatureCheck { kValid, kBadLength, kInvalid };

// Verifies signatures of one key. Immutable after construction, so one instance is shared by
// every request thread without locks.
class VerificationKey {
 public:
  // A shared HMAC secret; refused when shorter than 32 bytes (RFC 7518 §3.2 asks for at least
  // the hash size).
  static Result<std::shared_ptr<const VerificationKey>> from_secret(std::string secret);
  // A PEM public key (SubjectPublicKeyInfo): RSA (≥ 2048 bits), EC P-256/384/521 or Ed25519.
  static Result<std::shared_ptr<const VerificationKey>> from_public_pem(std::string_view pem);
  // An already-parsed public key (JWKS); `what` names it in errors.
  static Result<std::shared_ptr<const VerificationKey>> from_pkey(PkeyPtr pkey,
                                                                   const std::string& what);

  ~VerificationKey();
  VerificationKey(const VerificationKey&) = delete;
  VerificationKey& operator=(const VerificationKey&) = delete;

  KeyKind kind() const { return kind_; }
  bool allows(Alg alg) const;
  // "RS256, RS384, ..." for error messages.
  std::string allowed_algs() const;
  SignatureCheck verify(Alg alg, std::string_view signing_input,
                        std::string_view signature) const;

 private:
  VerificationKey() = default;
  SignatureCheck verify_hmac(Alg alg, std::string_view input, std::string_view sig) const;
  SignatureCheck verify_pkey(Alg alg, std::string_view input, std::string_view sig) const;

  KeyKind kind_ = KeyKind::kHmac;
  // Unique per key object for the life of the process: names this key in each thread's cache
  // of ready-made OpenSSL contexts (an address could be reused by a later key).
  uint64_t id_ = 0;
  std::string secret_;
  PkeyPtr pkey_;
  // HMAC contexts keyed once at load for SHA-256/384/512; a request duplicates one.
  EVP_MAC_CTX* hmac_[3] = {nullptr, nullptr, nullptr};
};

// Signs tokens (`volguard token generate`, tests, make run's admin token).
class SigningKey {
 public:
  static Result<SigningKey> from_secret(std::string secret);
  // RSA → RS256, EC P-256 → ES256, P-384 → ES384, P-521 → ES512, Ed25519 → EdDSA.
  static Result<SigningKey> from_private_pem(std::string_view pem);

  Alg alg() const { return alg_; }
  // The same key signing with another algorithm its kind allows (HS384, PS256, ...).
  Result<SigningKey> with_alg(Alg alg) const;
  Result<std::string> sign(std::string_view signing_input) const;

 private:
  Alg alg_ = Alg::kHS256;
  KeyKind kind_ = KeyKind::kHmac;
  std::string secret_;
  std::shared_ptr<EVP_PKEY> pkey_;
};

}  // namespace volguard::identity
