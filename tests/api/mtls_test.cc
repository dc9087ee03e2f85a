// Client certificates (mTLS) as identities, through a real server on gRPC and REST, with a CA,
// certificates and a CRL made by the openssl command in the test: valid, expired, another CA's,
// revoked, without a SAN, SPIFFE mappings, and a token presented with a certificate (the token
// decides).
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "api/client.h"
#include "support/test_server.h"
#include "volguard.pb.h"

namespace volguard {
namespace {

using testing::TestServer;

using testing::kWhoAmI;
const std::string kRoles = "/volguard.v1.VolguardRole/Enumerate";
const std::string kSpiffe = "spiffe://cluster.local/ns/tenant-a/sa/";

// One CA (ca.pem) with `openssl ca` (so that it can revoke and publish a CRL), another CA, and
// the certificates the tests present. Made once for the suite.
const char kMakeCerts[] = R"sh(
set -e
cd "$1"
mkdir -p ca/newcerts && : > ca/index.txt && echo 1000 > ca/serial && echo 1000 > ca/crlnumber
cat > ca.cnf <<'EOF'
[ ca ]
default_ca = vg
[ vg ]
dir = ./ca
database = ./ca/index.txt
new_certs_dir = ./ca/newcerts
serial = ./ca/serial
crlnumber = ./ca/crlnumber
certificate = ./ca.pem
private_key = ./ca.key
default_md = sha256
default_days = 30
default_crl_days = 30
policy = any
copy_extensions = copy
unique_subject = no
[ any ]
commonName = supplied
[ leaf ]
basicConstraints = CA:false
EOF
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; chmod 600 "$1.key"; }
key ca; openssl req -x509 -new -key ca.key -out ca.pem -days 30 -subj /CN=volguard-test-ca
key other; openssl req -x509 -new -key other.key -out other.pem -days 30 -subj /CN=another-ca
issue() {  # issue NAME SUBJECT SAN [openssl ca options]
  local name=$1 subj=$2 san=$3; shift 3
  key "$name"
  openssl req -new -key "$name.key" -out "$name.csr" -subj "$subj" ${san:+-addext "subjectAltName=$san"}
  openssl ca -batch -config ca.cnf -extensions leaf -in "$name.csr" -out "$name.pem" -notext "$@" 2>/dev/null
}
issue server /CN=127.0.0.1 "IP:127.0.0.1,DNS:localhost"
issue alice /CN=alice "URI:spiffe://cluster.local/ns/tenant-a/sa/alice"
issue batch /CN=batch "URI:spiffe://cluster.local/ns/tenant-a/sa/batch"
issue outsider /CN=outsider "URI:spiffe://cluster.local/ns/tenant-b/sa/x"
issue two /CN=two "URI:spiffe://cluster.local/ns/tenant-a/sa/one,URI:spiffe://cluster.local/ns/tenant-a/sa/two"
issue nosan /CN=nosan-client ""
issue expired /CN=expired "URI:spiffe://cluster.local/ns/tenant-a/sa/old" -startdate 20200101000000Z -enddate 20200201000000Z
issue revoked /CN=revoked "URI:spiffe://cluster.local/ns/tenant-a/sa/gone"
openssl ca -batch -config ca.cnf -revoke revoked.pem 2>/dev/null
openssl ca -batch -config ca.cnf -gencrl -out crl.pem 2>/dev/null
key stranger
openssl req -new -key stranger.key -out stranger.csr -subj /CN=stranger -addext "subjectAltName=URI:spiffe://cluster.local/ns/tenant-a/sa/alice"
openssl x509 -req -in stranger.csr -CA other.pem -CAkey other.key -CAcreateserial -out stranger.pem -days 30 -copy_extensions copy 2>/dev/null
# A CRL that no CA of ca.pem signed.
mkdir -p oca/newcerts && : > oca/index.txt && echo 1000 > oca/crlnumber
sed -e 's#./ca/#./oca/#g' -e 's#./ca.pem#./other.pem#' -e 's#./ca.key#./other.key#' ca.cnf > oca.cnf
openssl ca -batch -config oca.cnf -gencrl -out foreign-crl.pem 2>/dev/null
)sh";

class MtlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/volguard-mtls-XXXXXX";
    dir_ = mkdtemp(tmpl);
    const std::string script = dir_ + "/make-certs.sh";
    ASSERT_TRUE(write_file(script, kMakeCerts, 0700).is_ok());
    ASSERT_EQ(std::system(("bash " + script + " " + dir_ + " > " + dir_ + "/make-certs.log 2>&1").c_str()), 0)
        << "openssl failed: see " << dir_ << "/make-certs.log";
    ASSERT_TRUE(write_file(dir_ + "/secret", testing::kTestSecret + "\n", 0600).is_ok());
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  static std::string tls_section(bool crl = true) {
    return "  tls:\n    cert_file: " + dir_ + "/server.pem\n    key_file: " + dir_ +
           "/server.key\n    client_ca: " + dir_ + "/ca.pem\n" +
           (crl ? "    client_crl: " + dir_ + "/crl.pem\n" : "");
  }
  static std::string x509_section(const std::string& principal = "san_uri") {
    return "  x509:\n    issuer: spiffe\n    principal: " + principal +
           "\n    mappings:\n"
           "      - prefix: " + kSpiffe + "\n        roles: [system.user]\n        groups: [tenant-a]\n"
           "      - match: " + kSpiffe + "batch\n        roles: [system.admin]\n"
           "      - match: nosan-client\n        roles: [system.view]\n";
  }

  // A client presenting `cert` (none when empty).
  static api::Client as(const TestServer& srv, const std::string& cert, const std::string& token = "") {
    return api::Client::connect("127.0.0.1:" + std::to_string(srv.grpc_port()), token,
                                ClientTls{.ca = dir_ + "/ca.pem",
                                          .cert_file = cert.empty() ? "" : dir_ + "/" + cert + ".pem",
                                          .key_file = cert.empty() ? "" : dir_ + "/" + cert + ".key"})
        .value();
  }
  static Result<v1::WhoAmIResponse> whoami(const TestServer& srv, const std::string& cert,
                                           const std::string& token = "") {
    v1::WhoAmIResponse resp;
    Status s = as(srv, cert, token).call(kWhoAmI, v1::Empty(), &resp);
    if (!s.is_ok()) return s;
    return resp;
  }

  static inline std::string dir_;
};

TEST_F(MtlsTest, ASpiffeCertificateIsAnIdentityWithMappedRolesAndGroups) {
  TestServer srv(x509_section(), /*guest_access=*/false, tls_section());
  auto alice = whoami(srv, "alice");
  ASSERT_TRUE(alice.is_ok()) << alice.status().to_string();
  EXPECT_EQ(alice->username(), kSpiffe + "alice");
  EXPECT_EQ(alice->issuer(), "spiffe");
  EXPECT_EQ(alice->principal(), "spiffe/" + escape_name(kSpiffe + "alice"));
  EXPECT_EQ(std::vector<std::string>(alice->roles().begin(), alice->roles().end()),
            std::vector<std::string>{"system.user"});
  EXPECT_EQ(std::vector<std::string>(alice->groups().begin(), alice->groups().end()),
            std::vector<std::string>{"tenant-a"});
  v1::RoleEnumerateResponse roles;
  EXPECT_REFUSED(as(srv, "alice").call(kRoles, v1::Empty(), &roles), Code::kPermissionDenied, "rbac_denied");
  // An exact match adds to the prefix's: batch is an admin too.
  const Status batch = as(srv, "batch").call(kRoles, v1::Empty(), &roles);
  EXPECT_TRUE(batch.is_ok()) << batch.to_string();
  // A certificate no mapping fits is someone (authenticated), with no roles: nothing is allowed.
  EXPECT_REFUSED(whoami(srv, "outsider").status(), Code::kPermissionDenied, "rbac_denied");
  EXPECT_REFUSED(as(srv, "outsider").call(kRoles, v1::Empty(), &roles), Code::kPermissionDenied, "rbac_denied");
}

TEST_F(MtlsTest, NoExpiredOrForeignCertificateGetsThroughTheHandshake) {
  TestServer srv(x509_section(), /*guest_access=*/true, tls_section());
  for (const char* cert : {"expired", "stranger", ""}) {
    const Status s = whoami(srv, cert).status();
    EXPECT_EQ(s.code(), Code::kUnavailable) << "certificate '" << cert << "': " << s.to_string();
  }
  // REST: the same CA, the same refusals.
  auto rest_whoami = [&](const std::string& cert) {
    httplib::SSLClient c("127.0.0.1", srv.rest_port(), cert.empty() ? std::string() : dir_ + "/" + cert + ".pem",
                         cert.empty() ? std::string() : dir_ + "/" + cert + ".key");
    c.set_ca_cert_path((dir_ + "/ca.pem").c_str());
    c.enable_server_certificate_verification(true);
    c.set_connection_timeout(5);
    return c.Post("/v1/identity/whoami", "{}", "application/json");
  };
  auto ok = rest_whoami("alice");
  ASSERT_TRUE(ok) << httplib::to_string(ok.error());
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_NE(ok->body.find(kSpiffe + "alice"), std::string::npos) << ok->body;
  for (const char* cert : {"expired", "stranger", ""}) {
    auto refused = rest_whoami(cert);
    EXPECT_FALSE(refused && refused->status == 200) << "REST served certificate '" << cert << "'";
  }
}

TEST_F(MtlsTest, ARevokedCertificateIsRefusedEvenWithAValidToken) {
  TestServer srv(x509_section(), /*guest_access=*/false, tls_section());
  EXPECT_REFUSED(whoami(srv, "revoked").status(), Code::kUnauthenticated, "certificate_revoked");
  const std::string admin = srv.token("admin", {"system.admin"});
  EXPECT_REFUSED(whoami(srv, "revoked", admin).status(), Code::kUnauthenticated, "certificate_revoked");
  // Without the CRL configured it is just a certificate.
  TestServer no_crl(x509_section(), false, tls_section(/*crl=*/false));
  EXPECT_TRUE(whoami(no_crl, "revoked").is_ok());
}

TEST_F(MtlsTest, ACertificateWithoutItsPrincipalIsRefusedUnlessATokenDecides) {
  TestServer srv(x509_section(), /*guest_access=*/true, tls_section());
  EXPECT_REFUSED(whoami(srv, "nosan").status(), Code::kUnauthenticated, "certificate_no_principal");
  EXPECT_REFUSED(whoami(srv, "two").status(), Code::kUnauthenticated, "certificate_principal_ambiguous");
  const std::string bob = srv.token("bob", {"system.user"});
  auto with_token = whoami(srv, "nosan", bob);
  ASSERT_TRUE(with_token.is_ok()) << with_token.status().to_string();
  EXPECT_EQ(with_token->username(), "bob");
  // principal: cn takes the subject CN instead.
  TestServer cn(x509_section("cn"), true, tls_section());
  auto by_cn = whoami(cn, "nosan");
  ASSERT_TRUE(by_cn.is_ok()) << by_cn.status().to_string();
  EXPECT_EQ(by_cn->username(), "nosan-client");
  EXPECT_EQ(std::vector<std::string>(by_cn->roles().begin(), by_cn->roles().end()),
            std::vector<std::string>{"system.view"});
}

TEST_F(MtlsTest, ATokenPresentedWithACertificateDecides) {
  TestServer srv(x509_section(), /*guest_access=*/false, tls_section());
  const std::string admin = srv.token("admin", {"system.admin"});
  auto who = whoami(srv, "alice", admin);
  ASSERT_TRUE(who.is_ok()) << who.status().to_string();
  EXPECT_EQ(who->username(), "admin");
  EXPECT_EQ(who->issuer(), "test.local");
  // A bad token is not rescued by a good certificate.
  std::string forged = admin;
  forged[forged.size() - 2] = forged[forged.size() - 2] == 'A' ? 'B' : 'A';
  EXPECT_REFUSED(whoami(srv, "alice", forged).status(), Code::kUnauthenticated, "signature_invalid");
  // Without security.x509 a certificate is only the way in: the token is the identity, and a
  // certificate alone is a guest (or refused when guests are).
  TestServer transport_only("", /*guest_access=*/false, tls_section());
  EXPECT_REFUSED(whoami(transport_only, "alice").status(), Code::kUnauthenticated, "token_missing");
  EXPECT_TRUE(whoami(transport_only, "alice", transport_only.token("carol", {"system.user"})).is_ok());
}

TEST_F(MtlsTest, BadCertificateConfigurationIsRefusedAtStart) {
  auto start = [](const std::string& top, const std::string& security) {
    const std::string yaml = "data_dir: " + dir_ + "/cfg-data\napi:\n  grpc: 127.0.0.1:0\n  rest: 127.0.0.1:0\n" +
                             top + "security:\n  guest_access: false\n" + security +
                             "  issuers:\n    - issuer: test.local\n      shared_secret_file: " + dir_ + "/secret\n";
    auto cfg = config::parse_config(yaml, "mtls.yaml");
    if (!cfg) return cfg.status();
    return api::Server::start(*cfg).status();
  };
  // A CRL no CA of client_ca signed.
  const std::string foreign = "  tls:\n    cert_file: " + dir_ + "/server.pem\n    key_file: " + dir_ +
                              "/server.key\n    client_ca: " + dir_ + "/ca.pem\n    client_crl: " + dir_ +
                              "/foreign-crl.pem\n";
  Status s = start(foreign, x509_section());
  EXPECT_EQ(s.reason(), "bad_config") << s.to_string();
  EXPECT_NE(s.message().find("api.tls.client_crl"), std::string::npos) << s.message();
  // x509 identities without client certificates asked for.
  s = start("", x509_section());
  EXPECT_EQ(s.reason(), "bad_config") << s.to_string();
  EXPECT_NE(s.message().find("security.x509"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace volguard
