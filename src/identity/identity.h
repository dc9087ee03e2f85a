// Who a caller is, once its token has been verified.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace volguard::identity {

struct Identity {
  std::string issuer;    // the iss that vouched for this caller
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

  // The principal that owns things: issuer and username together, so that two issuers'
  // users with the same name are never one principal.
  std::string principal() const { return guest ? std::string() : issuer + "/" + username; }
};

Identity guest_identity();

}  // namespace volguard::identity
