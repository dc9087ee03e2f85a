// CertificateIdentities on its own: the checks a TLS handshake does not repeat for a connection
// that outlives its certificate, and inputs no handshake would pass (a unit test of one layer;
// tests/api/mtls_test.cc covers the whole path with real TLS).
#include "identity/x509.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

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

// The CRL file is followed: a certificate revoked after start is refused within
// kCrlRecheckSeconds, a CRL file that breaks refuses every certificate (closed), and a CRL past
// its nextUpdate too. `now` drives the recheck, as requests do.
TEST(X509CrlTest, TheCrlFileIsFollowedAndClosedWhenItBreaks) {
  char tmpl[] = "/tmp/volguard-crl-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string script = R"sh(set -e
mkdir -p ca/newcerts && : > ca/index.txt && echo 1000 > ca/serial && echo 1000 > ca/crlnumber
printf '[ca]\ndefault_ca=vg\n[vg]\ndir=./ca\ndatabase=./ca/index.txt\nnew_certs_dir=./ca/newcerts\nserial=./ca/serial\ncrlnumber=./ca/crlnumber\ncertificate=./ca.pem\nprivate_key=./ca.key\ndefault_md=sha256\ndefault_days=30\ndefault_crl_days=30\npolicy=any\ncopy_extensions=copy\nunique_subject=no\n[any]\ncommonName=supplied\n' > ca.cnf
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -out ca.pem -days 30 -subj /CN=crl-test-ca
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ok.key 2>/dev/null
openssl req -new -key ok.key -out ok.csr -subj /CN=ok -addext subjectAltName=URI:spiffe://c/ns/a/sa/ok
openssl ca -batch -config ca.cnf -in ok.csr -out ok.pem -notext 2>/dev/null
openssl ca -batch -config ca.cnf -gencrl -out empty.pem 2>/dev/null
openssl ca -batch -config ca.cnf -gencrl -crldays 1 -out short.pem 2>/dev/null
openssl ca -batch -config ca.cnf -revoke ok.pem 2>/dev/null
openssl ca -batch -config ca.cnf -gencrl -out revoked.pem 2>/dev/null
cp empty.pem crl.pem
)sh";
  ASSERT_TRUE(write_file(dir + "/make.sh", script, 0600).is_ok());
  ASSERT_EQ(std::system(("cd " + dir + " && bash make.sh > log 2>&1").c_str()), 0)
      << (read_file(dir + "/log").is_ok() ? read_file(dir + "/log").value() : std::string());
  const std::string pem = read_file(dir + "/ok.pem").value();
  auto put = [&](const std::string& from) {
    ASSERT_TRUE(write_file(dir + "/crl.pem", read_file(dir + "/" + from).value(), 0644).is_ok());
  };
  config::Config cfg;
  cfg.file = "x.yaml";
  cfg.api.tls.client_ca = dir + "/ca.pem";
  cfg.api.tls.client_crl = dir + "/crl.pem";
  cfg.security.x509.enabled = true;
  auto ids = CertificateIdentities::from_config(cfg).value();
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  ASSERT_TRUE(ids->check(pem, now).is_ok());

  // Revoked after start: refused once the recheck is due, not before (the list in force).
  put("revoked.pem");
  EXPECT_TRUE(ids->check(pem, now + 1).is_ok());
  now += kCrlRecheckSeconds;
  EXPECT_EQ(ids->check(pem, now).reason(), reason::kCertificateRevoked);
  EXPECT_EQ(ids->identify(pem, now).status().reason(), reason::kCertificateRevoked);

  // A broken file (garbage, gone, another CA's list) refuses every certificate: closed.
  ASSERT_TRUE(write_file(dir + "/crl.pem", "not a CRL\n", 0644).is_ok());
  now += kCrlRecheckSeconds;
  Status s = ids->check(pem, now);
  EXPECT_EQ(s.code(), Code::kUnauthenticated);
  EXPECT_EQ(s.reason(), reason::kCrlUnavailable) << s.to_string();
  std::filesystem::remove(dir + "/crl.pem");
  now += kCrlRecheckSeconds;
  EXPECT_EQ(ids->check(pem, now).reason(), reason::kCrlUnavailable);

  // A good list followed by a cut block: not the good list alone (the cut one may be the list
  // that revokes it).
  ASSERT_TRUE(write_file(dir + "/crl.pem", read_file(dir + "/empty.pem").value() +
                                               "-----BEGIN X509 CRL-----\nMIIBOjCB4gIBATAKBggqhkjOPQQDAjAW\n",
                         0644)
                  .is_ok());
  now += kCrlRecheckSeconds;
  EXPECT_EQ(ids->check(pem, now).reason(), reason::kCrlUnavailable);
  // A FIFO in its place: refused, not waited on.
  std::filesystem::remove(dir + "/crl.pem");
  ASSERT_EQ(::mkfifo((dir + "/crl.pem").c_str(), 0600), 0);
  now += kCrlRecheckSeconds;
  EXPECT_EQ(ids->check(pem, now).reason(), reason::kCrlUnavailable);
  std::filesystem::remove(dir + "/crl.pem");

  // A good list again: accepted again (this one does not list it).
  put("empty.pem");
  now += kCrlRecheckSeconds;
  EXPECT_TRUE(ids->check(pem, now).is_ok());
  // The clock stepped back: the file is read again all the same (revoked meanwhile).
  put("revoked.pem");
  EXPECT_EQ(ids->check(pem, now - 2).reason(), reason::kCertificateRevoked);
  put("empty.pem");
  EXPECT_TRUE(ids->check(pem, now + kCrlRecheckSeconds).is_ok());
  now += kCrlRecheckSeconds;

  // A list whose nextUpdate has passed: refused until a fresh one is in place.
  put("short.pem");
  now += kCrlRecheckSeconds;
  EXPECT_TRUE(ids->check(pem, now).is_ok());
  EXPECT_EQ(ids->check(pem, now + 2 * 86400).reason(), reason::kCrlExpired);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace volguard::identity
