// Encrypted volumes' data keys: made, wrapped and unwrapped with the key-encryption keys the
// config names (encryption.keys). The one place that knows which KEK a stored key needs.
//
// Key hierarchy: KEK (key file, environment variable / Kubernetes Secret, or a KMS through a
// Kubernetes KMS v2 plugin) → per-volume data key (64 random bytes) → fscrypt, which derives
// the per-file keys inside the kernel. A data key exists in the clear only in locked memory
// (crypto::SecureBytes) for the length of a create, mount, snapshot, clone or rotation.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "config/config.h"
#include "crypto/kek.h"
#include "store/store.h"

namespace volguard::service {

// Reasons besides crypto's key_unwrap_failed / kms_unavailable / kek_invalid:
inline constexpr char kReasonEncryptionNotConfigured[] = "encryption_not_configured";  // FAILED_PRECONDITION
inline constexpr char kReasonSecretKeyUnknown[] = "secret_key_unknown";                // INVALID_ARGUMENT

// Who asks for a KEK by name (volume create): tenant keys (KekConfig::groups) are theirs alone.
struct KeyRequester {
  bool admin = false;  // an ownership admin may name any key
  // Whether the caller is in the qualified group ("<group_domain>/<group>").
  std::function<bool(const std::string& qualified_group)> in_group;
};

class DataKeys {
 public:
  // Reads every env KEK now (and unsets the variable: call before other threads exist). A key
  // file that cannot be read yet is read again on each use, so that a server starts, and
  // serves plain volumes, while its KEK is missing; a KMS is dialled on use.
  explicit DataKeys(const config::EncryptionConfig& config);

  bool configured() const { return !entries_.empty(); }
  // The key name a request means. "" → the first tenant key of one of the caller's groups, else
  // the default key. INVALID_ARGUMENT `secret_key_unknown` for a name the config does not have
  // and, alike, for another tenant's key (its existence is not disclosed); FAILED_PRECONDITION
  // `encryption_not_configured` without keys.
  Result<std::string> resolve(const std::string& requested, const KeyRequester& who) const;

  // A new random fscrypt data key for `owner_id` (a volume or snapshot id), wrapped under the
  // current KEK of `key_name`, and the key itself for the driver.
  struct NewKey {
    store::WrappedDataKey wrapped;
    crypto::SecureBytes raw;
  };
  Result<NewKey> generate(const std::string& key_name, const std::string& owner_id);
  // The data key of `wrapped`, stored for `owner_id`. UNAVAILABLE `kms_unavailable`;
  // FAILED_PRECONDITION `key_unwrap_failed` (wrong or removed KEK, a blob of another record).
  Result<crypto::SecureBytes> unwrap(const store::WrappedDataKey& wrapped, const std::string& owner_id);
  // `raw` wrapped for `owner_id` under the current KEK of `key_name` (clones, snapshots,
  // rotation).
  Result<store::WrappedDataKey> wrap(const std::string& key_name, const crypto::SecureBytes& raw,
                                     const std::string& owner_id);
  // Whether `wrapped` is under its name's current KEK (rotation skips it). For a KMS key this
  // asks the plugin for its current key id.
  Result<bool> is_current(const store::WrappedDataKey& wrapped);

 private:
  struct Entry {
    config::KekConfig config;
    std::mutex mu;                                     // guards the lazy file loads below
    std::unique_ptr<crypto::KeyEncryptionKey> current;  // null until loaded (file) or on failure (env)
    Status env_error;                                  // why an env KEK is absent
    std::vector<std::unique_ptr<crypto::KeyEncryptionKey>> retired;  // loaded with current
  };
  Result<Entry*> entry(const std::string& name);
  // The current KEK of `e`, loading a file KEK (and its retired ones) on first success.
  Result<crypto::KeyEncryptionKey*> current(Entry& e);

  std::map<std::string, std::unique_ptr<Entry>> entries_;
  std::vector<std::string> order_;  // the names as the config lists them
  std::string default_key_;
};

}  // namespace volguard::service
