// A stand-in Kubernetes KMS v2 plugin for tests: a real gRPC server on a unix socket speaking
// the protocol (proto/kms_v2.proto) as a plugin for Vault or a cloud KMS does, with its keys in
// memory. Each key_id names a 32-byte key; Encrypt seals with the current key (AES-256-GCM, the
// key_id as additional data) and returns an annotation that Decrypt requires back unchanged.
// Decrypt refuses unknown or retired key ids and damaged ciphertexts (INVALID_ARGUMENT /
// NOT_FOUND, as plugins do), and everything with INTERNAL while unhealthy.
#pragma once

#include <chrono>
#include <memory>
#include <string>

namespace grpc {
class Server;
}

namespace volguard::crypto::testing {

class FakeKmsPlugin {
 public:
  // The annotation Encrypt adds and Decrypt checks.
  static constexpr char kAnnotationName[] = "scheme.fake-kms.volguard.io";
  static constexpr char kAnnotationValue[] = "aes-256-gcm/v1";

  // Not listening until start(). The first key is "fake-key-1".
  explicit FakeKmsPlugin(std::string socket_path);
  ~FakeKmsPlugin();
  FakeKmsPlugin(const FakeKmsPlugin&) = delete;
  FakeKmsPlugin& operator=(const FakeKmsPlugin&) = delete;

  // Listens on the socket (again): keys, current key and retirements survive stop()/start(),
  // like a plugin restarted in front of the same KMS. False if it cannot listen.
  bool start();
  // Stops listening and cancels calls in flight: the plugin is down.
  void stop();

  const std::string& socket_path() const { return socket_path_; }
  std::string current_key_id() const;
  // A new key becomes current; older keys still decrypt. Returns the new key_id.
  std::string rotate();
  // `key_id` no longer decrypts (the KMS key was destroyed).
  void retire(const std::string& key_id);
  // Status reports this as healthz; anything but "ok" also makes Encrypt and Decrypt fail with
  // INTERNAL (a plugin whose KMS backend is unreachable).
  void set_healthz(const std::string& healthz);
  // Every call waits this long before answering (a hung plugin).
  void set_delay(std::chrono::milliseconds delay);
  // Encrypt fails with INVALID_ARGUMENT and a message quoting the request's plaintext in hex
  // (a careless plugin): what volguard reports must not repeat it.
  void set_encrypt_echo_failure(bool on);
  int decrypt_calls() const;

 private:
  struct State;
  class Service;

  const std::string socket_path_;
  std::shared_ptr<State> state_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace volguard::crypto::testing
