#include "identity/keys.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <array>
#include <atomic>
#include <vector>
#include <cstring>

namespace volguard::identity {

namespace {

struct AlgInfo {
  Alg alg;
  const char* name;
};
constexpr std::array<AlgInfo, 13> kAlgs = {{
    {Alg::kHS256, "HS256"}, {Alg::kHS384, "HS384"}, {Alg::kHS512, "HS512"},
    {Alg::kRS256, "RS256"}, {Alg::kRS384, "RS384"}, {Alg::kRS512, "RS512"},
    {Alg::kPS256, "PS256"}, {Alg::kPS384, "PS384"}, {Alg::kPS512, "PS512"},
    {Alg::kES256, "ES256"}, {Alg::kES384, "ES384"}, {Alg::kES512, "ES512"},
    {Alg::kEdDSA, "EdDSA"},
}};

// 0 = SHA-256, 1 = SHA-384, 2 = SHA-512.
int digest_index(Alg alg) {
  switch (alg) {
    case Alg::kHS256: case Alg::kRS256: case Alg::kPS256: case Alg::kES256: return 0;
    case Alg::kHS384: case Alg::kRS384: case Alg::kPS384: case Alg::kES384: return 1;
    default: return 2;
  }
}

// Digests fetched once per process: implicit fetching per call costs a store lookup each time.
const EVP_MD* digest(int index) {
  static const EVP_MD* const kDigests[3] = {
      EVP_MD_fetch(nullptr, "SHA256", nullptr),
      EVP_MD_fetch(nullptr, "SHA384", nullptr),
      EVP_MD_fetch(nullptr, "SHA512", nullptr),
  };
  return kDigests[index];
}

const char* digest_name(int index) {
  static const char* const kNames[3] = {"SHA256", "SHA384", "SHA512"};
  return kNames[index];
}

size_t ec_component_size(KeyKind kind) {
  switch (kind) {
    case KeyKind::kEcP256: return 32;
    case KeyKind::kEcP384: return 48;
    case KeyKind::kEcP521: return 66;
    default: return 0;
  }
}

// Classifies a parsed public or private key; refuses kinds JWS cannot use safely.
Result<KeyKind> classify(EVP_PKEY* pkey, const std::string& what) {
  if (EVP_PKEY_is_a(pkey, "RSA")) {
    int bits = EVP_PKEY_get_bits(pkey);
    if (bits < 2048) {
      return Status(Code::kInvalidArgument, "key_too_weak",
                    what + ": RSA key has " + std::to_string(bits) +
                        " bits; at least 2048 are required");
    }
    return KeyKind::kRsa;
  }
  if (EVP_PKEY_is_a(pkey, "EC")) {
    char group[64] = {0};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &len) != 1) {
      return Status(Code::kInvalidArgument, "key_unsupported",
                    what + ": EC key without a named curve");
    }
    std::string g(group, len);
    if (g == "prime256v1" || g == "P-256") return KeyKind::kEcP256;
    if (g == "secp384r1" || g == "P-384") return KeyKind::kEcP384;
    if (g == "secp521r1" || g == "P-521") return KeyKind::kEcP521;
    return Status(Code::kInvalidArgument, "key_unsupported",
                  what + ": EC curve " + g + " is not one of P-256, P-384, P-521");
  }
  if (EVP_PKEY_is_a(pkey, "ED25519")) return KeyKind::kEd25519;
  return Status(Code::kInvalidArgument, "key_unsupported",
                what + ": key type " + std::string(EVP_PKEY_get0_type_name(pkey)) +
                    " is not RSA, EC or Ed25519");
}

// JWS ES* signatures are raw r||s; OpenSSL wants DER.
bool raw_ecdsa_to_der(std::string_view raw, size_t half, std::string* der) {
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BnPtr r(BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(half), nullptr));
  BnPtr s(BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data() + half),
                    static_cast<int>(half), nullptr));
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return false;
  // The signature owns r and s now.
  (void)r.release();
  (void)s.release();
  int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return false;
  der->resize(static_cast<size_t>(len));
  auto* p = reinterpret_cast<unsigned char*>(der->data());
  return i2d_ECDSA_SIG(sig.get(), &p) == len;
}

bool der_ecdsa_to_raw(std::string_view der, size_t half, std::string* raw) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) return false;
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  raw->assign(half * 2, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw->data());
  return BN_bn2binpad(r, out, static_cast<int>(half)) == static_cast<int>(half) &&
         BN_bn2binpad(s, out + half, static_cast<int>(half)) == static_cast<int>(half);
}

// RFC 7518 §3.2 asks for an HMAC key at least as long as the hash: 32 bytes for HS256. Signer
// and verifier refuse the same secrets.
Status check_secret_strength(const std::string& secret) {
  if (secret.size() >= 32) return Status::ok();
  return Status(Code::kInvalidArgument, "secret_too_weak",
                "shared secret has " + std::to_string(secret.size()) +
                    " bytes; at least 32 are required");
}

bool kind_allows(KeyKind kind, Alg alg) {
  switch (kind) {
    case KeyKind::kHmac: return alg == Alg::kHS256 || alg == Alg::kHS384 || alg == Alg::kHS512;
    case KeyKind::kRsa:
      return alg == Alg::kRS256 || alg == Alg::kRS384 || alg == Alg::kRS512 ||
             alg == Alg::kPS256 || alg == Alg::kPS384 || alg == Alg::kPS512;
    case KeyKind::kEcP256: return alg == Alg::kES256;
    case KeyKind::kEcP384: return alg == Alg::kES384;
    case KeyKind::kEcP521: return alg == Alg::kES512;
    case KeyKind::kEd25519: return alg == Alg::kEdDSA;
  }
  return false;
}

bool is_pss(Alg alg) { return alg == Alg::kPS256 || alg == Alg::kPS384 || alg == Alg::kPS512; }

std::atomic<uint64_t> next_key_id{1};

// OpenSSL 3 makes every fresh EVP_PKEY_CTX / EVP_MAC_CTX pay for provider lookups, locks and
// allocations that cost more than an RSA verify's own arithmetic. Each thread therefore keeps
// contexts initialised once per (key, algorithm) and reuses them, as `openssl speed` does.
// Contexts are never shared across threads, so no lock is taken on the request path.
struct CachedContext {
  uint64_t key_id = 0;
  Alg alg = Alg::kHS256;
  EVP_MAC_CTX* mac = nullptr;       // HMAC, keyed; re-initialised per use with the same key
  EVP_PKEY_CTX* pkey = nullptr;     // RSA / ECDSA: verify-initialised, padding set
  EVP_MD_CTX* one_shot = nullptr;   // Ed25519: DigestVerify-initialised
};

class ThreadContexts {
 public:
  ~ThreadContexts() { clear(); }
  CachedContext* find(uint64_t key_id, Alg alg) {
    for (auto& c : entries_) {
      if (c.key_id == key_id && c.alg == alg) return &c;
    }
    return nullptr;
  }
  CachedContext* add(CachedContext c) {
    // Bounded: keys rotate rarely; dropping everything on overflow keeps this trivially correct.
    if (entries_.size() >= 64) clear();
    entries_.push_back(c);
    return &entries_.back();
  }
  EVP_MD_CTX* hash_ctx() {
    if (!hash_) hash_.reset(EVP_MD_CTX_new());
    return hash_.get();
  }

 private:
  void clear() {
    for (auto& c : entries_) {
      EVP_MAC_CTX_free(c.mac);
      EVP_PKEY_CTX_free(c.pkey);
      EVP_MD_CTX_free(c.one_shot);
    }
    entries_.clear();
  }
  std::vector<CachedContext> entries_;
  MdCtxPtr hash_;
};

ThreadContexts& thread_contexts() {
  thread_local ThreadContexts contexts;
  return contexts;
}

}  // namespace

std::optional<Alg> alg_from_name(std::string_view name) {
  for (const auto& info : kAlgs) {
    if (name == info.name) return info.alg;
  }
  return std::nullopt;
}

const char* alg_name(Alg alg) {
  for (const auto& info : kAlgs) {
    if (info.alg == alg) return info.name;
  }
  return "?";
}

const char* key_kind_name(KeyKind kind) {
  switch (kind) {
    case KeyKind::kHmac: return "shared secret";
    case KeyKind::kRsa: return "RSA";
    case KeyKind::kEcP256: return "EC P-256";
    case KeyKind::kEcP384: return "EC P-384";
    case KeyKind::kEcP521: return "EC P-521";
    case KeyKind::kEd25519: return "Ed25519";
  }
  return "?";
}

VerificationKey::~VerificationKey() {
  for (auto* ctx : hmac_) EVP_MAC_CTX_free(ctx);
}

Result<std::shared_ptr<const VerificationKey>> VerificationKey::from_secret(std::string secret) {
  RETURN_IF_ERROR(check_secret_strength(secret));
  std::shared_ptr<VerificationKey> key(new VerificationKey());
  key->kind_ = KeyKind::kHmac;
  key->id_ = next_key_id.fetch_add(1);
  key->secret_ = std::move(secret);
  MacPtr mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (!mac) {
    return Status(Code::kInternal, "crypto_unavailable", "HMAC: " + openssl_error());
  }
  for (int i = 0; i < 3; ++i) {
    MacCtxPtr ctx(EVP_MAC_CTX_new(mac.get()));
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                         const_cast<char*>(digest_name(i)), 0),
        OSSL_PARAM_construct_end()};
    if (!ctx || EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(key->secret_.data()),
                             key->secret_.size(), params) != 1) {
      return Status(Code::kInternal, "crypto_unavailable", "HMAC init: " + openssl_error());
    }
    key->hmac_[i] = ctx.release();
  }
  return std::shared_ptr<const VerificationKey>(std::move(key));
}

Result<std::shared_ptr<const VerificationKey>> VerificationKey::from_public_pem(
    std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!pkey) {
    ERR_clear_error();
    return Status(Code::kInvalidArgument, "key_unparsable",
                  "not a PEM public key (expected -----BEGIN PUBLIC KEY-----)");
  }
  return from_pkey(std::move(pkey), "public key");
}

Result<std::shared_ptr<const VerificationKey>> VerificationKey::from_pkey(PkeyPtr pkey,
                                                                        const std::string& what) {
  auto kind = classify(pkey.get(), what);
  if (!kind) return kind.status();
  std::shared_ptr<VerificationKey> key(new VerificationKey());
  key->kind_ = *kind;
  key->id_ = next_key_id.fetch_add(1);
  key->pkey_ = std::move(pkey);
  return std::shared_ptr<const VerificationKey>(std::move(key));
}

bool VerificationKey::allows(Alg alg) const { return kind_allows(kind_, alg); }

std::string VerificationKey::allowed_algs() const {
  std::string out;
  for (const auto& info : kAlgs) {
    if (allows(info.alg)) {
      if (!out.empty()) out += ", ";
      out += info.name;
    }
  }
  return out;
}

SignatureCheck VerificationKey::verify(Alg alg, std::string_view input,
                                       std::string_view sig) const {
  if (!allows(alg)) return SignatureCheck::kInvalid;
  return kind_ == KeyKind::kHmac ? verify_hmac(alg, input, sig) : verify_pkey(alg, input, sig);
}

SignatureCheck VerificationKey::verify_hmac(Alg alg, std::string_view input,
                                            std::string_view sig) const {
  int index = digest_index(alg);
  static constexpr size_t kSizes[3] = {32, 48, 64};
  if (sig.size() != kSizes[index]) return SignatureCheck::kBadLength;
  auto& contexts = thread_contexts();
  CachedContext* cached = contexts.find(id_, alg);
  if (cached == nullptr) {
    EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(hmac_[index]);
    if (ctx == nullptr) return SignatureCheck::kInvalid;
    cached = contexts.add({.key_id = id_, .alg = alg, .mac = ctx});
  }
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t mac_len = 0;
  // A NULL key re-initialises with the key already set (HMAC reuses its padded key state).
  if (EVP_MAC_init(cached->mac, nullptr, 0, nullptr) != 1 ||
      EVP_MAC_update(cached->mac, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) != 1 ||
      EVP_MAC_final(cached->mac, mac, &mac_len, sizeof mac) != 1 || mac_len != sig.size()) {
    ERR_clear_error();
    return SignatureCheck::kInvalid;
  }
  // Constant time: a timing oracle on the MAC would let an attacker forge byte by byte.
  return CRYPTO_memcmp(mac, sig.data(), mac_len) == 0 ? SignatureCheck::kValid
                                                      : SignatureCheck::kInvalid;
}

SignatureCheck VerificationKey::verify_pkey(Alg alg, std::string_view input,
                                            std::string_view sig) const {
  std::string der;
  std::string_view to_check = sig;
  if (size_t half = ec_component_size(kind_); half != 0) {
    if (sig.size() != half * 2) return SignatureCheck::kBadLength;
    if (!raw_ecdsa_to_der(sig, half, &der)) return SignatureCheck::kInvalid;
    to_check = der;
  } else if (kind_ == KeyKind::kEd25519) {
    if (sig.size() != 64) return SignatureCheck::kBadLength;
  } else if (kind_ == KeyKind::kRsa) {
    if (sig.size() != static_cast<size_t>(EVP_PKEY_get_size(pkey_.get()))) {
      return SignatureCheck::kBadLength;
    }
  }
  const auto* sig_bytes = reinterpret_cast<const unsigned char*>(to_check.data());
  const auto* in_bytes = reinterpret_cast<const unsigned char*>(input.data());
  auto& contexts = thread_contexts();
  CachedContext* cached = contexts.find(id_, alg);

  if (kind_ == KeyKind::kEd25519) {
    if (cached == nullptr) {
      MdCtxPtr ctx(EVP_MD_CTX_new());
      if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey_.get()) != 1) {
        ERR_clear_error();
        return SignatureCheck::kInvalid;
      }
      cached = contexts.add({.key_id = id_, .alg = alg, .one_shot = ctx.release()});
    }
    // One-shot EdDSA verification leaves the context reusable.
    int rc = EVP_DigestVerify(cached->one_shot, sig_bytes, to_check.size(), in_bytes,
                              input.size());
    if (rc != 1) ERR_clear_error();
    return rc == 1 ? SignatureCheck::kValid : SignatureCheck::kInvalid;
  }

  const EVP_MD* md = digest(digest_index(alg));
  if (cached == nullptr) {
    PkeyCtxPtr owned(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_.get(), nullptr));
    EVP_PKEY_CTX* ctx = owned.get();
    bool ok = ctx != nullptr && EVP_PKEY_verify_init(ctx) == 1 &&
              EVP_PKEY_CTX_set_signature_md(ctx, md) == 1;
    if (ok && is_pss(alg)) {
      // RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash.
      ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) == 1 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1;
    } else if (ok && kind_ == KeyKind::kRsa) {
      ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1;
    }
    if (!ok) {
      ERR_clear_error();
      return SignatureCheck::kInvalid;
    }
    cached = contexts.add({.key_id = id_, .alg = alg, .pkey = owned.release()});
  }
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int hash_len = 0;
  EVP_MD_CTX* hctx = contexts.hash_ctx();
  if (hctx == nullptr || EVP_DigestInit_ex2(hctx, md, nullptr) != 1 ||
      EVP_DigestUpdate(hctx, in_bytes, input.size()) != 1 ||
      EVP_DigestFinal_ex(hctx, hash, &hash_len) != 1) {
    ERR_clear_error();
    return SignatureCheck::kInvalid;
  }
  int rc = EVP_PKEY_verify(cached->pkey, sig_bytes, to_check.size(), hash, hash_len);
  if (rc != 1) {
    ERR_clear_error();
    return SignatureCheck::kInvalid;
  }
  return SignatureCheck::kValid;
}

Result<SigningKey> SigningKey::from_secret(std::string secret) {
  RETURN_IF_ERROR(check_secret_strength(secret));
  SigningKey key;
  key.alg_ = Alg::kHS256;
  key.kind_ = KeyKind::kHmac;
  key.secret_ = std::move(secret);
  return key;
}

Result<SigningKey> SigningKey::from_private_pem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* raw = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (raw == nullptr) {
    ERR_clear_error();
    return Status(Code::kInvalidArgument, "key_unparsable",
                  "not a PEM private key (unencrypted PKCS#8, RSA or EC PRIVATE KEY expected)");
  }
  std::shared_ptr<EVP_PKEY> pkey(raw, EVP_PKEY_free);
  auto kind = classify(raw, "private key");
  if (!kind) return kind.status();
  SigningKey key;
  switch (*kind) {
    case KeyKind::kRsa: key.alg_ = Alg::kRS256; break;
    case KeyKind::kEcP256: key.alg_ = Alg::kES256; break;
    case KeyKind::kEcP384: key.alg_ = Alg::kES384; break;
    case KeyKind::kEcP521: key.alg_ = Alg::kES512; break;
    case KeyKind::kEd25519: key.alg_ = Alg::kEdDSA; break;
    case KeyKind::kHmac: break;
  }
  key.kind_ = *kind;
  key.pkey_ = std::move(pkey);
  return key;
}

Result<SigningKey> SigningKey::with_alg(Alg alg) const {
  if (!kind_allows(kind_, alg)) {
    return Status(Code::kInvalidArgument, "alg_key_mismatch",
                  std::string("a ") + key_kind_name(kind_) + " key cannot sign " + alg_name(alg));
  }
  SigningKey copy = *this;
  copy.alg_ = alg;
  return copy;
}

Result<std::string> SigningKey::sign(std::string_view input) const {
  const auto* in = reinterpret_cast<const unsigned char*>(input.data());
  if (!pkey_) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t len = 0;
    if (EVP_Q_mac(nullptr, "HMAC", nullptr, digest_name(digest_index(alg_)), nullptr, secret_.data(), secret_.size(), in,
                  input.size(), mac, sizeof mac, &len) == nullptr) {
      return Status(Code::kInternal, "sign_failed", "HMAC: " + openssl_error());
    }
    return std::string(reinterpret_cast<char*>(mac), len);
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  const EVP_MD* md = alg_ == Alg::kEdDSA ? nullptr : digest(digest_index(alg_));
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, pkey_.get()) != 1) {
    return Status(Code::kInternal, "sign_failed", "sign init: " + openssl_error());
  }
  if (is_pss(alg_) &&
      (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
       EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
       EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1)) {
    return Status(Code::kInternal, "sign_failed", "PSS setup: " + openssl_error());
  }
  size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, in, input.size()) != 1) {
    return Status(Code::kInternal, "sign_failed", "sign: " + openssl_error());
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                     input.size()) != 1) {
    return Status(Code::kInternal, "sign_failed", "sign: " + openssl_error());
  }
  sig.resize(len);
  size_t half = 0;
  switch (alg_) {
    case Alg::kES256: half = 32; break;
    case Alg::kES384: half = 48; break;
    case Alg::kES512: half = 66; break;
    default: return sig;
  }
  std::string raw;
  if (!der_ecdsa_to_raw(sig, half, &raw)) {
    return Status(Code::kInternal, "sign_failed", "ECDSA signature conversion failed");
  }
  return raw;
}

}  // namespace volguard::identity
