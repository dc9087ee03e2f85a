// The composition root: the one place that builds the server's parts from the config and wires
// them, each receiving its dependencies in its constructor. The transports (api/) take a Core
// and only move bytes; tests and the bench build one the same way.
//
// Order of construction (and, reversed, of destruction):
//   the data-dir locks → verifier → metrics → audit recorder → store, driver → role registry →
//   volume service → method table → metrics exporter → pipeline → recovery (store = disk, then
//   open intents).
#pragma once

#include <memory>
#include <vector>

#include "common/dir_lock.h"
#include "common/status.h"
#include "config/config.h"
#include "service/audit_recorder.h"
#include "service/method_table.h"
#include "service/metrics.h"
#include "service/pipeline.h"
#include "service/role_registry.h"
#include "service/volume_service.h"

namespace volguard::service {

// The metadata store the config names: SQLite in data_dir (one node), or etcd (a cluster).
// Errors name the config file and key. Used by Core::open and `volguard store migrate`.
[[nodiscard]] Result<std::unique_ptr<store::MetadataStore>> open_store(const config::Config& config);

class Core {
 public:
  // Locks the data dir (and an audit dir outside it), opens the audit trail, the store and the
  // driver under data_dir, recovers, and records every intent a crash left open. Refuses with
  // the first problem, naming the config file and key.
  [[nodiscard]] static Result<std::unique_ptr<Core>> open(const config::Config& config);
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  const config::Config& config() const { return config_; }
  const Pipeline& pipeline() const { return *pipeline_; }
  const MethodTable& table() const { return table_; }
  Metrics& metrics() { return metrics_; }
  // What GET /metrics serves, also without a token (metrics.require_token: false).
  const MetricsExporter& metrics_exporter() const { return *exporter_; }
  AuditRecorder& recorder() { return *recorder_; }
  const VolumeService& volumes() const { return *volumes_; }

 private:
  Core() = default;
  // First member, so released last: the data dir stays ours until everything else is down.
  std::vector<DirLock> locks_;
  config::Config config_;
  std::shared_ptr<const identity::Verifier> verifier_;
  Metrics metrics_;
  std::unique_ptr<AuditRecorder> recorder_;
  RoleRegistry roles_;
  RevocationRegistry revocations_;
  std::unique_ptr<DataKeys> keys_;
  std::unique_ptr<VolumeService> volumes_;
  MethodTable table_;
  std::unique_ptr<MetricsExporter> exporter_;
  std::unique_ptr<Pipeline> pipeline_;
};

}  // namespace volguard::service
