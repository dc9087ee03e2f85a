// Client certificates as identities (mTLS). The TLS handshake (gRPC's, or the REST server's
// OpenSSL) has already verified the chain to api.tls.client_ca and the validity dates; this
// turns the verified leaf into an Identity: refused if a configured CRL lists it, the principal
// from its one SAN URI (a SPIFFE ID) or its one subject CN, roles and groups from every
// security.x509 mapping whose match or prefix fits the principal.
#pragma once

#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "config/config.h"
#include "identity/identity.h"

namespace volguard::identity {

// Reasons, all UNAUTHENTICATED.
namespace reason {
inline constexpr char kCertificateUnreadable[] = "certificate_unreadable";
inline constexpr char kCertificateRevoked[] = "certificate_revoked";
inline constexpr char kCertificateExpired[] = "certificate_expired";
inline constexpr char kCertificateNotYetValid[] = "certificate_not_yet_valid";
inline constexpr char kCertificateNoPrincipal[] = "certificate_no_principal";
inline constexpr char kCertificateAmbiguous[] = "certificate_principal_ambiguous";
inline constexpr char kCertificatesNotAccepted[] = "certificates_not_accepted";
}  // namespace reason

class CertificateIdentities {
 public:
  // Reads the CRL file now (every CRL must be signed by a CA of `tls.client_ca`); errors name
  // the config key.
  static Result<std::shared_ptr<const CertificateIdentities>> from_config(const config::Config& config);
  ~CertificateIdentities();

  // Whether a verified client certificate (PEM) may still be used at `now`: its dates, and no
  // configured CRL lists it. Every presented certificate is checked, also when a token decides.
  [[nodiscard]] Status check(std::string_view pem, int64_t now) const;
  // The identity it proves (after check()), or UNAUTHENTICATED; certificates_not_accepted
  // without security.x509.
  Result<Identity> identify(std::string_view pem, int64_t now) const;
  bool identities_enabled() const { return config_.enabled; }

 private:
  CertificateIdentities() = default;
  Status check_parsed(X509* cert, int64_t now) const;
  config::X509Config config_;
  std::vector<X509_CRL*> crls_;  // owned
};

}  // namespace volguard::identity
