#include "crypto/aes_gcm.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>

#include "common/openssl.h"
#include "crypto/kek.h"

namespace volguard::crypto {

namespace {

Status openssl_failed(const char* what) {
  return Status(Code::kInternal, "openssl_failed", std::string(what) + ": " + openssl_error());
}

Status open_failed(const std::string& why) {
  return Status(Code::kFailedPrecondition, kReasonKeyUnwrapFailed, why);
}

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

Result<std::string> gcm_seal(std::span<const unsigned char> key,
                             std::span<const unsigned char> plaintext, std::string_view aad) {
  if (key.size() != kGcmKeySize) {
    return Status(Code::kInvalidArgument, kReasonKekInvalid, "AES-256-GCM needs a 32-byte key");
  }
  std::string out(kGcmNonceSize + plaintext.size() + kGcmTagSize, '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  auto* ct = nonce + kGcmNonceSize;
  if (RAND_bytes(nonce, kGcmNonceSize) != 1) return openssl_failed("random nonce");
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  // GCM's default IV length is the 12 bytes used here.
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce) != 1 ||
      (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes_of(aad),
                                         static_cast<int>(aad.size())) != 1) ||
      (!plaintext.empty() && EVP_EncryptUpdate(ctx.get(), ct, &len, plaintext.data(),
                                               static_cast<int>(plaintext.size())) != 1) ||
      EVP_EncryptFinal_ex(ctx.get(), ct + plaintext.size(), &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kGcmTagSize, ct + plaintext.size()) !=
          1) {
    return openssl_failed("AES-256-GCM encryption");
  }
  return out;
}

Result<SecureBytes> gcm_open(std::span<const unsigned char> key, std::string_view sealed,
                             std::string_view aad) {
  if (key.size() != kGcmKeySize) {
    return Status(Code::kInvalidArgument, kReasonKekInvalid, "AES-256-GCM needs a 32-byte key");
  }
  if (sealed.size() < kGcmNonceSize + kGcmTagSize) return open_failed("wrapped key is truncated");
  const size_t ct_size = sealed.size() - kGcmNonceSize - kGcmTagSize;
  const unsigned char* nonce = bytes_of(sealed);
  const unsigned char* ct = nonce + kGcmNonceSize;
  // EVP_CTRL_GCM_SET_TAG takes a non-const pointer; the tag is copied, not the caller's bytes.
  unsigned char tag[kGcmTagSize];
  std::copy(ct + ct_size, ct + ct_size + kGcmTagSize, tag);
  SecureBytes plain(ct_size);
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce) != 1 ||
      (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes_of(aad),
                                         static_cast<int>(aad.size())) != 1) ||
      (ct_size > 0 &&
       EVP_DecryptUpdate(ctx.get(), plain.data(), &len, ct, static_cast<int>(ct_size)) != 1) ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kGcmTagSize, tag) != 1) {
    return openssl_failed("AES-256-GCM decryption");
  }
  // The tag is checked here: until it is, `plain` is unauthenticated and is dropped (and wiped
  // by its destructor) on failure.
  if (EVP_DecryptFinal_ex(ctx.get(), plain.data() + ct_size, &len) != 1) {
    ERR_clear_error();  // an expected refusal, not a stale error for the next caller to report
    return open_failed(
        "wrapped key does not authenticate (another key-encryption key, another volume, or a "
        "damaged blob)");
  }
  return plain;
}

}  // namespace volguard::crypto
