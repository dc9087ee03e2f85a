#include "service/metrics.h"

#include "service/pipeline.h"
#include "volguard.pb.h"

#include <cstdio>

namespace volguard::service {

const std::vector<double>& Metrics::bounds() {
  static const std::vector<double> kBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                              0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                              1,      2.5,     5,      10};
  return kBounds;
}

void Metrics::observe(Histogram* h, double v) {
  if (h->buckets.empty()) h->buckets.assign(bounds().size(), 0);
  for (size_t i = 0; i < bounds().size(); ++i) {
    if (v <= bounds()[i]) {
      h->buckets[i]++;
      break;
    }
  }
  h->count++;
  h->sum += v;
}

void Metrics::observe_call(const std::string& method, const std::string& code, double seconds) {
  std::lock_guard lock(mu_);
  requests_[{method, code}]++;
  observe(&latency_[method], seconds);
}

void Metrics::authentication_failure(const std::string& reason) {
  std::lock_guard lock(mu_);
  auth_failures_[reason]++;
}

void Metrics::authorization_denial(const std::string& method) {
  std::lock_guard lock(mu_);
  denials_[method]++;
}

void Metrics::audit_record() {
  std::lock_guard lock(mu_);
  audit_records_++;
}

void Metrics::audit_failure() {
  std::lock_guard lock(mu_);
  audit_failures_++;
}

void Metrics::audit_fsync(double seconds) {
  std::lock_guard lock(mu_);
  observe(&fsync_, seconds);
}

namespace {
void histogram_lines(std::string* out, const std::string& name, const std::string& labels,
                     const std::vector<double>& bounds, const std::vector<uint64_t>& buckets,
                     uint64_t count, double sum) {
  uint64_t cumulative = 0;
  char buf[512];
  for (size_t i = 0; i < bounds.size(); ++i) {
    cumulative += buckets.empty() ? 0 : buckets[i];
    snprintf(buf, sizeof buf, "%s_bucket{%s%sle=\"%g\"} %llu\n", name.c_str(), labels.c_str(),
             labels.empty() ? "" : ",", bounds[i], static_cast<unsigned long long>(cumulative));
    *out += buf;
  }
  std::string braced = labels.empty() ? "" : "{" + labels + "}";
  snprintf(buf, sizeof buf, "%s_bucket{%s%sle=\"+Inf\"} %llu\n%s_sum%s %g\n%s_count%s %llu\n",
           name.c_str(), labels.c_str(), labels.empty() ? "" : ",",
           static_cast<unsigned long long>(count), name.c_str(), braced.c_str(), sum, name.c_str(),
           braced.c_str(), static_cast<unsigned long long>(count));
  *out += buf;
}
}  // namespace

std::string Metrics::render() const {
  std::lock_guard lock(mu_);
  std::string out;
  out += "# HELP volguard_requests_total API calls by method and result code.\n"
         "# TYPE volguard_requests_total counter\n";
  for (const auto& [k, v] : requests_) {
    out += "volguard_requests_total{method=\"" + k.first + "\",code=\"" + k.second + "\"} " +
           std::to_string(v) + "\n";
  }
  out += "# HELP volguard_request_duration_seconds API call latency by method.\n"
         "# TYPE volguard_request_duration_seconds histogram\n";
  for (const auto& [m, h] : latency_) {
    histogram_lines(&out, "volguard_request_duration_seconds", "method=\"" + m + "\"", bounds(),
                    h.buckets, h.count, h.sum);
  }
  out += "# HELP volguard_authentication_failures_total Refused tokens by reason.\n"
         "# TYPE volguard_authentication_failures_total counter\n";
  for (const auto& [r, v] : auth_failures_) {
    out += "volguard_authentication_failures_total{reason=\"" + r + "\"} " + std::to_string(v) + "\n";
  }
  out += "# HELP volguard_authorization_denials_total Calls refused by roles or ownership.\n"
         "# TYPE volguard_authorization_denials_total counter\n";
  for (const auto& [m, v] : denials_) {
    out += "volguard_authorization_denials_total{method=\"" + m + "\"} " + std::to_string(v) + "\n";
  }
  out += "# HELP volguard_audit_records_total Audit records written.\n"
         "# TYPE volguard_audit_records_total counter\nvolguard_audit_records_total " +
         std::to_string(audit_records_) + "\n";
  out += "# HELP volguard_audit_failures_total Audit or access records that could not be written.\n"
         "# TYPE volguard_audit_failures_total counter\nvolguard_audit_failures_total " +
         std::to_string(audit_failures_) + "\n";
  out += "# HELP volguard_audit_fsync_seconds Audit log fsync latency.\n"
         "# TYPE volguard_audit_fsync_seconds histogram\n";
  histogram_lines(&out, "volguard_audit_fsync_seconds", "", bounds(), fsync_.buckets, fsync_.count,
                  fsync_.sum);
  return out;
}

void register_metrics_methods(MethodTable* table, const Metrics* metrics) {
  table->add<v1::Empty, v1::MetricsResponse>(
      {.service = "metrics", .api = "inspect", .grpc_path = "/volguard.v1.VolguardMetrics/Inspect"},
      [metrics](Call&, const v1::Empty&, v1::MetricsResponse* out) {
        out->set_text(metrics->render());
        return Status::ok();
      });
}

}  // namespace volguard::service
