#include "service/metrics.h"

#include <grpc/grpc.h>
#include <openssl/crypto.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "common/version.h"
#include "identity/verifier.h"
#include "service/audit_recorder.h"
#include "service/pipeline.h"
#include "volguard.pb.h"

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

// Every result code: gRPC's, contiguous from OK (0) to UNAUTHENTICATED (16).
const std::vector<std::string>& code_names() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> names;
    for (int c = 0; c <= static_cast<int>(Code::kUnauthenticated); ++c) {
      names.push_back(code_name(static_cast<Code>(c)));
    }
    return names;
  }();
  return kNames;
}

// A label value in the text format: backslash, double quote and newline escaped (an issuer is
// whatever URL the config names).
std::string label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

void family(std::string* out, const char* name, const char* type, const char* help) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

std::string number(double v) {
  if (v == std::numeric_limits<double>::infinity()) return "+Inf";
  char buf[64];
  snprintf(buf, sizeof buf, "%.15g", v);  // what a double holds exactly
  return buf;
}

}  // namespace

std::string Metrics::render(const KnownLabels& known) const {
  // The known label values at zero, then what was counted over them: the lock is held for
  // the copy only, not for the text.
  std::map<std::pair<std::string, std::string>, uint64_t> requests;
  std::map<std::string, Histogram> latency;
  std::map<std::string, uint64_t> auth_failures;
  std::map<std::string, uint64_t> denials;
  for (const auto& m : known.methods) {
    for (const auto& c : code_names()) requests[{m, c}] = 0;
    latency[m];
    denials[m] = 0;
  }
  for (const auto& r : known.authentication_failure_reasons) auth_failures[r] = 0;
  uint64_t audit_records = 0;
  uint64_t audit_failures = 0;
  Histogram fsync;
  {
    std::lock_guard lock(mu_);
    for (const auto& [k, v] : requests_) requests[k] = v;
    for (const auto& [k, v] : latency_) latency[k] = v;
    for (const auto& [k, v] : auth_failures_) auth_failures[k] = v;
    for (const auto& [k, v] : denials_) denials[k] = v;
    audit_records = audit_records_;
    audit_failures = audit_failures_;
    fsync = fsync_;
  }
  std::string out;
  family(&out, "volguard_requests_total", "counter", "API calls by method and result code.");
  for (const auto& [k, v] : requests) {
    out += "volguard_requests_total{method=\"" + label_value(k.first) + "\",code=\"" + k.second +
           "\"} " + std::to_string(v) + "\n";
  }
  family(&out, "volguard_request_duration_seconds", "histogram", "API call latency by method.");
  for (const auto& [m, h] : latency) {
    histogram_lines(&out, "volguard_request_duration_seconds", "method=\"" + label_value(m) + "\"",
                    bounds(), h.buckets, h.count, h.sum);
  }
  family(&out, "volguard_authentication_failures_total", "counter", "Refused tokens by reason.");
  for (const auto& [r, v] : auth_failures) {
    out += "volguard_authentication_failures_total{reason=\"" + label_value(r) + "\"} " +
           std::to_string(v) + "\n";
  }
  family(&out, "volguard_authorization_denials_total", "counter",
         "Calls refused by roles or ownership.");
  for (const auto& [m, v] : denials) {
    out += "volguard_authorization_denials_total{method=\"" + label_value(m) + "\"} " +
           std::to_string(v) + "\n";
  }
  family(&out, "volguard_audit_records_total", "counter", "Audit records written.");
  out += "volguard_audit_records_total " + std::to_string(audit_records) + "\n";
  family(&out, "volguard_audit_failures_total", "counter",
         "Audit or access records that could not be written.");
  out += "volguard_audit_failures_total " + std::to_string(audit_failures) + "\n";
  family(&out, "volguard_audit_fsync_seconds", "histogram", "Audit log fsync latency.");
  histogram_lines(&out, "volguard_audit_fsync_seconds", "", bounds(), fsync.buckets, fsync.count,
                  fsync.sum);
  return out;
}

namespace {

// What /proc/self/stat says of this process (proc(5)); nullopt when it cannot be read.
struct ProcStat {
  uint64_t start_ticks = 0;     // field 22: clock ticks after boot
  uint64_t virtual_bytes = 0;   // field 23
  uint64_t resident_pages = 0;  // field 24
};

std::optional<ProcStat> read_proc_stat() {
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) is in parentheses and may hold spaces and ')': the fields that
  // follow start after the last ')'.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(close + 1));
  std::vector<std::string> f;  // f[0] is field 3 (state)
  for (std::string word; fields >> word && f.size() < 22;) f.push_back(word);
  if (f.size() < 22) return std::nullopt;
  try {
    return ProcStat{.start_ticks = std::stoull(f[19]),
                    .virtual_bytes = std::stoull(f[20]),
                    .resident_pages = std::stoull(f[21])};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The boot time (btime of /proc/stat, seconds since the epoch); 0 when unknown.
uint64_t boot_time() {
  std::ifstream in("/proc/stat");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("btime ", 0) == 0) {
      try {
        return std::stoull(line.substr(6));
      } catch (const std::exception&) {
        return 0;
      }
    }
  }
  return 0;
}

double process_start_time() {
  const auto stat = read_proc_stat();
  const uint64_t boot = boot_time();
  const long ticks = ::sysconf(_SC_CLK_TCK);
  if (!stat || boot == 0 || ticks <= 0) return 0;
  return static_cast<double>(boot) + static_cast<double>(stat->start_ticks) / ticks;
}

// The standard process metrics, as every Prometheus client library names them.
void process_lines(std::string* out, double start_time) {
  struct rusage usage {};
  if (::getrusage(RUSAGE_SELF, &usage) == 0) {
    const auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
    family(out, "process_cpu_seconds_total", "counter",
           "Total user and system CPU time spent in seconds.");
    *out += "process_cpu_seconds_total " +
            number(seconds(usage.ru_utime) + seconds(usage.ru_stime)) + "\n";
  }
  if (const auto stat = read_proc_stat()) {
    family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    *out += "process_virtual_memory_bytes " + std::to_string(stat->virtual_bytes) + "\n";
    family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    *out += "process_resident_memory_bytes " +
            std::to_string(stat->resident_pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE))) +
            "\n";
  }
  std::error_code ec;
  size_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++fds;
  }
  if (!ec) {
    family(out, "process_open_fds", "gauge", "Number of open file descriptors.");
    *out += "process_open_fds " + std::to_string(fds) + "\n";
  }
  if (struct rlimit limit{}; ::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    *out += "process_max_fds " + std::to_string(limit.rlim_cur) + "\n";
  }
  if (start_time > 0) {
    family(out, "process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.");
    *out += "process_start_time_seconds " + number(start_time) + "\n";
  }
}

}  // namespace

MetricsExporter::MetricsExporter(const Metrics& metrics, const MethodTable& table,
                                 const AuditRecorder& recorder, const ResourceResolver& catalog,
                                 std::string store_backend,
                                 std::shared_ptr<const identity::Verifier> verifier)
    : metrics_(metrics),
      table_(table),
      recorder_(recorder),
      catalog_(catalog),
      store_backend_(std::move(store_backend)),
      verifier_(std::move(verifier)),
      start_time_seconds_(process_start_time()) {}

std::string MetricsExporter::render() const {
  std::string out;
  family(&out, "volguard_build_info", "gauge",
         "The running build: its version and the gRPC and OpenSSL libraries it runs with.");
  out += std::string("volguard_build_info{version=\"") + kVersion + "\",grpc_version=\"" +
         label_value(grpc_version_string()) + "\",openssl_version=\"" +
         label_value(OpenSSL_version(OPENSSL_VERSION_STRING)) + "\"} 1\n";
  process_lines(&out, start_time_seconds_);

  KnownLabels known{.authentication_failure_reasons = authentication_failure_reasons()};
  for (const MethodSpec* m : table_.methods()) known.methods.push_back(m->key());
  out += metrics_.render(known);

  family(&out, "volguard_audit_writable", "gauge",
         "1 when the audit trail takes records now; 0 when its last write failed or its "
         "filesystem is full (with audit.fail_closed, state changes are then refused).");
  out += std::string("volguard_audit_writable ") + (recorder_.writable() ? "1" : "0") + "\n";
  // The check the pipeline makes before every decision: SQLite always holds; etcd holds while
  // the watch keeps confirming this node's catalog within store.etcd.stale_after.
  family(&out, "volguard_store_up", "gauge",
         "1 when this node's catalog of the metadata store can be decided on (SQLite: once "
         "open; etcd: confirmed current within store.etcd.stale_after), else 0.");
  out += "volguard_store_up{backend=\"" + label_value(store_backend_) + "\"} " +
         (catalog_.catalog_fresh(0).is_ok() ? "1" : "0") + "\n";
  family(&out, "volguard_oidc_keys_age_seconds", "gauge",
         "Seconds since the OIDC issuer's keys (JWKS) were last fetched successfully; +Inf "
         "before the first success.");
  if (verifier_ != nullptr) {
    const auto now = std::chrono::steady_clock::now();
    for (const auto& [issuer, state] : verifier_->key_fetch_states()) {
      const double age = state.last_success
                             ? std::chrono::duration<double>(now - *state.last_success).count()
                             : std::numeric_limits<double>::infinity();
      out += "volguard_oidc_keys_age_seconds{issuer=\"" + label_value(issuer) + "\"} " +
             number(age) + "\n";
    }
  }
  return out;
}

void register_metrics_methods(MethodTable* table, const MetricsExporter* exporter) {
  table->add<v1::Empty, v1::MetricsResponse>(
      {.service = "metrics", .api = "inspect", .grpc_path = "/volguard.v1.VolguardMetrics/Inspect"},
      [exporter](Call&, const v1::Empty&, v1::MetricsResponse* out) {
        out->set_text(exporter->render());
        return Status::ok();
      });
}

}  // namespace volguard::service
