// Key-encryption keys (KEKs): each volume's data key is random and is stored only wrapped by a
// KEK, with the volume's id as additional data, so that a wrapped key opens only with its KEK
// and only for its volume. A KEK comes from a key file, an environment variable (a Kubernetes
// Secret) or a KMS through the Kubernetes KMS v2 plugin protocol (crypto/kms_kek.h).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "crypto/secure_bytes.h"

namespace volguard::crypto {

// Reasons of the layer's errors (Status::reason()). Messages name files, variables, sockets and
// KEK ids, never key material.
//
// A wrapped key that does not open: wrong KEK, another volume's id, a damaged or truncated
// blob, an unknown format version, a kek_id this KEK does not have, a KMS key the plugin no
// longer has. FAILED_PRECONDITION, not PERMISSION_DENIED: the caller's rights are not in
// question (the pipeline already granted the request); the server's configured KEK does not
// fit the stored key, which is a state an operator fixes.
inline constexpr char kReasonKeyUnwrapFailed[] = "key_unwrap_failed";
// The KEK cannot be obtained or used now: key file missing or unreadable, variable unset, KMS
// plugin down, unhealthy, too slow or answering outside the protocol. UNAVAILABLE: retrying
// later may work, and volumes without encryption are unaffected.
inline constexpr char kReasonKmsUnavailable[] = "kms_unavailable";
// A key file or variable that holds something other than a 32-byte key. INVALID_ARGUMENT.
inline constexpr char kReasonKekInvalid[] = "kek_invalid";
// (A key file group or others may read or write: FAILED_PRECONDITION `secret_file_exposed`,
// as for every secret file, common/private_file.h.)

// Data keys are 1 to this many bytes (fscrypt's are 64).
inline constexpr size_t kMaxDataKeySize = 256;

// A data key as stored: which KEK wrapped it and the opaque result. Neither part is secret.
struct WrappedKey {
  // "local:<16 hex>" (LocalKek) or "kms:<the plugin's key_id>" (KmsV2Kek): lets a rotation tell
  // which stored keys are still wrapped by an old KEK.
  std::string kek_id;
  std::string blob;  // binary, format defined by the KEK kind (see each class)
};

// Thread-safe: wrap, unwrap and status may be called concurrently.
// What every KEK refuses before wrapping: an empty or oversized data key (INVALID_ARGUMENT
// `data_key_invalid`) and a missing volume id (`aad_required`).
[[nodiscard]] Status check_wrap_input(const SecureBytes& data_key, std::string_view aad);

class KeyEncryptionKey {
 public:
  virtual ~KeyEncryptionKey() = default;
  // The id that wrap() stamps on what it wraps now.
  virtual std::string id() const = 0;
  // Wraps `data_key` (1..kMaxDataKeySize bytes) bound to `aad` (the volume id; must not be
  // empty). UNAVAILABLE `kms_unavailable` when the KEK cannot be used now.
  virtual Result<WrappedKey> wrap(const SecureBytes& data_key, std::string_view aad) = 0;
  // The data key, only if `wrapped` came from wrap() of this KEK with the same `aad`: every
  // other case is FAILED_PRECONDITION `key_unwrap_failed`; UNAVAILABLE `kms_unavailable` when
  // the KEK cannot be used now (so "retry later" and "never" are told apart).
  virtual Result<SecureBytes> unwrap(const WrappedKey& wrapped, std::string_view aad) = 0;
  // OK when wrap and unwrap can work now; else UNAVAILABLE `kms_unavailable`.
  virtual Status status() = 0;
};

// A new random data key of `size` bytes (RAND_priv_bytes), e.g. fscrypt::kKeySize.
Result<SecureBytes> generate_data_key(size_t size);

// A 32-byte KEK held in this process: AES-256-GCM (EVP) with a random 12-byte nonce per wrap.
//   blob   = version (0x01) | nonce (12) | ciphertext (size of the data key) | tag (16)
//   AAD    = version byte | aad   (the header is authenticated too)
//   kek_id = "local:" + the first 16 hex digits of SHA-256(KEK): tells KEKs apart without
//            revealing them (64 bits of a hash of a random 256-bit key).
// A random nonce is safe here: far fewer than 2^32 wraps are ever made under one KEK (one per
// volume creation and per rotation).
class LocalKek final : public KeyEncryptionKey {
 public:
  static constexpr size_t kKeySize = 32;

  // `key` must be exactly 32 bytes (INVALID_ARGUMENT `kek_invalid` otherwise).
  static Result<std::unique_ptr<LocalKek>> from_bytes(SecureBytes key);
  // A file holding exactly 32 raw bytes (not all printable: 32 characters of text are a
  // password or a 16-byte hex key, refused), or 64 hex digits (either case) optionally followed
  // by line ends. The file must not be readable or writable by group or others (checked on the
  // opened fd): FAILED_PRECONDITION `secret_file_exposed`. Missing or unreadable: UNAVAILABLE
  // `kms_unavailable`. Any other content: INVALID_ARGUMENT `kek_invalid`. The file is read
  // straight into locked memory; its text never passes through a std::string.
  static Result<std::unique_ptr<LocalKek>> from_file(const std::string& path);
  // The environment variable `name` holding 64 hex digits or the standard base64 of 32 bytes
  // (with or without '=' padding, as `openssl rand -base64 32` prints it), optionally followed
  // by line ends (a Kubernetes Secret made from a file keeps its newline).
  //
  // Read once, then removed: the value is overwritten in place with zeros and the variable is
  // unset, whether or not it parsed. Every process the server starts (mkfs, mount helpers)
  // would otherwise inherit the KEK, and /proc/<pid>/environ and a core file would show it for
  // the life of the process. So a second call for the same name finds nothing (UNAVAILABLE
  // `kms_unavailable`: "not set"): load the KEK once at start-up, before other threads exist
  // (getenv/unsetenv are not thread-safe). The value is the process's own environment memory;
  // a variable placed with putenv() on read-only storage must not be used with this.
  // Unset or empty: UNAVAILABLE `kms_unavailable`; malformed: INVALID_ARGUMENT `kek_invalid`.
  static Result<std::unique_ptr<LocalKek>> from_env(const std::string& name);

  std::string id() const override { return id_; }
  Result<WrappedKey> wrap(const SecureBytes& data_key, std::string_view aad) override;
  Result<SecureBytes> unwrap(const WrappedKey& wrapped, std::string_view aad) override;
  // Always OK: the key is in memory.
  Status status() override { return Status::ok(); }

 private:
  explicit LocalKek(SecureBytes key);

  const SecureBytes key_;
  const std::string id_;
};

}  // namespace volguard::crypto
