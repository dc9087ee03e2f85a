// The one request pipeline. Every API method — gRPC, REST, later CSI — is one entry of the
// method table and reaches its handler only through Pipeline::invoke:
//   authenticate → authorize (roles) → load resources (NOT_FOUND) → ownership → handler → record
// A handler never checks security itself and cannot be reached any other way.
#pragma once

#include <google/protobuf/message.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "config/config.h"
#include "identity/verifier.h"
#include "ownership/ownership.h"
#include "policy/policy.h"
#include "store/store.h"

namespace volguard::service {

using google::protobuf::Message;
using ownership::Access;

// What a method needs on one resource.
struct Need {
  Access access = Access::kNone;
  bool ownership_admin = false;  // only role system.admin / admin_groups may (transfer)
};

enum class ResourceKind { kVolume, kSnapshot };

// A resource named by the request, resolved and checked by the pipeline before the handler.
struct ResourceCheck {
  ResourceKind kind = ResourceKind::kVolume;
  std::function<std::string(const Message&)> ref;  // id or name taken from the request
  std::function<Need(const Message&)> need;
  bool optional = false;  // skipped when ref() is empty (e.g. clone from volume OR snapshot)
};

// One caller's view of one call, handed to the handler after every check passed.
struct Call {
  const identity::Identity* who = nullptr;
  std::string method;      // "volume.create"
  std::string request_id;  // the server's own
  std::string remote;
  bool security_enabled = true;
  // Resolved resources, one per ResourceCheck (null when optional and absent).
  std::vector<std::shared_ptr<const store::VolumeRecord>> volumes;
  std::vector<std::shared_ptr<const store::SnapshotRecord>> snapshots;
  // Whether the caller holds `need` on an ownership (for enumerate filtering); provided by
  // the pipeline so that the rule lives in one place.
  std::function<bool(const ownership::Ownership&, Access)> may;
  std::string resource_for_log;  // "volume/<id>", set by the pipeline / handler
  std::string audit_message;     // "Volume <id> created"; a default is derived when empty
};

using Handler = std::function<Status(Call& call, const Message& request, Message* response)>;

struct MethodSpec {
  std::string service;      // rule service: "volume"
  std::string api;          // rule api: "snapshotcreate"
  std::string grpc_path;    // "/volguard.v1.Volume/SnapshotCreate"
  const Message* request_prototype = nullptr;
  const Message* response_prototype = nullptr;
  std::vector<ResourceCheck> resources;
  bool mutates = false;  // changes state (audited; refused when the audit log is down)
  bool slow = false;     // does driver I/O: run off the transport's event threads
  Handler handler;
  std::string key() const { return service + "." + api; }
};

class MethodTable {
 public:
  // Adds a typed method; Req/Resp are the generated protobuf types.
  template <typename Req, typename Resp>
  void add(std::string service, std::string api, std::string grpc_path,
           std::vector<ResourceCheck> resources, bool mutates, bool slow,
           std::function<Status(Call&, const Req&, Resp*)> handler) {
    MethodSpec spec;
    spec.service = std::move(service);
    spec.api = std::move(api);
    spec.grpc_path = std::move(grpc_path);
    spec.request_prototype = &Req::default_instance();
    spec.response_prototype = &Resp::default_instance();
    spec.resources = std::move(resources);
    spec.mutates = mutates;
    spec.slow = slow;
    spec.handler = [h = std::move(handler)](Call& call, const Message& req, Message* resp) {
      return h(call, static_cast<const Req&>(req), static_cast<Resp*>(resp));
    };
    insert(std::move(spec));
  }
  const MethodSpec* find(const std::string& key) const;
  const MethodSpec* find_grpc(const std::string& path) const;
  const std::vector<std::unique_ptr<MethodSpec>>& methods() const { return methods_; }

 private:
  void insert(MethodSpec spec);
  std::vector<std::unique_ptr<MethodSpec>> methods_;
  std::map<std::string, const MethodSpec*> by_key_;
  std::map<std::string, const MethodSpec*> by_grpc_;
};

// Looks resources up for the pipeline: an in-memory catalog of records (never the store per
// request).
class ResourceResolver {
 public:
  virtual ~ResourceResolver() = default;
  virtual std::shared_ptr<const store::VolumeRecord> find_volume(const std::string& ref) const = 0;
  virtual std::shared_ptr<const store::SnapshotRecord> find_snapshot(
      const std::string& ref) const = 0;
  // A snapshot's access is its volume's access now (null: its volume is gone, and only
  // ownership admins may act on it).
  virtual const ownership::Ownership* snapshot_ownership(const store::SnapshotRecord& s,
                                                         std::shared_ptr<const store::VolumeRecord>* keep) const = 0;
};

// One record of a decision, for the access log and metrics (issue: audit trail).
struct DecisionRecord {
  std::string method;
  std::string request_id;
  std::string remote;
  const identity::Identity* who = nullptr;  // null when authentication failed
  std::string resource;
  Status status;  // OK = allowed and done
  bool authorized = false;  // passed every check (the handler ran)
  bool security_enabled = true;
  double seconds = 0;
  std::string audit_message;  // for state changes
  std::string params;         // for state changes: the request as JSON (the intent record)
};

class DecisionRecorder {
 public:
  virtual ~DecisionRecorder() = default;
  // Every decision: the access log and metrics.
  virtual void record(const DecisionRecord& record) = 0;
  // Before a state change: OK, or UNAVAILABLE when the audit log cannot take it (fail-closed).
  virtual Status audit_ready() { return Status::ok(); }
  // Write-ahead: before a state change, its intent (who, method, resource, parameters) is made
  // durable; an error means nothing may be done. Every intent gets exactly one outcome record
  // (audit(): done or failed), or `outcome=unknown` from the recovery at the next start.
  virtual Status intent(const DecisionRecord& record) {
    (void)record;
    return Status::ok();
  }
  // After a state change (record.status OK: done) or a failed attempt at one (failed, with the
  // reason): durable before it returns; an error is returned to the caller.
  virtual Status audit(const DecisionRecord& record) {
    (void)record;
    return Status::ok();
  }
};

// Every check but authentication, for one caller and one method: what `invoke` enforces and
// what `auth can-i` explains come from this one decision.
struct CallDecision {
  Status status;  // OK = allowed
  std::string role;  // the role and rule that allowed or denied (RBAC)
  std::string rule;
  Access needed = Access::kNone;  // on the first resource checked
  Access granted = Access::kNone;
  std::string via;
};

struct RequestMeta {
  std::string authorization;  // the raw "authorization" header/metadata value, may be empty
  std::string remote;         // peer address
};

// The security context swapped atomically on change (roles); read without locks.
class Pipeline {
 public:
  Pipeline(const config::SecurityConfig& security, std::shared_ptr<const identity::Verifier> verifier,
           const MethodTable* table, const ResourceResolver* resolver);

  Status invoke(const MethodSpec& spec, const RequestMeta& meta, const Message& request,
                Message* response) const;
  Status invoke(const std::string& key, const RequestMeta& meta, const Message& request,
                Message* response) const;

  // Replaces the compiled roles (after a role change); requests in flight keep their snapshot.
  void set_roles(std::shared_ptr<const policy::RoleSet> roles);
  std::shared_ptr<const policy::RoleSet> roles() const;
  void set_recorder(DecisionRecorder* recorder) { recorder_ = recorder; }

  const ownership::AdminPolicy& admins() const { return admins_; }
  bool security_enabled() const { return security_.enabled; }
  const config::SecurityConfig& security() const { return security_; }
  // Roles, then each resource named by `refs` (one per spec.resources entry) and the caller's
  // access to it. A caller without read access gets exactly the NOT_FOUND a missing resource
  // gets. With `explain` (can-i), an empty ref skips its check instead of being required.
  // Resolved records are appended to `call` when given.
  CallDecision decide(const MethodSpec& spec, const identity::Identity& who,
                        const std::vector<std::string>& refs, const Message& request,
                        bool explain, Call* call) const;
  // The identity a request carries: verified token, guest, or a refusal.
  Result<identity::Identity> authenticate(const RequestMeta& meta) const;
  const ResourceResolver* resolver() const { return resolver_; }

 private:
  config::SecurityConfig security_;
  std::shared_ptr<const identity::Verifier> verifier_;
  const MethodTable* table_;
  const ResourceResolver* resolver_;
  ownership::AdminPolicy admins_;
  std::atomic<std::shared_ptr<const policy::RoleSet>> roles_;
  DecisionRecorder* recorder_ = nullptr;
  mutable std::atomic<uint64_t> next_request_{1};
  std::string request_prefix_;
};

}  // namespace volguard::service
