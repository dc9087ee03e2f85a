// Test-only key material: fresh keys generated per process with OpenSSL, and a token builder
// that can produce any header/payload (including hostile ones).
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

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

}  // namespace volguard::testing
