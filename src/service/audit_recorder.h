// Writes the access log (every decision) and the audit log (every state change, durable and
// chained) for the pipeline, and feeds the metrics.
#pragma once

#include <functional>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "audit/audit.h"
#include "config/config.h"
#include "service/metrics.h"
#include "service/pipeline.h"

namespace volguard::service {

inline constexpr char kAccessLogName[] = "volguard-access.log";
inline constexpr char kAuditLogName[] = "volguard-audit.log";

// The chain key: read from audit.key_file, or made (32 random bytes, mode 0600) if absent — but
// only when there is no audit trail yet (`trail_path` and its rotations): a new key next to an
// existing chain would break it at the next record, so a missing key is FAILED_PRECONDITION
// `audit_key_missing` then.
[[nodiscard]] Result<std::string> load_or_create_audit_key(const std::string& path,
                                                         const std::string& trail_path);

class AuditRecorder : public DecisionRecorder {
 public:
  static Result<std::unique_ptr<AuditRecorder>> open(const config::Config& config, Metrics* metrics);

  void record(const DecisionRecord& record) override;
  Status audit_ready() override;
  Status intent(const DecisionRecord& record) override;
  Status audit(const DecisionRecord& record) override;
  // At start, after the store and disk were reconciled: every intent in the trail without an
  // outcome (the server died between them) gets one, `outcome=unknown`, with what
  // `found(resource, params)` says is there now. Returns how many were open.
  [[nodiscard]] Result<size_t> recover_intents(
      const std::function<std::string(const std::string& resource, const std::string& params)>& found);

  // A server-level audit record ("Server started", ...); `sealed` marks a clean shutdown.
  // `fields` (with their kinds) follow the usual time, level, msg, method.
  Status event(const std::string& msg, audit::Record fields, bool sealed = false);
  bool previous_run_unsealed() const { return audit_->previous_run_unsealed(); }
  // Whether the audit trail takes records now: its last write succeeded and its filesystem has
  // room. Read at each scrape (volguard_audit_writable), so a full disk shows before a change
  // is refused for it.
  bool writable() const;

 private:
  // Appends to the audit trail and counts the record or the failure in the metrics.
  Status append_counted(audit::Record rec);
  // UNAVAILABLE when the trail's filesystem has less than kMinFreeBytes free.
  Status room_for_records() const;
  AuditRecorder() = default;
  audit::Record base(const DecisionRecord& r, const std::string& level, const std::string& msg) const;

  std::unique_ptr<audit::LogFile> access_;
  std::unique_ptr<audit::LogFile> audit_;
  bool fail_closed_ = true;
  std::string dir_;
  static constexpr uint64_t kMinFreeBytes = 64 * 1024;
  Metrics* metrics_ = nullptr;
  std::string node_;  // this node's name: every record says where it was written
};

}  // namespace volguard::service
