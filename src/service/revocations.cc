#include "service/revocations.h"

#include <algorithm>

#include "common/text.h"

namespace volguard::service {

namespace {
std::string token_key(const std::string& issuer, const std::string& jti) {
  return issuer + std::string(1, '\0') + jti;
}
}  // namespace

RevocationRegistry::RevocationRegistry() : current_(std::make_shared<const Compiled>()) {}

void RevocationRegistry::replace(const std::vector<store::RevocationRecord>& records, int64_t now) {
  auto compiled = std::make_shared<Compiled>();
  for (const auto& r : records) {
    if (r.expires_at != 0 && r.expires_at < now) continue;  // every token it covered has expired
    if (r.kind == store::RevocationKind::kToken) {
      compiled->tokens[token_key(r.issuer, r.subject)] = r.expires_at;
    } else {
      auto& before = compiled->users[r.subject];
      before = std::max(before, r.before);
    }
  }
  current_.store(std::move(compiled));
}

Status RevocationRegistry::check(const identity::Identity& who) const {
  const auto compiled = current_.load();
  if (!who.token_id.empty() && !compiled->tokens.empty()) {
    if (compiled->tokens.count(token_key(who.issuer, who.token_id)) ||
        compiled->tokens.count(token_key("", who.token_id))) {
      return Status(Code::kUnauthenticated, kTokenRevoked,
                    "the token with jti '" + escape_name(who.token_id) + "' was revoked");
    }
  }
  if (!compiled->users.empty()) {
    if (auto it = compiled->users.find(who.principal()); it != compiled->users.end()) {
      // No iat: nothing shows the token was issued after the revocation. Issued in the very
      // second of the date: not shown to be after it either (iat has whole seconds).
      if (who.issued_at == 0 || who.issued_at <= it->second) {
        return Status(Code::kUnauthenticated, kTokenRevoked,
                      "the tokens of " + who.principal() + " issued before " + rfc3339(it->second) +
                          " were revoked");
      }
    }
  }
  return Status::ok();
}

size_t RevocationRegistry::size() const {
  const auto compiled = current_.load();
  return compiled->tokens.size() + compiled->users.size();
}

}  // namespace volguard::service
