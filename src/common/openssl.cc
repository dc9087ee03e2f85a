#include "common/openssl.h"

#include <openssl/err.h>

namespace volguard {

std::string openssl_error() {
  const unsigned long err = ERR_get_error();
  ERR_clear_error();
  if (err == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(err, buf, sizeof buf);
  return buf;
}

std::string sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) len = 0;
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, sizeof mac,
                &len) == nullptr) {
    len = 0;
  }
  return std::string(reinterpret_cast<const char*>(mac), len);
}

}  // namespace volguard
