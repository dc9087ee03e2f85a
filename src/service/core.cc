#include "service/core.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <ctime>

#include "common/text.h"
#include "common/version.h"
#include "driver/driver.h"
#include "identity/verifier.h"
#include "store/store.h"

namespace volguard::service {

namespace {

Status with_key(const config::Config& config, const char* key, const Status& s) {
  return Status(s.code(), s.reason(), config.file + ": " + key + ": " + s.message());
}

}  // namespace

// SQLite in the data dir (one node), or etcd (a cluster) when the config names it.
Result<std::unique_ptr<store::MetadataStore>> open_store(const config::Config& config) {
  if (!config.store.etcd_enabled) return store::open_sqlite_store(config.data_dir + "/volguard.db");
  const config::EtcdConfig& e = config.store.etcd;
  store::EtcdStoreOptions options{.endpoints = e.endpoints,
                                  .prefix = e.prefix,
                                  .ca_file = e.ca_file,
                                  .cert_file = e.cert_file,
                                  .key_file = e.key_file,
                                  .username = e.username,
                                  .timeout = e.timeout,
                                  .stale_after = e.stale_after,
                                  .node_ttl = e.node_ttl};
  if (!e.password_file.empty()) {
    auto password = read_file(e.password_file);
    if (!password) return with_key(config, "store.etcd.password_file", password.status());
    options.password = std::string(trim_trailing_newlines(*password));
  }
  auto store = store::open_etcd_store(options);
  if (!store) return with_key(config, "store.etcd", store.status());
  return store;
}

Result<std::unique_ptr<Core>> Core::open(const config::Config& config) {
  std::unique_ptr<Core> core(new Core());
  core->config_ = config;
  // Before any thread of ours exists: an env KEK is read and unset here (crypto/kek.h).
  core->keys_ = std::make_unique<DataKeys>(config.encryption);
  if (config.security.enabled) {
    ASSIGN_OR_RETURN(core->verifier_, identity::Verifier::from_config(config.security));
  }
  if (Status s = make_private_dir(config.data_dir); !s.is_ok()) return with_key(config, "data_dir", s);
  // An existing data dir keeps its mode (it may not be ours alone); what volguard keeps in it
  // is private anyway (db 0600, volumes/ and the audit dir 0700), but say so.
  if (struct stat st {}; ::stat(config.data_dir.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    spdlog::warn("{}: data_dir {} has mode {:04o}: group or others can reach it (chmod 700 it)",
                 config.file, config.data_dir, st.st_mode & 07777);
  }
  {
    ASSIGN_OR_RETURN(DirLock lock, DirLock::acquire(config.data_dir, config.file + ": data_dir"));
    core->locks_.push_back(std::move(lock));
  }
  // An audit dir outside the data dir is locked too: two servers must never append to one chain.
  if (const std::string& a = config.audit.dir; a.rfind(config.data_dir + "/", 0) != 0) {
    if (Status s = make_private_dir(a); !s.is_ok()) return with_key(config, "audit.dir", s);
    ASSIGN_OR_RETURN(DirLock lock, DirLock::acquire(a, config.file + ": audit.dir"));
    core->locks_.push_back(std::move(lock));
  }
  // The audit trail before anything that could change state: no recorder, no server.
  ASSIGN_OR_RETURN(core->recorder_, AuditRecorder::open(config, &core->metrics_));
  ASSIGN_OR_RETURN(auto store, open_store(config));
  {
    store::NodeRecord self{.name = config.node.name,
                           .grpc_address = config.node.advertise,
                           .rest_address = config.api.rest,
                           .started_at = static_cast<int64_t>(::time(nullptr)),
                           .version = kVersion};
    if (Status s = store->register_node(self); !s.is_ok()) {
      return Status(s.code(), s.reason(), config.file + ": node: registering " + self.name + ": " + s.message());
    }
  }
  ASSIGN_OR_RETURN(auto driver, driver::open_local_driver(config.data_dir));
  core->volumes_ =
      std::make_unique<VolumeService>(config, std::move(store), std::move(driver), *core->keys_,
                                      core->roles_, core->revocations_);
  core->volumes_->register_methods(&core->table_);
  core->exporter_ = std::make_unique<MetricsExporter>(
      core->metrics_, core->table_, *core->recorder_, *core->volumes_,
      config.store.etcd_enabled ? "etcd" : "sqlite", core->verifier_);
  register_metrics_methods(&core->table_, core->exporter_.get());
  std::shared_ptr<const identity::CertificateIdentities> certificates;
  if (!config.api.tls.client_ca.empty()) {
    ASSIGN_OR_RETURN(certificates, identity::CertificateIdentities::from_config(config));
  }
  core->pipeline_ = std::make_unique<Pipeline>(config.security, core->verifier_, std::move(certificates),
                                               core->table_,
                                               *core->volumes_, core->roles_, core->revocations_,
                                               *core->recorder_,
                                               *core->volumes_);
  RETURN_IF_ERROR(core->volumes_->recover());
  // Write-ahead audit: an intent a crash left open gets its outcome now ("unknown", with what
  // the reconciled store and disk hold), before any new request can be taken.
  const VolumeService* volumes = core->volumes_.get();
  auto open = core->recorder_->recover_intents(
      [volumes](const std::string& r, const std::string& p) { return volumes->describe_for_recovery(r, p); });
  if (!open) {
    return Status(Code::kUnavailable, "audit_unavailable",
                  config.file + ": audit: recovering open intents: " + open.status().message());
  }
  if (*open > 0) spdlog::warn("audit: {} intent(s) left open by a crash recorded as outcome=unknown", *open);
  return core;
}

}  // namespace volguard::service
