#include "crypto/kms_kek.h"

#include <grpcpp/grpcpp.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <utility>

#include "common/hex.h"
#include "common/openssl.h"
#include "kms_v2.grpc.pb.h"

namespace volguard::crypto {

namespace {

constexpr unsigned char kBlobVersion = 0x01;
constexpr unsigned char kPlaintextVersion = 0x01;
constexpr size_t kAadHashSize = 32;  // SHA-256
constexpr size_t kPlaintextHeaderSize = 1 + kAadHashSize;
// The protocol's own bounds (the API server refuses a key_id over 1 KiB and annotations of
// 32 KiB or more), and a ciphertext bound far above what any KMS makes of a small key: a blob
// beyond them is not one of ours.
constexpr size_t kMaxKeyIdSize = 1024;
constexpr size_t kMaxAnnotationsSize = 32 * 1024;
constexpr size_t kMaxCiphertextSize = 64 * 1024;

struct KmsBlob {
  std::string ciphertext;
  std::string key_id;
  std::map<std::string, std::string> annotations;  // sorted: one encoding per blob
};

void put_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

void put_field(std::string& out, std::string_view v) {
  put_u32(out, static_cast<uint32_t>(v.size()));
  out.append(v);
}

std::string encode_blob(const KmsBlob& blob) {
  std::string out(1, static_cast<char>(kBlobVersion));
  put_field(out, blob.ciphertext);
  put_field(out, blob.key_id);
  put_u32(out, static_cast<uint32_t>(blob.annotations.size()));
  for (const auto& [name, value] : blob.annotations) {
    put_field(out, name);
    put_field(out, value);
  }
  return out;
}

// Reads the blob format strictly: every length within its bound, nothing left over.
class BlobReader {
 public:
  explicit BlobReader(std::string_view data) : rest_(data) {}
  bool u32(uint32_t& v) {
    if (rest_.size() < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(rest_[i]);
    rest_.remove_prefix(4);
    return true;
  }
  bool field(std::string& out, size_t max) {
    uint32_t len = 0;
    if (!u32(len) || len > max || len > rest_.size()) return false;
    out.assign(rest_.substr(0, len));
    rest_.remove_prefix(len);
    return true;
  }
  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

std::optional<KmsBlob> decode_blob(std::string_view data) {
  if (data.empty() || static_cast<unsigned char>(data[0]) != kBlobVersion) return std::nullopt;
  BlobReader r(data.substr(1));
  KmsBlob blob;
  uint32_t count = 0;
  if (!r.field(blob.ciphertext, kMaxCiphertextSize) || blob.ciphertext.empty() ||
      !r.field(blob.key_id, kMaxKeyIdSize) || blob.key_id.empty() || !r.u32(count)) {
    return std::nullopt;
  }
  size_t total = 0;
  for (uint32_t i = 0; i < count; ++i) {
    std::string name, value;
    if (!r.field(name, kMaxAnnotationsSize) || !r.field(value, kMaxAnnotationsSize))
      return std::nullopt;
    total += name.size() + value.size();
    if (total >= kMaxAnnotationsSize) return std::nullopt;
    // Strictly ascending: sorted and without duplicates, as encode_blob writes them.
    if (!blob.annotations.empty() && name <= blob.annotations.rbegin()->first) return std::nullopt;
    blob.annotations.emplace(std::move(name), std::move(value));
  }
  if (!r.done()) return std::nullopt;
  return blob;
}

void wipe_string(std::string* s) {
  if (!s->empty()) OPENSSL_cleanse(s->data(), s->size());
}

// Wipes a protobuf string field that held a data key when the call's scope ends, on every path.
class WipeOnExit {
 public:
  explicit WipeOnExit(std::string* s) : s_(s) {}
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;
  ~WipeOnExit() { wipe_string(s_); }

 private:
  std::string* s_;
};

// gRPC's codes have the numbers of ours.
const char* grpc_code_name(grpc::StatusCode code) {
  return code_name(static_cast<Code>(static_cast<int>(code)));
}

// Text a plugin sent, fit for a message: printable ASCII only, at most 200 characters.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 200)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > 200) out += "...";
  return out;
}

// Failures that say nothing about the blob: the plugin was not reached, was too slow or busy,
// or does not serve this method.
bool is_transport_failure(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::UNIMPLEMENTED:
      return true;
    default:
      return false;
  }
}

Status unwrap_failed(const std::string& why) {
  return Status(Code::kFailedPrecondition, kReasonKeyUnwrapFailed, why);
}

}  // namespace

struct KmsV2Kek::Impl {
  std::unique_ptr<v2::KeyManagementService::Stub> stub;

  Status unavailable(const std::string& socket_path, const std::string& what) const {
    return Status(Code::kUnavailable, kReasonKmsUnavailable,
                  "KMS plugin at unix:" + socket_path + ": " + what);
  }
};

KmsV2Kek::KmsV2Kek(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout), impl_(std::make_unique<Impl>()) {
  grpc::ChannelArguments args;
  // A connection of its own: two KEKs on one socket (old and new during a rotation, a test's
  // clients) do not share connection state.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // A plugin back from a restart is used again by the next call, not after gRPC's default
  // backoff (which grows to two minutes): reconnection attempts never lie further apart than a
  // quarter of the call timeout (100 ms to 1 s), so a call waiting for the socket sees the
  // plugin within its deadline. Reconnecting to a local socket is cheap.
  const int max_backoff_ms = static_cast<int>(std::clamp<int64_t>(timeout_.count() / 4, 100, 1000));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_backoff_ms);
  impl_->stub = v2::KeyManagementService::NewStub(
      grpc::CreateCustomChannel("unix:" + socket_path_, grpc::InsecureChannelCredentials(), args));
}

KmsV2Kek::~KmsV2Kek() = default;

std::string KmsV2Kek::id() const {
  std::lock_guard lock(mu_);
  return "kms:" + key_id_;
}

void KmsV2Kek::set_key_id(const std::string& key_id) {
  std::lock_guard lock(mu_);
  key_id_ = key_id;
}

namespace {
// Each call: the deadline, and waiting for the socket within it rather than failing at once
// while the channel reconnects.
void prepare(grpc::ClientContext& ctx, std::chrono::milliseconds timeout) {
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  ctx.set_wait_for_ready(true);
}
}  // namespace

Status KmsV2Kek::call_status() {
  grpc::ClientContext ctx;
  prepare(ctx, timeout_);
  v2::StatusRequest req;
  v2::StatusResponse resp;
  const grpc::Status s = impl_->stub->Status(&ctx, req, &resp);
  if (!s.ok()) {
    return impl_->unavailable(socket_path_, std::string("Status: ") +
                                                grpc_code_name(s.error_code()) + ": " +
                                                printable(s.error_message()));
  }
  if (resp.version() != "v2") {
    return impl_->unavailable(socket_path_,
                              "speaks KMS API version '" + printable(resp.version()) + "', not v2");
  }
  if (resp.healthz() != "ok") {
    return impl_->unavailable(socket_path_, "unhealthy: " + printable(resp.healthz()));
  }
  if (resp.key_id().empty() || resp.key_id().size() > kMaxKeyIdSize) {
    return impl_->unavailable(socket_path_, "Status reported no usable key_id");
  }
  set_key_id(resp.key_id());
  return Status::ok();
}

Status KmsV2Kek::status() { return call_status(); }

Result<WrappedKey> KmsV2Kek::wrap(const SecureBytes& data_key, std::string_view aad) {
  RETURN_IF_ERROR(check_wrap_input(data_key, aad));
  SecureBytes plaintext(kPlaintextHeaderSize + data_key.size());
  plaintext.data()[0] = kPlaintextVersion;
  const std::string aad_hash = sha256(aad);
  std::memcpy(plaintext.data() + 1, aad_hash.data(), kAadHashSize);
  std::memcpy(plaintext.data() + kPlaintextHeaderSize, data_key.data(), data_key.size());

  v2::EncryptRequest req;
  WipeOnExit wipe_request(req.mutable_plaintext());
  req.set_plaintext(plaintext.data(), plaintext.size());
  req.set_uid(random_hex(16));
  v2::EncryptResponse resp;
  grpc::ClientContext ctx;
  prepare(ctx, timeout_);
  const grpc::Status s = impl_->stub->Encrypt(&ctx, req, &resp);
  if (!s.ok()) {
    return impl_->unavailable(socket_path_,
                              std::string("Encrypt: ") + grpc_code_name(s.error_code()) +
                                  " (the plugin's message is not repeated: the request held the "
                                  "key; see the plugin's log)");
  }
  if (resp.key_id().empty() || resp.key_id().size() > kMaxKeyIdSize) {
    return impl_->unavailable(socket_path_, "Encrypt returned no usable key_id");
  }
  if (resp.ciphertext().empty() || resp.ciphertext().size() > kMaxCiphertextSize) {
    return impl_->unavailable(socket_path_, "Encrypt returned no usable ciphertext");
  }
  KmsBlob blob{.ciphertext = resp.ciphertext(), .key_id = resp.key_id()};
  size_t annotations_size = 0;
  for (const auto& [name, value] : resp.annotations()) {
    annotations_size += name.size() + value.size();
    blob.annotations.emplace(name, value);
  }
  if (annotations_size >= kMaxAnnotationsSize) {
    return impl_->unavailable(socket_path_, "Encrypt returned annotations of 32 KiB or more");
  }
  set_key_id(resp.key_id());
  return WrappedKey{.kek_id = "kms:" + resp.key_id(), .blob = encode_blob(blob)};
}

Result<SecureBytes> KmsV2Kek::unwrap(const WrappedKey& wrapped, std::string_view aad) {
  std::optional<KmsBlob> blob = decode_blob(wrapped.blob);
  if (!blob) return unwrap_failed("wrapped key is damaged or of an unknown format");
  if (wrapped.kek_id != "kms:" + blob->key_id) {
    return unwrap_failed("wrapped key is stamped '" + wrapped.kek_id + "' but holds KMS key '" +
                         blob->key_id + "'");
  }
  v2::DecryptRequest req;
  req.set_ciphertext(blob->ciphertext);
  req.set_uid(random_hex(16));
  req.set_key_id(blob->key_id);
  for (const auto& [name, value] : blob->annotations) (*req.mutable_annotations())[name] = value;
  v2::DecryptResponse resp;
  WipeOnExit wipe_response(resp.mutable_plaintext());
  grpc::ClientContext ctx;
  prepare(ctx, timeout_);
  const grpc::Status s = impl_->stub->Decrypt(&ctx, req, &resp);
  if (!s.ok()) {
    const std::string what = std::string("Decrypt: ") + grpc_code_name(s.error_code()) + ": " +
                             printable(s.error_message());
    if (is_transport_failure(s.error_code())) return impl_->unavailable(socket_path_, what);
    // A refusal from a plugin that is down (its KMS unreachable) is not the blob's fault.
    if (Status health = call_status(); !health.is_ok()) {
      return Status(health.code(), health.reason(), health.message() + " (after " + what + ")");
    }
    return unwrap_failed("KMS plugin refused to decrypt with key '" + blob->key_id + "': " + what);
  }
  const std::string& plaintext = resp.plaintext();
  if (plaintext.size() <= kPlaintextHeaderSize ||
      plaintext.size() > kPlaintextHeaderSize + kMaxDataKeySize ||
      static_cast<unsigned char>(plaintext[0]) != kPlaintextVersion) {
    return unwrap_failed("KMS plugin returned a plaintext that is not a wrapped data key");
  }
  const std::string aad_hash = sha256(aad);
  if (aad_hash.size() != kAadHashSize ||
      CRYPTO_memcmp(aad_hash.data(), plaintext.data() + 1, kAadHashSize) != 0) {
    return unwrap_failed("wrapped key belongs to another volume");
  }
  return SecureBytes::copy_of(std::string_view(plaintext).substr(kPlaintextHeaderSize));
}

}  // namespace volguard::crypto
