#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "audit/audit.h"
#include "cli/commands.h"
#include "common/text.h"
#include "config/config.h"
#include "service/audit_recorder.h"

namespace volguard::cli {

namespace {

struct Paths {
  std::string dir;
  std::string key_file;
};

Result<Paths> resolve(const AuditArgs& a) {
  Paths p{a.dir, a.key_file};
  if (!a.config_file.empty()) {
    auto cfg = config::load_config(a.config_file);
    if (!cfg) return cfg.status();
    if (p.dir.empty()) p.dir = cfg->audit.dir;
    if (p.key_file.empty()) p.key_file = cfg->audit.key_file;
  }
  if (p.dir.empty()) p.dir = "./data/log/security";
  if (p.key_file.empty()) p.key_file = p.dir + "/../../audit.key";
  return p;
}

// RFC 3339 (ours: always UTC "Z") → unix seconds; 0 for a time that does not parse.
int64_t parse_time(const std::string& t) { return parse_rfc3339(t).value_or(0); }

}  // namespace

int audit_verify_one(const AuditArgs& a, nlohmann::json* json);

// One config (or none: --dir/--key-file) is one chain; several are a cluster's nodes, each with
// its own chain and key, verified one by one. The exit code is the worst of them.
int audit_verify(const AuditArgs& a) {
  const bool json = a.output == "json";
  if (a.configs.size() <= 1) {
    AuditArgs one = a;
    if (!a.configs.empty()) one.config_file = a.configs[0];
    nlohmann::json report;
    const int rc = audit_verify_one(one, &report);
    if (json && !report.empty()) std::cout << report.dump() << "\n";
    return rc;
  }
  if (!a.dir.empty() || !a.key_file.empty()) {
    return usage_error("with several --config, each node's dir and key come from its config");
  }
  int worst = kExitOk;
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& file : a.configs) {
    auto cfg = config::load_config(file);
    const std::string node = cfg ? cfg->node.name : "?";
    if (!json) std::cout << "node " << node << " (" << file << "): " << std::flush;
    AuditArgs one = a;
    one.config_file = file;
    nlohmann::json report;
    int rc = audit_verify_one(one, &report);
    if (!report.empty()) {
      report["node"] = node;
      report["config"] = file;
      nodes.push_back(std::move(report));
    }
    // Refusals (tampering, a bad config) outrank "not sealed" (a running node).
    auto rank = [](int c) { return c == kExitOk ? 0 : c == 3 ? 1 : 2; };
    if (rank(rc) > rank(worst)) worst = rc;
  }
  if (json) std::cout << nlohmann::json{{"nodes", nodes}}.dump() << "\n";
  return worst;
}

// Verifies one chain; prints its text report, or (-o json) fills `json` for the caller to print.
int audit_verify_one(const AuditArgs& a, nlohmann::json* json) {
  const bool as_json = a.output == "json";
  auto p = resolve(a);
  if (!p) {
    return usage_error(p.status().message());
  }
  auto key = read_file(p->key_file);
  if (!key) {
    return usage_error("audit key: ", key.status().message());
  }
  // Read as the server reads it (service/audit_recorder.cc): without the line end.
  const std::string k(trim_trailing_newlines(*key));
  std::string path = p->dir + "/" + service::kAuditLogName;
  auto report = audit::verify_chain(path, k, audit::anchor_path_for(p->key_file));
  *json = {{"file", path}, {"records", report.records}, {"problem", report.problem},
           {"sealed", report.ok && report.tail_sealed}, {"last_sealed_seq", report.last_sealed_seq}};
  if (!report.ok) {
    (*json)["result"] = "tampered";
    if (!as_json) {
      std::cout << "TAMPERED: " << report.problem << "\n"
                << "  " << report.records << " records verified before it\n";
    }
    return kExitRefused;
  }
  if (report.tail_sealed) {
    (*json)["result"] = "ok";
    if (!as_json) {
      std::cout << "OK: " << report.records << " records, chain intact";
      if (!report.problem.empty()) std::cout << " (" << report.problem << ")";
      std::cout << "\nsealed: the last record (seq " << report.last_sealed_seq
                << ") is a clean-shutdown seal\n";
    }
    return kExitOk;
  }
  (*json)["result"] = "not_sealed";
  if (!as_json) {
    std::cout << "OK: " << report.records << " records, chain intact";
    if (!report.problem.empty()) std::cout << " (" << report.problem << ")";
    std::cout << "\nNOT SEALED: "
              << (report.last_sealed_seq
                      ? "sealed up to seq " + std::to_string(report.last_sealed_seq) + "; "
                      : std::string("never sealed; "))
              << "records after it have no seal (the server is running, crashed, or the tail was "
                 "cut)\n";
  }
  return 3;
}

int audit_show(const AuditArgs& a) {
  auto p = resolve(a);
  if (!p) {
    return usage_error(p.status().message());
  }
  std::string file = a.denied || a.access ? service::kAccessLogName : service::kAuditLogName;
  auto records = audit::read_all(p->dir + "/" + file);
  if (!records) {
    return usage_error(records.status().message());
  }
  int64_t since = 0;
  if (!a.since.empty()) {
    auto d = parse_duration(a.since);
    if (!d) {
      return usage_error("--since: ", d.status().message());
    }
    since = static_cast<int64_t>(std::time(nullptr)) - d->count();
  }
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& r : *records) {
    auto field = [&](const char* k) {
      const std::string* v = r.get(k);
      return v ? *v : std::string();
    };
    if (!a.user.empty() && field("username") != a.user &&
        field("issuer") + "/" + field("username") != a.user) {
      continue;
    }
    if (!a.method.empty() && field("method") != a.method) continue;
    if (a.denied && field("level") != "warning") continue;
    if (since && parse_time(field("time")) < since) continue;
    if (a.output == "json") {
      // As the JSON format writes it: typed where the record knows the kind.
      out.push_back(nlohmann::ordered_json::parse(audit::to_json_line(r)));
    } else {
      std::cout << field("time") << "  " << field("method") << "  "
                << (field("username").empty() ? "-" : field("username")) << "  "
                << field("msg") << "  " << field("code")
                << (field("reason").empty() ? "" : " " + field("reason"))
                << (field("resource").empty() ? "" : "  " + field("resource")) << "\n";
    }
  }
  if (a.output == "json") std::cout << out.dump(2) << "\n";
  return kExitOk;
}

}  // namespace volguard::cli
