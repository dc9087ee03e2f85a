// CertificateIdentities on its own: the checks a TLS handshake does not repeat for a connection
// that outlives its certificate, and inputs no handshake would pass (a unit test of one layer;
// tests/api/mtls_test.cc covers the whole path with real TLS).
#include "identity/x509.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/text.h"

namespace volguard::identity {
namespace {

class X509Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/volguard-x509-XXXXXX";
    dir_ = mkdtemp(tmpl);
    const std::string script = "set -e; cd " + dir_ + R"sh(
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ok.key -out ok.csr -subj /CN=ok -addext subjectAltName=URI:spiffe://c/ns/a/sa/ok 2>/dev/null
openssl x509 -req -in ok.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out ok.pem -copy_extensions copy -days 1 2>/dev/null
)sh";
    ASSERT_EQ(std::system(("bash -c '" + script + "' > " + dir_ + "/log 2>&1").c_str()), 0);
    pem_ = read_file(dir_ + "/ok.pem").value();
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  static std::shared_ptr<const CertificateIdentities> identities(bool x509) {
    config::Config cfg;
    cfg.file = "x.yaml";
    cfg.api.tls.client_ca = dir_ + "/ca.pem";
    cfg.security.x509.enabled = x509;
    cfg.security.x509.mappings.push_back({.prefix = "spiffe://c/ns/a/", .roles = {"system.user"}});
    return CertificateIdentities::from_config(cfg).value();
  }

  static inline std::string dir_, pem_;
};

TEST_F(X509Test, TheDatesAreCheckedAgainForALongLivedConnection) {
  auto ids = identities(true);
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  ASSERT_TRUE(ids->check(pem_, now).is_ok());
  auto who = ids->identify(pem_, now);
  ASSERT_TRUE(who.is_ok()) << who.status().to_string();
  EXPECT_EQ(who->username, "spiffe://c/ns/a/sa/ok");
  EXPECT_TRUE(who->by_certificate);
  EXPECT_EQ(ids->check(pem_, now + 3 * 86400).reason(), reason::kCertificateExpired);
  EXPECT_EQ(ids->identify(pem_, now + 3 * 86400).status().reason(), reason::kCertificateExpired);
  EXPECT_EQ(ids->check(pem_, now - 86400).reason(), reason::kCertificateNotYetValid);
}

TEST_F(X509Test, WhatNoHandshakeWouldPassIsRefused) {
  auto ids = identities(true);
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  for (const char* bad : {"", "not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}) {
    const Status s = ids->check(bad, now);
    EXPECT_EQ(s.code(), Code::kUnauthenticated) << bad;
    EXPECT_EQ(s.reason(), reason::kCertificateUnreadable) << bad;
  }
  // Without security.x509 a certificate is no identity.
  EXPECT_EQ(identities(false)->identify(pem_, now).status().reason(), reason::kCertificatesNotAccepted);
}

}  // namespace
}  // namespace volguard::identity
