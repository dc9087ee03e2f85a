// The etcd client's watch against a real 3-member cluster: order from a start revision, progress,
// a killed member, compaction.
#include <set>

#include "etcd/test_util.h"

namespace volguard::etcd::testing {
namespace {

TEST(Watch, DeliversPutsAndDeletesInOrderFromTheStartRevision) {
  EtcdCluster cluster;
  auto c = open_client(cluster.endpoints());
  ASSERT_TRUE(put(*c, "w/old", "before the start").is_ok());
  auto start = c->current_revision();
  ASSERT_TRUE(start.is_ok());

  // History before the watch exists...
  auto a = put(*c, "w/a", "1");
  auto b = put(*c, "w/b", "2");
  ASSERT_TRUE(put(*c, "x/outside", "3").is_ok());
  auto da = del(*c, "w/a");
  // ...a txn with two events at one revision...
  auto t = c->txn({},
                  {Op{.type = Op::Type::kPut, .key = "w/c", .value = "4"},
                   Op{.type = Op::Type::kDelete, .key = "w/b"}},
                  {});
  ASSERT_TRUE(a.is_ok() && b.is_ok() && da.is_ok() && t.is_ok());

  Recorder rec;
  auto w = c->watch("w/", *start + 1, rec.callbacks(), 100ms);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  // ...and live events after it started.
  ASSERT_TRUE(eventually([&] { return rec.event_count() >= 5; }, 5s));
  auto e = put(*c, "w/d", "5");
  auto dd = del(*c, "w/d");
  ASSERT_TRUE(e.is_ok() && dd.is_ok());
  ASSERT_TRUE(eventually([&] { return rec.event_count() >= 7; }, 5s));

  auto ev = rec.events();
  ASSERT_EQ(ev.size(), 7u);
  struct Want {
    bool deleted;
    std::string key;
    std::string value;
    int64_t revision;
  };
  std::vector<Want> want = {{false, "w/a", "1", a->revision}, {false, "w/b", "2", b->revision},
                            {true, "w/a", "", da->revision},  {false, "w/c", "4", t->revision},
                            {true, "w/b", "", t->revision},   {false, "w/d", "5", e->revision},
                            {true, "w/d", "", dd->revision}};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(ev[i].deleted, want[i].deleted) << i;
    EXPECT_EQ(ev[i].kv.key, want[i].key) << i;
    EXPECT_EQ(ev[i].kv.value, want[i].value) << i;
    EXPECT_EQ(ev[i].kv.mod_revision, want[i].revision) << i;
  }
  EXPECT_EQ(ev[0].kv.create_revision, a->revision);
  EXPECT_EQ(ev[0].kv.version, 1);
  EXPECT_FALSE(rec.bad_batch());

  // Progress: at least once per interval, and through the latest revision once quiet (the
  // write outside the prefix moves the store on, not the watch's view).
  ASSERT_TRUE(put(*c, "x/later", "6").is_ok());
  auto now = c->current_revision();
  ASSERT_TRUE(now.is_ok());
  ASSERT_TRUE(eventually([&] { return rec.through() >= *now; }, 5s)) << rec.through();
  size_t n = rec.progress_count();
  std::this_thread::sleep_for(1s);
  EXPECT_GE(rec.progress_count(), n + 3);  // 100 ms interval; generous for a busy machine
  EXPECT_FALSE(rec.progress_backwards());
  EXPECT_EQ(rec.broken_count(), 0u) << rec.broken_reasons();
  EXPECT_EQ(rec.event_count(), 7u);
}

// The member the watch streams from is killed while a writer keeps writing: the watch moves to
// another member and goes on from where it was, no event lost or repeated.
TEST(Watch, SurvivesItsMemberBeingKilled) {
  EtcdCluster cluster;
  auto watcher = open_client(cluster.endpoints_from(0));  // the watch starts on member 0
  auto writer = open_client(cluster.endpoints_from(1));   // the writer never needs member 0
  auto start = writer->current_revision();
  ASSERT_TRUE(start.is_ok());
  Recorder rec;
  auto w = watcher->watch("s/", *start + 1, rec.callbacks(), 100ms);
  ASSERT_TRUE(w.is_ok());

  std::mutex mu;
  std::vector<int64_t> written;  // revisions of the writes that succeeded
  std::atomic<bool> stop{false};
  std::atomic<int> failed{0};
  std::thread write_loop([&] {
    for (int i = 0; !stop; ++i) {
      auto r = put(*writer, "s/" + std::to_string(i % 50), std::to_string(i));
      if (r.is_ok()) {
        std::lock_guard lock(mu);
        written.push_back(r->revision);
      } else {
        ++failed;  // may or may not have been applied: the watch may report it or not
      }
      std::this_thread::sleep_for(5ms);
    }
  });
  auto written_count = [&] {
    std::lock_guard lock(mu);
    return written.size();
  };
  ASSERT_TRUE(eventually([&] { return rec.event_count() >= 30; }, 5s));
  cluster.kill(0);
  ASSERT_TRUE(eventually([&] { return rec.broken_count() >= 1; }, 5s));
  size_t at_kill = written_count();
  ASSERT_TRUE(eventually([&] { return written_count() >= at_kill + 60; }, 10s));
  stop = true;
  write_loop.join();
  int64_t last;
  {
    std::lock_guard lock(mu);
    last = written.back();
  }
  ASSERT_TRUE(eventually([&] { return rec.through() >= last; }, 10s))
      << "through " << rec.through() << " want " << last << "\n"
      << rec.broken_reasons();

  auto ev = rec.events();
  std::set<int64_t> seen;
  for (size_t i = 0; i < ev.size(); ++i) {
    EXPECT_TRUE(seen.insert(ev[i].kv.mod_revision).second) << "duplicate " << ev[i].kv.mod_revision;
    if (i > 0) {
      EXPECT_GT(ev[i].kv.mod_revision, ev[i - 1].kv.mod_revision);
    }
  }
  std::lock_guard lock(mu);
  for (int64_t r : written) EXPECT_TRUE(seen.count(r)) << "lost the event of revision " << r;
  // Only the ambiguous writes may add events beyond the known ones.
  EXPECT_LE(seen.size(), written.size() + failed.load());
  std::cout << written.size() << " writes, " << failed.load() << " failed, " << ev.size()
            << " events; broken: " << rec.broken_reasons();
}

TEST(Watch, ReportsACompactedStartRevisionAndGoesOn) {
  EtcdCluster cluster(1);
  auto c = open_client(cluster.endpoints());
  auto first = put(*c, "c/a", "1");
  ASSERT_TRUE(first.is_ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(put(*c, "c/a", std::to_string(i)).is_ok());
  auto now = c->current_revision();
  ASSERT_TRUE(now.is_ok());
  cluster.post("/v3/kv/compaction",
               "{\"revision\":\"" + std::to_string(*now) + "\",\"physical\":true}");

  Recorder rec;
  auto w = c->watch("c/", first->revision, rec.callbacks(), 100ms);
  ASSERT_TRUE(w.is_ok());
  ASSERT_TRUE(eventually([&] { return !rec.compacted().empty(); }, 5s));
  EXPECT_EQ(rec.compacted().front(), *now);
  auto after = put(*c, "c/b", "new");
  ASSERT_TRUE(after.is_ok());
  ASSERT_TRUE(eventually([&] { return rec.event_count() >= 1; }, 5s));
  auto ev = rec.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kv.key, "c/b");
  EXPECT_EQ(ev[0].kv.mod_revision, after->revision);
  EXPECT_EQ(rec.broken_count(), 0u) << rec.broken_reasons();
}

// A watch whose cluster is unreachable still stops at once when destroyed.
TEST(Watch, StopsPromptlyWhenDestroyed) {
  auto c = open_client({"127.0.0.1:1"}, 2000ms);
  Recorder rec;
  auto w = c->watch("p/", 1, rec.callbacks(), 100ms);
  ASSERT_TRUE(w.is_ok());
  ASSERT_TRUE(eventually([&] { return rec.broken_count() >= 1; }, 5s));
  auto t0 = Clock::now();
  w->reset();
  EXPECT_LT(Clock::now() - t0, 500ms);
  EXPECT_EQ(rec.broken_count(), 1u);  // once per outage
}

}  // namespace
}  // namespace volguard::etcd::testing
