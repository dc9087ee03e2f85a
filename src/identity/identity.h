// Who a caller is, once its token has been verified.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/text.h"

namespace volguard::identity {

struct Identity {
  std::string issuer;    // the iss that vouched for this caller
  // Whose groups this caller's group claims are: the issuer's group_domain (default the issuer
  // itself). Groups are trusted per issuer: "eng" from issuer A is not "eng" from issuer B
  // unless the config puts both issuers in one group domain.
  std::string group_domain;
  std::string username;  // the configured username claim's value; never empty unless guest
  std::string subject;
  std::string name;
  std::string email;
  std::vector<std::string> roles;
  std::vector<std::string> groups;
  std::string token_id;      // jti, when present
  int64_t expires_at = 0;    // exp, seconds since epoch
  int64_t issued_at = 0;     // iat, 0 when absent
  bool guest = false;        // no token was presented
  // Proven by a client certificate (api.tls.client_ca, security.x509) rather than a token: such
  // a caller is served only where the call arrived (a forward carries tokens, not certificates).
  bool by_certificate = false;

  // The principal that owns things: issuer and username together, so that two issuers'
  // users with the same name are never one principal. The username is escaped (qualify_name),
  // so issuer "corp" + "eu/alice" and issuer "corp/eu" + "alice" stay two principals.
  std::string principal() const { return guest ? std::string() : qualify_name(issuer, username); }
  // A group claim as grants and admin_groups store it: "<group_domain>/<escaped group>".
  // Empty when the caller has no domain (guest, security off): such a caller is in no group.
  std::string qualified_group(std::string_view group) const {
    return guest || group_domain.empty() ? std::string() : qualify_name(group_domain, group);
  }
};

Identity guest_identity();

}  // namespace volguard::identity
