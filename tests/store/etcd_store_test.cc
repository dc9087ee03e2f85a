// The etcd MetadataStore (src/store/etcd_store.cc) against a real 3-member etcd cluster
// (tests/etcd/etcd_cluster.h), refusals first: every losing write is checked for its code, its
// reason, and for having changed nothing. Two store instances on one cluster stand for two
// volguard nodes. One cluster per test process, started from the main thread; every test writes
// under a key prefix of its own.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/hex.h"
#include "etcd/etcd_cluster.h"
#include "store/store.h"

namespace volguard::store {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using ownership::Access;
using volguard::testing::EtcdCluster;

// Polls `pred` until it holds or `timeout` passes; true when it held.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds every = 20ms) {
  const auto until = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(every);
  }
}

long long ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// `s` is the refusal wanted: code, reason, and a message naming each of `mentions`.
::testing::AssertionResult Refused(const Status& s, Code code, const std::string& reason,
                                   const std::vector<std::string>& mentions = {}) {
  if (s.code() != code || s.reason() != reason) {
    return ::testing::AssertionFailure()
           << "got " << s.to_string() << "; want " << code_name(code) << " " << reason;
  }
  for (const auto& m : mentions) {
    if (s.message().find(m) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "the message '" << s.message() << "' does not mention " << m;
    }
  }
  return ::testing::AssertionSuccess();
}

VolumeRecord full_volume() {
  VolumeRecord v;
  v.id = "vol-0001";
  v.name = "pg-data";
  v.size_bytes = std::numeric_limits<uint64_t>::max();  // beyond int64: must still round-trip
  v.fs = "xfs";
  v.labels = {{"app", "postgres"}, {"tier", "gold"}, {"empty", ""}, {"ünï", "cödé \"q\""}};
  v.ownership.owner = "https://idp.example/alice";
  v.ownership.groups = {{"test.local/eng", Access::kWrite}, {"*", Access::kRead}};
  v.ownership.collaborators = {{"https://idp.example/bob", Access::kAdmin}};
  v.ownership.public_access = Access::kRead;
  v.state = RecordState::kReady;
  v.source_volume = "vol-parent";
  v.source_snapshot = "snap-parent";
  v.created_at = 1'900'000'123;
  v.charged_groups = {"test.local/eng", "https://idp.example/ops%2Fsre"};
  v.charged_guest = true;
  v.attached_node = "csi-node-7";
  v.home_node = "node-b";
  v.encryption = "fscrypt";
  v.data_key = {.key_name = "tenant-a", .kek_id = "local:0123456789abcdef",
                .blob = std::string("\x01\x00\xff wrapped \n\"", 14)};
  return v;
}

SnapshotRecord full_snapshot() {
  SnapshotRecord s;
  s.id = "snap-0001";
  s.name = "pg-data-nightly";
  s.volume_id = "vol-0001";
  s.size_bytes = 42ull << 30;
  s.ownership.owner = "https://idp.example/alice";
  s.ownership.groups = {{"test.local/ops", Access::kRead}};
  s.ownership.collaborators = {{"*", Access::kWrite}};
  s.ownership.public_access = Access::kNone;
  s.state = RecordState::kDeleting;
  s.created_at = 1'900'000'456;
  s.home_node = "node-b";
  s.encryption = "fscrypt";
  s.data_key = {.key_name = "tenant-a", .kek_id = "kms:key-2", .blob = std::string("\x00\x01\x02\xfe", 4)};
  return s;
}

VolumeRecord volume(const std::string& id, const std::string& name) {
  VolumeRecord v;
  v.id = id;
  v.name = name;
  v.size_bytes = 1 << 20;
  v.created_at = 100;
  return v;
}

SnapshotRecord snapshot(const std::string& id, const std::string& name) {
  SnapshotRecord s;
  s.id = id;
  s.name = name;
  s.volume_id = "vol-x";
  s.created_at = 100;
  return s;
}

// Every Change a watch delivered, for the test thread to look at.
class Changes {
 public:
  ChangeHandler handler() {
    return [this](const Change& c) {
      std::lock_guard lock(mu_);
      all_.push_back(c);
    };
  }
  std::vector<Change> all() const {
    std::lock_guard lock(mu_);
    return all_;
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return all_.size();
  }
  // The changes of one kind.
  std::vector<Change> of(Change::Kind kind) const {
    std::vector<Change> out;
    for (const auto& c : all()) {
      if (c.kind == kind) out.push_back(c);
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Change> all_;
};

const char* kind_name(Change::Kind k) {
  switch (k) {
    case Change::Kind::kVolume:
      return "volume";
    case Change::Kind::kSnapshot:
      return "snapshot";
    case Change::Kind::kRole:
      return "role";
    case Change::Kind::kQuota:
      return "quota";
    case Change::Kind::kNode:
      return "node";
    case Change::Kind::kRevocation:
      return "revocation";
  }
  return "?";
}

std::string describe(const std::vector<Change>& changes) {
  std::string out;
  for (const auto& c : changes) {
    out += std::string(kind_name(c.kind)) + " " + c.key + (c.deleted ? " deleted" : " put") + " @" +
           std::to_string(c.revision) + "\n";
  }
  return out;
}

class EtcdStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      cluster_ = new EtcdCluster(3);
    } catch (const std::exception& e) {
      cluster_error_ = e.what();
    }
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr) << cluster_error_;
    restore_members();
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    prefix_ = std::string("/vgtest/") + info->name();
  }
  void TearDown() override {
    if (cluster_ != nullptr) restore_members();  // a test that failed mid-outage
  }

  // Every member running and healthy (a test that killed some brings them back).
  static void restore_members() {
    for (int i = 0; i < cluster_->size(); ++i) {
      if (!cluster_->running(i)) cluster_->start(i);
    }
    ASSERT_TRUE(cluster_->wait_healthy(30s)) << cluster_->logs();
  }

  EtcdStoreOptions options(int first_member = 0) const {
    EtcdStoreOptions o;
    o.endpoints = cluster_->endpoints_from(first_member);
    o.prefix = prefix_;
    o.timeout = 1000ms;
    o.stale_after = 1000ms;
    o.node_ttl = 1s;
    return o;
  }

  // A store instance: a node of its own (its own client, channels, watch and lease).
  std::unique_ptr<MetadataStore> open(int first_member = 0) { return open(options(first_member)); }
  std::unique_ptr<MetadataStore> open(const EtcdStoreOptions& o) {
    auto r = open_etcd_store(o);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? std::move(r).value() : nullptr;
  }

  static std::vector<VolumeRecord> volumes(MetadataStore& s) {
    auto r = s.list_volumes();
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : std::vector<VolumeRecord>{};
  }
  static std::vector<SnapshotRecord> snapshots(MetadataStore& s) {
    auto r = s.list_snapshots();
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : std::vector<SnapshotRecord>{};
  }
  static std::vector<RoleRecord> roles(MetadataStore& s) {
    auto r = s.list_roles();
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : std::vector<RoleRecord>{};
  }
  static std::vector<QuotaRecord> quotas(MetadataStore& s) {
    auto r = s.list_quotas();
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    auto out = r.is_ok() ? *r : std::vector<QuotaRecord>{};
    std::sort(out.begin(), out.end(), [](const QuotaRecord& a, const QuotaRecord& b) {
      return std::pair(static_cast<int>(a.kind), a.name) <
             std::pair(static_cast<int>(b.kind), b.name);
    });
    return out;
  }
  static std::vector<NodeRecord> nodes(MetadataStore& s) {
    auto r = s.list_nodes();
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    auto out = r.is_ok() ? *r : std::vector<NodeRecord>{};
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
  }
  // Creates of temporaries (the store sets the revision on the record it is given).
  static Status create(MetadataStore& s, VolumeRecord v) { return s.create_volume(v); }
  static Status create(MetadataStore& s, SnapshotRecord sn) { return s.create_snapshot(sn); }

  static EtcdCluster* cluster_;
  static std::string cluster_error_;
  std::string prefix_;
};

EtcdCluster* EtcdStoreTest::cluster_ = nullptr;
std::string EtcdStoreTest::cluster_error_;

// ---- create

TEST_F(EtcdStoreTest, CreateRefusesATakenVolumeNameOrIdAndClaimsNothing) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  VolumeRecord first = volume("vol-1", "data");
  ASSERT_TRUE(store->create_volume(first).is_ok());

  VolumeRecord same_name = volume("vol-2", "data");
  same_name.size_bytes = 7;
  EXPECT_TRUE(
      Refused(store->create_volume(same_name), Code::kAlreadyExists, "name_taken", {"'data'"}));
  EXPECT_EQ(same_name.revision, 0) << "a refused create sets no revision";
  VolumeRecord same_id = volume("vol-1", "other");
  EXPECT_TRUE(
      Refused(store->create_volume(same_id), Code::kAlreadyExists, "name_taken", {"'vol-1'"}));
  EXPECT_EQ(volumes(*store), std::vector<VolumeRecord>{first});

  // The losers claimed nothing: the id of the first and the name of the second are free.
  EXPECT_TRUE(create(*store, volume("vol-2", "free-a")).is_ok());
  EXPECT_TRUE(create(*store, volume("vol-3", "other")).is_ok());
  // Volumes and snapshots have separate namespaces.
  EXPECT_TRUE(create(*store, snapshot("vol-1", "data")).is_ok());
}

TEST_F(EtcdStoreTest, CreateRefusesATakenSnapshotNameOrIdAndClaimsNothing) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  SnapshotRecord first = snapshot("snap-1", "nightly");
  ASSERT_TRUE(store->create_snapshot(first).is_ok());
  EXPECT_TRUE(Refused(create(*store, snapshot("snap-2", "nightly")), Code::kAlreadyExists,
                      "name_taken", {"'nightly'"}));
  EXPECT_TRUE(Refused(create(*store, snapshot("snap-1", "weekly")), Code::kAlreadyExists,
                      "name_taken", {"'snap-1'"}));
  EXPECT_EQ(snapshots(*store), std::vector<SnapshotRecord>{first});
  EXPECT_TRUE(create(*store, snapshot("snap-2", "free")).is_ok());
  EXPECT_TRUE(create(*store, snapshot("snap-3", "weekly")).is_ok());
}

TEST_F(EtcdStoreTest, CreateSetsTheRevisionAndListsRoundTripEveryField) {
  auto store = open();
  auto other = open(1);  // another node reads what this one wrote
  ASSERT_NE(store, nullptr);
  ASSERT_NE(other, nullptr);
  VolumeRecord full = full_volume();
  VolumeRecord plain = volume("vol-0002", "scratch");  // defaults, unowned
  ASSERT_TRUE(store->create_volume(full).is_ok());
  ASSERT_TRUE(store->create_volume(plain).is_ok());
  EXPECT_GT(full.revision, 0);
  EXPECT_GT(plain.revision, full.revision);
  EXPECT_GE(store->seen_revision(), plain.revision);
  SnapshotRecord snap = full_snapshot();
  ASSERT_TRUE(store->create_snapshot(snap).is_ok());
  EXPECT_GT(snap.revision, plain.revision);

  auto got = volumes(*other);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], full);  // every field, the revision included
  EXPECT_EQ(got[1], plain);
  EXPECT_EQ(got[1].fs, "ext4");
  EXPECT_TRUE(got[1].ownership.owner.empty());
  EXPECT_TRUE(got[1].home_node.empty());
  EXPECT_EQ(snapshots(*other), std::vector<SnapshotRecord>{snap});
  auto now = other->current_revision();
  ASSERT_TRUE(now.is_ok()) << now.status().to_string();
  EXPECT_GE(*now, snap.revision);
}

// Two nodes create the same name at the same moment, 40 times: one wins each round, the other
// is told the name is taken and leaves nothing behind.
TEST_F(EtcdStoreTest, ConcurrentCreatesOfOneNameOnTwoNodesHaveExactlyOneWinner) {
  auto a = open(0);
  auto b = open(1);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  constexpr int kRounds = 40;
  std::vector<Status> result_a(kRounds), result_b(kRounds);
  std::vector<Revision> rev_a(kRounds), rev_b(kRounds);
  std::barrier<> sync(2);
  auto racer = [&](MetadataStore* s, const char* tag, std::vector<Status>* results,
                   std::vector<Revision>* revs) {
    for (int r = 0; r < kRounds; ++r) {
      VolumeRecord v =
          volume(std::string(tag) + "-" + std::to_string(r), "race-" + std::to_string(r));
      v.labels["by"] = tag;
      sync.arrive_and_wait();
      (*results)[r] = s->create_volume(v);
      (*revs)[r] = v.revision;
    }
  };
  std::thread ta(racer, a.get(), "a", &result_a, &rev_a);
  std::thread tb(racer, b.get(), "b", &result_b, &rev_b);
  ta.join();
  tb.join();

  std::map<std::string, VolumeRecord> stored;
  for (auto& v : volumes(*a)) stored[v.name] = v;
  ASSERT_EQ(stored.size(), static_cast<size_t>(kRounds));
  int a_wins = 0;
  for (int r = 0; r < kRounds; ++r) {
    SCOPED_TRACE("round " + std::to_string(r));
    const bool a_won = result_a[r].is_ok();
    ASSERT_NE(a_won, result_b[r].is_ok())
        << result_a[r].to_string() << " / " << result_b[r].to_string();
    a_wins += a_won;
    const Status& lost = a_won ? result_b[r] : result_a[r];
    const std::string name = "race-" + std::to_string(r);
    EXPECT_TRUE(Refused(lost, Code::kAlreadyExists, "name_taken", {"'" + name + "'"}));
    const std::string winner = a_won ? "a" : "b", loser = a_won ? "b" : "a";
    const VolumeRecord& v = stored[name];
    EXPECT_EQ(v.id, winner + "-" + std::to_string(r));
    EXPECT_EQ(v.labels.at("by"), winner);
    EXPECT_EQ(v.revision, a_won ? rev_a[r] : rev_b[r]);
    // The loser's id was not claimed.
    EXPECT_TRUE(
        create(*b, volume(loser + "-" + std::to_string(r), "free-" + std::to_string(r))).is_ok());
  }
  std::cout << "node a won " << a_wins << " of " << kRounds << " rounds\n";
}

// ---- update

TEST_F(EtcdStoreTest, UpdateFromAStaleReadIsARevisionConflictAndChangesNothing) {
  auto a = open(0);
  auto b = open(1);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  VolumeRecord v = volume("vol-1", "data");
  ASSERT_TRUE(a->create_volume(v).is_ok());
  // Both nodes read the record at the same revision.
  VolumeRecord on_a = volumes(*a).at(0), on_b = volumes(*b).at(0);
  ASSERT_EQ(on_a.revision, v.revision);
  ASSERT_EQ(on_b.revision, v.revision);
  on_a.labels["by"] = "a";
  ASSERT_TRUE(a->update_volume(on_a).is_ok());
  EXPECT_GT(on_a.revision, v.revision);
  on_b.labels["by"] = "b";
  on_b.name = "renamed-by-b";  // a losing rename claims nothing either
  const Revision read_at = on_b.revision;
  EXPECT_TRUE(Refused(b->update_volume(on_b), Code::kAborted, "revision_conflict",
                      {"'vol-1'", std::to_string(on_a.revision), std::to_string(read_at)}));
  EXPECT_EQ(on_b.revision, read_at) << "a refused update leaves the caller's revision";
  EXPECT_EQ(volumes(*b), std::vector<VolumeRecord>{on_a});
  EXPECT_TRUE(create(*b, volume("vol-2", "renamed-by-b")).is_ok());

  // Snapshots alike.
  SnapshotRecord s = snapshot("snap-1", "nightly");
  ASSERT_TRUE(a->create_snapshot(s).is_ok());
  SnapshotRecord s_a = snapshots(*a).at(0), s_b = snapshots(*b).at(0);
  s_a.size_bytes = 1;
  ASSERT_TRUE(a->update_snapshot(s_a).is_ok());
  s_b.size_bytes = 2;
  EXPECT_TRUE(Refused(b->update_snapshot(s_b), Code::kAborted, "revision_conflict", {"'snap-1'"}));
  EXPECT_EQ(snapshots(*b), std::vector<SnapshotRecord>{s_a});
}

// Two nodes update the record they both read, at the same moment: exactly one wins.
TEST_F(EtcdStoreTest, ConcurrentUpdatesOfOneReadOnTwoNodesHaveExactlyOneWinner) {
  auto a = open(0);
  auto b = open(1);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  VolumeRecord v = volume("vol-1", "data");
  ASSERT_TRUE(a->create_volume(v).is_ok());
  constexpr int kRounds = 20;
  for (int r = 0; r < kRounds; ++r) {
    SCOPED_TRACE("round " + std::to_string(r));
    VolumeRecord on_a = volumes(*a).at(0), on_b = volumes(*b).at(0);
    ASSERT_EQ(on_a.revision, on_b.revision);
    const Revision read_at = on_a.revision;
    on_a.labels["by"] = "a";
    on_a.size_bytes = 1000 + r;
    on_b.labels["by"] = "b";
    on_b.size_bytes = 2000 + r;
    Status sa, sb;
    std::barrier<> sync(2);
    std::thread ta([&] {
      sync.arrive_and_wait();
      sa = a->update_volume(on_a);
    });
    std::thread tb([&] {
      sync.arrive_and_wait();
      sb = b->update_volume(on_b);
    });
    ta.join();
    tb.join();
    ASSERT_NE(sa.is_ok(), sb.is_ok()) << sa.to_string() << " / " << sb.to_string();
    EXPECT_TRUE(Refused(sa.is_ok() ? sb : sa, Code::kAborted, "revision_conflict"));
    const VolumeRecord& won = sa.is_ok() ? on_a : on_b;
    EXPECT_GT(won.revision, read_at);
    EXPECT_EQ(volumes(*a), std::vector<VolumeRecord>{won});
  }
}

TEST_F(EtcdStoreTest, UpdateOfAMissingRecordIsNotFoundAndCreatesNothing) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(create(*store, volume("vol-1", "data")).is_ok());
  ASSERT_TRUE(create(*store, snapshot("snap-1", "nightly")).is_ok());
  // At revision 0 (never read) and at a revision it never had.
  for (Revision r : {Revision{0}, Revision{3}}) {
    SCOPED_TRACE("revision " + std::to_string(r));
    VolumeRecord v = volume("vol-missing", "ghost");
    v.revision = r;
    EXPECT_TRUE(Refused(store->update_volume(v), Code::kNotFound, "not_found", {"'vol-missing'"}));
    SnapshotRecord s = snapshot("snap-missing", "ghost");
    s.revision = r;
    EXPECT_TRUE(
        Refused(store->update_snapshot(s), Code::kNotFound, "not_found", {"'snap-missing'"}));
  }
  ASSERT_EQ(volumes(*store).size(), 1u);
  ASSERT_EQ(snapshots(*store).size(), 1u);
  EXPECT_TRUE(create(*store, volume("vol-missing", "ghost")).is_ok()) << "nothing was claimed";
  EXPECT_TRUE(create(*store, snapshot("snap-missing", "ghost")).is_ok()) << "nothing was claimed";
}

TEST_F(EtcdStoreTest, RenameToATakenNameIsRefusedAndKeepsBothNamesClaimed) {
  auto store = open();
  auto other = open(1);
  ASSERT_NE(store, nullptr);
  ASSERT_NE(other, nullptr);
  VolumeRecord a = volume("vol-a", "alpha"), b = volume("vol-b", "beta");
  ASSERT_TRUE(store->create_volume(a).is_ok());
  ASSERT_TRUE(store->create_volume(b).is_ok());
  VolumeRecord renamed = b;
  renamed.name = "alpha";
  renamed.size_bytes = 99;
  EXPECT_TRUE(
      Refused(other->update_volume(renamed), Code::kAlreadyExists, "name_taken", {"'alpha'"}));
  EXPECT_EQ(renamed.revision, b.revision);
  EXPECT_EQ(volumes(*store), (std::vector<VolumeRecord>{a, b}));
  // Both names stay claimed, each by its own record.
  EXPECT_TRUE(Refused(create(*store, volume("vol-c", "beta")), Code::kAlreadyExists, "name_taken",
                      {"'beta'"}));
  EXPECT_TRUE(Refused(create(*store, volume("vol-c", "alpha")), Code::kAlreadyExists, "name_taken",
                      {"'alpha'"}));
  EXPECT_EQ(volumes(*store).size(), 2u);
}

TEST_F(EtcdStoreTest, RenameFreesTheOldNameAndClaimsTheNewOne) {
  auto store = open();
  auto other = open(1);
  ASSERT_NE(store, nullptr);
  ASSERT_NE(other, nullptr);
  VolumeRecord v = volume("vol-a", "alpha");
  ASSERT_TRUE(store->create_volume(v).is_ok());
  const Revision before = v.revision;
  v.name = "gamma";
  ASSERT_TRUE(store->update_volume(v).is_ok());
  EXPECT_GT(v.revision, before);
  EXPECT_EQ(volumes(*other), std::vector<VolumeRecord>{v});
  EXPECT_TRUE(Refused(create(*other, volume("vol-b", "gamma")), Code::kAlreadyExists, "name_taken",
                      {"'gamma'"}));
  VolumeRecord reuse = volume("vol-c", "alpha");
  EXPECT_TRUE(other->create_volume(reuse).is_ok()) << "the old name is free again";
  // An update that keeps the name is not a rename of the record onto its own name.
  v.size_bytes = 5;
  EXPECT_TRUE(store->update_volume(v).is_ok());
  // The freed name now belongs to the new record: deleting it frees the name, not the renamed
  // one's.
  ASSERT_TRUE(other->delete_volume(reuse).is_ok());
  EXPECT_TRUE(
      Refused(create(*other, volume("vol-d", "gamma")), Code::kAlreadyExists, "name_taken"));
}

// A snapshot's name is unique as a volume's: an update may not take another's.
TEST_F(EtcdStoreTest, SnapshotUpdateToATakenNameIsRefused) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  SnapshotRecord sa = snapshot("snap-a", "alpha"), sb = snapshot("snap-b", "beta");
  ASSERT_TRUE(store->create_snapshot(sa).is_ok());
  ASSERT_TRUE(store->create_snapshot(sb).is_ok());
  SnapshotRecord renamed = sb;
  renamed.name = "alpha";
  EXPECT_TRUE(
      Refused(store->update_snapshot(renamed), Code::kAlreadyExists, "name_taken", {"'alpha'"}));
  EXPECT_EQ(snapshots(*store), (std::vector<SnapshotRecord>{sa, sb}));
  // A rename to a free name moves the claim.
  renamed.name = "gamma";
  ASSERT_TRUE(store->update_snapshot(renamed).is_ok());
  EXPECT_TRUE(create(*store, snapshot("snap-c", "beta")).is_ok());
  EXPECT_TRUE(
      Refused(create(*store, snapshot("snap-d", "gamma")), Code::kAlreadyExists, "name_taken"));
}

// ---- delete

TEST_F(EtcdStoreTest, DeleteFromAStaleReadIsARevisionConflictAndKeepsTheRecord) {
  auto a = open(0);
  auto b = open(1);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  VolumeRecord v = volume("vol-1", "data");
  ASSERT_TRUE(a->create_volume(v).is_ok());
  VolumeRecord stale = volumes(*b).at(0);
  v.labels["k"] = "v";
  ASSERT_TRUE(a->update_volume(v).is_ok());
  EXPECT_TRUE(Refused(b->delete_volume(stale), Code::kAborted, "revision_conflict", {"'vol-1'"}));
  EXPECT_EQ(volumes(*a), std::vector<VolumeRecord>{v});
  EXPECT_TRUE(Refused(create(*a, volume("vol-2", "data")), Code::kAlreadyExists, "name_taken"))
      << "the name stays claimed";

  SnapshotRecord s = snapshot("snap-1", "nightly");
  ASSERT_TRUE(a->create_snapshot(s).is_ok());
  SnapshotRecord s_stale = s;
  s.size_bytes = 3;
  ASSERT_TRUE(a->update_snapshot(s).is_ok());
  EXPECT_TRUE(
      Refused(b->delete_snapshot(s_stale), Code::kAborted, "revision_conflict", {"'snap-1'"}));
  EXPECT_EQ(snapshots(*a), std::vector<SnapshotRecord>{s});
  EXPECT_TRUE(
      Refused(create(*a, snapshot("snap-2", "nightly")), Code::kAlreadyExists, "name_taken"));
}

TEST_F(EtcdStoreTest, DeleteOfAMissingRecordIsNotFoundAndFreesNoName) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  VolumeRecord kept = volume("vol-1", "data");
  SnapshotRecord kept_snap = snapshot("snap-1", "nightly");
  ASSERT_TRUE(store->create_volume(kept).is_ok());
  ASSERT_TRUE(store->create_snapshot(kept_snap).is_ok());
  // Missing records that name the existing records' names: at revision 0 (never read) and at
  // one they never had.
  for (Revision r : {Revision{0}, Revision{3}}) {
    SCOPED_TRACE("revision " + std::to_string(r));
    VolumeRecord v = volume("vol-missing", "data");
    v.revision = r;
    EXPECT_TRUE(Refused(store->delete_volume(v), Code::kNotFound, "not_found", {"'vol-missing'"}));
    SnapshotRecord s = snapshot("snap-missing", "nightly");
    s.revision = r;
    EXPECT_TRUE(
        Refused(store->delete_snapshot(s), Code::kNotFound, "not_found", {"'snap-missing'"}));
  }
  EXPECT_EQ(volumes(*store), std::vector<VolumeRecord>{kept});
  EXPECT_EQ(snapshots(*store), std::vector<SnapshotRecord>{kept_snap});
  // Their names are still claimed.
  EXPECT_TRUE(Refused(create(*store, volume("vol-2", "data")), Code::kAlreadyExists, "name_taken"));
  EXPECT_TRUE(
      Refused(create(*store, snapshot("snap-2", "nightly")), Code::kAlreadyExists, "name_taken"));
}

TEST_F(EtcdStoreTest, DeleteFreesTheNameAndASecondDeleteIsNotFound) {
  auto a = open(0);
  auto b = open(1);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  VolumeRecord v = volume("vol-1", "data");
  ASSERT_TRUE(a->create_volume(v).is_ok());
  ASSERT_TRUE(a->delete_volume(v).is_ok());
  EXPECT_GT(a->seen_revision(), v.revision);
  EXPECT_TRUE(Refused(b->delete_volume(v), Code::kNotFound, "not_found", {"'vol-1'"}));
  EXPECT_TRUE(volumes(*b).empty());
  EXPECT_TRUE(create(*b, volume("vol-2", "data")).is_ok()) << "the name is free";
  EXPECT_TRUE(create(*b, volume("vol-1", "other")).is_ok()) << "so is the id";

  SnapshotRecord s = snapshot("snap-1", "nightly");
  ASSERT_TRUE(a->create_snapshot(s).is_ok());
  ASSERT_TRUE(a->delete_snapshot(s).is_ok());
  EXPECT_TRUE(Refused(b->delete_snapshot(s), Code::kNotFound, "not_found", {"'snap-1'"}));
  EXPECT_TRUE(snapshots(*b).empty());
  EXPECT_TRUE(create(*b, snapshot("snap-2", "nightly")).is_ok());
}

// ---- roles and quotas

TEST_F(EtcdStoreTest, RolesCreateRefusesAnExistingRoleUpsertReplacesDeleteOfMissingIsNotFound) {
  auto a = open(0);
  auto b = open(1);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->put_role({"ops.viewer", "{}"}, PutMode::kCreate).is_ok());
  EXPECT_TRUE(Refused(b->put_role({"ops.viewer", R"({"x":1})"}, PutMode::kCreate),
                      Code::kAlreadyExists, "role_exists", {"ops.viewer"}));
  EXPECT_EQ(roles(*a), (std::vector<RoleRecord>{{"ops.viewer", "{}"}}));
  ASSERT_TRUE(b->put_role({"ops.viewer", R"({"x":1})"}, PutMode::kUpsert).is_ok());
  ASSERT_TRUE(b->put_role({"ops.admin", R"({"y":2})"}, PutMode::kUpsert).is_ok());
  EXPECT_EQ(roles(*a),
            (std::vector<RoleRecord>{{"ops.admin", R"({"y":2})"}, {"ops.viewer", R"({"x":1})"}}));
  ASSERT_TRUE(a->delete_role("ops.admin").is_ok());
  EXPECT_TRUE(Refused(b->delete_role("ops.admin"), Code::kNotFound, "not_found", {"ops.admin"}));
  EXPECT_TRUE(Refused(b->delete_role("never"), Code::kNotFound, "not_found", {"never"}));
  EXPECT_EQ(roles(*b), (std::vector<RoleRecord>{{"ops.viewer", R"({"x":1})"}}));
  // A deleted role may be created again.
  EXPECT_TRUE(a->put_role({"ops.admin", "{}"}, PutMode::kCreate).is_ok());
}

TEST_F(EtcdStoreTest, QuotasUpsertListDelete) {
  auto a = open(0);
  auto b = open(1);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(quotas(*a).empty());
  const QuotaRecord user{QuotaKind::kUser, "https://idp.example/alice", 10 << 20, 3, 4};
  const QuotaRecord group{QuotaKind::kGroup, "test.local/eng", std::numeric_limits<uint64_t>::max(),
                          0, 9};
  const QuotaRecord guest{QuotaKind::kGuest, "", 1, 1, 0};
  for (const auto& q : {user, group, guest}) ASSERT_TRUE(a->put_quota(q).is_ok());
  EXPECT_EQ(quotas(*b), (std::vector<QuotaRecord>{user, group, guest}));
  QuotaRecord user2 = user;
  user2.max_volumes = 30;
  ASSERT_TRUE(b->put_quota(user2).is_ok());
  EXPECT_EQ(quotas(*a), (std::vector<QuotaRecord>{user2, group, guest}));
  ASSERT_TRUE(a->delete_quota(QuotaKind::kGroup, "test.local/eng").is_ok());
  EXPECT_TRUE(Refused(b->delete_quota(QuotaKind::kGroup, "test.local/eng"), Code::kNotFound,
                      "not_found", {"group quota", "test.local/eng"}));
  // The same name of another kind is another quota.
  EXPECT_TRUE(Refused(b->delete_quota(QuotaKind::kGroup, "https://idp.example/alice"),
                      Code::kNotFound, "not_found"));
  EXPECT_EQ(quotas(*b), (std::vector<QuotaRecord>{user2, guest}));
  ASSERT_TRUE(b->delete_quota(QuotaKind::kGuest, "").is_ok());
  EXPECT_EQ(quotas(*a), (std::vector<QuotaRecord>{user2}));
}

TEST_F(EtcdStoreTest, RevocationsUpsertListDelete) {
  auto a = open(0);
  auto b = open(1);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto list = [](MetadataStore& s) {
    auto r = s.list_revocations();
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : std::vector<RevocationRecord>{};
  };
  EXPECT_TRUE(list(*a).empty());
  const RevocationRecord jti{.kind = RevocationKind::kToken, .issuer = "https://idp.example/a/b",
                             .subject = "id/with\nodd\0bytes", .expires_at = 2'000'000'000,
                             .created_at = 1'900'000'000, .by = "test.local/admin"};
  const RevocationRecord any{.kind = RevocationKind::kToken, .issuer = "", .subject = "id/with\nodd\0bytes",
                             .created_at = 1'900'000'001, .by = "test.local/admin"};
  const RevocationRecord user{.kind = RevocationKind::kUser, .subject = "test.local/eu%2Falice",
                              .before = 1'900'000'100, .created_at = 1'900'000'002, .by = "x"};
  for (const auto& r : {jti, any, user}) ASSERT_TRUE(a->put_revocation(r).is_ok());
  EXPECT_EQ(list(*b), (std::vector<RevocationRecord>{jti, any, user})) << "the issuer keeps them apart";
  RevocationRecord later = user;
  later.before = 1'900'000'200;
  ASSERT_TRUE(b->put_revocation(later).is_ok());
  EXPECT_EQ(list(*a), (std::vector<RevocationRecord>{jti, any, later}));
  ASSERT_TRUE(a->delete_revocation(any).is_ok());
  EXPECT_TRUE(Refused(b->delete_revocation(any), Code::kNotFound, "not_found"));
  EXPECT_EQ(list(*b), (std::vector<RevocationRecord>{jti, later}));
}

// ---- nodes

TEST_F(EtcdStoreTest, NodesAreAliveWhileTheirStoreIsOpen) {
  auto a = open(0);
  auto b = open(1);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const NodeRecord node_a{.name = "node-a",
                          .grpc_address = "127.0.0.1:7001",
                          .rest_address = "127.0.0.1:8001",
                          .started_at = 111,
                          .version = "1.2.3"};
  const NodeRecord node_b{.name = "node-b",
                          .grpc_address = "127.0.0.1:7002",
                          .rest_address = "127.0.0.1:8002",
                          .started_at = 222,
                          .version = "1.2.4"};
  ASSERT_TRUE(a->register_node(node_a).is_ok());
  ASSERT_TRUE(b->register_node(node_b).is_ok());
  NodeRecord alive_a = node_a, alive_b = node_b;
  alive_a.alive = alive_b.alive = true;
  EXPECT_EQ(nodes(*a), (std::vector<NodeRecord>{alive_a, alive_b}));
  EXPECT_EQ(nodes(*b), (std::vector<NodeRecord>{alive_a, alive_b}));

  // Node b goes away: still registered, no longer alive, within its lease ttl (+1 s).
  const auto ttl = options().node_ttl;
  b.reset();
  const auto gone = Clock::now();
  NodeRecord dead_b = node_b;
  dead_b.alive = false;
  ASSERT_TRUE(eventually(
      [&] {
        return nodes(*a) == std::vector<NodeRecord>{alive_a, dead_b};
      },
      std::chrono::duration_cast<std::chrono::milliseconds>(ttl) + 1000ms))
      << ::testing::PrintToString(nodes(*a).size());
  std::cout << "node b shown dead " << ms_since(gone) << " ms after its store closed\n";

  // Registering again (a restart) makes it alive again, with the new registration.
  auto b2 = open(2);
  ASSERT_NE(b2, nullptr);
  NodeRecord restarted = node_b;
  restarted.started_at = 333;
  ASSERT_TRUE(b2->register_node(restarted).is_ok());
  restarted.alive = true;
  EXPECT_EQ(nodes(*a), (std::vector<NodeRecord>{alive_a, restarted}));
}

// ---- watch

TEST_F(EtcdStoreTest, WatchDeliversEveryKindOfChangeInOrderWithinASecond) {
  auto a = open(0);
  auto b = open(1);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto from = b->current_revision();
  ASSERT_TRUE(from.is_ok()) << from.status().to_string();
  Changes changes;
  ASSERT_TRUE(b->watch(*from + 1, changes.handler()).is_ok());

  struct Want {
    Change::Kind kind;
    std::string key;
    bool deleted;
    Revision revision;
  };
  std::vector<Want> want;
  // Each write's revision: what it set on the record, or the writer's seen revision after it.
  auto wrote = [&](Change::Kind kind, const std::string& key, bool deleted, Revision r = 0) {
    want.push_back({kind, key, deleted, r != 0 ? r : a->seen_revision()});
  };
  VolumeRecord v = full_volume();
  ASSERT_TRUE(a->create_volume(v).is_ok());
  wrote(Change::Kind::kVolume, v.id, false, v.revision);
  const VolumeRecord v_created = v;
  EXPECT_TRUE(Refused(create(*a, volume("vol-other", v.name)), Code::kAlreadyExists, "name_taken"));
  v.labels["phase"] = "two";
  v.name = "pg-data-renamed";
  ASSERT_TRUE(a->update_volume(v).is_ok());
  wrote(Change::Kind::kVolume, v.id, false, v.revision);
  SnapshotRecord s = full_snapshot();
  ASSERT_TRUE(a->create_snapshot(s).is_ok());
  wrote(Change::Kind::kSnapshot, s.id, false, s.revision);
  s.state = RecordState::kReady;
  ASSERT_TRUE(a->update_snapshot(s).is_ok());
  wrote(Change::Kind::kSnapshot, s.id, false, s.revision);
  ASSERT_TRUE(a->delete_snapshot(s).is_ok());
  wrote(Change::Kind::kSnapshot, s.id, true);
  ASSERT_TRUE(a->delete_volume(v).is_ok());
  wrote(Change::Kind::kVolume, v.id, true);
  ASSERT_TRUE(a->put_role({"ops.viewer", "{}"}, PutMode::kCreate).is_ok());
  wrote(Change::Kind::kRole, "ops.viewer", false);
  ASSERT_TRUE(a->put_role({"ops.viewer", R"({"x":1})"}, PutMode::kUpsert).is_ok());
  wrote(Change::Kind::kRole, "ops.viewer", false);
  ASSERT_TRUE(a->delete_role("ops.viewer").is_ok());
  wrote(Change::Kind::kRole, "ops.viewer", true);
  ASSERT_TRUE(a->put_quota({QuotaKind::kUser, "https://idp.example/alice", 1, 2, 3}).is_ok());
  wrote(Change::Kind::kQuota, "user/https://idp.example/alice", false);
  ASSERT_TRUE(a->delete_quota(QuotaKind::kUser, "https://idp.example/alice").is_ok());
  wrote(Change::Kind::kQuota, "user/https://idp.example/alice", true);
  const RevocationRecord revoked{.kind = RevocationKind::kToken, .issuer = "hs", .subject = "j1"};
  ASSERT_TRUE(a->put_revocation(revoked).is_ok());
  wrote(Change::Kind::kRevocation, std::string("token/") + to_hex(std::string("hs\0j1", 5)), false);
  // Refused writes are no changes.
  ASSERT_TRUE(a->put_role({"last", "{}"}, PutMode::kUpsert).is_ok());
  wrote(Change::Kind::kRole, "last", false);
  EXPECT_TRUE(
      Refused(a->put_role({"last", "{}"}, PutMode::kCreate), Code::kAlreadyExists, "role_exists"));
  EXPECT_TRUE(Refused(a->delete_role("never"), Code::kNotFound, "not_found"));
  EXPECT_TRUE(Refused(a->delete_quota(QuotaKind::kGuest, ""), Code::kNotFound, "not_found"));
  EXPECT_TRUE(Refused(a->update_volume(v), Code::kNotFound, "not_found"));
  const auto last_write = Clock::now();

  ASSERT_TRUE(eventually([&] { return changes.size() >= want.size(); }, 1000ms))
      << "after " << ms_since(last_write) << " ms:\n"
      << describe(changes.all());
  std::cout << "every change delivered " << ms_since(last_write) << " ms after the last write\n";
  // Nothing more comes (the refused writes): a progress round after the last one is delivered.
  Status settled = b->fresh(a->seen_revision(), 1000ms);
  EXPECT_TRUE(settled.is_ok()) << settled.to_string();
  auto got = changes.all();
  ASSERT_EQ(got.size(), want.size()) << describe(got);
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE("change " + std::to_string(i) + ": " + kind_name(want[i].kind) + " " +
                 want[i].key);
    EXPECT_EQ(got[i].kind, want[i].kind);
    EXPECT_EQ(got[i].key, want[i].key);
    EXPECT_EQ(got[i].deleted, want[i].deleted);
    EXPECT_EQ(got[i].revision, want[i].revision);
    if (i > 0) {
      EXPECT_GT(got[i].revision, got[i - 1].revision);
    }
  }
  ASSERT_TRUE(got[0].volume.has_value());
  EXPECT_EQ(*got[0].volume, v_created);
  ASSERT_TRUE(got[1].volume.has_value());
  EXPECT_EQ(got[1].volume->name, "pg-data-renamed");
  EXPECT_EQ(got[1].volume->labels.at("phase"), "two");
  ASSERT_TRUE(got[3].snapshot.has_value());
  EXPECT_EQ(got[3].snapshot->state, RecordState::kReady);
  EXPECT_FALSE(got[4].snapshot.has_value());
  EXPECT_FALSE(got[5].volume.has_value());

  // A node registering: its record, then its liveness.
  const size_t before = changes.size();
  const NodeRecord node_a{.name = "node-a",
                          .grpc_address = "127.0.0.1:7001",
                          .rest_address = "127.0.0.1:8001",
                          .started_at = 111,
                          .version = "1.2.3"};
  ASSERT_TRUE(a->register_node(node_a).is_ok());
  const Revision registered_at = a->seen_revision();
  const auto t_reg = Clock::now();
  // A node change for node-a, after the first `skip` node changes, saying it is (not) alive.
  auto alive_change = [&](bool alive, size_t skip = 0) {
    auto all = changes.of(Change::Kind::kNode);
    for (size_t i = skip; i < all.size(); ++i) {
      const auto& c = all[i];
      if (c.key == "node-a" && c.node && c.node->alive == alive && !c.deleted) return true;
    }
    return false;
  };
  ASSERT_TRUE(eventually([&] { return alive_change(true); }, 1000ms)) << describe(changes.all());
  auto node_changes = changes.of(Change::Kind::kNode);
  ASSERT_GE(node_changes.size(), 1u);
  EXPECT_EQ(node_changes.front().revision, registered_at);
  EXPECT_EQ(changes.size(), before + node_changes.size());
  NodeRecord want_node = node_a;
  want_node.alive = true;
  EXPECT_EQ(*node_changes.back().node, want_node);
  EXPECT_GE(node_changes.back().revision, registered_at);
  std::cout << "node liveness delivered " << ms_since(t_reg) << " ms after the registration\n";

  // Its store closing: the node is no longer alive (its record stays).
  const size_t known = node_changes.size();
  a.reset();
  ASSERT_TRUE(eventually([&] { return alive_change(false, known); }, 2000ms))
      << describe(changes.all());
  node_changes = changes.of(Change::Kind::kNode);
  NodeRecord dead = node_a;
  dead.alive = false;
  EXPECT_EQ(*node_changes.back().node, dead);
  EXPECT_TRUE(b->fresh(0, 0ms).is_ok());
}

// ---- freshness

TEST_F(EtcdStoreTest, FreshFailsWithoutAQuorumAndRecoversByItself) {
  auto a = open(0);
  auto b = open(0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto from = b->current_revision();
  ASSERT_TRUE(from.is_ok()) << from.status().to_string();
  Changes changes;
  ASSERT_TRUE(b->watch(*from + 1, changes.handler()).is_ok());
  EXPECT_TRUE(b->fresh(0, 0ms).is_ok()) << "right after the watch started";

  // Read-your-writes: a revision another node just wrote is reached within the wait.
  VolumeRecord v = volume("vol-1", "data");
  ASSERT_TRUE(a->create_volume(v).is_ok());
  auto t0 = Clock::now();
  Status ryw = b->fresh(v.revision, 2000ms);
  EXPECT_TRUE(ryw.is_ok()) << ryw.to_string();
  std::cout << "read-your-writes after " << ms_since(t0) << " ms\n";
  EXPECT_GE(b->seen_revision(), v.revision);

  // A revision beyond anything written is not reached: refused after the wait, naming both.
  const Revision beyond = b->seen_revision() + 1000;
  t0 = Clock::now();
  Status ahead = b->fresh(beyond, 200ms);
  const auto waited = ms_since(t0);
  EXPECT_TRUE(Refused(ahead, Code::kUnavailable, "metadata_stale",
                      {"at revision ", std::to_string(beyond)}));
  EXPECT_GE(waited, 200);
  EXPECT_LT(waited, 1000);

  // Two of three members die: no quorum. fresh() fails within the bound (+1 s).
  const auto stale_after = options().stale_after;
  cluster_->kill(1);
  cluster_->kill(2);
  const auto killed = Clock::now();
  Status stale;
  ASSERT_TRUE(eventually(
      [&] {
        stale = b->fresh(0, 0ms);
        return !stale.is_ok();
      },
      stale_after + 1000ms))
      << "still fresh " << ms_since(killed) << " ms after the quorum was lost";
  std::cout << "stale " << ms_since(killed) << " ms after the quorum was lost\n";
  EXPECT_TRUE(Refused(stale, Code::kUnavailable, "metadata_stale", {"bound 1000 ms"}));
  // It stays stale, whatever revision is asked for.
  EXPECT_TRUE(Refused(b->fresh(0, 0ms), Code::kUnavailable, "metadata_stale"));

  // Writes fail. A member that knows it has no leader refuses at once (certainly not applied);
  // one that has not noticed yet forwards the write to the dead leader and times out ("may or may
  // not have been applied"). Both are UNAVAILABLE store_unavailable.
  auto certainly_not_applied = [](const Status& s) {
    return s.message().find("may or may not") == std::string::npos;
  };
  VolumeRecord w = volume("vol-2", "during-outage");
  t0 = Clock::now();
  Status write = a->create_volume(w);
  EXPECT_TRUE(Refused(write, Code::kUnavailable, "store_unavailable"));
  std::cout << "write refused after " << ms_since(t0) << " ms: " << write.to_string() << "\n";
  Status role_write = a->put_role({"r", "{}"}, PutMode::kUpsert);
  EXPECT_TRUE(Refused(role_write, Code::kUnavailable, "store_unavailable"));
  EXPECT_TRUE(Refused(b->current_revision().status(), Code::kUnavailable, "store_unavailable"));

  // The members return: fresh again within a few seconds, with no call but fresh() itself.
  cluster_->start(1);
  cluster_->start(2);
  const auto back = Clock::now();
  Status recovered;
  ASSERT_TRUE(eventually(
      [&] {
        recovered = b->fresh(0, 0ms);
        return recovered.is_ok();
      },
      10000ms, 50ms))
      << recovered.to_string() << "\n"
      << cluster_->logs();
  std::cout << "fresh again " << ms_since(back) << " ms after the members were started\n";

  // A write refused for certain changed nothing; an ambiguous one is there whole or not at all.
  ASSERT_TRUE(cluster_->wait_healthy(10s));
  auto vols_now = volumes(*a);
  if (certainly_not_applied(write)) {
    EXPECT_EQ(vols_now, std::vector<VolumeRecord>{v});
  } else {
    ASSERT_FALSE(vols_now.empty());
    EXPECT_EQ(vols_now[0], v);
    if (vols_now.size() > 1) {
      ASSERT_EQ(vols_now.size(), 2u);
      w.revision = vols_now[1].revision;
      EXPECT_EQ(vols_now[1], w);
    }
  }
  auto roles_now = roles(*a);
  if (certainly_not_applied(role_write)) {
    EXPECT_TRUE(roles_now.empty());
  } else {
    EXPECT_LE(roles_now.size(), 1u);
  }
  // A new write after the outage reaches the watching node (read-your-writes again).
  VolumeRecord x = volume("vol-3", "after-outage");
  ASSERT_TRUE(a->create_volume(x).is_ok());
  Status after = b->fresh(x.revision, 2000ms);
  EXPECT_TRUE(after.is_ok()) << after.to_string();
  // The watch delivered what the store holds, in order: nothing for a write not applied.
  auto vols = changes.of(Change::Kind::kVolume);
  ASSERT_EQ(vols.size(), vols_now.size() + 1) << describe(changes.all());
  EXPECT_EQ(vols.front().revision, v.revision);
  EXPECT_EQ(vols.back().revision, x.revision);
  EXPECT_EQ(changes.of(Change::Kind::kRole).size(), roles_now.size());
}

// ---- open

// Nothing listens: refused at once.
TEST(EtcdStoreOpen, NoReachableEndpointIsStoreUnavailable) {
  EtcdStoreOptions o;
  o.endpoints = {"127.0.0.1:1", "127.0.0.1:2"};
  o.prefix = "/vgtest/open";
  o.timeout = 1000ms;
  const auto t0 = Clock::now();
  auto r = open_etcd_store(o);
  const auto took = ms_since(t0);
  ASSERT_FALSE(r.is_ok());
  EXPECT_TRUE(
      Refused(r.status(), Code::kUnavailable, "store_unavailable", {"127.0.0.1:1", "127.0.0.1:2"}));
  EXPECT_LT(took, 2500) << r.status().to_string();
  std::cout << "refused after " << took << " ms: " << r.status().to_string() << "\n";
}

// Something accepts the connection and never answers (a frozen member): refused within the
// timeout, not hung.
TEST(EtcdStoreOpen, ASilentEndpointIsStoreUnavailableWithinTheTimeout) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 16), 0);  // the kernel completes handshakes; nobody reads
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string endpoint = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  EtcdStoreOptions o;
  o.endpoints = {endpoint};
  o.prefix = "/vgtest/open";
  o.timeout = 1000ms;
  const auto t0 = Clock::now();
  auto r = open_etcd_store(o);
  const auto took = ms_since(t0);
  close(fd);
  ASSERT_FALSE(r.is_ok());
  EXPECT_TRUE(Refused(r.status(), Code::kUnavailable, "store_unavailable", {endpoint}));
  EXPECT_LT(took, 2500) << r.status().to_string();
  std::cout << "refused after " << took << " ms: " << r.status().to_string() << "\n";
}

}  // namespace
}  // namespace volguard::store
