#include "service/data_keys.h"

#include "crypto/fscrypt.h"
#include "crypto/kms_kek.h"

#include <spdlog/spdlog.h>

namespace volguard::service {

DataKeys::DataKeys(const config::EncryptionConfig& config) : default_key_(config.default_key) {
  for (const auto& k : config.keys) {
    auto e = std::make_unique<Entry>();
    e->config = k;
    if (!k.env.empty()) {
      auto kek = crypto::LocalKek::from_env(k.env);
      if (kek) {
        e->current = std::move(*kek);
      } else {
        e->env_error = kek.status();
      }
    } else if (!k.kms_socket.empty()) {
      e->current = std::make_unique<crypto::KmsV2Kek>(k.kms_socket, k.kms_timeout);
    }
    entries_[k.name] = std::move(e);
    order_.push_back(k.name);
  }
}

Result<std::string> DataKeys::resolve(const std::string& requested, const KeyRequester& who) const {
  if (entries_.empty()) {
    return Status(Code::kFailedPrecondition, kReasonEncryptionNotConfigured,
                  "this server has no key-encryption key (config: encryption.keys), so it makes no "
                  "encrypted volumes");
  }
  auto member = [&](const config::KekConfig& k) {
    for (const auto& g : k.groups) {
      if (who.in_group && who.in_group(g)) return true;
    }
    return false;
  };
  std::string name = requested;
  if (name.empty()) {
    // A tenant's own key first: its volumes are wrapped by it without anyone having to say so.
    for (const auto& n : order_) {
      if (member(entries_.at(n)->config)) {
        name = n;
        break;
      }
    }
    if (name.empty()) name = default_key_;
  }
  // Another tenant's key is refused exactly as a name that is not configured: which tenant keys
  // exist is not for every caller to learn. (Nor are the configured names listed.)
  auto it = entries_.find(name);
  const bool usable = it != entries_.end() &&
                      (it->second->config.groups.empty() || who.admin || member(it->second->config));
  if (!usable) {
    return Status(Code::kInvalidArgument, kReasonSecretKeyUnknown,
                  "secret_key: no key named \"" + name + "\" is configured for this caller (encryption.keys)");
  }
  return name;
}

Result<DataKeys::Entry*> DataKeys::entry(const std::string& name) {
  auto it = entries_.find(name.empty() ? default_key_ : name);
  if (it == entries_.end()) {
    return Status(Code::kFailedPrecondition, crypto::kReasonKeyUnwrapFailed,
                  "the key-encryption key \"" + name + "\" is no longer configured (encryption.keys)");
  }
  return it->second.get();
}

Result<crypto::KeyEncryptionKey*> DataKeys::current(Entry& e) {
  std::lock_guard lock(e.mu);
  if (e.current) return e.current.get();
  if (!e.config.env.empty()) {
    return Status(e.env_error.code(), e.env_error.reason(),
                  "key \"" + e.config.name + "\": " + e.env_error.message());
  }
  auto kek = crypto::LocalKek::from_file(e.config.file);
  if (!kek) {
    return Status(kek.status().code(), kek.status().reason(),
                  "key \"" + e.config.name + "\": " + kek.status().message());
  }
  std::vector<std::unique_ptr<crypto::KeyEncryptionKey>> retired;
  for (const auto& f : e.config.retired_files) {
    auto old = crypto::LocalKek::from_file(f);
    if (!old && old.status().reason() == crypto::kReasonKmsUnavailable) {
      // Deleted before its name left the config: what it wrapped stays unopenable (and says
      // so), the keys wrapped by the current KEK are unaffected.
      spdlog::warn("key \"{}\": retired KEK {} is not readable ({}); ignored", e.config.name, f,
                   old.status().message());
      continue;
    }
    if (!old) {
      return Status(old.status().code(), old.status().reason(),
                    "key \"" + e.config.name + "\": retired file: " + old.status().message());
    }
    retired.push_back(std::move(*old));
  }
  e.current = std::move(*kek);
  e.retired = std::move(retired);
  return e.current.get();
}

Result<DataKeys::NewKey> DataKeys::generate(const std::string& key_name, const std::string& owner_id) {
  ASSIGN_OR_RETURN(crypto::SecureBytes raw, crypto::generate_data_key(crypto::fscrypt::kKeySize));
  ASSIGN_OR_RETURN(store::WrappedDataKey wrapped, wrap(key_name, raw, owner_id));
  return NewKey{.wrapped = std::move(wrapped), .raw = std::move(raw)};
}

Result<store::WrappedDataKey> DataKeys::wrap(const std::string& key_name, const crypto::SecureBytes& raw,
                                             const std::string& owner_id) {
  ASSIGN_OR_RETURN(Entry * e, entry(key_name));
  ASSIGN_OR_RETURN(crypto::KeyEncryptionKey * kek, current(*e));
  ASSIGN_OR_RETURN(crypto::WrappedKey w, kek->wrap(raw, owner_id));
  return store::WrappedDataKey{.key_name = e->config.name, .kek_id = std::move(w.kek_id), .blob = std::move(w.blob)};
}

Result<crypto::SecureBytes> DataKeys::unwrap(const store::WrappedDataKey& wrapped, const std::string& owner_id) {
  ASSIGN_OR_RETURN(Entry * e, entry(wrapped.key_name));
  ASSIGN_OR_RETURN(crypto::KeyEncryptionKey * kek, current(*e));
  const crypto::WrappedKey w{.kek_id = wrapped.kek_id, .blob = wrapped.blob};
  // A KMS unwraps any of its key versions (the blob names it); local KEKs are told apart by id.
  if (!e->config.kms_socket.empty() || kek->id() == wrapped.kek_id) return kek->unwrap(w, owner_id);
  for (const auto& old : e->retired) {
    if (old->id() == wrapped.kek_id) return old->unwrap(w, owner_id);
  }
  return Status(Code::kFailedPrecondition, crypto::kReasonKeyUnwrapFailed,
                "the data key was wrapped by " + wrapped.kek_id + ", which key \"" + e->config.name +
                    "\" no longer has (current " + kek->id() +
                    "; an earlier file KEK is kept under retired_files until `volguard key rotate`)");
}

Result<bool> DataKeys::is_current(const store::WrappedDataKey& wrapped) {
  ASSIGN_OR_RETURN(Entry * e, entry(wrapped.key_name));
  ASSIGN_OR_RETURN(crypto::KeyEncryptionKey * kek, current(*e));
  if (!e->config.kms_socket.empty()) RETURN_IF_ERROR(kek->status());  // refreshes id()
  return kek->id() == wrapped.kek_id;
}

}  // namespace volguard::service
