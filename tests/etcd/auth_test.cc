// The etcd client with etcd's authentication on (a 1-member cluster): token from
// Auth.Authenticate, sent on every call and on the watch, fetched again when it expires.
#include <cstdlib>

#include "etcd/test_util.h"

namespace volguard::etcd::testing {
namespace {

void etcdctl(const EtcdCluster& cluster, const std::string& args) {
  std::string cmd = "ETCDCTL_API=3 /usr/bin/etcdctl --endpoints=" + cluster.endpoint(0) + " " +
                    args + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST(Auth, TokenOnEveryCallAndRenewedWhenExpired) {
  // Simple tokens that expire after 1 s of disuse, to see the client authenticate again.
  EtcdCluster cluster(EtcdCluster::Options{
      .members = 1, .extra_args = {"--auth-token", "simple", "--auth-token-ttl", "1"}});
  ASSERT_NO_FATAL_FAILURE(etcdctl(cluster, "user add root:rootpw --interactive=false"));
  ASSERT_NO_FATAL_FAILURE(etcdctl(cluster, "user grant-role root root"));
  ASSERT_NO_FATAL_FAILURE(etcdctl(cluster, "auth enable"));

  ClientOptions o;
  o.endpoints = cluster.endpoints();
  o.timeout = 1000ms;
  o.username = "root";
  o.password = "rootpw";
  auto c = Client::open(o);
  ASSERT_TRUE(c.is_ok());
  ASSERT_TRUE(put(**c, "a/1", "x").is_ok());
  auto kvs = (*c)->range("a/1", "");
  ASSERT_TRUE(kvs.is_ok()) << kvs.status().to_string();
  EXPECT_EQ(kvs->size(), 1u);

  std::this_thread::sleep_for(2500ms);  // unused for longer than its ttl, the token expires
  auto again = put(**c, "a/2", "y");
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();

  Recorder rec;
  auto start = (*c)->current_revision();
  ASSERT_TRUE(start.is_ok()) << start.status().to_string();
  auto w = (*c)->watch("a/", *start + 1, rec.callbacks(), 100ms);
  ASSERT_TRUE(w.is_ok());
  ASSERT_TRUE(eventually([&] { return rec.progress_count() >= 1; }, 5s)) << rec.broken_reasons();
  ASSERT_TRUE(put(**c, "a/3", "z").is_ok());
  ASSERT_TRUE(eventually([&] { return rec.event_count() >= 1; }, 5s)) << rec.broken_reasons();
  EXPECT_EQ(rec.events()[0].kv.key, "a/3");

  // Wrong password: refused as such, without the password in the message.
  o.password = "wrong-secret";
  auto bad = Client::open(o);
  ASSERT_TRUE(bad.is_ok());
  auto denied = (*bad)->range("a/1", "");
  ASSERT_FALSE(denied.is_ok());
  EXPECT_EQ(denied.status().reason(), "store_auth_failed");
  EXPECT_EQ(denied.status().message().find("wrong-secret"), std::string::npos);

  // No credentials at all.
  o.username.clear();
  o.password.clear();
  auto anonymous = Client::open(o);
  ASSERT_TRUE(anonymous.is_ok());
  auto refused = (*anonymous)->range("a/1", "");
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().reason(), "store_error") << refused.status().to_string();
}

}  // namespace
}  // namespace volguard::etcd::testing
