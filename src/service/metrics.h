// Prometheus metrics, rendered as text at /metrics (the method metrics.inspect).
//
// Two parts, because they are built at opposite ends of Core::open: `Metrics`, the counters the
// audit recorder feeds, exists before the audit trail (it counts from the trail's first record);
// `MetricsExporter` renders a scrape and is built last, from the parts whose state its gauges
// read and from the method table, complete by then, whose every method is reported from the
// first scrape.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace volguard::identity {
class Verifier;
}  // namespace volguard::identity

namespace volguard::service {

// Label values a scrape reports even before they were ever seen, at zero: rate() and increase()
// need a first sample before the first event.
struct KnownLabels {
  std::vector<std::string> methods;  // "volume.create"
  std::vector<std::string> authentication_failure_reasons;
};

class Metrics {
 public:
  void observe_call(const std::string& method, const std::string& code, double seconds);
  void authentication_failure(const std::string& reason);
  void authorization_denial(const std::string& method);
  void audit_record();
  void audit_failure();
  void audit_fsync(double seconds);
  // The counters and histograms. Every method and reason of `known`, and every result code, is
  // present (at zero until seen).
  std::string render(const KnownLabels& known) const;

 private:
  struct Histogram {
    std::vector<uint64_t> buckets;  // cumulative at render
    uint64_t count = 0;
    double sum = 0;
  };
  static const std::vector<double>& bounds();
  static void observe(Histogram* h, double v);
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  std::map<std::string, uint64_t> auth_failures_;
  std::map<std::string, uint64_t> denials_;
  uint64_t audit_records_ = 0;
  uint64_t audit_failures_ = 0;
  Histogram fsync_;
};

class AuditRecorder;
class MethodTable;
class ResourceResolver;

// One scrape: build info, the standard process_* series, the counters (every method of the
// table, every code and authentication-failure reason, from the first scrape) and gauges read
// at that moment from the parts that know them.
class MetricsExporter {
 public:
  // Every part is required and outlives the exporter. `table` is read at each scrape (it is
  // complete before the server serves); `catalog` is the pipeline's, whose freshness is the
  // store's health; `store_backend` names it ("sqlite", "etcd"); `verifier` is null when
  // security is off (no issuer, no key age).
  MetricsExporter(const Metrics& metrics, const MethodTable& table, const AuditRecorder& recorder,
                  const ResourceResolver& catalog, std::string store_backend,
                  std::shared_ptr<const identity::Verifier> verifier);
  std::string render() const;

 private:
  const Metrics& metrics_;
  const MethodTable& table_;
  const AuditRecorder& recorder_;
  const ResourceResolver& catalog_;
  const std::string store_backend_;
  const std::shared_ptr<const identity::Verifier> verifier_;
  // Read once: a process's start time does not change (0: /proc could not say; not reported).
  const double start_time_seconds_;
};

// metrics.inspect (GET /metrics, gRPC VolguardMetrics/Inspect): a table method like any other,
// so the pipeline authenticates, decides, logs and counts it. `exporter` outlives the table; a
// table built only to list methods (tests) may pass null, as its handler never runs.
void register_metrics_methods(MethodTable* table, const MetricsExporter* exporter);

}  // namespace volguard::service
