// Client certificates as identities (mTLS). The TLS handshake (gRPC's, or the REST server's
// OpenSSL) has already verified the chain to api.tls.client_ca and the validity dates; this
// turns the verified leaf into an Identity: refused if a configured CRL lists it, the principal
// from its one SAN URI (a SPIFFE ID) or its one subject CN, roles and groups from every
// security.x509 mapping whose match or prefix fits the principal.
#pragma once

#include <openssl/x509.h>

#include <atomic>
#include <memory>
#include <mutex>
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
inline constexpr char kCrlUnavailable[] = "crl_unavailable";
inline constexpr char kCrlExpired[] = "crl_expired";
}  // namespace reason

// The CRL file is followed while the server runs: re-read at most every kCrlRecheckSeconds
// (on the request that finds it due), and when its bytes changed, parsed and verified again.
// Closed on failure: a CRL file that became unreadable, unparsable, not signed by a CA of
// client_ca, or whose nextUpdate has passed refuses every client certificate (crl_unavailable,
// crl_expired) until a good one is in place: a revoked certificate must not pass because the
// list that revokes it broke. Tokens are not affected.
inline constexpr int64_t kCrlRecheckSeconds = 5;

class CertificateIdentities {
 public:
  // Reads the CRL file now (every CRL must be signed by a CA of `tls.client_ca`; its nextUpdate
  // must not have passed); errors name the config key.
  static Result<std::shared_ptr<const CertificateIdentities>> from_config(const config::Config& config);

  // Whether a verified client certificate (PEM) may still be used at `now`: its dates, and no
  // configured CRL lists it. Every presented certificate is checked, also when a token decides.
  [[nodiscard]] Status check(std::string_view pem, int64_t now) const;
  // The identity it proves (after check()), or UNAUTHENTICATED; certificates_not_accepted
  // without security.x509.
  Result<Identity> identify(std::string_view pem, int64_t now) const;
  bool identities_enabled() const { return config_.enabled; }

 private:
  // One reading of the CRL file: what it held, and the refusal if it was not a good list.
  struct CrlList;
  struct CrlState {
    std::string text;                       // the file's bytes, to notice a change
    std::shared_ptr<const CrlList> list;    // null when `failure` is set
    Status failure;                         // why every certificate is refused, or ok
    int64_t checked_at = 0;
  };
  CertificateIdentities() = default;
  Status check_parsed(X509* cert, int64_t now) const;
  // The CRLs in force at `now`, re-reading the file when a recheck is due.
  std::shared_ptr<const CrlState> crls(int64_t now) const;
  // Reads and verifies the CRL file (`text` as read, or the read error).
  static std::shared_ptr<const CrlState> load(const std::string& ca_file, const std::string& crl_file,
                                              const Result<std::string>& text, int64_t now);
  config::X509Config config_;
  std::string ca_file_, crl_file_;  // crl_file_ empty: no CRL configured
  mutable std::mutex reload_mu_;    // one reader of the file at a time; others use the current list
  mutable std::atomic<std::shared_ptr<const CrlState>> crl_state_;
};

}  // namespace volguard::identity
