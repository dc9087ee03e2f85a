#include "service/audit_recorder.h"

#include <openssl/rand.h>
#include <sys/statvfs.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <map>

#include "common/text.h"

namespace volguard::service {

namespace {

// A JSON array of strings: a group named "eng,admin" stays one group (["eng,admin"]), never
// two, whatever a token puts in its names.
std::string list_text(const std::vector<std::string>& v) {
  return nlohmann::json(v).dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

Result<std::string> load_or_create_audit_key(const std::string& path,
                                             const std::string& trail_path) {
  if (std::filesystem::exists(path)) {
    // A key others can read lets them forge a chain that verifies; one they can write, too.
    auto key = read_private_file(path);
    if (!key) {
      return Status(key.status().code(), key.status().reason(),
                    "audit.key_file: " + key.status().message());
    }
    // Newlines only (like `volguard audit verify`): a space may be part of the key.
    const std::string k(trim_trailing_newlines(*key));
    if (k.size() < 32) {
      return Status(Code::kInvalidArgument, "bad_config",
                    "audit.key_file: " + path + " holds " + std::to_string(k.size()) +
                        " bytes; at least 32 are required");
    }
    return k;
  }
  // Is there a chain this key would have to continue? The live file or any rotation of it.
  const std::filesystem::path trail(trail_path);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(trail.parent_path(), ec)) {
    const std::string name = entry.path().filename().string();
    const std::string base = trail.filename().string();
    if (name != base && name.rfind(base + ".", 0) != 0) continue;
    std::error_code size_ec;
    if (std::filesystem::file_size(entry.path(), size_ec) > 0 && !size_ec) {
      return Status(Code::kFailedPrecondition, "audit_key_missing",
                    "audit.key_file: " + path + " is missing but " + entry.path().string() +
                        " holds a chained audit trail: restore the key (a new one would break "
                        "the chain), or move the old trail away to start a new one");
    }
  }
  unsigned char rnd[32];
  if (RAND_bytes(rnd, sizeof rnd) != 1) {
    return Status(Code::kInternal, "rng_failed", "no randomness for the audit key");
  }
  std::string key = base64url_encode(std::string_view(reinterpret_cast<char*>(rnd), sizeof rnd));
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  RETURN_IF_ERROR(write_file(path, key + "\n", 0600));
  return key;
}

Result<std::unique_ptr<AuditRecorder>> AuditRecorder::open(const config::Config& config,
                                                           Metrics* metrics) {
  auto key = load_or_create_audit_key(config.audit.key_file, config.audit.dir + "/" + kAuditLogName);
  if (!key) return key.status();
  std::unique_ptr<AuditRecorder> r(new AuditRecorder());
  r->fail_closed_ = config.audit.fail_closed;
  r->dir_ = config.audit.dir;
  r->metrics_ = metrics;
  r->node_ = config.node.name;
  audit::Format format = config.audit.format == "json" ? audit::Format::kJson : audit::Format::kLogfmt;
  audit::LogOptions access{.path = config.audit.dir + "/" + kAccessLogName, .format = format,
                           .max_bytes = config.audit.max_bytes, .keep = config.audit.keep,
                           .durable = false};
  auto access_log = audit::LogFile::open(access);
  if (!access_log) return access_log.status();
  r->access_ = std::move(access_log).value();
  audit::LogOptions trail{.path = config.audit.dir + "/" + kAuditLogName, .format = format,
                          .max_bytes = config.audit.max_bytes, .keep = config.audit.keep,
                          .durable = true, .chain_key = *key,
                          .anchor_path = audit::anchor_path_for(config.audit.key_file)};
  auto audit_log = audit::LogFile::open(trail);
  if (!audit_log) return audit_log.status();
  r->audit_ = std::move(audit_log).value();
  if (metrics) r->audit_->set_fsync_observer([metrics](double s) { metrics->audit_fsync(s); });
  return r;
}

audit::Record AuditRecorder::base(const DecisionRecord& r, const std::string& level,
                                  const std::string& msg) const {
  audit::Record rec;
  rec.add("time", audit::now_rfc3339());
  rec.add("level", level);
  rec.add("msg", msg);
  rec.add("method", r.method);
  const identity::Identity* who = r.who;
  rec.add("username", who ? who->username : "");
  rec.add("subject", who ? who->subject : "");
  rec.add("name", who ? who->name : "");
  rec.add("email", who ? who->email : "");
  rec.add("issuer", who ? who->issuer : "");
  // No caller (authentication failed): empty arrays, so that JSON lines keep one type per field.
  rec.add_json("roles", list_text(who ? who->roles : std::vector<std::string>{}));
  rec.add_json("groups", list_text(who ? who->groups : std::vector<std::string>{}));
  rec.add("resource", r.resource);
  rec.add("code", code_name(r.status.code()));
  rec.add("reason", r.status.reason());
  rec.add("remote", r.remote);
  rec.add("request_id", r.request_id);
  rec.add("node", node_);
  // Cluster forwarding: the forwarding node records where it sent the call; the home node
  // records who forwarded it (as that node claims; node-to-node mTLS would make it proven).
  if (!r.forwarded_to.empty()) rec.add("forwarded_to", r.forwarded_to);
  if (!r.forwarded_by.empty()) rec.add("forwarded_by", r.forwarded_by);
  return rec;
}

void AuditRecorder::record(const DecisionRecord& r) {
  std::string msg;
  std::string level = "info";
  if (r.who == nullptr) {
    msg = "Authentication failed";
    level = "warning";
    if (metrics_) metrics_->authentication_failure(r.status.reason());
  } else if (!r.authorized) {
    msg = "Access denied";
    level = "warning";
    if (metrics_ && r.status.code() == Code::kPermissionDenied) {
      metrics_->authorization_denial(r.method);
    }
  } else if (r.status.is_ok()) {
    msg = r.security_enabled ? "Authorized" : "Allowed (security disabled)";
  } else {
    msg = "Authorized, failed";
  }
  if (metrics_) metrics_->observe_call(r.method, code_name(r.status.code()), r.seconds);
  audit::Record rec = base(r, level, msg);
  char ms[32];
  snprintf(ms, sizeof ms, "%.3f", r.seconds * 1000);
  rec.add_number("duration_ms", ms);
  if (!access_->append(std::move(rec)).is_ok() && metrics_) metrics_->audit_failure();
}

Status AuditRecorder::room_for_records() const {
  struct statvfs vfs;
  if (::statvfs(dir_.c_str(), &vfs) == 0) {
    uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    if (free_bytes < kMinFreeBytes) {
      return Status(Code::kUnavailable, "audit_unavailable",
                    "the audit log's filesystem has " + std::to_string(free_bytes) +
                        " bytes free; state changes are refused until it has room "
                        "(audit.fail_closed)");
    }
  }
  return Status::ok();
}

bool AuditRecorder::writable() const { return audit_->healthy() && room_for_records().is_ok(); }

Status AuditRecorder::audit_ready() {
  if (!fail_closed_) return Status::ok();
  // Refuse before acting when the log's disk is (nearly) full: a change whose record then
  // failed to write would have happened unaudited.
  RETURN_IF_ERROR(room_for_records());
  if (audit_->healthy()) return Status::ok();
  // Unhealthy: try once more, with a record that says so, before refusing.
  if (event("Audit log writable again", {}).is_ok()) return Status::ok();
  return Status(Code::kUnavailable, "audit_unavailable",
                "the audit log cannot be written; state changes are refused until it can "
                "(audit.fail_closed)");
}

Status AuditRecorder::append_counted(audit::Record rec) {
  Status s = audit_->append(std::move(rec));
  if (metrics_) {
    if (s.is_ok()) metrics_->audit_record();
    else metrics_->audit_failure();
  }
  return s;
}

Status AuditRecorder::intent(const DecisionRecord& r) {
  audit::Record rec = base(r, "info", "Intent");
  rec.add("intent", r.request_id);
  rec.add_json("params", r.params);
  Status s = append_counted(std::move(rec));
  if (s.is_ok() || !fail_closed_) return Status::ok();
  return Status(Code::kUnavailable, "audit_unavailable",
                "the intent of " + r.method + " could not be made durable in the audit trail (" +
                    s.message() + "); nothing was done");
}

Status AuditRecorder::audit(const DecisionRecord& r) {
  const bool done = r.status.is_ok();
  audit::Record rec = base(r, done ? "info" : "warning", r.audit_message);
  rec.add("intent", r.request_id);
  rec.add("outcome", done ? "done" : "failed");
  Status s = append_counted(std::move(rec));
  if (s.is_ok() || !fail_closed_) return Status::ok();
  return Status(Code::kUnavailable, "audit_unavailable",
                std::string(done ? "the change was applied" : "the attempt failed") +
                    " but its outcome record could not be written (" + s.message() +
                    "); its intent is on record and the next start records outcome=unknown");
}

Result<size_t> AuditRecorder::recover_intents(
    const std::function<std::string(const std::string&, const std::string&)>& found) {
  // Intents in the order they were written, minus those an outcome (done, failed, unknown)
  // closed. Intent ids are unique: a random per-process prefix and a counter. read_all reads
  // the retained rotated files, oldest first, then the live one: each record exactly once.
  std::vector<audit::Record> open;
  std::map<std::string, size_t> index;
  ASSIGN_OR_RETURN(auto records, audit::read_all(dir_ + "/" + kAuditLogName));
  for (auto& r : records) {
    const std::string* id = r.get("intent");
    if (id == nullptr) continue;
    if (r.get("outcome") == nullptr) {
      index[*id] = open.size();
      open.push_back(r);
    } else if (auto it = index.find(*id); it != index.end()) {
      open[it->second].fields.clear();  // closed
    }
  }
  size_t count = 0;
  for (const auto& r : open) {
    if (r.fields.empty()) continue;
    ++count;
    auto get = [&](const char* k) {
      const std::string* v = r.get(k);
      return v ? *v : std::string();
    };
    audit::Record rec;
    rec.add("time", audit::now_rfc3339());
    rec.add("level", "warning");
    rec.add("msg", "Outcome unknown");
    for (const char* k : {"method", "username", "subject", "name", "email", "issuer", "roles",
                          "groups", "resource", "remote", "request_id"}) {
      // roles and groups are JSON arrays (read back as their JSON text): arrays again here, as
      // in every other record, not strings holding JSON.
      const std::string_view key(k);
      if (key == "roles" || key == "groups") rec.add_json(k, get(k));
      else rec.add(k, get(k));
    }
    rec.add("node", node_);
    rec.add("intent", get("intent"));
    rec.add("outcome", "unknown");
    rec.add("intent_time", get("time"));
    rec.add("found", found(get("resource"), get("params")));
    RETURN_IF_ERROR(append_counted(std::move(rec)));
  }
  return count;
}

Status AuditRecorder::event(const std::string& msg, audit::Record fields, bool sealed) {
  audit::Record rec;
  rec.add("time", audit::now_rfc3339());
  rec.add("level", "info");
  rec.add("msg", msg);
  rec.add("method", "server");
  rec.add("node", node_);
  for (size_t i = 0; i < fields.fields.size(); ++i) {
    rec.add_as(std::move(fields.fields[i].first), std::move(fields.fields[i].second), fields.kind(i));
  }
  if (sealed) rec.add_bool("sealed", true);
  return append_counted(std::move(rec));
}

}  // namespace volguard::service
