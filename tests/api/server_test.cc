// Integration: the real server on loopback (gRPC + REST, SQLite, real loop-mounted volumes).
#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "service/volume_service.h"
#include "service/metrics.h"
#include "support/test_server.h"
#include "volguard.pb.h"

namespace volguard {
namespace {

using testing::TestServer;
namespace v1 = volguard::v1;

const std::string kVol = "/volguard.v1.VolguardVolume/";
const std::string kMount = "/volguard.v1.VolguardMountAttach/";
const std::string kRole = "/volguard.v1.VolguardRole/";
const std::string kId = "/volguard.v1.VolguardIdentity/";

service::MethodTable build_table() {
  // Registration only: no handler of this table is ever called.
  static const config::Config cfg;
  static service::RoleRegistry roles;
  static service::RevocationRegistry revocations;
  static service::DataKeys keys(cfg.encryption);
  static service::VolumeService svc(cfg, nullptr, nullptr, keys, roles, revocations);
  service::MethodTable table;
  svc.register_methods(&table);
  service::register_metrics_methods(&table, nullptr);
  return table;
}

Status create(const api::Client& c, const std::string& name,
              std::map<std::string, std::string> groups = {},
              std::map<std::string, std::string> collaborators = {}, std::string pub = "",
              v1::VolumeResponse* out = nullptr) {
  v1::CreateVolumeRequest req;
  req.set_name(name);
  req.set_size("32M");
  for (auto& [k, v] : groups) (*req.mutable_groups())[k] = v;
  for (auto& [k, v] : collaborators) (*req.mutable_collaborators())[k] = v;
  req.set_public_(pub);
  v1::VolumeResponse resp;
  return c.call(kVol + "Create", req, out ? out : &resp);
}

// Every RPC in the proto is a table entry and every entry is an RPC: nothing is served that
// the pipeline does not know, and nothing in the table is unreachable.
TEST(MethodTableTest, ProtoAndTableMatchOneToOne) {
  auto table = build_table();
  const auto* file = v1::Volume::descriptor()->file();
  size_t rpcs = 0;
  for (int s = 0; s < file->service_count(); ++s) {
    const auto* svc = file->service(s);
    std::string rule_service = svc->name().substr(std::string("Volguard").size());
    for (auto& c : rule_service) c = static_cast<char>(std::tolower(c));
    for (int m = 0; m < svc->method_count(); ++m) {
      ++rpcs;
      const auto* method = svc->method(m);
      std::string path = "/" + svc->full_name() + "/" + method->name();
      const auto* spec = table.find_grpc(path);
      ASSERT_NE(spec, nullptr) << path << " has no table entry";
      std::string api = method->name();
      for (auto& c : api) c = static_cast<char>(std::tolower(c));
      EXPECT_EQ(spec->service, rule_service) << path;
      EXPECT_EQ(spec->api, api) << path;
      EXPECT_EQ(spec->request_prototype->GetDescriptor(), method->input_type()) << path;
      EXPECT_EQ(spec->response_prototype->GetDescriptor(), method->output_type()) << path;
    }
  }
  EXPECT_EQ(rpcs, table.methods().size());
  EXPECT_GE(rpcs, 23u);
}

// Walks the table: every method, over gRPC and REST, refuses a caller without a token, with a
// bad token, and with a role that grants nothing — before any handler runs.
TEST(PipelineTest, EveryRegisteredMethodIsChecked) {
  TestServer srv("", /*guest_access=*/false);
  auto table = build_table();
  auto nobody = srv.client();
  auto forged = srv.client(srv.token("mallory", {"system.admin"}, {"*"},
                                     "an-attacker-guessed-secret-0123456789"));
  auto powerless = srv.client(srv.token("pat", {"no.such.role"}));
  httplib::Client rest("127.0.0.1", srv.rest_port());
  for (const auto& spec : table.methods()) {
    std::unique_ptr<google::protobuf::Message> req(spec->request_prototype->New());
    std::unique_ptr<google::protobuf::Message> resp(spec->response_prototype->New());
    EXPECT_EQ(nobody.call(spec->grpc_path, *req, resp.get()).code(), Code::kUnauthenticated)
        << spec->key();
    auto forged_status = forged.call(spec->grpc_path, *req, resp.get());
    EXPECT_EQ(forged_status.code(), Code::kUnauthenticated) << spec->key();
    EXPECT_EQ(forged_status.reason(), "signature_invalid") << spec->key();
    auto denied = powerless.call(spec->grpc_path, *req, resp.get());
    EXPECT_EQ(denied.code(), Code::kPermissionDenied) << spec->key();
    EXPECT_EQ(denied.reason(), "rbac_denied") << spec->key();
    auto r = rest.Post(("/v1/" + spec->service + "/" + spec->api).c_str(), "{}", "application/json");
    ASSERT_TRUE(r) << spec->key();
    EXPECT_EQ(r->status, 401) << spec->key();
    EXPECT_EQ(nlohmann::json::parse(r->body)["reason"], "token_missing");
  }
  v1::Empty e;
  EXPECT_EQ(nobody.call("/volguard.v1.VolguardVolume/Format", e, &e).code(), Code::kUnimplemented);
  EXPECT_EQ(nobody.call("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", e, &e).code(),
            Code::kUnimplemented);
  auto r = rest.Post("/v1/volume/format", "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  auto health = rest.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

// The seeds' multi-tenant walkthrough.
TEST(WalkthroughTest, SeedsMultiTenant) {
  TestServer srv;
  auto tenant_user = srv.client(srv.token("k8s-user", {"system.user"}, {"system-user"}));
  auto tenant_view = srv.client(srv.token("k8s-view", {"system.view"}, {"system-view"}));
  auto guest = srv.client();
  // A system.user tenant creates its PVC's volume.
  v1::VolumeResponse made;
  ASSERT_TRUE(create(tenant_user, "pvc-user", {}, {}, "", &made).is_ok());
  EXPECT_EQ(made.volume().ownership().owner(), "test.local/k8s-user");
  // A system.view tenant is refused create, naming the role set.
  Status refused = create(tenant_view, "pvc-view");
  EXPECT_EQ(refused.code(), Code::kPermissionDenied);
  EXPECT_EQ(refused.reason(), "rbac_denied");
  EXPECT_NE(refused.message().find("system.view"), std::string::npos) << refused.message();
  // Its token is re-issued with system.user: create succeeds.
  auto reissued = srv.client(srv.token("k8s-view", {"system.user"}, {"system-view"}));
  EXPECT_TRUE(create(reissued, "pvc-view").is_ok());
  // A guest creates a public volume (no owner) that every tenant can use.
  ASSERT_TRUE(create(guest, "pvc-guest", {}, {}, "", &made).is_ok());
  EXPECT_EQ(made.volume().ownership().owner(), "");
  v1::VolumeRef ref;
  ref.set_volume("pvc-guest");
  v1::VolumeResponse seen;
  EXPECT_TRUE(tenant_view.call(kVol + "Inspect", ref, &seen).is_ok());
  // ...but guests cannot see the tenants' volumes, and tenants cannot see each other's.
  ref.set_volume("pvc-user");
  // (Told "not found", exactly as for a volume that does not exist.)
  EXPECT_EQ(guest.call(kVol + "Inspect", ref, &seen).code(), Code::kNotFound);
  EXPECT_EQ(reissued.call(kVol + "Inspect", ref, &seen).code(), Code::kNotFound);
  v1::EnumerateRequest all;
  v1::EnumerateResponse listed;
  ASSERT_TRUE(tenant_user.call(kVol + "Enumerate", all, &listed).is_ok());
  std::set<std::string> names;
  for (const auto& v : listed.volumes()) names.insert(v.name());
  EXPECT_EQ(names, (std::set<std::string>{"pvc-user", "pvc-guest"}));
  // Guest identity calls are limited by system.guest: whoami is not in it.
  v1::Empty e;
  v1::WhoAmIResponse who;
  EXPECT_EQ(guest.call(kId + "WhoAmI", e, &who).code(), Code::kPermissionDenied);
  v1::VersionResponse version;
  EXPECT_TRUE(guest.call(kId + "Version", e, &version).is_ok());
}

struct Subject {
  std::string label;
  std::vector<std::string> roles;
  std::vector<std::string> groups;
  bool guest = false;
};

// Role × operation × ownership: the expected code of every cell, written out.
TEST(OwnershipMatrixTest, EveryCell) {
  TestServer srv;
  auto owner = srv.client(srv.token("alice", {"system.user"}, {"alice-team"}));
  const std::map<std::string, std::string> groups = {{"g-r", "r"}, {"g-w", "w"}, {"g-a", "a"}};
  const std::map<std::string, std::string> collabs = {{"c-r", "r"}, {"c-w", "w"}, {"c-a", "a"}};
  // Subjects: sub name doubles as collaborator name.
  const std::vector<std::pair<std::string, Subject>> subjects = {
      {"alice", {"owner", {"system.user"}, {}}},
      {"root", {"system.admin", {"system.admin"}, {}}},
      {"gr", {"group r", {"system.user"}, {"g-r"}}},
      {"gw", {"group w", {"system.user"}, {"g-w"}}},
      {"ga", {"group a", {"system.user"}, {"g-a"}}},
      {"c-r", {"collaborator r", {"system.user"}, {}}},
      {"c-w", {"collaborator w", {"system.user"}, {}}},
      {"c-a", {"collaborator a", {"system.user"}, {}}},
      {"pub", {"public r (no grant)", {"system.user"}, {}}},
      {"nobody", {"none", {"system.user"}, {"unrelated"}}},
      {"guest", {"guest", {}, {}, true}},
      {"viewer", {"system.view in group a", {"system.view"}, {"g-a"}}},
  };
  const std::vector<std::string> ops = {"inspect", "update", "snapshot", "acl", "delete"};
  // NF: no read access looks exactly like no volume (the name sent back, nothing else).
  const Code OK = Code::kOk, PD = Code::kPermissionDenied, NF = Code::kNotFound;
  // clang-format off
  const std::map<std::string, std::vector<Code>> expected = {
      //            inspect update snapshot acl delete
      {"alice",    {OK,     OK,    OK,      OK,  OK}},
      {"root",     {OK,     OK,    OK,      OK,  OK}},
      {"gr",       {OK,     PD,    PD,      PD,  PD}},
      {"gw",       {OK,     OK,    OK,      PD,  PD}},
      {"ga",       {OK,     OK,    OK,      OK,  OK}},
      {"c-r",      {OK,     PD,    PD,      PD,  PD}},
      {"c-w",      {OK,     OK,    OK,      PD,  PD}},
      {"c-a",      {OK,     OK,    OK,      OK,  OK}},
      {"pub",      {OK,     PD,    PD,      PD,  PD}},
      {"nobody",   {NF,     NF,    NF,      NF,  NF}},
      {"guest",    {OK,     PD,    PD,      PD,  PD}},
      {"viewer",   {OK,     PD,    PD,      PD,  PD}},
  };
  // clang-format on
  int n = 0;
  for (const auto& [sub, subject] : subjects) {
    auto caller = subject.guest ? srv.client() : srv.client(srv.token(sub, subject.roles, subject.groups));
    for (size_t i = 0; i < ops.size(); ++i) {
      // pub and guest act on a volume with public read; the others on a private one.
      std::string vol = "m" + std::to_string(n++);
      bool public_read = sub == "pub" || sub == "guest";
      ASSERT_TRUE(create(owner, vol, groups, collabs, public_read ? "r" : "").is_ok());
      Status s;
      if (ops[i] == "inspect") {
        v1::VolumeRef r;
        r.set_volume(vol);
        v1::VolumeResponse out;
        s = caller.call(kVol + "Inspect", r, &out);
      } else if (ops[i] == "update") {
        v1::UpdateVolumeRequest r;
        r.set_volume(vol);
        (*r.mutable_set_labels())["touched"] = "yes";
        v1::VolumeResponse out;
        s = caller.call(kVol + "Update", r, &out);
      } else if (ops[i] == "snapshot") {
        v1::SnapshotCreateRequest r;
        r.set_volume(vol);
        r.set_name(vol + "-snap");
        v1::SnapshotResponse out;
        s = caller.call(kVol + "SnapshotCreate", r, &out);
      } else if (ops[i] == "acl") {
        v1::UpdateVolumeRequest r;
        r.set_volume(vol);
        (*r.mutable_add_groups())["new-group"] = "r";
        v1::VolumeResponse out;
        s = caller.call(kVol + "Update", r, &out);
      } else {
        v1::VolumeRef r;
        r.set_volume(vol);
        v1::Empty out;
        s = caller.call(kVol + "Delete", r, &out);
      }
      Code want = expected.at(sub)[i];
      EXPECT_EQ(s.code(), want) << subject.label << " × " << ops[i] << ": " << s.to_string();
      if (want == PD && sub != "viewer") {
        EXPECT_EQ(s.reason(), "acl_insufficient") << subject.label << " × " << ops[i];
        EXPECT_NE(s.message().find("needs"), std::string::npos) << s.message();
      }
      if (want == NF) {
        EXPECT_EQ(s.reason(), "volume_not_found") << subject.label << " × " << ops[i];
        EXPECT_EQ(s.message(), "volume '" + vol + "' not found") << subject.label << " × " << ops[i];
      }
      if (want == PD && sub == "viewer") {
        EXPECT_EQ(s.reason(), "rbac_denied");
      }
    }
  }
}

TEST(OwnershipTest, TransferOnlyByOwnershipAdminsAndKeepsAcls) {
  TestServer srv;
  auto alice = srv.client(srv.token("alice", {"system.user"}));
  auto admin = srv.client(srv.token("root", {"system.admin"}));
  ASSERT_TRUE(create(alice, "xfer", {{"eng", "w"}}).is_ok());
  v1::UpdateVolumeRequest r;
  r.set_volume("xfer");
  r.set_owner("bob");
  v1::VolumeResponse out;
  Status s = alice.call(kVol + "Update", r, &out);
  EXPECT_EQ(s.code(), Code::kPermissionDenied);
  EXPECT_EQ(s.reason(), "ownership_admin_required");
  ASSERT_TRUE(admin.call(kVol + "Update", r, &out).is_ok());
  EXPECT_EQ(out.volume().ownership().owner(), "test.local/bob");
  EXPECT_EQ(out.volume().ownership().groups().at("test.local/eng"), "w");  // ACLs kept
  // Alice lost it; Bob has it.
  v1::VolumeRef ref;
  ref.set_volume("xfer");
  EXPECT_EQ(alice.call(kVol + "Inspect", ref, &out).code(), Code::kNotFound);
  EXPECT_TRUE(srv.client(srv.token("bob", {"system.user"})).call(kVol + "Inspect", ref, &out).is_ok());
}

TEST(RolesTest, CustomRoleFromJsonAndDenyRules) {
  TestServer srv;
  auto admin = srv.client(srv.token("root", {"system.admin"}));
  auto role_req = [](const std::string& json) {
    auto role = policy::role_from_json(json).value();
    v1::RoleRequest req;
    req.mutable_role()->set_name(role.name);
    for (const auto& rule : role.rules) {
      auto* pr = req.mutable_role()->add_rules();
      for (const auto& s : rule.services) pr->add_services(s);
      for (const auto& a : rule.apis) pr->add_apis(a);
    }
    return req;
  };
  v1::RoleResponse out;
  ASSERT_TRUE(admin.call(kRole + "Create",
                         role_req(R"({"name": "test.view", "rules": [{"services": ["volume"], "apis": ["inspect", "enumerate"]}]})"),
                         &out).is_ok());
  // A rule that can never match is refused, naming the field.
  Status bad = admin.call(kRole + "Create",
                          role_req(R"({"name": "typo", "rules": [{"services": ["volumes"], "apis": ["*"]}]})"), &out);
  EXPECT_EQ(bad.code(), Code::kInvalidArgument);
  EXPECT_NE(bad.message().find("rules[0].services"), std::string::npos);
  // Default roles: cannot be created, updated (except guest) or deleted.
  EXPECT_EQ(admin.call(kRole + "Create", role_req(R"({"name": "system.admin", "rules": [{"services": ["*"], "apis": ["*"]}]})"), &out).code(),
            Code::kAlreadyExists);
  EXPECT_EQ(admin.call(kRole + "Update", role_req(R"({"name": "system.user", "rules": [{"services": ["*"], "apis": ["*"]}]})"), &out).code(),
            Code::kPermissionDenied);
  v1::RoleRef rr;
  rr.set_name("system.guest");
  v1::Empty e;
  EXPECT_EQ(admin.call(kRole + "Delete", rr, &e).code(), Code::kPermissionDenied);

  // The custom role may inspect and enumerate, nothing else.
  auto alice = srv.client(srv.token("alice", {"system.user"}, {"eng"}));
  ASSERT_TRUE(create(alice, "shared", {{"eng", "a"}}).is_ok());
  auto viewer = srv.client(srv.token("vic", {"test.view"}, {"eng"}));
  v1::VolumeRef ref;
  ref.set_volume("shared");
  v1::VolumeResponse vr;
  EXPECT_TRUE(viewer.call(kVol + "Inspect", ref, &vr).is_ok());
  EXPECT_EQ(viewer.call(kVol + "Delete", ref, &e).code(), Code::kPermissionDenied);
  EXPECT_EQ(create(viewer, "nope").code(), Code::kPermissionDenied);

  // A deny role held beside system.admin wins.
  ASSERT_TRUE(admin.call(kRole + "Create",
                         role_req(R"({"name": "no.delete", "rules": [{"services": ["volume"], "apis": ["!delete"]}]})"),
                         &out).is_ok());
  auto careful_admin = srv.client(srv.token("root2", {"system.admin", "no.delete"}));
  Status denied = careful_admin.call(kVol + "Delete", ref, &e);
  EXPECT_EQ(denied.code(), Code::kPermissionDenied);
  EXPECT_EQ(denied.reason(), "rbac_deny_rule");
  EXPECT_TRUE(careful_admin.call(kVol + "Inspect", ref, &vr).is_ok());

  // Disabling guest access by editing system.guest takes effect at once (roles in memory).
  auto guest = srv.client();
  EXPECT_TRUE(create(guest, "g-before").is_ok());
  ASSERT_TRUE(admin.call(kRole + "Update",
                         role_req(R"({"name": "system.guest", "rules": [{"services": ["!*"], "apis": ["!*"]}]})"),
                         &out).is_ok());
  Status g = create(guest, "g-after");
  EXPECT_EQ(g.code(), Code::kPermissionDenied);
  EXPECT_NE(g.message().find("without authentication token"), std::string::npos) << g.message();
  // Deleting the custom role removes its grants at once.
  rr.set_name("test.view");
  ASSERT_TRUE(admin.call(kRole + "Delete", rr, &e).is_ok());
  EXPECT_EQ(viewer.call(kVol + "Inspect", ref, &vr).code(), Code::kPermissionDenied);
  EXPECT_EQ(admin.call(kRole + "Delete", rr, &e).code(), Code::kNotFound);
}

TEST(PersistenceTest, VolumesSnapshotsRolesAndOwnershipSurviveRestart) {
  TestServer srv;
  auto alice = srv.client(srv.token("alice", {"system.user"}));
  auto admin = srv.client(srv.token("root", {"system.admin"}));
  ASSERT_TRUE(create(alice, "keep", {{"eng", "r"}}).is_ok());
  v1::SnapshotCreateRequest sr;
  sr.set_volume("keep");
  sr.set_name("keep-s1");
  v1::SnapshotResponse sresp;
  ASSERT_TRUE(alice.call(kVol + "SnapshotCreate", sr, &sresp).is_ok());
  v1::RoleRequest role;
  role.mutable_role()->set_name("persist.role");
  auto* rule = role.mutable_role()->add_rules();
  rule->add_services("volume");
  rule->add_apis("inspect");
  v1::RoleResponse rresp;
  ASSERT_TRUE(admin.call(kRole + "Create", role, &rresp).is_ok());
  srv.stop();
  srv.start();
  auto alice2 = srv.client(srv.token("alice", {"system.user"}));
  v1::VolumeRef ref;
  ref.set_volume("keep");
  v1::VolumeResponse vr;
  ASSERT_TRUE(alice2.call(kVol + "Inspect", ref, &vr).is_ok());
  EXPECT_EQ(vr.volume().ownership().owner(), "test.local/alice");
  EXPECT_EQ(vr.volume().ownership().groups().at("test.local/eng"), "r");
  v1::SnapshotEnumerateRequest se;
  se.set_volume("keep");
  v1::SnapshotEnumerateResponse seresp;
  ASSERT_TRUE(alice2.call(kVol + "SnapshotEnumerate", se, &seresp).is_ok());
  ASSERT_EQ(seresp.snapshots_size(), 1);
  EXPECT_EQ(seresp.snapshots(0).name(), "keep-s1");
  auto custom = srv.client(srv.token("c", {"persist.role"}, {"eng"}));
  EXPECT_TRUE(custom.call(kVol + "Inspect", ref, &vr).is_ok());
  EXPECT_EQ(create(alice2, "keep").code(), Code::kAlreadyExists);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A real mount, write, snapshot, overwrite, restore, and the original bytes read back.
TEST(DataTest, MountWriteSnapshotOverwriteRestore) {
  TestServer srv;
  auto alice = srv.client(srv.token("alice", {"system.user"}));
  ASSERT_TRUE(create(alice, "data").is_ok());
  std::string mnt = srv.dir() + "/mnt";
  std::filesystem::create_directories(mnt);
  v1::MountRequest m;
  m.set_volume("data");
  m.set_path(mnt);
  v1::Empty e;
  ASSERT_TRUE(alice.call(kMount + "Mount", m, &e).is_ok());
  { std::ofstream(mnt + "/file.txt") << "original bytes"; }
  v1::SnapshotCreateRequest sr;
  sr.set_volume("data");
  sr.set_name("data-s1");
  v1::SnapshotResponse sresp;
  ASSERT_TRUE(alice.call(kVol + "SnapshotCreate", sr, &sresp).is_ok());
  { std::ofstream(mnt + "/file.txt") << "OVERWRITTEN"; }
  ::sync();
  v1::SnapshotRestoreRequest rr;
  rr.set_volume("data");
  rr.set_snapshot("data-s1");
  v1::VolumeResponse vr;
  EXPECT_EQ(alice.call(kVol + "SnapshotRestore", rr, &vr).code(), Code::kFailedPrecondition);
  v1::VolumeRef ref;
  ref.set_volume("data");
  EXPECT_EQ(alice.call(kVol + "Delete", ref, &e).code(), Code::kFailedPrecondition);
  ASSERT_TRUE(alice.call(kMount + "Unmount", ref, &e).is_ok());
  ASSERT_TRUE(alice.call(kMount + "Detach", ref, &e).is_ok());
  ASSERT_TRUE(alice.call(kVol + "SnapshotRestore", rr, &vr).is_ok());
  ASSERT_TRUE(alice.call(kMount + "Mount", m, &e).is_ok());
  EXPECT_EQ(read_all(mnt + "/file.txt"), "original bytes");
  // Mounting outside the mount roots is refused.
  v1::MountRequest etc;
  etc.set_volume("data");
  etc.set_path("/etc");
  EXPECT_EQ(alice.call(kMount + "Mount", etc, &e).code(), Code::kPermissionDenied);
  ASSERT_TRUE(alice.call(kMount + "Unmount", ref, &e).is_ok());
  ASSERT_TRUE(alice.call(kMount + "Detach", ref, &e).is_ok());
  // A clone of the snapshot holds the original bytes too and is owned by its creator.
  auto bob = srv.client(srv.token("bob", {"system.user"}));
  v1::CloneVolumeRequest cr;
  cr.set_source_snapshot("data-s1");
  cr.set_name("data-clone");
  EXPECT_EQ(bob.call(kVol + "Clone", cr, &vr).code(), Code::kNotFound);
  ASSERT_TRUE(alice.call(kVol + "Clone", cr, &vr).is_ok());
  EXPECT_EQ(vr.volume().ownership().owner(), "test.local/alice");
  // A volume with snapshots is not deleted: its snapshots would have nobody to decide for them.
  Status has_snaps = alice.call(kVol + "Delete", ref, &e);
  EXPECT_EQ(has_snaps.code(), Code::kFailedPrecondition) << has_snaps.to_string();
  EXPECT_EQ(has_snaps.reason(), "volume_has_snapshots");
  v1::SnapshotRef sref;
  sref.set_snapshot("data-s1");
  ASSERT_TRUE(alice.call(kVol + "SnapshotDelete", sref, &e).is_ok());
  ASSERT_TRUE(alice.call(kVol + "Delete", ref, &e).is_ok());
  EXPECT_EQ(alice.call(kVol + "Inspect", ref, &vr).code(), Code::kNotFound);
}

TEST(RestTest, SameServiceCodeAsGrpc) {
  TestServer srv;
  std::string tok = srv.token("alice", {"system.user"});
  httplib::Client rest("127.0.0.1", srv.rest_port());
  httplib::Headers auth = {{"Authorization", "Bearer " + tok}};
  auto r = rest.Post("/v1/volume/create", auth, R"({"name":"rv","size":"32M","labels":{"app":"db"}})",
                     "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = nlohmann::json::parse(r->body);
  EXPECT_EQ(j["volume"]["ownership"]["owner"], "test.local/alice");
  // The same volume through gRPC.
  v1::VolumeRef ref;
  ref.set_volume("rv");
  v1::VolumeResponse vr;
  ASSERT_TRUE(srv.client(tok).call(kVol + "Inspect", ref, &vr).is_ok());
  EXPECT_EQ(vr.volume().id(), j["volume"]["id"]);
  // Errors: status and a body naming the failed check.
  r = rest.Post("/v1/volume/create", auth, R"({"name":"rv","size":"32M"})", "application/json");
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(nlohmann::json::parse(r->body)["reason"], "name_taken");
  r = rest.Post("/v1/volume/create", auth, R"({"name":"bad name"})", "application/json");
  EXPECT_EQ(r->status, 400);
  r = rest.Post("/v1/volume/create", auth, R"({"name":"x","sizee":"1G"})", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(nlohmann::json::parse(r->body)["reason"], "bad_request");
  r = rest.Post("/v1/volume/inspect", auth, R"({"volume":"missing"})", "application/json");
  EXPECT_EQ(r->status, 404);
  r = rest.Post("/v1/volume/create", httplib::Headers{{"Authorization", "Bearer x.y.z"}}, "{}",
                "application/json");
  EXPECT_EQ(r->status, 401);
  r = rest.Post("/v1/role/create", auth, R"({"role":{"name":"r","rules":[]}})", "application/json");
  EXPECT_EQ(r->status, 403);
  r = rest.Post("/v1/volume/update", auth, R"({"volume":"rv","size":"16M"})", "application/json");
  EXPECT_EQ(r->status, 400);  // OUT_OF_RANGE: volumes only grow
}

// Refusals not exercised elsewhere, each with its reason.
TEST(RefusalsTest, SchemeMissingFieldOtherVolumesSnapshotAndRoleClash) {
  TestServer srv;
  const std::string tok = srv.token("alice", {"system.user"});
  httplib::Client rest("127.0.0.1", srv.rest_port());
  auto r = rest.Post("/v1/volume/enumerate", httplib::Headers{{"Authorization", "Basic " + tok}}, "{}",
                     "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(nlohmann::json::parse(r->body)["reason"], "token_bad_scheme");
  EXPECT_EQ(r->body.find(tok.substr(tok.rfind('.') + 1)), std::string::npos);
  auto alice = srv.client(tok);
  v1::VolumeRef empty_ref;
  v1::VolumeResponse vr;
  Status s = alice.call(kVol + "Inspect", empty_ref, &vr);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.reason(), "field_required");
  ASSERT_TRUE(create(alice, "va").is_ok());
  ASSERT_TRUE(create(alice, "vb").is_ok());
  v1::SnapshotCreateRequest sc;
  sc.set_volume("va");
  sc.set_name("va-snap");
  v1::SnapshotResponse sr;
  ASSERT_TRUE(alice.call(kVol + "SnapshotCreate", sc, &sr).is_ok());
  v1::SnapshotRestoreRequest rr;
  rr.set_volume("vb");
  rr.set_snapshot("va-snap");
  s = alice.call(kVol + "SnapshotRestore", rr, &vr);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_EQ(s.reason(), "snapshot_of_other_volume");
  EXPECT_EQ(alice.call(kVol + "SnapshotCreate", sc, &sr).reason(), "name_taken");
  auto admin = srv.client(srv.token("root", {"system.admin"}));
  v1::RoleRequest role;
  role.mutable_role()->set_name("clash");
  auto* rule = role.mutable_role()->add_rules();
  rule->add_services("volume");
  rule->add_apis("inspect");
  v1::RoleResponse out;
  ASSERT_TRUE(admin.call(kRole + "Create", role, &out).is_ok());
  EXPECT_TRUE(admin.call(kRole + "Create", role, &out).is_ok()) << "same role again: idempotent";
  rule->add_apis("delete");
  s = admin.call(kRole + "Create", role, &out);
  EXPECT_EQ(s.code(), Code::kAlreadyExists);
  EXPECT_EQ(s.reason(), "role_exists");
  v1::RoleRef missing;
  missing.set_name("nope");
  EXPECT_EQ(admin.call(kRole + "Inspect", missing, &out).reason(), "role_not_found");
}

TEST(CanITest, ExplainsRoleRuleAndOwnership) {
  TestServer srv;
  auto alice = srv.client(srv.token("alice", {"system.user"}));
  ASSERT_TRUE(create(alice, "ci", {{"eng", "r"}}).is_ok());
  auto eve = srv.client(srv.token("eve", {"system.user"}, {"eng"}));
  v1::CapabilitiesRequest req;
  req.set_method("volume.delete");
  req.set_volume("ci");
  v1::CapabilitiesResponse resp;
  ASSERT_TRUE(eve.call(kId + "Capabilities", req, &resp).is_ok());
  EXPECT_FALSE(resp.allowed());
  EXPECT_EQ(resp.role(), "system.user");
  EXPECT_EQ(resp.access_needed(), "admin");
  EXPECT_EQ(resp.access_granted(), "read");
  EXPECT_EQ(resp.access_via(), "group test.local/eng:r");
  req.set_method("volume.inspect");
  ASSERT_TRUE(eve.call(kId + "Capabilities", req, &resp).is_ok());
  EXPECT_TRUE(resp.allowed());
  req.set_method("role.create");
  req.clear_volume();
  ASSERT_TRUE(eve.call(kId + "Capabilities", req, &resp).is_ok());
  EXPECT_FALSE(resp.allowed());
  EXPECT_NE(resp.reason().find("role.create"), std::string::npos);
}

}  // namespace
}  // namespace volguard

namespace volguard {
namespace {

TEST(TlsTest, GrpcAndRestOverTls) {
  char tmpl[] = "/tmp/volguard-tls-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + dir + "/key.pem -out " +
                    dir + "/cert.pem -days 1 -subj /CN=localhost -addext "
                    "subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  {
    TestServer srv("", true,
                   "  tls:\n    cert_file: " + dir + "/cert.pem\n    key_file: " + dir + "/key.pem\n");
    std::string tok = srv.token("alice", {"system.user"});
    auto tls = api::Client::connect("127.0.0.1:" + std::to_string(srv.grpc_port()), tok,
                                    dir + "/cert.pem").value();
    v1::Empty e;
    v1::WhoAmIResponse who;
    Status s = tls.call(kId + "WhoAmI", e, &who);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    EXPECT_EQ(who.username(), "alice");
    // Plaintext to a TLS port fails.
    auto plain = api::Client::connect("127.0.0.1:" + std::to_string(srv.grpc_port()), tok, "").value();
    EXPECT_EQ(plain.call(kId + "WhoAmI", e, &who).code(), Code::kUnavailable);
    httplib::SSLClient rest("127.0.0.1", srv.rest_port());
    rest.set_ca_cert_path((dir + "/cert.pem").c_str());
    rest.enable_server_certificate_verification(true);
    auto r = rest.Get("/healthz");
    ASSERT_TRUE(r) << "TLS REST failed";
    EXPECT_EQ(r->status, 200);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace volguard
