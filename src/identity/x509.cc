#include "identity/x509.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include "common/text.h"

namespace volguard::identity {

namespace {

constexpr size_t kMaxCrlBytes = 64 << 20;

Status fail(const char* why, const std::string& message) {
  return Status(Code::kUnauthenticated, why, message);
}

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

// Every PEM certificate in `text`.
std::vector<X509Ptr> read_certificates(const std::string& text) {
  std::vector<X509Ptr> out;
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  while (bio) {
    X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (x == nullptr) break;
    out.emplace_back(x);
  }
  ERR_clear_error();
  return out;
}

int64_t unix_of(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

struct CertificateIdentities::CrlList {
  std::vector<X509_CRL*> crls;  // owned
  int64_t next_update = 0;      // the earliest nextUpdate of them; 0: none says
  CrlList() = default;
  CrlList(const CrlList&) = delete;
  CrlList& operator=(const CrlList&) = delete;
  ~CrlList() {
    for (X509_CRL* c : crls) X509_CRL_free(c);
  }
};

std::shared_ptr<const CertificateIdentities::CrlState> CertificateIdentities::load(
    const std::string& ca_file, const std::string& crl_file, const Result<std::string>& text, int64_t now) {
  auto state = std::make_shared<CrlState>();
  state->checked_at = now;
  auto bad = [&](const std::string& why) {
    state->failure = Status(Code::kUnauthenticated, reason::kCrlUnavailable,
                            "the client CRL " + crl_file + " " + why + ": no client certificate is accepted until it is fixed");
    return state;
  };
  if (!text) return bad("cannot be read (" + text.status().message() + ")");
  state->text = *text;
  auto ca_text = read_file(ca_file);
  if (!ca_text) return bad("cannot be checked: api.tls.client_ca: " + ca_text.status().message());
  const auto cas = read_certificates(*ca_text);
  if (cas.empty()) return bad("cannot be checked: api.tls.client_ca holds no PEM certificate");
  auto list = std::make_shared<CrlList>();
  BioPtr bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  while (bio) {
    ERR_clear_error();  // so that what the loop ends on is this read's error alone
    X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr);
    if (crl == nullptr) break;
    list->crls.push_back(crl);
    // A CRL counts only when a CA of client_ca signed it: a forged list could otherwise be
    // used to hide nothing, but a wrong file must not pass silently either.
    bool signed_by_ca = false;
    for (const auto& ca : cas) {
      if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca.get())) == 0 &&
          X509_CRL_verify(crl, X509_get0_pubkey(ca.get())) == 1) {
        signed_by_ca = true;
      }
    }
    if (!signed_by_ca) {
      ERR_clear_error();
      return bad("holds a CRL not signed by a CA of api.tls.client_ca");
    }
    if (const int64_t next = unix_of(X509_CRL_get0_nextUpdate(crl)); next != 0) {
      list->next_update = list->next_update == 0 ? next : std::min(list->next_update, next);
    }
  }
  // The loop ends at the first block it cannot read: only the end of the input is a clean end.
  // A cut or corrupt block after good ones would otherwise drop the CRLs behind it silently.
  const unsigned long last = ERR_peek_last_error();
  ERR_clear_error();
  if (last != 0 && ERR_GET_REASON(last) != PEM_R_NO_START_LINE) return bad("holds a malformed or truncated PEM block");
  if (list->crls.empty()) return bad("holds no PEM CRL");
  state->list = std::move(list);
  return state;
}

Result<std::shared_ptr<const CertificateIdentities>> CertificateIdentities::from_config(
    const config::Config& config) {
  std::shared_ptr<CertificateIdentities> out(new CertificateIdentities());
  out->config_ = config.security.x509;
  const auto& tls = config.api.tls;
  if (tls.client_crl.empty()) return std::shared_ptr<const CertificateIdentities>(out);
  out->ca_file_ = tls.client_ca;
  out->crl_file_ = tls.client_crl;
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  auto state = load(tls.client_ca, tls.client_crl, read_regular_file(tls.client_crl, kMaxCrlBytes), now);
  // At start a bad CRL is a bad config: the server does not start.
  Status why = state->failure;
  if (why.is_ok() && state->list->next_update != 0 && now > state->list->next_update) {
    why = Status(Code::kInvalidArgument, "", "its nextUpdate " + rfc3339(state->list->next_update) + " has passed");
  }
  if (!why.is_ok()) {
    return Status(Code::kInvalidArgument, "bad_config", config.file + ": api.tls.client_crl: " + why.message());
  }
  out->crl_state_.store(std::move(state));
  return std::shared_ptr<const CertificateIdentities>(out);
}

std::shared_ptr<const CertificateIdentities::CrlState> CertificateIdentities::crls(int64_t now) const {
  // Due when kCrlRecheckSeconds have passed, or when the clock stepped back (else a step back
  // would freeze the list in force until the clock caught up).
  auto due = [now](const CrlState& s) { return now < s.checked_at || now - s.checked_at >= kCrlRecheckSeconds; };
  auto state = crl_state_.load();
  if (!due(*state)) return state;
  std::unique_lock lock(reload_mu_, std::try_to_lock);
  if (!lock.owns_lock()) return state;  // another request is reading it: use the list in force
  state = crl_state_.load();
  if (!due(*state)) return state;
  auto text = read_regular_file(crl_file_, kMaxCrlBytes);
  std::shared_ptr<const CrlState> next;
  if (text && state->failure.is_ok() && *text == state->text) {
    auto same = std::make_shared<CrlState>(*state);
    same->checked_at = now;
    next = std::move(same);
  } else {
    next = load(ca_file_, crl_file_, text, now);
    if (!next->failure.is_ok()) {
      spdlog::error("api.tls.client_crl: {}", next->failure.message());
    } else if (!state->failure.is_ok() || next->text != state->text) {
      spdlog::info("api.tls.client_crl: {} reloaded ({} CRL(s))", crl_file_, next->list->crls.size());
    }
  }
  crl_state_.store(next);
  return next;
}

Status CertificateIdentities::check(std::string_view pem, int64_t now) const {
  auto certs = read_certificates(std::string(pem));
  if (certs.empty()) return fail(reason::kCertificateUnreadable, "the client certificate is not PEM X.509");
  return check_parsed(certs.front().get(), now);
}

Status CertificateIdentities::check_parsed(X509* cert, int64_t now) const {
  // The handshake checked the dates; checked again so that a long-lived connection whose
  // certificate expired meanwhile is not served on it.
  const int64_t not_after = unix_of(X509_get0_notAfter(cert));
  const int64_t not_before = unix_of(X509_get0_notBefore(cert));
  if (not_after != 0 && now > not_after) {
    return fail(reason::kCertificateExpired, "the client certificate expired at " + rfc3339(not_after));
  }
  if (not_before != 0 && now < not_before) {
    return fail(reason::kCertificateNotYetValid, "the client certificate is valid from " + rfc3339(not_before));
  }
  if (crl_file_.empty()) return Status::ok();
  const auto state = crls(now);
  if (!state->failure.is_ok()) return state->failure;
  if (state->list->next_update != 0 && now > state->list->next_update) {
    return fail(reason::kCrlExpired, "the client CRL " + crl_file_ + " is out of date (nextUpdate " +
                                         rfc3339(state->list->next_update) +
                                         "): no client certificate is accepted until a fresh one is in place");
  }
  for (X509_CRL* crl : state->list->crls) {
    X509_REVOKED* revoked = nullptr;
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_issuer_name(cert)) == 0 &&
        X509_CRL_get0_by_cert(crl, &revoked, cert) == 1) {
      return fail(reason::kCertificateRevoked, "the client certificate is revoked (api.tls.client_crl)");
    }
  }
  return Status::ok();
}

Result<Identity> CertificateIdentities::identify(std::string_view pem, int64_t now) const {
  if (!config_.enabled) {
    return fail(reason::kCertificatesNotAccepted,
                "client certificates are not identities here (no security.x509): present a token");
  }
  // Parsed once per request: the checks and the principal read the same certificate.
  auto certs = read_certificates(std::string(pem));
  if (certs.empty()) return fail(reason::kCertificateUnreadable, "the client certificate is not PEM X.509");
  X509* cert = certs.front().get();
  RETURN_IF_ERROR(check_parsed(cert, now));
  const int64_t not_after = unix_of(X509_get0_notAfter(cert));
  const int64_t not_before = unix_of(X509_get0_notBefore(cert));
  std::vector<std::string> names;
  if (config_.principal == config::X509Principal::kSanUri) {
    auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
      if (n->type != GEN_URI) continue;
      const ASN1_IA5STRING* uri = n->d.uniformResourceIdentifier;
      std::string text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                       static_cast<size_t>(ASN1_STRING_length(uri)));
      // An IA5String is ASCII: anything else is a malformed certificate, not a name.
      for (unsigned char c : text) {
        if (c >= 0x80) text.clear();
      }
      names.push_back(text.empty() ? std::string(1, '\0') : text);  // refused below
    }
    GENERAL_NAMES_free(sans);
  } else {
    const X509_NAME* subject = X509_get_subject_name(cert);
    for (int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); at >= 0;
         at = X509_NAME_get_index_by_NID(subject, NID_commonName, at)) {
      // Converted from whatever string type it is (a BMPString's bytes are not its text).
      unsigned char* utf8 = nullptr;
      const int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
      names.push_back(n > 0 ? std::string(reinterpret_cast<const char*>(utf8), static_cast<size_t>(n))
                            : std::string(1, '\0'));  // unconvertible: refused below
      OPENSSL_free(utf8);
    }
  }
  const char* what = config_.principal == config::X509Principal::kSanUri ? "SAN URI" : "subject CN";
  if (names.empty()) {
    return fail(reason::kCertificateNoPrincipal,
                std::string("the client certificate has no ") + what + " (security.x509.principal)");
  }
  if (names.size() > 1) {
    return fail(reason::kCertificateAmbiguous,
                std::string("the client certificate has ") + std::to_string(names.size()) + " " + what +
                    "s: which one is the caller is not decided for it");
  }
  const std::string& principal = names.front();
  if (principal.empty() || has_control_chars(principal) || principal.size() > 1024) {
    return fail(reason::kCertificateNoPrincipal,
                std::string("the client certificate's ") + what + " is empty, too long or has control characters");
  }
  Identity id;
  id.issuer = config_.issuer;
  id.group_domain = config_.issuer;
  id.username = principal;
  id.subject = principal;
  id.expires_at = not_after;
  id.issued_at = not_before;
  id.by_certificate = true;
  for (const auto& m : config_.mappings) {
    const bool fits = !m.match.empty() ? principal == m.match : principal.rfind(m.prefix, 0) == 0;
    if (!fits) continue;
    id.roles.insert(id.roles.end(), m.roles.begin(), m.roles.end());
    id.groups.insert(id.groups.end(), m.groups.begin(), m.groups.end());
  }
  return id;
}

}  // namespace volguard::identity
