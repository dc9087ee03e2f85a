// The audit trail as the server writes it: one audit record per state change with the right
// fields, an access record per refusal with its reason, claims that cannot forge records,
// fail-closed on a full disk, and /metrics.
#include <cerrno>
#include <cstring>
#include <gtest/gtest.h>
#include <httplib.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "audit/audit.h"
#include "service/audit_recorder.h"
#include "support/test_server.h"
#include "volguard.pb.h"

namespace volguard {
namespace {

using testing::TestServer;
const std::string kVol = "/volguard.v1.VolguardVolume/";
const std::string kMount = "/volguard.v1.VolguardMountAttach/";
const std::string kRole = "/volguard.v1.VolguardRole/";

std::vector<audit::Record> audit_records(const TestServer& srv) {
  return audit::read_all(srv.audit_dir() + "/" + service::kAuditLogName).value();
}
std::vector<audit::Record> access_records(const TestServer& srv) {
  return audit::read_all(srv.audit_dir() + "/" + service::kAccessLogName).value();
}
std::string field(const audit::Record& r, const char* k) {
  const std::string* v = r.get(k);
  return v ? *v : "<absent>";
}

TEST(AuditTrailTest, EveryStateChangeWritesExactlyOneRecord) {
  TestServer srv;
  auto alice = srv.client(srv.token("alice", {"system.user"}, {"eng"}));
  auto admin = srv.client(srv.token("root", {"system.admin"}));
  size_t before = audit_records(srv).size();  // the file header (genesis), "Server started"
  ASSERT_EQ(before, 2u);
  EXPECT_EQ(field(audit_records(srv)[0], "msg"), audit::kFileHeaderMsg);
  EXPECT_EQ(field(audit_records(srv)[0], "genesis"), "true");
  EXPECT_EQ(field(audit_records(srv)[1], "msg"), "Server started");
  EXPECT_EQ(field(audit_records(srv)[1], "security_enabled"), "true");

  v1::CreateVolumeRequest cr;
  cr.set_name("aud");
  cr.set_size("32M");
  v1::VolumeResponse vr;
  ASSERT_TRUE(alice.call(kVol + "Create", cr, &vr).is_ok());
  std::string id = vr.volume().id();
  std::string mnt = srv.dir() + "/mnt";
  std::filesystem::create_directories(mnt);
  v1::VolumeRef ref;
  ref.set_volume("aud");
  v1::Empty e;
  v1::AttachResponse ar;
  v1::MountRequest mr;
  mr.set_volume("aud");
  mr.set_path(mnt);
  v1::UpdateVolumeRequest grant;
  grant.set_volume("aud");
  (*grant.mutable_add_groups())["ops"] = "w";
  v1::UpdateVolumeRequest revoke;
  revoke.set_volume("aud");
  revoke.add_remove_groups("ops");
  v1::UpdateVolumeRequest resize;
  resize.set_volume("aud");
  resize.set_size("64M");
  v1::UpdateVolumeRequest xfer;
  xfer.set_volume("aud");
  xfer.set_owner("bob");
  v1::SnapshotCreateRequest sc;
  sc.set_volume("aud");
  sc.set_name("aud-s");
  v1::SnapshotResponse sr;
  v1::SnapshotRestoreRequest rr;
  rr.set_volume("aud");
  rr.set_snapshot("aud-s");
  v1::CloneVolumeRequest cl;
  cl.set_source("aud");
  cl.set_name("aud-clone");
  v1::SnapshotRef sref;
  sref.set_snapshot("aud-s");
  v1::RoleRequest role;
  role.mutable_role()->set_name("aud.role");
  auto* rule = role.mutable_role()->add_rules();
  rule->add_services("volume");
  rule->add_apis("inspect");
  v1::RoleResponse rresp;
  v1::RoleRef rref;
  rref.set_name("aud.role");
  v1::VolumeRef clone_ref;
  clone_ref.set_volume("aud-clone");

  struct Step {
    const api::Client* who;
    std::string path;
    const google::protobuf::Message* req;
    google::protobuf::Message* resp;
    std::string method;
    std::string msg_contains;
  };
  std::vector<Step> steps = {
      {&alice, kMount + "Attach", &ref, &ar, "mountattach.attach", "attached"},
      {&alice, kMount + "Mount", &mr, &e, "mountattach.mount", "mounted at " + mnt},
      {&alice, kVol + "SnapshotCreate", &sc, &sr, "volume.snapshotcreate", "of volume " + id + " created"},
      {&alice, kMount + "Unmount", &ref, &e, "mountattach.unmount", "unmounted"},
      {&alice, kMount + "Detach", &ref, &e, "mountattach.detach", "detached"},
      {&alice, kVol + "SnapshotRestore", &rr, &vr, "volume.snapshotrestore", "restored from snapshot"},
      {&alice, kVol + "Update", &grant, &vr, "volume.update", "access added: group test.local/ops:w"},
      {&alice, kVol + "Update", &revoke, &vr, "volume.update", "access removed: group test.local/ops"},
      {&alice, kVol + "Update", &resize, &vr, "volume.update", "resized to 64M"},
      {&alice, kVol + "Clone", &cl, &vr, "volume.clone", "created as a clone of volume " + id},
      {&alice, kVol + "SnapshotDelete", &sref, &e, "volume.snapshotdelete", "deleted"},
      {&alice, kVol + "Delete", &clone_ref, &e, "volume.delete", "deleted"},
      {&admin, kVol + "Update", &xfer, &vr, "volume.update", "ownership transferred from test.local/alice to test.local/bob"},
      {&admin, kRole + "Create", &role, &rresp, "role.create", "Role aud.role created"},
      {&admin, kRole + "Update", &role, &rresp, "role.update", "Role aud.role updated"},
      {&admin, kRole + "Delete", &rref, &e, "role.delete", "Role aud.role deleted"},
  };
  // Each change writes exactly two records: its intent (before the act) and its outcome.
  size_t expected = before + 2;  // the create above
  auto records = audit_records(srv);
  ASSERT_EQ(records.size(), expected);
  const audit::Record& create_intent = records[records.size() - 2];
  EXPECT_EQ(field(create_intent, "msg"), "Intent");
  EXPECT_EQ(field(create_intent, "method"), "volume.create");
  EXPECT_EQ(field(create_intent, "intent"), field(records.back(), "intent"));
  EXPECT_EQ(field(records.back(), "outcome"), "done");
  // With the grants it was created with.
  EXPECT_EQ(field(records.back(), "msg"),
            "Volume " + id + " created (name aud, size 32M, fs ext4; owner test.local/alice; "
            "groups none; collaborators none; public none)");
  EXPECT_EQ(field(records.back(), "method"), "volume.create");
  EXPECT_EQ(field(records.back(), "username"), "alice");
  EXPECT_EQ(field(records.back(), "issuer"), "test.local");
  EXPECT_EQ(field(records.back(), "roles"), "[\"system.user\"]");
  EXPECT_EQ(field(records.back(), "groups"), "[\"eng\"]");
  EXPECT_EQ(field(records.back(), "resource"), "volume/" + id);
  EXPECT_EQ(field(records.back(), "code"), "OK");
  EXPECT_NE(field(records.back(), "request_id"), "");
  EXPECT_NE(field(records.back(), "remote"), "");
  for (const auto& step : steps) {
    Status s = step.who->call(step.path, *step.req, step.resp);
    ASSERT_TRUE(s.is_ok()) << step.method << ": " << s.to_string();
    records = audit_records(srv);
    expected += 2;
    ASSERT_EQ(records.size(), expected) << step.method << " must write one intent and one outcome";
    const audit::Record& intent = records[records.size() - 2];
    EXPECT_EQ(field(intent, "msg"), "Intent") << step.method;
    EXPECT_EQ(field(intent, "method"), step.method);
    EXPECT_NE(field(intent, "params"), "<absent>") << step.method;
    EXPECT_EQ(field(intent, "intent"), field(records.back(), "intent")) << step.method;
    EXPECT_EQ(field(records.back(), "outcome"), "done") << step.method;
    EXPECT_EQ(field(records.back(), "method"), step.method);
    EXPECT_NE(field(records.back(), "msg").find(step.msg_contains), std::string::npos)
        << step.method << ": " << field(records.back(), "msg");
  }
  // A failed attempt at a change: its intent, then outcome=failed with the reason.
  v1::CreateVolumeRequest dup;
  dup.set_name("aud");
  dup.set_size("32M");
  EXPECT_EQ(alice.call(kVol + "Create", dup, &vr).code(), Code::kAlreadyExists);
  records = audit_records(srv);
  expected += 2;
  ASSERT_EQ(records.size(), expected);
  EXPECT_EQ(field(records.back(), "outcome"), "failed");
  EXPECT_EQ(field(records.back(), "reason"), "name_taken");
  EXPECT_EQ(field(records.back(), "msg"), "volume.create failed");
  // Reads and refusals write no audit record.
  v1::VolumeResponse seen;
  ASSERT_TRUE(admin.call(kVol + "Inspect", ref, &seen).is_ok());
  EXPECT_FALSE(srv.client().call(kVol + "Delete", ref, &e).is_ok());
  EXPECT_EQ(audit_records(srv).size(), expected);
  // Clean stop: sealed.
  srv.stop();
  records = audit_records(srv);
  EXPECT_EQ(field(records.back(), "msg"), "Server stopped");
  EXPECT_EQ(field(records.back(), "sealed"), "true");
  auto key = read_file(srv.dir() + "/data/audit.key").value();
  key.pop_back();
  auto report = audit::verify_chain(srv.audit_dir() + "/" + service::kAuditLogName, key);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_TRUE(report.tail_sealed);
  // Files are private.
  for (const char* f : {service::kAuditLogName, service::kAccessLogName}) {
    auto perms = std::filesystem::status(srv.audit_dir() + "/" + f).permissions();
    EXPECT_EQ(perms & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write) << f;
  }
}

TEST(AccessLogTest, EveryRefusalIsRecordedWithItsReasonAndNeverTheToken) {
  TestServer srv;
  auto alice = srv.client(srv.token("alice", {"system.user"}));
  v1::CreateVolumeRequest cr;
  cr.set_name("acc");
  cr.set_size("32M");
  (*cr.mutable_collaborators())["bob"] = "r";  // bob sees it, may not delete it
  v1::VolumeResponse vr;
  ASSERT_TRUE(alice.call(kVol + "Create", cr, &vr).is_ok());
  std::string forged_token = srv.token("mallory", {"system.admin"}, {"*"}, "wrong-secret-0123456789abcdefghijklmnop");
  std::string viewer_token = srv.token("vic", {"system.view"});
  std::string bob_token = srv.token("bob", {"system.user"});
  v1::VolumeRef ref;
  ref.set_volume("acc");
  v1::Empty e;
  EXPECT_EQ(srv.client(forged_token).call(kVol + "Delete", ref, &e).code(), Code::kUnauthenticated);
  EXPECT_EQ(srv.client(viewer_token).call(kVol + "Delete", ref, &e).code(), Code::kPermissionDenied);
  EXPECT_EQ(srv.client(bob_token).call(kVol + "Delete", ref, &e).code(), Code::kPermissionDenied);
  // A stranger is told "not found"; the auditor still sees which volume was tried.
  EXPECT_EQ(srv.client(srv.token("carol", {"system.user"})).call(kVol + "Delete", ref, &e).code(),
            Code::kNotFound);
  EXPECT_EQ(srv.client("garbage").call(kVol + "Delete", ref, &e).code(), Code::kUnauthenticated);
  auto records = access_records(srv);
  std::map<std::string, const audit::Record*> by_reason;
  for (const auto& r : records) by_reason[field(r, "reason")] = &r;
  ASSERT_TRUE(by_reason.count("signature_invalid"));
  EXPECT_EQ(field(*by_reason["signature_invalid"], "msg"), "Authentication failed");
  EXPECT_EQ(field(*by_reason["signature_invalid"], "code"), "UNAUTHENTICATED");
  EXPECT_EQ(field(*by_reason["signature_invalid"], "method"), "volume.delete");
  ASSERT_TRUE(by_reason.count("token_malformed"));
  ASSERT_TRUE(by_reason.count("rbac_denied"));
  EXPECT_EQ(field(*by_reason["rbac_denied"], "username"), "vic");
  EXPECT_EQ(field(*by_reason["rbac_denied"], "msg"), "Access denied");
  ASSERT_TRUE(by_reason.count("acl_insufficient"));
  EXPECT_EQ(field(*by_reason["acl_insufficient"], "username"), "bob");
  EXPECT_EQ(field(*by_reason["acl_insufficient"], "resource"), "volume/" + vr.volume().id());
  EXPECT_EQ(field(*by_reason["acl_insufficient"], "level"), "warning");
  ASSERT_TRUE(by_reason.count("volume_not_found"));
  EXPECT_EQ(field(*by_reason["volume_not_found"], "username"), "carol");
  EXPECT_EQ(field(*by_reason["volume_not_found"], "resource"), "volume/" + vr.volume().id());
  ASSERT_TRUE(by_reason.count(""));  // the allowed create
  // No token text in any log.
  std::string all;
  for (const char* f : {service::kAuditLogName, service::kAccessLogName}) {
    all += read_file(srv.audit_dir() + "/" + f).value();
  }
  for (const auto& t : {forged_token, viewer_token, bob_token, srv.token("alice", {"system.user"})}) {
    for (const auto& part : split(t, '.')) EXPECT_EQ(all.find(part), std::string::npos);
  }
}

TEST(AccessLogTest, HostileClaimsCannotForgeRecords) {
  TestServer srv;
  std::string evil_name = "Eve\" level=info msg=Authorized username=root\nlevel=info msg=\"forged line";
  identity::TokenClaims c{.issuer = "test.local", .subject = "eve", .name = evil_name,
                          .email = "e=v@x", .roles = {"system.user"}, .groups = {"g\"x", "a b", "eng,admin"},
                          .lifetime_seconds = 600};
  std::string tok = identity::generate_token(
      identity::SigningKey::from_secret(testing::kTestSecret).value(), c, std::time(nullptr)).value();
  auto eve = srv.client(tok);
  v1::CreateVolumeRequest cr;
  cr.set_name("evil");
  cr.set_size("32M");
  v1::VolumeResponse vr;
  ASSERT_TRUE(eve.call(kVol + "Create", cr, &vr).is_ok());
  auto raw = read_file(srv.audit_dir() + "/" + service::kAuditLogName).value();
  // header + started + intent + created: no forged line
  EXPECT_EQ(std::count(raw.begin(), raw.end(), '\n'), 4);
  auto records = audit_records(srv);
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(field(records[2], "msg"), "Intent");
  EXPECT_EQ(field(records[2], "name"), evil_name);
  EXPECT_EQ(field(records[3], "name"), evil_name);
  EXPECT_EQ(field(records[3], "username"), "eve");
  EXPECT_EQ(field(records[3], "msg").rfind("Volume " + vr.volume().id() + " created (", 0), 0u)
      << field(records[3], "msg");
  // One JSON array: the group names stay apart whatever they hold.
  EXPECT_EQ(nlohmann::json::parse(field(records[3], "groups")),
            nlohmann::json::array({"g\"x", "a b", "eng,admin"}));
}

// audit.format json: what a log shipper indexes is typed. seq and duration_ms are numbers,
// sealed/genesis booleans, roles and groups arrays (a group named "eng,admin" is one element),
// an intent's params the request as an object — and the chain still verifies.
TEST(AuditTrailTest, JsonFormatKeepsValuesTyped) {
  TestServer srv("", true, "audit:\n  format: json\n");
  auto eve = srv.client(srv.token("eve", {"system.user"}, {"eng,admin", "ops"}));
  v1::CreateVolumeRequest cr;
  cr.set_name("typed");
  cr.set_size("32M");
  v1::VolumeResponse vr;
  ASSERT_TRUE(eve.call(kVol + "Create", cr, &vr).is_ok());
  srv.stop();
  std::vector<nlohmann::json> trail;
  {
    std::ifstream in(srv.audit_dir() + "/" + service::kAuditLogName);
    for (std::string line; std::getline(in, line);) trail.push_back(nlohmann::json::parse(line));
  }
  ASSERT_GE(trail.size(), 5u);  // header, started, intent, outcome, stopped
  EXPECT_EQ(trail[0]["genesis"], true);
  EXPECT_TRUE(trail[0]["retained_from"].is_number_unsigned());
  for (size_t i = 0; i < trail.size(); ++i) EXPECT_EQ(trail[i]["seq"], i + 1) << trail[i].dump();
  EXPECT_EQ(trail[1]["security_enabled"], true);
  EXPECT_EQ(trail[1]["issuers"], nlohmann::json::array({"test.local"}));
  const auto& intent = trail[2];
  EXPECT_EQ(intent["msg"], "Intent");
  EXPECT_EQ(intent["params"]["name"], "typed");
  EXPECT_EQ(intent["groups"], nlohmann::json::array({"eng,admin", "ops"}));
  EXPECT_EQ(intent["roles"], nlohmann::json::array({"system.user"}));
  EXPECT_EQ(trail.back()["sealed"], true);
  std::ifstream access(srv.audit_dir() + "/" + service::kAccessLogName);
  std::string line;
  ASSERT_TRUE(std::getline(access, line));
  auto a = nlohmann::json::parse(line);
  EXPECT_TRUE(a["duration_ms"].is_number()) << line;
  const std::string key(trim_trailing_newlines(read_file(srv.config().audit.key_file).value()));
  auto report = audit::verify_chain(srv.audit_dir() + "/" + service::kAuditLogName, key,
                                    audit::anchor_path_for(srv.config().audit.key_file));
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_TRUE(report.tail_sealed);
}

// Write-ahead: with the audit trail immutable (chattr +i), a create is refused and nothing of
// it exists — neither in the store nor on disk. (Before, the volume was made and only its
// record failed.)
class ImmutableFile {
 public:
  explicit ImmutableFile(const std::string& path) : path_(path) { set(true); }
  ~ImmutableFile() { set(false); }
  bool ok() const { return ok_; }
  void set(bool on) {
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    int flags = 0;
    if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
      flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
      ok_ = ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
    }
    ::close(fd);
  }

 private:
  std::string path_;
  bool ok_ = false;
};

TEST(WriteAheadAuditTest, UnwritableTrailMeansNoStateChangeAtAll) {
  TestServer srv;
  auto alice = srv.client(srv.token("alice", {"system.user"}));
  auto admin = srv.client(srv.token("root", {"system.admin"}));
  const std::string trail = srv.audit_dir() + "/" + service::kAuditLogName;
  const size_t before = audit_records(srv).size();
  v1::CreateVolumeRequest cr;
  cr.set_name("never");
  cr.set_size("32M");
  v1::VolumeResponse vr;
  {
    ImmutableFile frozen(trail);
    ASSERT_TRUE(frozen.ok()) << "FS_IOC_SETFLAGS immutable on " << trail << ": " << std::strerror(errno);
    Status s = alice.call(kVol + "Create", cr, &vr);
    EXPECT_EQ(s.code(), Code::kUnavailable) << s.to_string();
    EXPECT_EQ(s.reason(), "audit_unavailable") << s.to_string();
    EXPECT_NE(s.message().find("nothing was done"), std::string::npos) << s.message();
    v1::VolumeRef ref;
    ref.set_volume("never");
    EXPECT_EQ(admin.call(kVol + "Inspect", ref, &vr).code(), Code::kNotFound);
  }
  // Nothing on disk either.
  for (const auto& e : std::filesystem::directory_iterator(srv.dir() + "/data/volumes")) {
    ADD_FAILURE() << "a file was left on disk: " << e.path();
  }
  EXPECT_EQ(audit_records(srv).size(), before) << "the trail changed while immutable";
  // Writable again: the same create goes through, intent first, then its outcome.
  ASSERT_TRUE(alice.call(kVol + "Create", cr, &vr).is_ok());
  auto records = audit_records(srv);
  std::vector<const audit::Record*> mine;
  for (const auto& r : records) {
    if (field(r, "method") == "volume.create") mine.push_back(&r);
  }
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(field(*mine[0], "msg"), "Intent");
  EXPECT_NE(field(*mine[0], "params").find("\"name\":\"never\""), std::string::npos)
      << field(*mine[0], "params");
  EXPECT_EQ(field(*mine[1], "outcome"), "done");
  EXPECT_EQ(field(*mine[1], "intent"), field(*mine[0], "intent"));
  EXPECT_EQ(field(*mine[1], "resource"), "volume/" + vr.volume().id());
}

TEST(FailClosedTest, FullAuditDiskRefusesChangesButServesReads) {
  char tmpl[] = "/tmp/volguard-tiny-XXXXXX";
  std::string tiny = mkdtemp(tmpl);
  if (::mount("tmpfs", tiny.c_str(), "tmpfs", 0, "size=128k") != 0) FAIL() << "cannot mount tmpfs: " << std::strerror(errno);
  {
    TestServer srv("", true, "audit:\n  dir: " + tiny + "\n");
    auto alice = srv.client(srv.token("alice", {"system.user"}));
    v1::CreateVolumeRequest cr;
    cr.set_name("fc1");
    cr.set_size("32M");
    v1::VolumeResponse vr;
    ASSERT_TRUE(alice.call(kVol + "Create", cr, &vr).is_ok());
    {
      std::ofstream filler(tiny + "/filler");
      std::string block(4096, 'x');
      while (filler.write(block.data(), block.size())) {
      }
    }
    // The log's disk is full: changes are refused before they act.
    cr.set_name("fc-refused");
    Status s = alice.call(kVol + "Create", cr, &vr);
    EXPECT_EQ(s.code(), Code::kUnavailable) << s.to_string();
    EXPECT_EQ(s.reason(), "audit_unavailable");
    EXPECT_NE(s.message().find("refused"), std::string::npos) << s.message();
    v1::VolumeRef refused_ref;
    refused_ref.set_volume("fc-refused");
    EXPECT_EQ(alice.call(kVol + "Inspect", refused_ref, &vr).code(), Code::kNotFound);
    v1::VolumeRef ref;
    ref.set_volume("fc1");
    EXPECT_TRUE(alice.call(kVol + "Inspect", ref, &vr).is_ok()) << "reads continue";
    v1::EnumerateRequest en;
    v1::EnumerateResponse enr;
    EXPECT_TRUE(alice.call(kVol + "Enumerate", en, &enr).is_ok());
    std::filesystem::remove(tiny + "/filler");
    cr.set_name("fc3");
    EXPECT_TRUE(alice.call(kVol + "Create", cr, &vr).is_ok()) << "recovers once space is back";
  }
  ::umount2(tiny.c_str(), MNT_DETACH);
  std::filesystem::remove_all(tiny);
}

TEST(MetricsTest, PrometheusTextBehindAToken) {
  TestServer srv;
  auto alice = srv.client(srv.token("alice", {"system.user"}));
  v1::CreateVolumeRequest cr;
  cr.set_name("met");
  cr.set_size("32M");
  v1::VolumeResponse vr;
  ASSERT_TRUE(alice.call(kVol + "Create", cr, &vr).is_ok());
  v1::VolumeRef ref;
  ref.set_volume("met");
  v1::Empty e;
  EXPECT_EQ(srv.client(srv.token("vic", {"system.view"})).call(kVol + "Delete", ref, &e).code(),
            Code::kPermissionDenied);
  EXPECT_EQ(srv.client("garbage").call(kVol + "Delete", ref, &e).code(), Code::kUnauthenticated);
  httplib::Client rest("127.0.0.1", srv.rest_port());
  auto r = rest.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);  // the guest (guest_access is on here) has no metrics.inspect
  r = rest.Get("/metrics", {{"Authorization", "Bearer " + srv.token("alice", {"system.user"})}});
  EXPECT_EQ(r->status, 403);  // system.user has no metrics.inspect
  r = rest.Get("/metrics", {{"Authorization", "Bearer garbage"}});
  EXPECT_EQ(r->status, 401);
  // /metrics goes through the pipeline: in the access log, counted like any call.
  std::map<std::string, int> metrics_calls;
  // The access log is written behind the request: give its flusher a moment.
  for (int tries = 0; tries < 100; ++tries, std::this_thread::sleep_for(std::chrono::milliseconds(20))) {
    metrics_calls.clear();
    for (const auto& rec : access_records(srv)) {
      if (field(rec, "method") == "metrics.inspect") ++metrics_calls[field(rec, "reason")];
    }
    if (metrics_calls["rbac_denied"] >= 2 && metrics_calls["token_malformed"] >= 1) break;
  }
  EXPECT_EQ(metrics_calls["rbac_denied"], 2);
  EXPECT_EQ(metrics_calls["token_malformed"], 1);
  r = rest.Get("/metrics", {{"Authorization", "Bearer " + srv.token("ops", {"system.view"})}});
  ASSERT_EQ(r->status, 200);
  const std::string& m = r->body;
  EXPECT_NE(m.find("volguard_authentication_failures_total{reason=\"token_malformed\"} 2"), std::string::npos) << m;
  EXPECT_NE(m.find("volguard_requests_total{method=\"volume.create\",code=\"OK\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("volguard_authorization_denials_total{method=\"volume.delete\"} 1"), std::string::npos);
  EXPECT_NE(m.find("volguard_request_duration_seconds_bucket{method=\"volume.create\",le=\"+Inf\"} 1"), std::string::npos);
  EXPECT_NE(m.find("volguard_audit_records_total 3"), std::string::npos);  // started + intent + create
  EXPECT_NE(m.find("volguard_audit_fsync_seconds_count"), std::string::npos);
  EXPECT_NE(m.find("volguard_audit_failures_total 0"), std::string::npos);
}

}  // namespace
}  // namespace volguard
