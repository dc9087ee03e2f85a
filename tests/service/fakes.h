// Stand-ins for the pipeline's three collaborators (verifier, resolver, recorder), shared by the
// service tests: each is an in-memory map or list, so that a test states exactly who the caller
// is, what exists and what the audit trail will accept.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "identity/identity.h"
#include "identity/verifier.h"
#include "service/pipeline.h"
#include "store/store.h"

namespace volguard::service::testing {

inline constexpr char kIssuer[] = "issuer";
inline constexpr char kGroupDomain[] = "groupdomain";

// A verified caller of the test issuer: principal "issuer/<username>", groups of "groupdomain".
inline identity::Identity person(const std::string& username, std::vector<std::string> roles,
                                 std::vector<std::string> groups = {}) {
  identity::Identity id;
  id.issuer = kIssuer;
  id.group_domain = kGroupDomain;
  id.username = username;
  id.subject = username;
  id.name = username;
  id.roles = std::move(roles);
  id.groups = std::move(groups);
  return id;
}

inline bool same_status(const Status& a, const Status& b) {
  return a.code() == b.code() && a.reason() == b.reason() && a.message() == b.message();
}

// Token strings mapped to identities; any other token fails as a forged one would.
class FakeVerifier : public identity::TokenVerifier {
 public:
  static constexpr char kForgedMessage[] = "the token's signature does not verify (fake)";

  void add(std::string token, identity::Identity who) { ids_[std::move(token)] = std::move(who); }
  Result<identity::Identity> verify(std::string_view token) const override {
    seen_.emplace_back(token);
    auto it = ids_.find(std::string(token));
    if (it == ids_.end()) {
      return Status(Code::kUnauthenticated, identity::reason::kSignatureInvalid, kForgedMessage);
    }
    return it->second;
  }
  void forget(std::string_view token) const override { forgotten_.emplace_back(token); }
  // Every token the pipeline asked about, as it was handed over (scheme and newline stripped).
  const std::vector<std::string>& seen() const { return seen_; }
  // Every token the pipeline told it to forget.
  const std::vector<std::string>& forgotten() const { return forgotten_; }

 private:
  std::map<std::string, identity::Identity> ids_;
  mutable std::vector<std::string> seen_;
  mutable std::vector<std::string> forgotten_;
};

// Volumes and snapshots by id or name; a snapshot's access is its volume's, as in VolumeService.
// Also the router: a volume with a home_node is routed there, and forward() records the call
// and answers `forward_result`.
class FakeResolver : public ResourceResolver, public Router {
 public:
  Status fresh = Status::ok();  // what catalog_fresh answers
  mutable store::Revision asked_revision = -1;  // the last min_revision asked for
  Status forward_result = Status::ok();
  mutable std::vector<std::string> forwarded;  // "<node> <method> forwarded_by=<claimed>"

  Status catalog_fresh(store::Revision min_revision) const override {
    asked_revision = min_revision;
    return fresh;
  }
  store::Revision seen_revision() const override { return 42; }
  Result<std::string> route(const MethodSpec& spec, const Call& call, const Message&) const override {
    for (const auto& check : spec.resources) {
      if (check.kind != ResourceKind::kVolume) continue;
      if (const auto& v = call.volume(check.name)) return v->home_node;
    }
    return std::string();
  }
  Status forward(const std::string& node, const MethodSpec& spec, const RequestMeta& meta, const Message&,
                 Message*) const override {
    forwarded.push_back(node + " " + spec.key() + " forwarded_by=" + meta.forwarded_by);
    return forward_result;
  }

  void put(store::VolumeRecord v) {
    auto rec = std::make_shared<const store::VolumeRecord>(std::move(v));
    volumes_[rec->id] = rec;
    volumes_[rec->name] = rec;
  }
  void put(store::SnapshotRecord s) {
    auto rec = std::make_shared<const store::SnapshotRecord>(std::move(s));
    snapshots_[rec->id] = rec;
    snapshots_[rec->name] = rec;
  }
  std::shared_ptr<const store::VolumeRecord> find_volume(const std::string& ref) const override {
    auto it = volumes_.find(ref);
    return it == volumes_.end() ? nullptr : it->second;
  }
  std::shared_ptr<const store::SnapshotRecord> find_snapshot(
      const std::string& ref) const override {
    auto it = snapshots_.find(ref);
    return it == snapshots_.end() ? nullptr : it->second;
  }
  std::shared_ptr<const store::VolumeRecord> snapshot_volume(const store::SnapshotRecord& s) const override {
    return find_volume(s.volume_id);
  }

 private:
  std::map<std::string, std::shared_ptr<const store::VolumeRecord>> volumes_;
  std::map<std::string, std::shared_ptr<const store::SnapshotRecord>> snapshots_;
};

// One call the pipeline made on the recorder, copied out (a DecisionRecord points into the
// pipeline's stack).
struct RecorderEvent {
  std::string what;  // "record", "audit_ready", "intent", "audit"
  std::string method;
  std::string request_id;
  std::string resource;
  Status status;
  bool authorized = false;
  bool security_enabled = true;
  std::optional<identity::Identity> who;
  std::string audit_message;
  std::string params;
};

// Records every call in order (into `trace` too, when given, so that handlers can write to the
// same list) and fails audit_ready / intent / audit when told to.
class FakeRecorder : public DecisionRecorder {
 public:
  explicit FakeRecorder(std::vector<std::string>* trace = nullptr) : trace_(trace) {}

  void record(const DecisionRecord& r) override { add("record", r); }
  Status audit_ready() override {
    RecorderEvent e;
    e.what = "audit_ready";
    events.push_back(e);
    if (trace_) trace_->push_back("audit_ready");
    return fail_ready;
  }
  Status intent(const DecisionRecord& r) override {
    add("intent", r);
    return fail_intent;
  }
  Status audit(const DecisionRecord& r) override {
    add("audit", r);
    return fail_audit;
  }

  std::vector<const RecorderEvent*> of(std::string_view what) const {
    std::vector<const RecorderEvent*> out;
    for (const auto& e : events) {
      if (e.what == what) out.push_back(&e);
    }
    return out;
  }
  std::vector<std::string> kinds() const {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.what);
    return out;
  }

  std::vector<RecorderEvent> events;
  Status fail_ready;  // OK unless a test sets it
  Status fail_intent;
  Status fail_audit;

 private:
  void add(const char* what, const DecisionRecord& r) {
    RecorderEvent e;
    e.what = what;
    e.method = r.method;
    e.request_id = r.request_id;
    e.resource = r.resource;
    e.status = r.status;
    e.authorized = r.authorized;
    e.security_enabled = r.security_enabled;
    if (r.who) e.who = *r.who;
    e.audit_message = r.audit_message;
    e.params = r.params;
    events.push_back(std::move(e));
    if (trace_) trace_->push_back(what);
  }
  std::vector<std::string>* trace_;
};

}  // namespace volguard::service::testing
