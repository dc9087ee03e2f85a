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

int audit_verify_one(const AuditArgs& a);

// One config (or none: --dir/--key-file) is one chain; several are a cluster's nodes, each with
// its own chain and key, verified one by one. The exit code is the worst of them.
int audit_verify(const AuditArgs& a) {
  if (a.configs.size() <= 1) {
    AuditArgs one = a;
    if (!a.configs.empty()) one.config_file = a.configs[0];
    return audit_verify_one(one);
  }
  if (!a.dir.empty() || !a.key_file.empty()) {
    std::cerr << "error: with several --config, each node's dir and key come from its config\n";
    return kExitUsage;
  }
  int worst = kExitOk;
  for (const auto& file : a.configs) {
    auto cfg = config::load_config(file);
    std::cout << "node " << (cfg ? cfg->node.name : "?") << " (" << file << "): " << std::flush;
    AuditArgs one = a;
    one.config_file = file;
    int rc = audit_verify_one(one);
    // Refusals (tampering, a bad config) outrank "not sealed" (a running node).
    auto rank = [](int c) { return c == kExitOk ? 0 : c == 3 ? 1 : 2; };
    if (rank(rc) > rank(worst)) worst = rc;
  }
  return worst;
}

int audit_verify_one(const AuditArgs& a) {
  auto p = resolve(a);
  if (!p) {
    std::cerr << "error: " << p.status().message() << "\n";
    return kExitUsage;
  }
  auto key = read_file(p->key_file);
  if (!key) {
    std::cerr << "error: audit key: " << key.status().message() << "\n";
    return kExitUsage;
  }
  // Read as the server reads it (service/audit_recorder.cc): without the line end.
  const std::string k(trim_trailing_newlines(*key));
  std::string path = p->dir + "/" + service::kAuditLogName;
  auto report = audit::verify_chain(path, k, audit::anchor_path_for(p->key_file));
  if (!report.ok) {
    std::cout << "TAMPERED: " << report.problem << "\n"
              << "  " << report.records << " records verified before it\n";
    return kExitRefused;
  }
  std::cout << "OK: " << report.records << " records, chain intact";
  if (!report.problem.empty()) std::cout << " (" << report.problem << ")";
  std::cout << "\n";
  if (report.tail_sealed) {
    std::cout << "sealed: the last record (seq " << report.last_sealed_seq
              << ") is a clean-shutdown seal\n";
    return kExitOk;
  }
  std::cout << "NOT SEALED: "
            << (report.last_sealed_seq
                    ? "sealed up to seq " + std::to_string(report.last_sealed_seq) + "; "
                    : std::string("never sealed; "))
            << "records after it have no seal (the server is running, crashed, or the tail was "
               "cut)\n";
  return 3;
}

int audit_show(const AuditArgs& a) {
  auto p = resolve(a);
  if (!p) {
    std::cerr << "error: " << p.status().message() << "\n";
    return kExitUsage;
  }
  std::string file = a.denied || a.access ? service::kAccessLogName : service::kAuditLogName;
  auto records = audit::read_all(p->dir + "/" + file);
  if (!records) {
    std::cerr << "error: " << records.status().message() << "\n";
    return kExitUsage;
  }
  int64_t since = 0;
  if (!a.since.empty()) {
    auto d = parse_duration(a.since);
    if (!d) {
      std::cerr << "error: --since: " << d.status().message() << "\n";
      return kExitUsage;
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
