// AES-256-GCM sealing with a random nonce, shared by the local KEK (crypto/kek.h) and the tests'
// stand-in KMS plugin. Internal to the crypto layer.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"
#include "crypto/secure_bytes.h"

namespace volguard::crypto {

inline constexpr size_t kGcmKeySize = 32;
inline constexpr size_t kGcmNonceSize = 12;
inline constexpr size_t kGcmTagSize = 16;

// nonce (12, random) | ciphertext (plaintext.size()) | tag (16). INVALID_ARGUMENT when `key` is
// not 32 bytes; INTERNAL `openssl_failed` if OpenSSL fails.
Result<std::string> gcm_seal(std::span<const unsigned char> key,
                             std::span<const unsigned char> plaintext, std::string_view aad);

// The plaintext of what gcm_seal made with the same key and aad, into locked memory. Anything
// else — too short, another key or aad, a changed byte — is FAILED_PRECONDITION
// `key_unwrap_failed`; the plaintext of a failed open is wiped, never returned.
Result<SecureBytes> gcm_open(std::span<const unsigned char> key, std::string_view sealed,
                             std::string_view aad);

}  // namespace volguard::crypto
