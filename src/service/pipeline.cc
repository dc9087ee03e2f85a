#include "service/pipeline.h"

#include <ctime>

#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <cstdio>

#include "common/crash_point.h"
#include "service/access.h"
#include "common/hex.h"
#include "common/text.h"

namespace volguard::service {

namespace {

const char* kind_name(ResourceKind kind) {
  return kind == ResourceKind::kVolume ? "volume" : "snapshot";
}

identity::Identity security_off_identity() {
  identity::Identity id;
  id.username = "(security disabled)";
  return id;
}

// The request as one line of JSON, for the intent record: what was asked, so that an auditor
// can see what a change that never completed would have done. Bounded: a role's JSON or a label
// set can be large, and the record is written before the work.
std::string request_params(const Message& request) {
  constexpr size_t kMaxParams = 4096;
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(request, &out, options).ok()) return "{}";
  if (out.size() > kMaxParams) out = out.substr(0, kMaxParams) + "...";
  return out;
}

// "Volume 9a3f created": the resource's id and what happened to it.
std::string default_audit_message(const Call& call) {
  static const std::map<std::string, std::pair<std::string, std::string>> kMessages = {
      {"volume.create", {"Volume", "created"}},       {"volume.clone", {"Volume", "created as a clone"}},
      {"volume.delete", {"Volume", "deleted"}},       {"volume.update", {"Volume", "updated"}},
      {"volume.snapshotcreate", {"Snapshot", "created"}},
      {"volume.snapshotrestore", {"Volume", "restored from snapshot"}},
      {"volume.snapshotdelete", {"Snapshot", "deleted"}},
      {"mountattach.attach", {"Volume", "attached"}}, {"mountattach.detach", {"Volume", "detached"}},
      {"mountattach.mount", {"Volume", "mounted"}},   {"mountattach.unmount", {"Volume", "unmounted"}},
      {"role.create", {"Role", "created"}},           {"role.update", {"Role", "updated"}},
      {"role.delete", {"Role", "deleted"}},
  };
  std::string id = call.resource_for_log;
  if (auto space = id.rfind(' '); space != std::string::npos) id = id.substr(space + 1);
  if (auto slash = id.find('/'); slash != std::string::npos) id = id.substr(slash + 1);
  auto it = kMessages.find(call.method);
  if (it == kMessages.end()) return call.method + " succeeded";
  return it->second.first + " " + id + " " + it->second.second;
}

}  // namespace

Pipeline::Pipeline(const config::SecurityConfig& security,
                   std::shared_ptr<const identity::TokenVerifier> verifier,
                   std::shared_ptr<const identity::CertificateIdentities> certificates,
                   const MethodTable& table,
                   const ResourceResolver& resolver, const RoleRegistry& roles,
                   const RevocationRegistry& revocations, DecisionRecorder& recorder,
                   const Router& router)
    : security_(security),
      verifier_(std::move(verifier)),
      certificates_(std::move(certificates)),
      table_(table),
      resolver_(resolver),
      roles_(roles),
      revocations_(revocations),
      recorder_(recorder),
      router_(router),
      admins_{security.admin_groups} {
  request_prefix_ = random_hex(4);
}

const std::vector<std::string>& authentication_failure_reasons() {
  namespace id = identity::reason;
  static const std::vector<std::string> kReasons = {
      // The token: its presentation, form, signature and claims (identity/verifier.h).
      reason::kTokenMissing, reason::kTokenBadScheme, id::kTokenTooLarge, id::kTokenMalformed,
      id::kHeaderBadBase64, id::kHeaderBadJson, id::kHeaderMemberRepeated, id::kAlgMissing,
      id::kAlgNone, id::kAlgUnsupported, id::kAlgKeyMismatch, id::kCritUnsupported,
      id::kPayloadBadBase64, id::kPayloadBadJson, id::kClaimRepeated, id::kIssMissing,
      id::kIssuerUnknown, id::kKeysUnavailable, id::kKidUnknown, id::kSignatureBadBase64,
      id::kSignatureBadLength, id::kSignatureInvalid, id::kExpMissing, id::kExpNotNumber,
      id::kExpOutOfRange, id::kTokenExpired, id::kNbfNotNumber, id::kNbfOutOfRange,
      id::kTokenNotYetValid, id::kIatNotNumber, id::kIatOutOfRange, id::kIatInFuture,
      id::kIatMissing, id::kLifetimeTooLong, id::kAudMissing, id::kAudMismatch, id::kClaimBadType,
      id::kUsernameMissing, id::kUsernameInvalid, id::kEmailUnverified,
      // A verified token taken back (service/revocations.h).
      kTokenRevoked,
      // The client certificate (identity/x509.h).
      id::kCertificateUnreadable, id::kCertificateRevoked, id::kCertificateExpired,
      id::kCertificateNotYetValid, id::kCertificateNoPrincipal, id::kCertificateAmbiguous,
      id::kCertificatesNotAccepted, id::kCrlUnavailable, id::kCrlExpired};
  return kReasons;
}

Result<identity::Identity> Pipeline::authenticate(const RequestMeta& meta) const {
  // A client certificate (mTLS) is checked whenever one came, a token deciding or not: a
  // revoked or expired certificate is no way in. The precedence, then: a bearer token decides;
  // without one, the certificate's identity (security.x509); without either, the guest. A call
  // forwarded by another node came over that node's certificate, not the caller's: only its
  // token counts.
  const bool certificate = !meta.client_certificate.empty() && certificates_ != nullptr;
  const int64_t now = static_cast<int64_t>(::time(nullptr));
  const bool as_identity = certificate && meta.authorization.empty() && meta.forwarded_by.empty() &&
                           certificates_->identities_enabled();
  if (as_identity) return certificates_->identify(meta.client_certificate, now);  // checks it too
  if (certificate) {
    if (Status ok = certificates_->check(meta.client_certificate, now); !ok.is_ok()) return ok;
  }
  if (meta.authorization.empty()) {
    if (security_.guest_access) return identity::guest_identity();
    return Status(Code::kUnauthenticated, reason::kTokenMissing,
                  "no token presented and guest access is disabled");
  }
  std::string_view value = meta.authorization;
  size_t space = value.find(' ');
  if (space == std::string_view::npos || to_lower(value.substr(0, space)) != "bearer") {
    return Status(Code::kUnauthenticated, reason::kTokenBadScheme,
                  "authorization must be 'bearer <token>'");
  }
  std::string_view token = value.substr(space + 1);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  // Tokens from files and Kubernetes Secrets often end in a newline: not part of the token.
  token = trim_trailing_whitespace(token);
  if (verifier_ == nullptr) {
    return Status(Code::kUnauthenticated, identity::reason::kIssuerUnknown,
                  "no token issuers are configured");
  }
  auto who = verifier_->verify(token);
  if (!who) return who;
  // After the signature (an unverified token's claims name nobody), every time: a verification
  // remembered by the verifier's cache is checked here like a fresh one, and then forgotten.
  if (Status revoked = revocations_.check(*who); !revoked.is_ok()) {
    verifier_->forget(token);
    return revoked;
  }
  return who;
}

Status Pipeline::invoke(const std::string& key, const RequestMeta& meta, const Message& request,
                        Message* response) const {
  const MethodSpec* spec = table_.find(key);
  if (spec == nullptr) {
    return Status(Code::kUnimplemented, "method_unknown", "no method " + key);
  }
  return invoke(*spec, meta, request, response);
}

CallDecision Pipeline::decide(const MethodSpec& spec, const identity::Identity& who,
                              const std::vector<std::string>& refs, const Message& request,
                              DecideMode mode, Call* call) const {
  const bool explain = mode == DecideMode::kExplain;
  CallDecision out;
  const bool enabled = security_.enabled;
  // Roles first: a method the caller may not call at all says nothing about any resource.
  if (enabled) {
    auto roles = roles_.current();
    policy::Decision decision = roles->decide(who.roles, spec.service, spec.api);
    out.role = decision.role;
    out.rule = decision.rule;
    if (!decision.allowed) {
      std::string message = who.guest ? "access denied without authentication token: " +
                                            decision.message
                                      : decision.message;
      out.status = Status(Code::kPermissionDenied, decision.reason, message);
      return out;
    }
  }
  for (size_t i = 0; i < spec.resources.size(); ++i) {
    const auto& check = spec.resources[i];
    const std::string& ref = i < refs.size() ? refs[i] : std::string();
    if (ref.empty()) {
      if (check.presence == Presence::kOptional || explain) {
        if (call) {
          if (check.kind == ResourceKind::kVolume) call->add_volume(check.name, nullptr);
          else call->add_snapshot(check.name, nullptr);
        }
        continue;
      }
      out.status = Status(Code::kInvalidArgument, "field_required",
                          check.name + " (a " + kind_name(check.kind) + " id or name) is required");
      return out;
    }
    // The refusal for a missing resource, and for one the caller may not even read: the
    // caller learns nothing it could not learn by guessing a name that does not exist.
    const Status not_found(Code::kNotFound, std::string(kind_name(check.kind)) + "_not_found",
                           std::string(kind_name(check.kind)) + " '" + ref + "' not found");
    std::shared_ptr<const store::VolumeRecord> governing;  // the volume whose access applies
    std::string label;
    if (check.kind == ResourceKind::kVolume) {
      auto v = resolver_.find_volume(ref);
      if (!v) return {not_found};
      governing = v;
      label = "volume " + v->name + " (" + v->id + ")";
      if (call) {
        if (call->resource_for_log.empty()) call->resource_for_log = "volume/" + v->id;
        call->add_volume(check.name, std::move(v));
      }
    } else {
      auto s = resolver_.find_snapshot(ref);
      if (!s) return {not_found};
      governing = resolver_.snapshot_volume(*s);
      label = "snapshot " + s->name + " (" + s->id + ")";
      if (call) {
        if (call->resource_for_log.empty()) call->resource_for_log = "snapshot/" + s->id;
        call->add_snapshot(check.name, std::move(s));
      }
    }
    if (!enabled) continue;
    Need need = check.need(explain ? *spec.request_prototype : request);
    ownership::AccessDecision granted;
    if (governing) {
      granted = volume_access(who, *governing, admins_);
    } else if (admins_.is_admin(who)) {
      granted = {Access::kAdmin, "ownership admin (the snapshot's volume is gone)"};
    }
    if (call) call->add_need(check.name, need.access);
    if (i == 0 || out.needed == Access::kNone) {
      out.needed = need.access;
      out.granted = granted.access;
      out.via = granted.via;
    }
    if (granted.access == Access::kNone && need.access > Access::kNone) return {not_found};
    if (need.ownership_admin && !admins_.is_admin(who)) {
      out.status = Status(Code::kPermissionDenied, "ownership_admin_required",
                          spec.key() + " on " + label +
                              " needs an ownership admin (role system.admin or a group in "
                              "security.admin_groups)");
      return out;
    }
    if (granted.access < need.access) {
      std::string whom = who.guest ? "a guest" : who.principal();
      out.status = Status(
          Code::kPermissionDenied, "acl_insufficient",
          spec.key() + " on " + label + " needs " + ownership::access_name(need.access) +
              " access; " + whom + " has " + ownership::access_name(granted.access) +
              (granted.via.empty() ? "" : " (via " + granted.via + ")"));
      return out;
    }
  }
  return out;
}

Status Pipeline::invoke(const MethodSpec& spec, const RequestMeta& meta, const Message& request,
                        Message* response) const {
  Call call;
  call.method = spec.key();
  call.remote = meta.remote;
  char id_buf[32];
  std::snprintf(id_buf, sizeof id_buf, "%s-%08llx", request_prefix_.c_str(),
                static_cast<unsigned long long>(next_request_.fetch_add(1)));
  call.request_id = id_buf;
  call.security_enabled = security_.enabled;
  call.pipeline = this;

  const auto started = std::chrono::steady_clock::now();
  DecisionRecord record;
  record.security_enabled = security_.enabled;
  record.method = call.method;
  record.request_id = call.request_id;
  record.remote = meta.remote;
  record.forwarded_by = meta.forwarded_by;
  auto finish = [&](Status status) {
    record.status = status;
    record.resource = call.resource_for_log;
    record.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    recorder_.record(record);
    return status;
  };

  // 1. Authenticate.
  identity::Identity who;
  if (security_.enabled) {
    auto authenticated = authenticate(meta);
    if (!authenticated) return finish(authenticated.status());
    who = std::move(authenticated).value();
  } else {
    who = security_off_identity();
  }
  call.who = &who;
  record.who = &who;

  // 2-4. Roles, resources, ownership: the one decision — on a catalog that can be trusted.
  if (Status fresh = resolver_.catalog_fresh(meta.min_revision); !fresh.is_ok()) return finish(fresh);
  const auto& admins = admins_;
  bool enabled = security_.enabled;
  call.may = [&who, &admins, enabled](const store::VolumeRecord& v, Access need) {
    return !enabled || volume_access(who, v, admins).access >= need;
  };
  std::vector<std::string> refs;
  refs.reserve(spec.resources.size());
  for (const auto& check : spec.resources) refs.push_back(check.ref(request));
  if (CallDecision d = decide(spec, who, refs, request, DecideMode::kEnforce, &call); !d.status.is_ok()) {
    return finish(d.status);
  }

  // 5. Where it runs: a call about a volume homed on another node goes there, to be decided
  //    again by that node; this node records its own decision and the outcome it was given.
  auto home = router_.route(spec, call, request);
  if (!home) return finish(home.status());
  if (!home->empty() && who.by_certificate) {
    // A forward carries the caller's token to the home node, which decides again; a
    // certificate cannot be carried (the home node would see this node's certificate).
    return finish(Status(Code::kFailedPrecondition, "certificate_not_forwardable",
                         call.method + " runs on node " + *home + ", which decides on the caller's own "
                         "token: a client certificate identity is served only by the node it reaches; "
                         "call node " + *home + " directly or present a token"));
  }
  if (!home->empty() && !meta.forwarded_by.empty()) {
    // Catalogs disagree about the home (one is behind): refuse rather than bounce the call.
    return finish(Status(Code::kUnavailable, "misrouted",
                         call.method + " was forwarded here by " + meta.forwarded_by +
                             " but its home is node " + *home + "; retry"));
  }
  record.forwarded_to = *home;

  // 6. The method's own work. A state change happens only after its intent is durable in the
  //    audit trail (write-ahead): if the record cannot be written, nothing is done.
  if (spec.mutates()) {
    if (Status ready = recorder_.audit_ready(); !ready.is_ok()) return finish(ready);
    record.resource = call.resource_for_log;
    record.params = request_params(request);
    if (Status intended = recorder_.intent(record); !intended.is_ok()) return finish(intended);
  }
  record.authorized = true;
  crash_point("after_intent", call.method);
  Status result = home->empty() ? spec.handler(call, request, response)
                                : router_.forward(*home, spec, meta, request, response);
  crash_point("after_act", call.method);
  if (spec.mutates()) {
    record.resource = call.resource_for_log;
    record.audit_message = !result.is_ok()            ? spec.key() + " failed"
                           : call.audit_message.empty() ? default_audit_message(call)
                                                        : call.audit_message;
    record.status = result;
    // Durable before the reply: an unrecorded change is not acknowledged.
    if (Status audited = recorder_.audit(record); !audited.is_ok()) return finish(audited);
  }
  return finish(result);
}

}  // namespace volguard::service
