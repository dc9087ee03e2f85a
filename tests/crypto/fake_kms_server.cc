#include "crypto/fake_kms_server.h"

#include <grpcpp/grpcpp.h>

#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/hex.h"
#include "crypto/aes_gcm.h"
#include "crypto/secure_bytes.h"
#include "kms_v2.grpc.pb.h"

namespace volguard::crypto::testing {

struct FakeKmsPlugin::State {
  mutable std::mutex mu;
  std::map<std::string, SecureBytes> keys;
  std::set<std::string> retired;
  std::string current;
  int next_key = 1;
  std::string healthz = "ok";
  std::chrono::milliseconds delay{0};
  bool encrypt_echo_failure = false;
  int decrypt_calls = 0;

  std::string add_key() {
    std::string id = "fake-key-" + std::to_string(next_key++);
    keys.emplace(id, SecureBytes::random(kGcmKeySize).value());
    current = id;
    return id;
  }
};

class FakeKmsPlugin::Service final : public v2::KeyManagementService::Service {
 public:
  explicit Service(std::shared_ptr<State> state) : state_(std::move(state)) {}

  grpc::Status Status(grpc::ServerContext*, const v2::StatusRequest*,
                      v2::StatusResponse* resp) override {
    wait();
    std::lock_guard lock(state_->mu);
    resp->set_version("v2");
    resp->set_healthz(state_->healthz);
    resp->set_key_id(state_->current);
    return grpc::Status::OK;
  }

  grpc::Status Encrypt(grpc::ServerContext*, const v2::EncryptRequest* req,
                       v2::EncryptResponse* resp) override {
    wait();
    std::lock_guard lock(state_->mu);
    if (state_->healthz != "ok")
      return grpc::Status(grpc::StatusCode::INTERNAL, "kms backend down");
    if (state_->encrypt_echo_failure) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "cannot encrypt plaintext " + to_hex(req->plaintext()));
    }
    const SecureBytes& key = state_->keys.at(state_->current);
    auto sealed =
        gcm_seal(key.span(),
                 std::span(reinterpret_cast<const unsigned char*>(req->plaintext().data()),
                           req->plaintext().size()),
                 state_->current);
    if (!sealed.is_ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "seal failed");
    resp->set_ciphertext(*sealed);
    resp->set_key_id(state_->current);
    (*resp->mutable_annotations())[kAnnotationName] = kAnnotationValue;
    return grpc::Status::OK;
  }

  grpc::Status Decrypt(grpc::ServerContext*, const v2::DecryptRequest* req,
                       v2::DecryptResponse* resp) override {
    wait();
    std::lock_guard lock(state_->mu);
    ++state_->decrypt_calls;
    if (state_->healthz != "ok")
      return grpc::Status(grpc::StatusCode::INTERNAL, "kms backend down");
    auto key = state_->keys.find(req->key_id());
    if (key == state_->keys.end() || state_->retired.count(req->key_id()) != 0) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no key " + req->key_id());
    }
    const auto& ann = req->annotations();
    if (ann.size() != 1 || ann.count(kAnnotationName) == 0 ||
        ann.at(kAnnotationName) != kAnnotationValue) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "annotations do not match");
    }
    auto plain = gcm_open(key->second.span(), req->ciphertext(), req->key_id());
    if (!plain.is_ok()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "cannot decrypt");
    resp->set_plaintext(plain->data(), plain->size());
    return grpc::Status::OK;
  }

 private:
  void wait() const {
    std::chrono::milliseconds delay;
    {
      std::lock_guard lock(state_->mu);
      delay = state_->delay;
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
  }

  std::shared_ptr<State> state_;
};

FakeKmsPlugin::FakeKmsPlugin(std::string socket_path)
    : socket_path_(std::move(socket_path)), state_(std::make_shared<State>()) {
  state_->add_key();
}

FakeKmsPlugin::~FakeKmsPlugin() { stop(); }

bool FakeKmsPlugin::start() {
  if (server_) return true;
  // A gRPC service object is registered with one server only: each start has its own, over
  // the shared state.
  service_ = std::make_unique<Service>(state_);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_path_, grpc::InsecureServerCredentials());
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  return server_ != nullptr;
}

void FakeKmsPlugin::stop() {
  if (!server_) return;
  // Calls in flight (a hung one) are cancelled at once rather than awaited.
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
  service_.reset();
}

std::string FakeKmsPlugin::current_key_id() const {
  std::lock_guard lock(state_->mu);
  return state_->current;
}

std::string FakeKmsPlugin::rotate() {
  std::lock_guard lock(state_->mu);
  return state_->add_key();
}

void FakeKmsPlugin::retire(const std::string& key_id) {
  std::lock_guard lock(state_->mu);
  state_->retired.insert(key_id);
}

void FakeKmsPlugin::set_healthz(const std::string& healthz) {
  std::lock_guard lock(state_->mu);
  state_->healthz = healthz;
}

void FakeKmsPlugin::set_delay(std::chrono::milliseconds delay) {
  std::lock_guard lock(state_->mu);
  state_->delay = delay;
}

void FakeKmsPlugin::set_encrypt_echo_failure(bool on) {
  std::lock_guard lock(state_->mu);
  state_->encrypt_echo_failure = on;
}

int FakeKmsPlugin::decrypt_calls() const {
  std::lock_guard lock(state_->mu);
  return state_->decrypt_calls;
}

}  // namespace volguard::crypto::testing
