// Prometheus metrics, rendered as text at /metrics.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace volguard::service {

class Metrics {
 public:
  void observe_call(const std::string& method, const std::string& code, double seconds);
  void authentication_failure(const std::string& reason);
  void authorization_denial(const std::string& method);
  void audit_record();
  void audit_failure();
  void audit_fsync(double seconds);
  std::string render() const;

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

class MethodTable;
// metrics.inspect (GET /metrics, gRPC VolguardMetrics/Inspect): a table method like any other,
// so the pipeline authenticates, decides, logs and counts it. `metrics` outlives the table.
void register_metrics_methods(MethodTable* table, const Metrics* metrics);

}  // namespace volguard::service
