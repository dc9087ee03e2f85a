// The CSI plugin reaching a server that requires client certificates (api.tls.client_ca): with
// its certificate it is served, without one it is refused at the handshake.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "csi/internal.h"
#include "support/test_server.h"
#include "volguard.pb.h"

namespace volguard {
namespace {

TEST(CsiMtlsTest, ThePluginPresentsItsCertificate) {
  char tmpl[] = "/tmp/volguard-csi-mtls-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string script = "set -e; cd " + dir + R"sh(
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=ca 2>/dev/null
for n in server plugin; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key -out $n.csr -subj /CN=$n -addext subjectAltName=IP:127.0.0.1 2>/dev/null
  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $n.pem -copy_extensions copy -days 1 2>/dev/null
  chmod 600 $n.key
done
)sh";
  ASSERT_EQ(std::system(("bash -c '" + script + "' > " + dir + "/log 2>&1").c_str()), 0);
  {
    testing::TestServer srv("", /*guest_access=*/true,
                            "  tls:\n    cert_file: " + dir + "/server.pem\n    key_file: " + dir +
                                "/server.key\n    client_ca: " + dir + "/ca.pem\n");
    const std::string admin = srv.token("admin", {"system.admin"});
    csi::PluginOptions with{.server = "127.0.0.1:" + std::to_string(srv.grpc_port()),
                            .tls_ca = dir + "/ca.pem",
                            .tls_cert = dir + "/plugin.pem",
                            .tls_key = dir + "/plugin.key"};
    v1::VersionResponse version;
    const Status ok = csi::Backend(with).call(admin, "/volguard.v1.VolguardIdentity/Version", v1::Empty(), &version);
    EXPECT_TRUE(ok.is_ok()) << ok.to_string();
    csi::PluginOptions without = with;
    without.tls_cert.clear();
    without.tls_key.clear();
    EXPECT_EQ(csi::Backend(without).call(admin, "/volguard.v1.VolguardIdentity/Version", v1::Empty(), &version).code(),
              Code::kUnavailable);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace volguard
