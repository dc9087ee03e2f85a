// A key-encryption key held by a KMS, reached through the Kubernetes KMS v2 plugin protocol
// (proto/kms_v2.proto): gRPC on a unix socket, the protocol the KMS plugins for Vault, AWS KMS,
// Azure Key Vault and GCP KMS serve to the Kubernetes API server. The KEK never leaves the KMS;
// the plugin encrypts and decrypts the data keys.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "crypto/kek.h"

namespace volguard::crypto {

// wrap(data_key, aad) calls Encrypt with
//   plaintext = 0x01 | SHA-256(aad) (32) | data_key,   uid = a random request id.
// The protocol carries no additional data, so the volume id is bound inside the plaintext: the
// plugin's own authenticated encryption keeps it from being changed, and unwrap() refuses a
// plaintext whose hash is not that of its `aad` (a blob moved to another volume). A hash keeps
// the plaintext small whatever the id's length.
//
// The blob keeps everything Decrypt needs, in a format of ours:
//   0x01 | u32 len | ciphertext | u32 len | key_id | u32 count | (u32 len | name | u32 len |
//   value)*
// lengths big-endian, annotations sorted by name without duplicates, nothing after them
// (a blob that is not exactly this is refused). kek_id = "kms:" + key_id.
//
// Errors: Encrypt and Status failures, a plugin that is not healthy ("ok") or not "v2", and
// Decrypt failing with UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, RESOURCE_EXHAUSTED, ABORTED or
// UNIMPLEMENTED → UNAVAILABLE `kms_unavailable`. Decrypt refused with any other code is asked
// about with a Status call: a healthy plugin refusing means the blob or its key is bad
// (`key_unwrap_failed`: a retired key, a changed ciphertext), an unhealthy one that the KMS is
// down (`kms_unavailable`: e.g. its backend is unreachable). Messages carry the plugin's own
// error text for Status and Decrypt, never for Encrypt: its request held the data key, and a
// plugin may echo a request in its error.
//
// Every call has `timeout` as its deadline and waits for the socket within it (wait_for_ready),
// so a plugin restarting within the timeout is not an error, and one that is down fails in
// about `timeout`. The channel retries the socket at most a quarter of the timeout apart (100 ms
// to 1 s), so the first call after a plugin comes back succeeds. The data key passes through gRPC's
// and protobuf's buffers, which this class does not control; the request and response fields it
// owns are wiped after each call.
class KmsV2Kek final : public KeyEncryptionKey {
 public:
  // Nothing is dialled here: a server starts (and serves plain volumes) while its plugin is
  // down. `socket_path` is a filesystem path (without "unix:").
  KmsV2Kek(std::string socket_path, std::chrono::milliseconds timeout);
  ~KmsV2Kek() override;

  // "kms:" + the plugin's current key_id as of the last status() or wrap() that reached it;
  // "kms:" alone until one has. Call status() to refresh it (e.g. before a rotation compares
  // stored kek_ids with it).
  std::string id() const override;
  Result<WrappedKey> wrap(const SecureBytes& data_key, std::string_view aad) override;
  Result<SecureBytes> unwrap(const WrappedKey& wrapped, std::string_view aad) override;
  // Status RPC: OK when healthz is "ok" and version "v2" (and then id() is refreshed).
  Status status() override;

 private:
  struct Impl;

  Status call_status();
  void set_key_id(const std::string& key_id);

  const std::string socket_path_;
  const std::chrono::milliseconds timeout_;
  std::unique_ptr<Impl> impl_;
  mutable std::mutex mu_;
  std::string key_id_;  // guarded by mu_
};

}  // namespace volguard::crypto
