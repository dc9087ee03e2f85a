// LeasedKey against a real 3-member etcd cluster.
#include "etcd/test_util.h"

namespace volguard::etcd::testing {
namespace {

std::optional<KeyValue> get(Client& c, const std::string& key) {
  auto kvs = c.range(key, "");
  if (!kvs.is_ok() || kvs->empty()) return std::nullopt;
  return (*kvs)[0];
}

TEST(Lease, KeyLivesAsLongAsTheLeasedKey) {
  EtcdCluster cluster;
  auto c = open_client(cluster.endpoints());
  auto k = c->keep("lease/node1", "here", 2s);
  ASSERT_TRUE(k.is_ok()) << k.status().to_string();
  auto kv = get(*c, "lease/node1");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->value, "here");
  EXPECT_NE(kv->lease, 0);
  EXPECT_TRUE((*k)->alive());

  // Renewed past its ttl.
  std::this_thread::sleep_for(2500ms);
  kv = get(*c, "lease/node1");
  ASSERT_TRUE(kv.has_value());
  EXPECT_TRUE((*k)->alive());

  auto t0 = Clock::now();
  k->reset();
  EXPECT_LT(Clock::now() - t0, 1500ms);
  // Revoked, not left to expire.
  EXPECT_TRUE(eventually([&] { return !get(*c, "lease/node1").has_value(); }, 1s));
}

// etcd drops the lease (revoked behind our back, as an expiry would): the key is put again under
// a new lease.
TEST(Lease, PutAgainAfterALapse) {
  EtcdCluster cluster;
  auto c = open_client(cluster.endpoints());
  auto k = c->keep("lease/node2", "v", 2s);
  ASSERT_TRUE(k.is_ok());
  auto kv = get(*c, "lease/node2");
  ASSERT_TRUE(kv.has_value());
  int64_t old_lease = kv->lease;
  cluster.post("/v3/lease/revoke", "{\"ID\":\"" + std::to_string(old_lease) + "\"}");
  ASSERT_TRUE(eventually(
      [&] {
        auto now = get(*c, "lease/node2");
        return now && now->lease != old_lease && (*k)->alive();
      },
      5s));
  EXPECT_EQ(get(*c, "lease/node2")->value, "v");
}

// The cluster loses its quorum for longer than the ttl, then comes back: the key is there again
// (the same lease, extended by the new leader, or a new one) without anyone asking.
TEST(Lease, BackAfterTheClusterComesBack) {
  EtcdCluster cluster;
  auto c = open_client(cluster.endpoints(), 1000ms);
  auto k = c->keep("lease/node3", "v", 2s);
  ASSERT_TRUE(k.is_ok());
  cluster.stop(1);
  cluster.stop(2);
  ASSERT_TRUE(eventually([&] { return !(*k)->alive(); }, 5s));
  std::this_thread::sleep_for(2500ms);  // past the ttl
  cluster.start(1);
  cluster.start(2);
  ASSERT_TRUE(eventually([&] { return (*k)->alive() && get(*c, "lease/node3").has_value(); }, 15s))
      << cluster.logs();
  EXPECT_EQ(get(*c, "lease/node3")->value, "v");
  k->reset();
  EXPECT_TRUE(eventually([&] { return !get(*c, "lease/node3").has_value(); }, 2s));
}

TEST(Lease, KeepFailsWhenEtcdIsUnreachable) {
  auto c = open_client({"127.0.0.1:1"}, 500ms);
  auto k = c->keep("lease/x", "v", 2s);
  ASSERT_FALSE(k.is_ok());
  EXPECT_EQ(k.status().code(), Code::kUnavailable);
  EXPECT_EQ(k.status().reason(), "store_unavailable");
  EXPECT_NE(k.status().message().find("127.0.0.1:1"), std::string::npos);
}

}  // namespace
}  // namespace volguard::etcd::testing
