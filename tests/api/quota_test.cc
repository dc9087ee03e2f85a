// Per-tenant quotas and capacity limits against the real server (gRPC + REST on loopback,
// SQLite, real sparse-file volumes with mkfs): concurrent requests cannot overshoot a quota,
// every refusal names the quota, and sizes no volume can have are OUT_OF_RANGE, never a 500.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "audit/audit.h"
#include "service/audit_recorder.h"
#include "support/test_server.h"
#include "volguard.pb.h"

namespace volguard {
namespace {

using testing::TestServer;
namespace v1 = volguard::v1;

const std::string kVol = "/volguard.v1.VolguardVolume/";
const std::string kQuota = "/volguard.v1.VolguardQuota/";
const std::string kId = "/volguard.v1.VolguardIdentity/";

Status create(const api::Client& c, const std::string& name, const std::string& size = "16M",
              const std::map<std::string, std::string>& labels = {}) {
  v1::CreateVolumeRequest req;
  req.set_name(name);
  req.set_size(size);
  for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
  v1::VolumeResponse resp;
  return c.call(kVol + "Create", req, &resp);
}

Status clone(const api::Client& c, const std::string& source, const std::string& name,
             bool from_snapshot = false) {
  v1::CloneVolumeRequest req;
  if (from_snapshot) {
    req.set_source_snapshot(source);
  } else {
    req.set_source(source);
  }
  req.set_name(name);
  v1::VolumeResponse resp;
  return c.call(kVol + "Clone", req, &resp);
}

Status snapshot(const api::Client& c, const std::string& volume, const std::string& name) {
  v1::SnapshotCreateRequest req;
  req.set_volume(volume);
  req.set_name(name);
  v1::SnapshotResponse resp;
  return c.call(kVol + "SnapshotCreate", req, &resp);
}

Status update(const api::Client& c, const std::string& volume, const std::string& size,
              const std::map<std::string, std::string>& labels = {},
              v1::VolumeResponse* out = nullptr) {
  v1::UpdateVolumeRequest req;
  req.set_volume(volume);
  req.set_size(size);
  for (const auto& [k, v] : labels) (*req.mutable_set_labels())[k] = v;
  v1::VolumeResponse resp;
  return c.call(kVol + "Update", req, out ? out : &resp);
}

Status remove(const api::Client& c, const std::string& volume) {
  v1::VolumeRef req;
  req.set_volume(volume);
  v1::Empty resp;
  return c.call(kVol + "Delete", req, &resp);
}

struct Limits {
  std::optional<uint64_t> bytes, volumes, snapshots;
  bool reset = false;
};

// kind: "user" | "group" | "guest".
Status set_quota(const api::Client& c, const std::string& kind, const std::string& name,
                 const Limits& l, v1::QuotaResponse* out = nullptr) {
  v1::QuotaSetRequest req;
  if (kind == "user") req.set_user(name);
  if (kind == "group") req.set_group(name);
  if (kind == "guest") req.set_guest(true);
  if (l.bytes) req.set_max_bytes(*l.bytes);
  if (l.volumes) req.set_max_volumes(*l.volumes);
  if (l.snapshots) req.set_max_snapshots(*l.snapshots);
  req.set_reset(l.reset);
  v1::QuotaResponse resp;
  return c.call(kQuota + "Set", req, out ? out : &resp);
}

Status show(const api::Client& c, const std::string& kind, const std::string& name,
            v1::QuotaResponse* out, bool all = false) {
  v1::QuotaShowRequest req;
  if (kind == "user") req.set_user(name);
  if (kind == "group") req.set_group(name);
  if (kind == "guest") req.set_guest(true);
  req.set_all(all);
  return c.call(kQuota + "Show", req, out);
}

// The one quota `c` may see for (kind, name), failing the test when absent.
v1::Quota quota_of(const api::Client& c, const std::string& kind, const std::string& name) {
  v1::QuotaResponse resp;
  Status s = show(c, kind, name, &resp);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(resp.quotas_size(), 1);
  return resp.quotas_size() == 1 ? resp.quotas(0) : v1::Quota();
}

void expect_exceeded(const Status& s, const std::string& subject, const std::string& limit) {
  EXPECT_EQ(s.code(), Code::kResourceExhausted) << s.to_string();
  EXPECT_EQ(s.reason(), "quota_exceeded") << s.to_string();
  EXPECT_NE(s.message().find("quota of " + subject + " exceeded: " + limit + " is "),
            std::string::npos)
      << s.message();
}

constexpr uint64_t kMiB = uint64_t{1} << 20;

// Twelve creates race for three slots of a user's volume quota, then six users of one group
// race for three 16M slots of the group's bytes quota: exactly the quota succeeds each time,
// every other request is quota_exceeded, and the usage the server reports agrees.
TEST(QuotaTest, ConcurrentCreatesCannotOvershoot) {
  TestServer srv;
  auto admin = srv.client(srv.token("root", {"system.admin"}, {"*"}));
  ASSERT_TRUE(set_quota(admin, "user", "test.local/alice", {.volumes = 3}).is_ok());
  ASSERT_TRUE(set_quota(admin, "group", "test.local/eng", {.bytes = 48 * kMiB}).is_ok());

  auto race = [&](int n, const std::function<std::string(int)>& token_of) {
    std::vector<Status> results(n);
    std::vector<std::thread> threads;
    std::atomic<int> ready{0};
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        auto c = srv.client(token_of(i));
        ++ready;
        while (ready.load() < n) std::this_thread::yield();
        results[i] = create(c, "race" + std::to_string(n) + "-" + std::to_string(i));
      });
    }
    for (auto& t : threads) t.join();
    return results;
  };

  const std::string alice_token = srv.token("alice", {"system.user"});
  auto first = race(12, [&](int) { return alice_token; });
  int ok = 0;
  for (const auto& s : first) {
    if (s.is_ok()) {
      ++ok;
    } else {
      expect_exceeded(s, "user test.local/alice", "max_volumes");
    }
  }
  EXPECT_EQ(ok, 3);
  auto alice = srv.client(alice_token);
  EXPECT_EQ(quota_of(alice, "user", "test.local/alice").used_volumes(), 3u);

  std::vector<std::string> eng_tokens;
  for (int i = 0; i < 6; ++i) {
    eng_tokens.push_back(srv.token("eng" + std::to_string(i), {"system.user"}, {"eng"}));
  }
  auto second = race(6, [&](int i) { return eng_tokens[i]; });
  ok = 0;
  for (const auto& s : second) {
    if (s.is_ok()) {
      ++ok;
    } else {
      expect_exceeded(s, "group test.local/eng", "max_bytes");
    }
  }
  EXPECT_EQ(ok, 3);
  auto q = quota_of(admin, "group", "test.local/eng");
  EXPECT_EQ(q.used_bytes(), 48 * kMiB);
  EXPECT_EQ(q.used_volumes(), 3u);

  // Usage is the catalog: a delete frees a slot at once.
  v1::EnumerateRequest er;
  v1::EnumerateResponse list;
  ASSERT_TRUE(alice.call(kVol + "Enumerate", er, &list).is_ok());
  ASSERT_EQ(list.volumes_size(), 3);
  ASSERT_TRUE(remove(alice, list.volumes(0).name()).is_ok());
  EXPECT_TRUE(create(alice, "after-delete").is_ok());
  expect_exceeded(create(alice, "one-too-many"), "user test.local/alice", "max_volumes");
}

// A volume is charged to its owner and to its creator's groups; the charge is recorded on the
// volume, so it survives a restart and another member of the group meets the same quota.
TEST(QuotaTest, BytesQuotaChargesOwnerAndCreatorsGroups) {
  TestServer srv;
  auto admin = srv.client(srv.token("root", {"system.admin"}, {"*"}));
  v1::QuotaResponse set;
  // An unqualified group is the admin's own group domain, as for grants.
  ASSERT_TRUE(set_quota(admin, "group", "eng", {.bytes = 48 * kMiB}, &set).is_ok());
  ASSERT_EQ(set.quotas_size(), 1);
  EXPECT_EQ(set.quotas(0).kind(), "group");
  EXPECT_EQ(set.quotas(0).subject(), "test.local/eng");
  EXPECT_EQ(set.quotas(0).source(), "set");

  const std::string alice_t = srv.token("alice", {"system.user"}, {"eng"});
  const std::string bob_t = srv.token("bob", {"system.user"}, {"eng"});
  const std::string carol_t = srv.token("carol", {"system.user"}, {"ops"});
  ASSERT_TRUE(create(srv.client(alice_t), "a1", "32M").is_ok());
  Status s = create(srv.client(bob_t), "b1", "32M");
  expect_exceeded(s, "group test.local/eng", "max_bytes");
  EXPECT_NE(s.message().find("max_bytes is 48M; in use 32M (+0 in flight), requested 32M"),
            std::string::npos)
      << s.message();
  EXPECT_TRUE(create(srv.client(carol_t), "c1", "32M").is_ok());  // another tenant
  ASSERT_TRUE(create(srv.client(bob_t), "b1", "16M").is_ok());

  // whoami shows the caller's quotas with usage: their own and their group's.
  v1::Empty e;
  v1::WhoAmIResponse who;
  ASSERT_TRUE(srv.client(bob_t).call(kId + "WhoAmI", e, &who).is_ok());
  ASSERT_EQ(who.quotas_size(), 2);
  EXPECT_EQ(who.quotas(0).kind(), "user");
  EXPECT_EQ(who.quotas(0).subject(), "test.local/bob");
  EXPECT_EQ(who.quotas(0).used_bytes(), 16 * kMiB);
  EXPECT_EQ(who.quotas(0).source(), "none");
  EXPECT_EQ(who.quotas(1).subject(), "test.local/eng");
  EXPECT_EQ(who.quotas(1).used_bytes(), 48 * kMiB);
  EXPECT_EQ(who.quotas(1).max_bytes(), 48 * kMiB);
  EXPECT_EQ(who.quotas(1).used_volumes(), 2u);

  // Quotas and charges come back from the store after a restart.
  srv.stop();
  srv.start();
  expect_exceeded(create(srv.client(bob_t), "b2", "16M"), "group test.local/eng", "max_bytes");
  auto admin2 = srv.client(srv.token("root", {"system.admin"}, {"*"}));
  EXPECT_EQ(quota_of(admin2, "group", "test.local/eng").used_bytes(), 48 * kMiB);
  // Raising one limit keeps the others; lifting it lets the tenant grow.
  ASSERT_TRUE(set_quota(admin2, "group", "test.local/eng", {.volumes = 5}).is_ok());
  EXPECT_EQ(quota_of(admin2, "group", "test.local/eng").max_bytes(), 48 * kMiB);
  ASSERT_TRUE(set_quota(admin2, "group", "test.local/eng", {.bytes = 0}).is_ok());
  EXPECT_TRUE(create(srv.client(bob_t), "b2", "16M").is_ok());
}

// Clones count as new volumes of their creator; snapshots count against their volume's
// subjects, whoever takes them (a collaborator uses the owner's quota, not their own).
TEST(QuotaTest, ClonesAndSnapshotsAreCounted) {
  TestServer srv;
  auto admin = srv.client(srv.token("root", {"system.admin"}, {"*"}));
  ASSERT_TRUE(
      set_quota(admin, "user", "test.local/alice", {.volumes = 2, .snapshots = 2}).is_ok());
  auto alice = srv.client(srv.token("alice", {"system.user"}));
  auto bob = srv.client(srv.token("bob", {"system.user"}));
  ASSERT_TRUE(create(alice, "a1").is_ok());
  v1::UpdateVolumeRequest grant;
  grant.set_volume("a1");
  (*grant.mutable_add_collaborators())["bob"] = "w";
  v1::VolumeResponse vr;
  ASSERT_TRUE(alice.call(kVol + "Update", grant, &vr).is_ok());

  ASSERT_TRUE(clone(alice, "a1", "a2").is_ok());
  expect_exceeded(clone(alice, "a1", "a3"), "user test.local/alice", "max_volumes");

  ASSERT_TRUE(snapshot(alice, "a1", "s1").is_ok());
  ASSERT_TRUE(snapshot(bob, "a1", "s2").is_ok());  // charged to a1's owner
  expect_exceeded(snapshot(bob, "a1", "s3"), "user test.local/alice", "max_snapshots");
  expect_exceeded(snapshot(alice, "a2", "s3"), "user test.local/alice", "max_snapshots");
  EXPECT_EQ(quota_of(alice, "user", "test.local/alice").used_snapshots(), 2u);
  EXPECT_EQ(quota_of(bob, "user", "test.local/bob").used_snapshots(), 0u);
  // A clone of a snapshot is a volume too.
  expect_exceeded(clone(alice, "s1", "a3", true), "user test.local/alice", "max_volumes");
  // Bob's clone is his own volume: not alice's quota.
  EXPECT_TRUE(clone(bob, "s1", "b1", true).is_ok());

  v1::SnapshotRef sref;
  sref.set_snapshot("s1");
  v1::Empty e;
  ASSERT_TRUE(alice.call(kVol + "SnapshotDelete", sref, &e).is_ok());
  EXPECT_TRUE(snapshot(alice, "a1", "s3").is_ok());
}

// Growing a volume needs the bytes; a refused resize leaves the volume as it was.
TEST(QuotaTest, ResizeOverQuotaIsRefused) {
  TestServer srv;
  auto admin = srv.client(srv.token("root", {"system.admin"}, {"*"}));
  ASSERT_TRUE(set_quota(admin, "user", "test.local/alice", {.bytes = 64 * kMiB}).is_ok());
  auto alice = srv.client(srv.token("alice", {"system.user"}));
  ASSERT_TRUE(create(alice, "a1", "32M").is_ok());
  ASSERT_TRUE(update(alice, "a1", "48M").is_ok());
  Status s = update(alice, "a1", "80M");
  expect_exceeded(s, "user test.local/alice", "max_bytes");
  EXPECT_NE(s.message().find("in use 48M (+0 in flight), requested 32M"), std::string::npos)
      << s.message();
  v1::VolumeRef ref;
  ref.set_volume("a1");
  v1::VolumeResponse vr;
  ASSERT_TRUE(alice.call(kVol + "Inspect", ref, &vr).is_ok());
  EXPECT_EQ(vr.volume().size_bytes(), 48 * kMiB);
  v1::StatsResponse st;
  ASSERT_TRUE(alice.call(kVol + "Stats", ref, &st).is_ok());
  EXPECT_EQ(st.size_bytes(), 48 * kMiB);  // the file was not grown either
  ASSERT_TRUE(create(alice, "a2", "16M").is_ok());
  expect_exceeded(create(alice, "a3", "16M"), "user test.local/alice", "max_bytes");
  // Same size is no growth: labels can still change on a full quota.
  EXPECT_TRUE(update(alice, "a1", "48M", {{"k", "v"}}).is_ok());
}

// Guests share one quota: the config default (1G, 10 volumes, 10 snapshots) unless an admin
// sets one; --reset goes back to the default.
TEST(QuotaTest, GuestDefaultQuotaAndOverride) {
  TestServer srv;  // guest access on, no quotas in the config
  auto admin = srv.client(srv.token("root", {"system.admin"}, {"*"}));
  auto guest = srv.client();
  auto q = quota_of(admin, "guest", "");
  EXPECT_EQ(q.kind(), "guest");
  EXPECT_EQ(q.max_bytes(), uint64_t{1} << 30);
  EXPECT_EQ(q.max_volumes(), 10u);
  EXPECT_EQ(q.max_snapshots(), 10u);
  EXPECT_EQ(q.source(), "config");

  ASSERT_TRUE(create(guest, "g1").is_ok());
  Status s = create(guest, "g2", "1G");
  expect_exceeded(s, "guest", "max_bytes");
  EXPECT_NE(s.message().find("max_bytes is 1G; in use 16M"), std::string::npos) << s.message();

  ASSERT_TRUE(set_quota(admin, "guest", "", {.volumes = 1}).is_ok());
  q = quota_of(admin, "guest", "");
  EXPECT_EQ(q.source(), "set");
  EXPECT_EQ(q.max_bytes(), uint64_t{1} << 30);  // unchanged limits start from the default
  expect_exceeded(create(guest, "g2"), "guest", "max_volumes");
  ASSERT_TRUE(set_quota(admin, "guest", "", {.reset = true}).is_ok());
  EXPECT_EQ(quota_of(admin, "guest", "").source(), "config");
  EXPECT_TRUE(create(guest, "g2").is_ok());
  EXPECT_EQ(quota_of(admin, "guest", "").used_volumes(), 2u);
  // A guest's volume is the guest's usage, not an authenticated user's.
  auto alice = srv.client(srv.token("alice", {"system.user"}));
  EXPECT_EQ(quota_of(alice, "user", "test.local/alice").used_volumes(), 0u);
}

TEST(QuotaTest, GuestQuotaFromConfig) {
  TestServer srv("", true, "quotas:\n  guest:\n    max_volumes: 1\n    max_bytes: unlimited\n");
  auto guest = srv.client();
  ASSERT_TRUE(create(guest, "g1").is_ok());
  expect_exceeded(create(guest, "g2"), "guest", "max_volumes");
}

// The largest volume is a config bound that holds for admins too; sizes of 2^63 bytes and
// beyond are OUT_OF_RANGE on gRPC and REST (never INTERNAL / 500), as are such quota limits.
TEST(QuotaTest, MaxVolumeSizeAndSizesBeyondTwoToThe63) {
  TestServer srv("", true, "limits:\n  max_volume_size: 64M\n");
  auto admin = srv.client(srv.token("root", {"system.admin"}, {"*"}));
  Status s = create(admin, "big", "128M");
  EXPECT_EQ(s.code(), Code::kOutOfRange) << s.to_string();
  EXPECT_EQ(s.reason(), "size_too_large");
  EXPECT_NE(s.message().find("limits.max_volume_size 64M"), std::string::npos) << s.message();
  ASSERT_TRUE(create(admin, "small", "32M").is_ok());
  s = update(admin, "small", "128M");
  EXPECT_EQ(s.code(), Code::kOutOfRange) << s.to_string();
  EXPECT_EQ(s.reason(), "size_too_large");

  for (const char* huge : {"9223372036854775808", "18446744073709551615", "18446744073709551616",
                           "8388608T", "99999999999999999999999999T"}) {
    s = create(admin, "huge", huge);
    EXPECT_EQ(s.code(), Code::kOutOfRange) << huge << ": " << s.to_string();
    EXPECT_EQ(s.reason(), "size_out_of_range") << huge;
    s = update(admin, "small", huge);
    EXPECT_EQ(s.code(), Code::kOutOfRange) << huge << ": " << s.to_string();
    EXPECT_EQ(s.reason(), "size_out_of_range") << huge;
  }
  s = create(admin, "bad", "1.5G");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.reason(), "invalid_size");

  httplib::Client rest("127.0.0.1", srv.rest_port());
  httplib::Headers auth{{"Authorization", "bearer " + srv.token("root", {"system.admin"}, {"*"})}};
  auto r = rest.Post("/v1/volume/create", auth, R"({"name":"huge","size":"99999999999999999999T"})",
                     "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_EQ(nlohmann::json::parse(r->body)["reason"], "size_out_of_range") << r->body;
  // A limit beyond 2^63 - 1 is out of range; a number JSON cannot hold is a bad request.
  s = set_quota(admin, "user", "test.local/alice", {.bytes = uint64_t{1} << 63});
  EXPECT_EQ(s.code(), Code::kOutOfRange) << s.to_string();
  EXPECT_EQ(s.reason(), "limit_out_of_range");
  r = rest.Post("/v1/quota/set", auth, R"({"user":"alice","max_bytes":"99999999999999999999999"})",
                "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
}

// Labels: at most 64 per volume and 16 KiB of keys and values, on create, clone and update;
// the refusal names the field.
TEST(QuotaTest, LabelCountAndSizeAreBounded) {
  TestServer srv;
  auto alice = srv.client(srv.token("alice", {"system.user"}));
  std::map<std::string, std::string> many;
  for (int i = 0; i < 65; ++i) many["k" + std::to_string(i)] = "v";
  Status s = create(alice, "l65", "16M", many);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.reason(), "invalid_labels");
  EXPECT_EQ(s.message().rfind("labels: a volume may carry at most 64 labels", 0), 0u) << s.message();
  many.erase("k64");
  ASSERT_TRUE(create(alice, "l64", "16M", many).is_ok());

  std::map<std::string, std::string> big;
  for (int i = 0; i < 17; ++i) big["b" + std::to_string(i)] = std::string(1000, 'x');
  s = create(alice, "lbig", "16M", big);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.reason(), "invalid_labels");
  EXPECT_NE(s.message().find("at most 16384 bytes"), std::string::npos) << s.message();

  s = update(alice, "l64", "", {{"one-more", "v"}});
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.reason(), "invalid_labels");
  EXPECT_EQ(s.message().rfind("set_labels:", 0), 0u) << s.message();
  EXPECT_TRUE(update(alice, "l64", "", {{"k1", "replaced"}}).is_ok());  // still 64

  v1::CloneVolumeRequest cr;
  cr.set_source("l64");
  cr.set_name("c65");
  for (int i = 0; i < 65; ++i) (*cr.mutable_labels())["k" + std::to_string(i)] = "v";
  v1::VolumeResponse vr;
  s = alice.call(kVol + "Clone", cr, &vr);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.reason(), "invalid_labels");
}

// quota.set is for admins (the default roles give it to system.admin only, refused by the
// pipeline); a caller sees their own quotas, and nobody else's.
TEST(QuotaTest, OnlyAdminsSetAndCallersSeeTheirOwn) {
  TestServer srv;
  auto admin = srv.client(srv.token("root", {"system.admin"}, {"*"}));
  auto alice = srv.client(srv.token("alice", {"system.user"}, {"eng"}));
  auto viewer = srv.client(srv.token("vic", {"system.view"}));
  for (const auto* c : {&alice, &viewer}) {
    Status s = set_quota(*c, "user", "test.local/alice", {.volumes = 100});
    EXPECT_EQ(s.code(), Code::kPermissionDenied) << s.to_string();
    EXPECT_EQ(s.reason(), "rbac_denied");
  }
  Status guest_set = set_quota(srv.client(), "guest", "", {.volumes = 100});
  EXPECT_EQ(guest_set.code(), Code::kPermissionDenied);
  EXPECT_EQ(guest_set.reason(), "rbac_denied");
  v1::CapabilitiesRequest can;
  can.set_method("quota.set");
  v1::CapabilitiesResponse canr;
  ASSERT_TRUE(alice.call(kId + "Capabilities", can, &canr).is_ok());
  EXPECT_FALSE(canr.allowed());

  ASSERT_TRUE(set_quota(admin, "user", "test.local/alice", {.volumes = 3}).is_ok());
  ASSERT_TRUE(set_quota(admin, "user", "test.local/bob", {.volumes = 1}).is_ok());
  v1::QuotaResponse mine;
  ASSERT_TRUE(show(alice, "", "", &mine).is_ok());
  ASSERT_EQ(mine.quotas_size(), 2);  // user and group
  EXPECT_EQ(mine.quotas(0).subject(), "test.local/alice");
  EXPECT_EQ(mine.quotas(0).max_volumes(), 3u);
  EXPECT_EQ(mine.quotas(1).subject(), "test.local/eng");
  EXPECT_EQ(quota_of(alice, "user", "alice").max_volumes(), 3u);  // own, unqualified
  EXPECT_EQ(quota_of(alice, "group", "eng").source(), "none");
  v1::QuotaResponse other;
  for (Status s : {show(alice, "user", "test.local/bob", &other), show(alice, "group", "ops", &other),
                   show(alice, "guest", "", &other), show(alice, "", "", &other, true)}) {
    EXPECT_EQ(s.code(), Code::kPermissionDenied) << s.to_string();
    EXPECT_EQ(s.reason(), "quota_admin_required");
  }
  EXPECT_TRUE(show(viewer, "", "", &other).is_ok());

  v1::QuotaResponse all;
  ASSERT_TRUE(show(admin, "", "", &all, true).is_ok());
  ASSERT_EQ(all.quotas_size(), 3);  // both users and the guest
  EXPECT_EQ(quota_of(admin, "user", "test.local/bob").max_volumes(), 1u);

  // Malformed requests name the field.
  Status s = set_quota(admin, "", "", {.volumes = 1});
  EXPECT_EQ(s.reason(), "invalid_subject");
  v1::QuotaSetRequest two;
  two.set_user("alice");
  two.set_guest(true);
  two.set_max_volumes(1);
  v1::QuotaResponse resp;
  EXPECT_EQ(admin.call(kQuota + "Set", two, &resp).reason(), "invalid_subject");
  EXPECT_EQ(set_quota(admin, "user", "alice", {}).reason(), "invalid_max_bytes");
  EXPECT_EQ(set_quota(admin, "user", "alice", {.volumes = 1, .reset = true}).reason(),
            "invalid_reset");
  EXPECT_EQ(set_quota(admin, "user", "*", {.volumes = 1}).reason(), "invalid_subject");

  // Every change is on the audit record, naming the subject and the limits.
  auto records = audit::read_all(srv.audit_dir() + "/" + service::kAuditLogName).value();
  bool found = false;
  for (const auto& r : records) {
    const std::string* msg = r.get("msg");
    if (msg && *msg == "Quota of user test.local/bob set: max_bytes unlimited, max_volumes 1, "
                       "max_snapshots unlimited") {
      found = true;
      EXPECT_EQ(*r.get("method"), "quota.set");
    }
  }
  EXPECT_TRUE(found);
  // Removing a user's limits removes the quota.
  ASSERT_TRUE(set_quota(admin, "user", "test.local/bob", {.volumes = 0}).is_ok());
  EXPECT_EQ(quota_of(admin, "user", "test.local/bob").source(), "none");
}

}  // namespace
}  // namespace volguard
