// The etcd client over TLS with a client certificate (etcd --client-cert-auth), 1 member.
#include "etcd/test_util.h"

namespace volguard::etcd::testing {
namespace {

TEST(Tls, CallsAndWatchWithAClientCertificate) {
  EtcdCluster cluster(EtcdCluster::Options{.members = 1, .tls = true});
  ClientOptions o;
  o.endpoints = {cluster.tls_endpoint(0)};
  o.timeout = 1000ms;
  o.ca_file = cluster.ca_file();
  o.cert_file = cluster.client_cert_file();
  o.key_file = cluster.client_key_file();
  auto c = Client::open(o);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  auto start = (*c)->current_revision();
  ASSERT_TRUE(start.is_ok()) << start.status().to_string();
  Recorder rec;
  auto w = (*c)->watch("t/", *start + 1, rec.callbacks(), 100ms);
  ASSERT_TRUE(w.is_ok());
  ASSERT_TRUE(put(**c, "t/1", "over tls").is_ok());
  ASSERT_TRUE(eventually([&] { return rec.event_count() == 1; }, 5s)) << rec.broken_reasons();
  EXPECT_EQ(rec.events()[0].kv.value, "over tls");
  auto k = (*c)->keep("t/lease", "v", 2s);
  ASSERT_TRUE(k.is_ok()) << k.status().to_string();

  // etcd wants a client certificate: without one the handshake fails.
  o.cert_file.clear();
  o.key_file.clear();
  auto anonymous = Client::open(o);
  ASSERT_TRUE(anonymous.is_ok());
  auto refused = (*anonymous)->range("t/1", "");
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().reason(), "store_unavailable");
  EXPECT_NE(refused.status().message().find(cluster.tls_endpoint(0)), std::string::npos);

  // Plain text to the TLS port fails too.
  o.ca_file.clear();
  auto plain = Client::open(o);
  ASSERT_TRUE(plain.is_ok());
  EXPECT_FALSE((*plain)->range("t/1", "").is_ok());
}

}  // namespace
}  // namespace volguard::etcd::testing
