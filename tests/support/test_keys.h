// Test-only key material: fresh keys generated per process with OpenSSL, and a token builder
// that can produce any header/payload (including hostile ones).
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <openssl/core_names.h>

#include <nlohmann/json.hpp>
#include <string>

#include "common/text.h"
#include "identity/keys.h"

namespace volguard::testing {

struct KeyPair {
  std::string private_pem;
  std::string public_pem;
};

inline KeyPair generate_key_pair(const std::string& type, const std::string& param = "") {
  EVP_PKEY* pkey = nullptr;
  if (type == "RSA") pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(std::stoi(param)));
  else if (type == "EC") pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", param.c_str());
  else pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, type.c_str());
  KeyPair out;
  BIO* priv = BIO_new(BIO_s_mem());
  BIO* pub = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(priv, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  PEM_write_bio_PUBKEY(pub, pkey);
  char* data = nullptr;
  long len = BIO_get_mem_data(priv, &data);
  out.private_pem.assign(data, static_cast<size_t>(len));
  len = BIO_get_mem_data(pub, &data);
  out.public_pem.assign(data, static_cast<size_t>(len));
  BIO_free(priv);
  BIO_free(pub);
  EVP_PKEY_free(pkey);
  return out;
}

// Signs arbitrary header and payload JSON with `key` (whose alg must match the header's for a
// valid token; tests use a mismatch on purpose).
inline std::string make_token(const identity::SigningKey& key, const nlohmann::json& header,
                              const nlohmann::json& payload) {
  std::string input = base64url_encode(header.dump()) + "." + base64url_encode(payload.dump());
  return input + "." + base64url_encode(key.sign(input).value());
}

using nlohmann::json;

struct PkeyHolder {
  EVP_PKEY* pkey = nullptr;
  ~PkeyHolder() { EVP_PKEY_free(pkey); }
};

// Builds a public JWK from a private PEM with OpenSSL's own accessors (not our parser).
inline json jwk_of(const std::string& private_pem, const std::string& kid) {
  BIO* bio = BIO_new_mem_buf(private_pem.data(), static_cast<int>(private_pem.size()));
  PkeyHolder h{PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr)};
  BIO_free(bio);
  auto b64 = [](const unsigned char* p, size_t n) {
    return base64url_encode(std::string_view(reinterpret_cast<const char*>(p), n));
  };
  auto bn = [&](const char* name) {
    BIGNUM* v = nullptr;
    EVP_PKEY_get_bn_param(h.pkey, name, &v);
    std::string bytes(BN_num_bytes(v), '\0');
    BN_bn2bin(v, reinterpret_cast<unsigned char*>(bytes.data()));
    BN_free(v);
    return base64url_encode(bytes);
  };
  if (EVP_PKEY_is_a(h.pkey, "RSA")) {
    return {{"kty", "RSA"}, {"kid", kid}, {"n", bn(OSSL_PKEY_PARAM_RSA_N)}, {"e", bn(OSSL_PKEY_PARAM_RSA_E)}};
  }
  unsigned char buf[200];
  size_t len = sizeof buf;
  if (EVP_PKEY_is_a(h.pkey, "ED25519")) {
    EVP_PKEY_get_raw_public_key(h.pkey, buf, &len);
    return {{"kty", "OKP"}, {"crv", "Ed25519"}, {"kid", kid}, {"x", b64(buf, len)}};
  }
  EVP_PKEY_get_octet_string_param(h.pkey, OSSL_PKEY_PARAM_PUB_KEY, buf, sizeof buf, &len);
  size_t half = (len - 1) / 2;
  const char* crv = half == 32 ? "P-256" : half == 48 ? "P-384" : "P-521";
  return {{"kty", "EC"}, {"crv", crv}, {"kid", kid}, {"x", b64(buf + 1, half)}, {"y", b64(buf + 1 + half, half)}};
}

}  // namespace volguard::testing
