// The one request pipeline. Every API method is one entry of the method table
// (method_table.h) and reaches its handler only through Pipeline::invoke:
//   authenticate → fresh catalog? → decide (roles → resources → ownership) → route
//   → intent → handler (or, for a volume homed on another node, forward there) → outcome → record
// `decide` is the only place that decides: invoke, `auth can-i`, quota.show and /metrics all
// use it. A handler never checks security itself and cannot be reached any other way; a
// forwarded call is decided here and again, from the start, on its home node.
#pragma once

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
#include "identity/x509.h"
#include "ownership/ownership.h"
#include "policy/policy.h"
#include "service/method_table.h"
#include "service/revocations.h"
#include "service/role_registry.h"
#include "store/store.h"

namespace volguard::service {

using google::protobuf::Message;
using ownership::Access;

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
  virtual std::shared_ptr<const store::VolumeRecord> snapshot_volume(const store::SnapshotRecord& s) const = 0;
  // OK when the catalog (and the roles) can be decided on: it holds every change through
  // `min_revision` (the caller's own last write, possibly made on another node) and, in a
  // cluster, was confirmed complete within the staleness bound. UNAVAILABLE `metadata_stale`
  // otherwise: never decide on an old ACL.
  virtual Status catalog_fresh(store::Revision min_revision) const = 0;
  // The newest store revision this node has seen: what a reply reports (volguard-revision), so
  // the caller can ask any node for a catalog at least that new.
  virtual store::Revision seen_revision() const = 0;
};

struct RequestMeta;

// Where a call runs. In a cluster a volume's data lives on its home node: a call about it that
// reaches another node is forwarded there with the caller's own credentials, and the home node
// runs the whole pipeline again (so no node acts for a caller beyond the caller's token).
class Router {
 public:
  virtual ~Router() = default;
  // The node that must run the call after it was decided here, or "" for this node.
  [[nodiscard]] virtual Result<std::string> route(const MethodSpec& spec, const Call& call,
                                                  const Message& request) const = 0;
  // Runs the call on `node`: its reply, or its refusal as the home node gave it; UNAVAILABLE
  // `node_unavailable` (naming the node) when it cannot be reached.
  [[nodiscard]] virtual Status forward(const std::string& node, const MethodSpec& spec,
                                       const RequestMeta& meta, const Message& request,
                                       Message* response) const = 0;
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
  std::string forwarded_by;   // the node that forwarded this call here (as that node claims)
  std::string forwarded_to;   // the home node this call was forwarded to
};

class DecisionRecorder {
 public:
  virtual ~DecisionRecorder() = default;
  // Every decision: the access log and metrics.
  virtual void record(const DecisionRecord& record) = 0;
  // Before a state change: OK, or UNAVAILABLE when the audit log cannot take it (fail-closed).
  virtual Status audit_ready() = 0;
  // Write-ahead: before a state change, its intent (who, method, resource, parameters) is made
  // durable; an error means nothing may be done. Every intent gets exactly one outcome record
  // (audit(): done or failed), or `outcome=unknown` from the recovery at the next start.
  virtual Status intent(const DecisionRecord& record) = 0;
  // After a state change (record.status OK: done) or a failed attempt at one (failed, with the
  // reason): durable before it returns; an error is returned to the caller.
  virtual Status audit(const DecisionRecord& record) = 0;
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
  // The client certificate (PEM) the TLS handshake verified against api.tls.client_ca; empty
  // without mTLS. An identity only when no token is presented (a token decides).
  std::string client_certificate;
  std::string remote;         // peer address
  // Read-your-writes: the catalog must hold every change through this revision (metadata
  // volguard-min-revision; 0: any).
  store::Revision min_revision = 0;
  // Set by a node forwarding to a volume's home (metadata volguard-forwarded-by): recorded, and
  // the home node never forwards such a call again.
  std::string forwarded_by;
};

// The reasons Pipeline::authenticate gives besides the verifier's and the certificates'.
namespace reason {
inline constexpr char kTokenMissing[] = "token_missing";
inline constexpr char kTokenBadScheme[] = "token_bad_scheme";
}  // namespace reason

// Every reason Pipeline::authenticate may refuse with (the verifier's, the certificates', the
// revocations' and its own): the authentication-failure counter starts each at zero, so that
// rate() works from the first scrape. A reason left out is still counted, from its first
// occurrence.
const std::vector<std::string>& authentication_failure_reasons();

// Whether `decide` explains (auth can-i: an empty ref skips its check, needs come from the
// method's bare request) or enforces (invoke: every required resource must be named).
enum class DecideMode { kEnforce, kExplain };

class Pipeline {
 public:
  // Every dependency is required and outlives the pipeline: there is no pipeline without a
  // recorder (no audit means no calls) and no second copy of the roles.
  // `verifier` may be null only when security is off or no issuer is configured (every token
  // is then refused with issuer_unknown).
  // `certificates` may be null: no api.tls.client_ca, no client certificates.
  Pipeline(const config::SecurityConfig& security, std::shared_ptr<const identity::TokenVerifier> verifier,
           std::shared_ptr<const identity::CertificateIdentities> certificates, const MethodTable& table, const ResourceResolver& resolver, const RoleRegistry& roles,
           const RevocationRegistry& revocations, DecisionRecorder& recorder, const Router& router);

  Status invoke(const MethodSpec& spec, const RequestMeta& meta, const Message& request,
                Message* response) const;
  Status invoke(const std::string& key, const RequestMeta& meta, const Message& request,
                Message* response) const;

  const ownership::AdminPolicy& admins() const { return admins_; }
  bool security_enabled() const { return security_.enabled; }
  const config::SecurityConfig& security() const { return security_; }
  const MethodTable& table() const { return table_; }
  store::Revision seen_revision() const { return resolver_.seen_revision(); }
  // Roles, then each resource named by `refs` (one per spec.resources entry) and the caller's
  // access to it. A caller without read access gets exactly the NOT_FOUND a missing resource
  // gets. Resolved records are added to `call` when given.
  CallDecision decide(const MethodSpec& spec, const identity::Identity& who,
                      const std::vector<std::string>& refs, const Message& request, DecideMode mode,
                      Call* call) const;
  // The identity a request carries: verified token, guest, or a refusal.
  Result<identity::Identity> authenticate(const RequestMeta& meta) const;

 private:
  config::SecurityConfig security_;
  std::shared_ptr<const identity::TokenVerifier> verifier_;
  std::shared_ptr<const identity::CertificateIdentities> certificates_;
  const MethodTable& table_;
  const ResourceResolver& resolver_;
  const RoleRegistry& roles_;
  const RevocationRegistry& revocations_;
  DecisionRecorder& recorder_;
  const Router& router_;
  ownership::AdminPolicy admins_;
  mutable std::atomic<uint64_t> next_request_{1};
  std::string request_prefix_;
};

}  // namespace volguard::service
