// token.* : taking back tokens before they expire. A revocation is stored (so it survives
// restarts and, on etcd, reaches every node through the watch) and compiled into the
// RevocationRegistry that the pipeline checks after every signature verification.
#include <ctime>

#include "common/text.h"
#include "service/handler_support.h"
#include "service/volume_service.h"

namespace volguard::service {

using store::RevocationKind;
using store::RevocationRecord;

namespace {

constexpr size_t kMaxJtiBytes = 256;
constexpr size_t kMaxIssuerBytes = 1024;
constexpr int64_t kMaxUnixTime = 253402300799;  // 9999-12-31T23:59:59Z, as for token dates

void fill_revocation(const RevocationRecord& r, v1::Revocation* out) {
  out->set_kind(store::revocation_kind_name(r.kind));
  out->set_issuer(r.issuer);
  out->set_subject(r.subject);
  out->set_before(r.before);
  out->set_expires_at(r.expires_at);
  out->set_created_at(r.created_at);
  out->set_by(r.by);
}

}  // namespace

bool VolumeService::token_issuer_known(const std::string& issuer) const {
  for (const auto& ic : config_.security.issuers) {
    if (ic.issuer == issuer) return true;
  }
  return false;
}

Status VolumeService::load_revocations() {
  // Listing and swapping in are one step against a concurrent revoke or watch reload: else an
  // older list could be swapped in over a newer one, and a revocation already answered "done"
  // would not be enforced.
  std::lock_guard reload(reload_mu_);
  return load_revocations_locked();
}

Status VolumeService::load_revocations_locked() {
  ASSIGN_OR_RETURN(auto records, store_->list_revocations());
  revocations_.replace(records, static_cast<int64_t>(::time(nullptr)));
  return Status::ok();
}

// ---- token.revoke
Status VolumeService::revoke_token(Call& call, const v1::TokenRevokeRequest& req, v1::TokenRevokeResponse* resp) {
  const int64_t now = static_cast<int64_t>(::time(nullptr));
  const int64_t skew = config_.security.clock_skew.count();
  const int64_t max_lifetime = config_.security.max_token_lifetime.count();
  if (req.jti().empty() == req.user().empty()) {
    return invalid("jti", "give exactly one of jti (one token) and user (a principal's tokens)");
  }
  if (req.expires_at() < 0 || req.expires_at() > kMaxUnixTime) {
    return invalid("expires_at", "must be a unix time between 0 and 9999-12-31");
  }
  if (req.expires_at() != 0 && req.expires_at() + skew < now) {
    return invalid("expires_at", rfc3339(req.expires_at()) + " has passed: every token it names has expired");
  }
  RevocationRecord r{.created_at = now, .by = call.who->principal()};
  if (!req.jti().empty()) {
    if (req.jti().size() > kMaxJtiBytes || has_control_chars(req.jti())) {
      return invalid("jti", "must be at most 256 bytes without control characters");
    }
    if (req.issuer().size() > kMaxIssuerBytes || has_control_chars(req.issuer())) {
      return invalid("issuer", "must be at most 1024 bytes without control characters");
    }
    // A misspelt (or, from an unverified token file, edited) issuer would revoke nothing while
    // saying "revoked": only a configured token issuer is accepted.
    if (!req.issuer().empty() && !token_issuer_known(req.issuer())) {
      return invalid("issuer", "'" + req.issuer() + "' is not a configured token issuer (security.issuers)");
    }
    if (req.before() != 0) return invalid("before", "applies to user, not jti");
    r.kind = RevocationKind::kToken;
    r.issuer = req.issuer();
    r.subject = req.jti();
    // Without the token's exp, its lifetime is bounded only by security.max_token_lifetime.
    if (req.expires_at() != 0) r.expires_at = req.expires_at() + skew;
    else if (max_lifetime > 0) r.expires_at = now + max_lifetime + skew;
    call.resource_for_log = "token/" + (r.issuer.empty() ? std::string("*") : escape_name(r.issuer)) + "/" +
                            escape_name(r.subject);
    call.audit_message = "Token with jti " + escape_name(r.subject) +
                         (r.issuer.empty() ? std::string(" (any issuer)") : " of issuer " + r.issuer) +
                         " revoked";
  } else {
    if (!req.issuer().empty()) return invalid("issuer", "is part of user (<issuer>/<username>)");
    if (req.user().size() > kMaxIssuerBytes + kMaxJtiBytes) return invalid("user", "is too long");
    auto principal = qualify_user(*call.who, req.user());
    if (!principal) return principal.status();
    if (*principal == "*") return invalid("user", "must name one user");
    // Certificates are taken back through api.tls.client_crl; tokens are what this revokes.
    if (auto parts = split_qualified(*principal); !parts || !token_issuer_known(std::string(parts->first))) {
      return invalid("user", "'" + *principal + "' is not a user of a configured token issuer "
                     "(client certificates are revoked through api.tls.client_crl)");
    }
    if (req.before() < 0 || req.before() > kMaxUnixTime) {
      return invalid("before", "must be a unix time between 0 and 9999-12-31");
    }
    if (req.expires_at() != 0 && req.before() != 0 && req.expires_at() < req.before()) {
      return invalid("expires_at", "is before 'before': the tokens it covers outlive it");
    }
    r.kind = RevocationKind::kUser;
    r.subject = *principal;
    r.before = req.before() == 0 ? now : req.before();
    if (req.expires_at() != 0) r.expires_at = req.expires_at() + skew;
    else if (max_lifetime > 0) r.expires_at = r.before + max_lifetime + skew;
    call.resource_for_log = "user/" + r.subject;
    call.audit_message = "Tokens of " + r.subject + " issued before " + rfc3339(r.before) + " revoked";
  }
  // A second revocation of the same thing never narrows the first: the later date and the
  // longer life win (0, kept until removed, is the longest). Expired ones are purged here.
  // Read, merge, store and publish as one against a concurrent revoke or watch reload.
  std::lock_guard reload(reload_mu_);
  ASSIGN_OR_RETURN(auto existing, store_->list_revocations());
  uint32_t purged = 0;
  for (const auto& e : existing) {
    if (e.kind == r.kind && e.issuer == r.issuer && e.subject == r.subject) {
      r.before = std::max(r.before, e.before);
      r.expires_at = (e.expires_at == 0 || r.expires_at == 0) ? 0 : std::max(r.expires_at, e.expires_at);
      r.created_at = e.created_at;
      continue;
    }
    if (e.expires_at != 0 && e.expires_at < now && store_->delete_revocation(e).is_ok()) ++purged;
  }
  RETURN_IF_ERROR(store_->put_revocation(r));
  RETURN_IF_ERROR(load_revocations_locked());
  fill_revocation(r, resp->mutable_revocation());
  resp->set_purged(purged);
  return Status::ok();
}

// ---- token.enumerate
Status VolumeService::enumerate_revocations(Call&, const v1::Empty&, v1::RevocationEnumerateResponse* resp) {
  const int64_t now = static_cast<int64_t>(::time(nullptr));
  ASSIGN_OR_RETURN(auto records, store_->list_revocations());
  for (const auto& r : records) {
    if (r.expires_at != 0 && r.expires_at < now) continue;  // no longer in force
    fill_revocation(r, resp->add_revocations());
  }
  return Status::ok();
}

}  // namespace volguard::service
