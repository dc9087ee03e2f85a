// The etcd client's KV calls against a real 3-member etcd cluster: range, txn, compare-and-swap
// under contention, a leader killed, a quorum lost and regained.
#include <barrier>

#include "etcd/test_util.h"

namespace volguard::etcd::testing {
namespace {

TEST(Client, PrefixEnd) {
  EXPECT_EQ(prefix_end("a"), "b");
  EXPECT_EQ(prefix_end("vol/"), "vol0");
  EXPECT_EQ(prefix_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefix_end(std::string("\xff\xff", 2)), std::string(1, '\0'));
  EXPECT_EQ(prefix_end(""), std::string(1, '\0'));
}

TEST(Client, OpenRejectsBadOptions) {
  EXPECT_EQ(Client::open(ClientOptions{}).status().code(), Code::kInvalidArgument);
  ClientOptions o;
  o.endpoints = {"http://127.0.0.1:2379"};
  EXPECT_EQ(Client::open(o).status().reason(), "invalid_store_config");
  o.endpoints = {"127.0.0.1:2379"};
  o.ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(Client::open(o).status().code(), Code::kInvalidArgument);
}

TEST(Client, RangeAndTxn) {
  EtcdCluster cluster;
  auto c = open_client(cluster.endpoints());

  // Create-if-absent: compare create_revision = 0.
  std::vector<Compare> absent = {
      Compare{.key = "k/one", .target = Compare::Target::kCreate, .number = 0}};
  auto r1 = c->txn(absent, {Op{.type = Op::Type::kPut, .key = "k/one", .value = "v1"}},
                   {Op{.type = Op::Type::kGet, .key = "k/one"}});
  ASSERT_TRUE(r1.is_ok()) << r1.status().to_string();
  EXPECT_TRUE(r1->succeeded);
  EXPECT_GT(r1->revision, 1);
  EXPECT_TRUE(r1->ranges.empty());

  auto r2 = c->txn(absent, {Op{.type = Op::Type::kPut, .key = "k/one", .value = "v2"}},
                   {Op{.type = Op::Type::kGet, .key = "k/one"}});
  ASSERT_TRUE(r2.is_ok()) << r2.status().to_string();
  EXPECT_FALSE(r2->succeeded);
  ASSERT_EQ(r2->ranges.size(), 1u);
  ASSERT_EQ(r2->ranges[0].size(), 1u);
  EXPECT_EQ(r2->ranges[0][0].value, "v1");
  EXPECT_EQ(r2->revision, r1->revision);  // nothing written

  int64_t rev = 0;
  auto kvs = c->range("k/one", "", &rev);
  ASSERT_TRUE(kvs.is_ok()) << kvs.status().to_string();
  ASSERT_EQ(kvs->size(), 1u);
  EXPECT_EQ((*kvs)[0].key, "k/one");
  EXPECT_EQ((*kvs)[0].value, "v1");
  EXPECT_EQ((*kvs)[0].create_revision, r1->revision);
  EXPECT_EQ((*kvs)[0].mod_revision, r1->revision);
  EXPECT_EQ((*kvs)[0].version, 1);
  EXPECT_EQ(rev, r1->revision);

  // A mod_revision guard, and a value compare.
  auto r3 =
      c->txn({Compare{.key = "k/one", .target = Compare::Target::kMod, .number = r1->revision}},
             {Op{.type = Op::Type::kPut, .key = "k/one", .value = "v3"},
              Op{.type = Op::Type::kPut, .key = "k/two", .value = "x"},
              Op{.type = Op::Type::kGet, .key = "k/", .range_end = prefix_end("k/")}},
             {});
  ASSERT_TRUE(r3.is_ok()) << r3.status().to_string();
  EXPECT_TRUE(r3->succeeded);
  ASSERT_EQ(r3->ranges.size(), 1u);
  EXPECT_EQ(r3->ranges[0].size(), 2u);
  auto r4 = c->txn({Compare{.key = "k/one",
                            .target = Compare::Target::kValue,
                            .result = Compare::Result::kNotEqual,
                            .value = "v3"}},
                   {Op{.type = Op::Type::kDelete, .key = "k/one"}}, {});
  ASSERT_TRUE(r4.is_ok());
  EXPECT_FALSE(r4->succeeded);

  ASSERT_TRUE(put(*c, "other", "y").is_ok());
  auto all = c->range("k/", prefix_end("k/"));
  ASSERT_TRUE(all.is_ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].key, "k/one");
  EXPECT_EQ((*all)[1].key, "k/two");

  // Delete a range; the revision moves on.
  auto r5 =
      c->txn({}, {Op{.type = Op::Type::kDelete, .key = "k/", .range_end = prefix_end("k/")}}, {});
  ASSERT_TRUE(r5.is_ok());
  auto none = c->range("k/", prefix_end("k/"));
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->empty());
  auto now = c->current_revision();
  ASSERT_TRUE(now.is_ok()) << now.status().to_string();
  EXPECT_EQ(*now, r5->revision);

  // An error from etcd itself (the same key twice in one txn) is not "unavailable".
  auto dup = c->txn({},
                    {Op{.type = Op::Type::kPut, .key = "d", .value = "1"},
                     Op{.type = Op::Type::kPut, .key = "d", .value = "2"}},
                    {});
  ASSERT_FALSE(dup.is_ok());
  EXPECT_EQ(dup.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(dup.status().reason(), "store_error");
}

// Two writers, each with its own client, race on one key guarded by its mod_revision: in every
// round exactly one wins.
TEST(Client, ModRevisionGuardHasOneWinnerPerRound) {
  EtcdCluster cluster;
  constexpr int kRounds = 60;
  auto setup = open_client(cluster.endpoints());
  ASSERT_TRUE(put(*setup, "cas", "start").is_ok());

  std::vector<std::unique_ptr<Client>> clients;
  clients.push_back(open_client(cluster.endpoints_from(0)));
  clients.push_back(open_client(cluster.endpoints_from(1)));
  std::vector<std::array<int, 2>> won(kRounds, {0, 0});
  std::vector<std::string> errors;
  std::mutex mu;
  std::barrier sync(2);
  auto writer = [&](int w) {
    for (int round = 0; round < kRounds; ++round) {
      sync.arrive_and_wait();  // the previous round is over
      auto kvs = clients[w]->range("cas", "");
      int64_t mod = kvs.is_ok() && kvs->size() == 1 ? (*kvs)[0].mod_revision : -1;
      sync.arrive_and_wait();  // both have read before either writes
      auto r =
          clients[w]->txn({Compare{.key = "cas", .target = Compare::Target::kMod, .number = mod}},
                          {Op{.type = Op::Type::kPut,
                              .key = "cas",
                              .value = "w" + std::to_string(w) + "r" + std::to_string(round)}},
                          {});
      std::lock_guard lock(mu);
      if (!r.is_ok()) {
        errors.push_back(r.status().to_string());
      } else if (r->succeeded) {
        won[round][w] = 1;
      }
    }
  };
  std::thread a(writer, 0), b(writer, 1);
  a.join();
  b.join();
  ASSERT_TRUE(errors.empty()) << errors.front();
  for (int round = 0; round < kRounds; ++round) {
    EXPECT_EQ(won[round][0] + won[round][1], 1) << "round " << round;
  }
  auto kvs = setup->range("cas", "");
  ASSERT_TRUE(kvs.is_ok());
  ASSERT_EQ(kvs->size(), 1u);
  EXPECT_EQ((*kvs)[0].version, kRounds + 1);
}

// The leader dies: once the others have elected a new one, writes go through again by themselves.
TEST(Client, WritesContinueAfterTheLeaderIsKilled) {
  EtcdCluster cluster;
  int leader = cluster.leader();
  ASSERT_GE(leader, 0);
  auto c = open_client(cluster.endpoints_from(leader));  // prefers the leader
  ASSERT_TRUE(put(*c, "before", "1").is_ok());

  cluster.kill(leader);
  auto killed_at = Clock::now();
  Status last;
  bool ok = eventually(
      [&] {
        auto r = put(*c, "after", "2");
        last = r.status();
        return r.is_ok();
      },
      10s, 50ms);
  ASSERT_TRUE(ok) << last.to_string() << "\n" << cluster.logs();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed_at);
  std::cout << "first write after the leader's death: " << took.count() << " ms\n";
  for (int i = 0; i < 20; ++i) {
    auto r = put(*c, "more/" + std::to_string(i), "x");
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  }
  int new_leader = cluster.leader();
  EXPECT_GE(new_leader, 0);
  EXPECT_NE(new_leader, leader);
  auto kvs = c->range("more/", prefix_end("more/"));
  ASSERT_TRUE(kvs.is_ok());
  EXPECT_EQ(kvs->size(), 20u);
}

// Two of three members stopped: calls fail with store_unavailable within about the timeout, the
// watch reports the break and its progress stops; members back: both resume by themselves.
TEST(Client, QuorumLostAndRegained) {
  EtcdCluster cluster;
  auto c = open_client(cluster.endpoints(), 1000ms);  // the watch starts on member 0
  Recorder rec;
  auto start = c->current_revision();
  ASSERT_TRUE(start.is_ok());
  auto w = c->watch("q/", *start + 1, rec.callbacks(), 100ms);
  ASSERT_TRUE(w.is_ok());
  ASSERT_TRUE(eventually([&] { return rec.progress_count() >= 2; }, 5s));

  // Member 0 stays: the watch's member loses its leader rather than its connection.
  cluster.stop(1);
  cluster.stop(2);
  auto t0 = Clock::now();
  auto r = put(*c, "q/lost", "x");
  auto took = Clock::now() - t0;
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().reason(), "store_unavailable");
  EXPECT_NE(r.status().message().find(cluster.endpoint(0)), std::string::npos)
      << r.status().message();
  EXPECT_EQ(r.status().message().find("\"x\""), std::string::npos);
  EXPECT_LT(took, 2500ms) << r.status().to_string();
  std::cout << "write without quorum failed after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
            << " ms: " << r.status().to_string() << "\n";
  auto read = c->range("q/", prefix_end("q/"));
  ASSERT_FALSE(read.is_ok());
  EXPECT_EQ(read.status().reason(), "store_unavailable");

  // etcd ends the require-leader stream once the member notices it has no leader.
  ASSERT_TRUE(eventually([&] { return rec.broken_count() >= 1; }, 8s)) << cluster.logs();
  std::cout << "watch broken: " << rec.broken_reasons();
  // No progress without a quorum (from a little after the stop on).
  auto quiet_from = t0 + 1500ms;
  std::this_thread::sleep_until(std::max(quiet_from, Clock::now()) + 1s);
  for (const auto& p : rec.progress()) EXPECT_LT(p.at, quiet_from) << "progress at " << p.revision;
  size_t broken_before = rec.broken_count();

  cluster.start(1);
  cluster.start(2);
  Status last;
  ASSERT_TRUE(eventually(
      [&] {
        auto r = put(*c, "q/back", "y");
        last = r.status();
        return r.is_ok();
      },
      15s, 100ms))
      << last.to_string() << "\n"
      << cluster.logs();
  size_t progress_before = rec.progress_count();
  ASSERT_TRUE(eventually(
      [&] {
        auto ev = rec.events();
        return !ev.empty() && ev.back().kv.key == "q/back" &&
               rec.progress_count() > progress_before;
      },
      10s))
      << rec.broken_reasons();
  // One on_broken per outage, not one per failed reconnection.
  EXPECT_EQ(rec.broken_count(), broken_before);
  EXPECT_FALSE(rec.progress_backwards());
}

}  // namespace
}  // namespace volguard::etcd::testing
