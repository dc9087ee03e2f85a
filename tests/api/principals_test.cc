// Issue 9 §4 and §6 against the real server: principals and groups qualified by issuer (group
// domains, admin groups, migration of unqualified grants), case-variant role names, and
// secrets and data files at rest.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <ctime>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "api/client.h"
#include "api/server.h"
#include "common/text.h"
#include "config/config.h"
#include "identity/token.h"
#include "ownership/ownership.h"
#include "store/store.h"
#include "support/test_server.h"
#include "volguard.pb.h"

namespace volguard {
namespace {

namespace v1 = volguard::v1;
namespace fs = std::filesystem;

const std::string kVol = "/volguard.v1.VolguardVolume/";
const std::string kRole = "/volguard.v1.VolguardRole/";
const std::string kId = "/volguard.v1.VolguardIdentity/";

// The issuers every server here trusts, each with its own secret: a.example and c.example share
// a group domain; corp and corp/eu would make the same principal string if it were not escaped.
const char* const kIssuers[][2] = {{"a.example", ""},
                                   {"b.example", ""},
                                   {"c.example", "a.example"},
                                   {"corp", ""},
                                   {"corp/eu", ""}};

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

class MultiIssuerServer {
 public:
  MultiIssuerServer() {
    char tmpl[] = "/tmp/volguard-pr-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~MultiIssuerServer() {
    server_.reset();
    volguard::testing::remove_server_dir(dir_);
  }

  static std::string secret_of(const std::string& iss) {
    return "secret-of-" + iss + "-0123456789abcdef0123456789";
  }
  static std::string file_name(const std::string& iss) {
    std::string out = iss;
    for (auto& c : out) c = c == '/' ? '_' : c;
    return out;
  }

  // The config: `count` first issuers of kIssuers, then `extra_security` and `extra_top`.
  std::string yaml(size_t count = std::size(kIssuers), const std::string& extra_security = "",
                   const std::string& extra_top = "") {
    std::string y = "data_dir: " + dir_ + "/data\napi:\n  grpc: 127.0.0.1:0\n  rest: 127.0.0.1:0\n" +
                    extra_top + "security:\n  guest_access: true\n" + extra_security +
                    "  issuers:\n";
    for (size_t i = 0; i < count; ++i) {
      const std::string iss = kIssuers[i][0];
      const std::string path = dir_ + "/" + file_name(iss) + ".secret";
      if (!fs::exists(path)) {
        EXPECT_TRUE(write_file(path, secret_of(iss) + "\n", 0600).is_ok());
      }
      y += "    - issuer: " + iss + "\n      shared_secret_file: " + path + "\n";
      if (*kIssuers[i][1]) y += "      group_domain: " + std::string(kIssuers[i][1]) + "\n";
    }
    return y;
  }

  Result<std::unique_ptr<api::Server>> try_start(const std::string& yaml_text) {
    auto cfg = config::parse_config(yaml_text, "vg.yaml");
    if (!cfg) return cfg.status();
    config_ = *cfg;
    return api::Server::start(config_);
  }
  void start(const std::string& yaml_text) {
    auto s = try_start(yaml_text);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    server_ = std::move(s).value();
  }
  void stop() { server_.reset(); }

  api::Client as(const std::string& iss, const std::string& sub,
                 std::vector<std::string> groups = {},
                 std::vector<std::string> roles = {"system.user"}) const {
    identity::TokenClaims c{.issuer = iss, .subject = sub, .name = sub, .roles = std::move(roles),
                            .groups = std::move(groups), .lifetime_seconds = 3600};
    auto key = identity::SigningKey::from_secret(secret_of(iss)).value();
    auto token = identity::generate_token(key, c, static_cast<int64_t>(std::time(nullptr))).value();
    return api::Client::connect("127.0.0.1:" + std::to_string(server_->grpc_port()), token, "")
        .value();
  }

  api::Client guest() const {
    return api::Client::connect("127.0.0.1:" + std::to_string(server_->grpc_port()), "", "").value();
  }

  const std::string& dir() const { return dir_; }
  std::string db() const { return dir_ + "/data/volguard.db"; }

 private:
  std::string dir_;
  config::Config config_;
  std::unique_ptr<api::Server> server_;
};

Status create(const api::Client& c, const std::string& name,
              std::map<std::string, std::string> groups,
              std::map<std::string, std::string> collaborators = {},
              v1::VolumeResponse* out = nullptr) {
  v1::CreateVolumeRequest req;
  req.set_name(name);
  req.set_size("16M");
  for (auto& [k, v] : groups) (*req.mutable_groups())[k] = v;
  for (auto& [k, v] : collaborators) (*req.mutable_collaborators())[k] = v;
  v1::VolumeResponse resp;
  return c.call(kVol + "Create", req, out ? out : &resp);
}

Status inspect(const api::Client& c, const std::string& name, v1::VolumeResponse* out = nullptr) {
  v1::VolumeRef ref;
  ref.set_volume(name);
  v1::VolumeResponse resp;
  return c.call(kVol + "Inspect", ref, out ? out : &resp);
}

v1::WhoAmIResponse whoami(const api::Client& c) {
  v1::Empty e;
  v1::WhoAmIResponse who;
  Status s = c.call(kId + "WhoAmI", e, &who);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return who;
}

void expect_refused(const Status& s, Code code, const std::string& reason,
                    const std::string& in_message = "") {
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_EQ(s.reason(), reason) << s.to_string();
  if (!in_message.empty()) {
    EXPECT_NE(s.message().find(in_message), std::string::npos) << s.to_string();
  }
}

// A grant to "eng" made by a caller of issuer A is a grant to A's eng: issuer B's eng gets
// nothing (not even the volume's existence), issuer C — configured in A's group domain — gets it.
TEST(GroupDomainTest, GroupGrantsMatchOnlyTheirGroupDomain) {
  MultiIssuerServer srv;
  srv.start(srv.yaml());
  auto alice = srv.as("a.example", "alice");
  v1::VolumeResponse made;
  ASSERT_TRUE(create(alice, "pr-groups", {{"eng", "r"}}, {}, &made).is_ok());
  EXPECT_EQ(made.volume().ownership().groups().at("a.example/eng"), "r");
  EXPECT_EQ(made.volume().ownership().groups().count("eng"), 0u);

  EXPECT_TRUE(inspect(srv.as("a.example", "dev", {"eng"}), "pr-groups").is_ok());
  expect_refused(inspect(srv.as("b.example", "mallory", {"eng"}), "pr-groups"), Code::kNotFound,
                 "volume_not_found");
  auto shared = srv.as("c.example", "carol", {"eng"});
  EXPECT_EQ(whoami(shared).group_domain(), "a.example");
  EXPECT_TRUE(inspect(shared, "pr-groups").is_ok());
  v1::VolumeRef ref;
  ref.set_volume("pr-groups");
  v1::Empty e;
  expect_refused(shared.call(kVol + "Delete", ref, &e), Code::kPermissionDenied,
                 "acl_insufficient", "group a.example/eng:r");

  // Explicitly qualified grants: another configured domain, an escaped '/', "*" as before.
  v1::UpdateVolumeRequest up;
  up.set_volume("pr-groups");
  (*up.mutable_add_groups())["b.example/eng"] = "r";
  (*up.mutable_add_groups())["b.example/ops%2fteam"] = "w";
  (*up.mutable_add_groups())["*"] = "r";
  v1::VolumeResponse after;
  ASSERT_TRUE(alice.call(kVol + "Update", up, &after).is_ok());
  EXPECT_EQ(after.volume().ownership().groups().at("b.example/eng"), "r");
  EXPECT_EQ(after.volume().ownership().groups().at("b.example/ops%2Fteam"), "w");  // canonical
  EXPECT_EQ(after.volume().ownership().groups().at("*"), "r");
  EXPECT_TRUE(inspect(srv.as("b.example", "mallory", {"eng"}), "pr-groups").is_ok());
  EXPECT_TRUE(inspect(srv.as("b.example", "bo", {"ops/team"}), "pr-groups").is_ok());
  // Removal qualifies the same way.
  v1::UpdateVolumeRequest rm;
  rm.set_volume("pr-groups");
  rm.add_remove_groups("eng");
  ASSERT_TRUE(alice.call(kVol + "Update", rm, &after).is_ok());
  EXPECT_EQ(after.volume().ownership().groups().count("a.example/eng"), 0u);
  EXPECT_EQ(after.volume().ownership().groups().count("b.example/eng"), 1u);
}

// Grant inputs that cannot name one group or one principal are refused, each with its reason.
TEST(GroupDomainTest, UnqualifiableGrantsAreRefused) {
  MultiIssuerServer srv;
  srv.start(srv.yaml());
  auto alice = srv.as("a.example", "alice");
  expect_refused(create(alice, "pr-bad1", {{"nope.example/eng", "r"}}), Code::kInvalidArgument,
                 "invalid_group", "'nope.example' is not a configured group_domain (escape '/' in group names as %2F)");
  // b.example's and c.example's group domain is not "c.example".
  expect_refused(create(alice, "pr-bad2", {{"c.example/eng", "r"}}), Code::kInvalidArgument,
                 "invalid_group", "'c.example' is not a configured group_domain");
  expect_refused(create(alice, "pr-bad3", {{"a.example/*", "r"}}), Code::kInvalidArgument,
                 "invalid_group", "a group named '*' matches no one");
  expect_refused(create(alice, "pr-bad4", {{"a.example/x%zz", "r"}}), Code::kInvalidArgument,
                 "invalid_group", "not followed by two hex digits");
  expect_refused(create(alice, "pr-bad5", {}, {{"nope.example/bob", "r"}}), Code::kInvalidArgument,
                 "invalid_user", "'nope.example' is not a configured issuer (escape '/' in usernames as %2F)");
  expect_refused(create(alice, "pr-bad6", {}, {{"eu/bob", "r"}}), Code::kInvalidArgument,
                 "invalid_user", "'eu' is not a configured issuer");
  expect_refused(create(alice, "pr-bad7", {}, {{"b.example/a%0Ab", "r"}}), Code::kInvalidArgument,
                 "invalid_user", "contains control characters");
  // A guest has no issuer: a bare group or user cannot be qualified.
  auto guest = srv.guest();
  expect_refused(create(guest, "pr-bad8", {{"eng", "r"}}), Code::kInvalidArgument, "invalid_group",
                 "'eng' must be written <group_domain>/<group> (the caller has no issuer)");
  expect_refused(create(guest, "pr-bad9", {}, {{"bob", "r"}}), Code::kInvalidArgument,
                 "invalid_user", "'bob' must be written <issuer>/<user> (the caller has no issuer)");
  for (const char* name : {"pr-bad1", "pr-bad2", "pr-bad3", "pr-bad4", "pr-bad5", "pr-bad6", "pr-bad7",
                           "pr-bad8", "pr-bad9"}) {
    expect_refused(inspect(alice, name), Code::kNotFound, "volume_not_found");
  }
}

// issuer "corp" + user "eu/alice" and issuer "corp/eu" + user "alice": two principals, and a
// collaborator written with an escaped '/' names the first exactly.
TEST(PrincipalTest, ConfusablePrincipalsAreTwoPrincipals) {
  MultiIssuerServer srv;
  srv.start(srv.yaml());
  auto eu_alice = srv.as("corp", "eu/alice");
  auto alice = srv.as("corp/eu", "alice");
  EXPECT_EQ(whoami(eu_alice).principal(), "corp/eu%2Falice");
  EXPECT_EQ(whoami(alice).principal(), "corp/eu/alice");
  v1::VolumeResponse made;
  ASSERT_TRUE(create(eu_alice, "pr-conf", {}, {}, &made).is_ok());
  EXPECT_EQ(made.volume().ownership().owner(), "corp/eu%2Falice");
  expect_refused(inspect(alice, "pr-conf"), Code::kNotFound, "volume_not_found");
  ASSERT_TRUE(create(alice, "pr-conf2", {}, {{"corp/eu%2Falice", "r"}}, &made).is_ok());
  EXPECT_EQ(made.volume().ownership().collaborators().at("corp/eu%2Falice"), "r");
  EXPECT_TRUE(inspect(eu_alice, "pr-conf2").is_ok());
  // The bare form is the caller's own issuer, escaped: "eu/bob" would be split, so a bare
  // username with '/' must be written escaped — and "x%2Fy" bare is the literal name.
  ASSERT_TRUE(create(alice, "pr-conf3", {}, {{"x%2Fy", "w"}}, &made).is_ok());
  EXPECT_EQ(made.volume().ownership().collaborators().at("corp/eu/x%252Fy"), "w");
}

// admin_groups are per issuer: A's storage-admins are ownership admins, B's are not, and a
// token claiming group "*" never is (the old default made any such token an admin).
TEST(AdminGroupsTest, AdminGroupsArePerIssuerAndStarIsNeverAdmin) {
  MultiIssuerServer srv;
  srv.start(srv.yaml(std::size(kIssuers), "  admin_groups: [a.example/storage-admins]\n"));
  auto alice = srv.as("a.example", "alice");
  ASSERT_TRUE(create(alice, "pr-admin", {}).is_ok());

  auto admin_a = srv.as("a.example", "ops", {"storage-admins"});
  EXPECT_TRUE(whoami(admin_a).ownership_admin());
  EXPECT_TRUE(inspect(admin_a, "pr-admin").is_ok());
  auto admin_c = srv.as("c.example", "ops", {"storage-admins"});  // same group domain
  EXPECT_TRUE(whoami(admin_c).ownership_admin());

  for (const auto& [iss, groups] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"b.example", {"storage-admins"}}, {"a.example", {"*"}}, {"b.example", {"*"}},
           {"a.example", {"a.example/storage-admins"}}}) {
    auto c = srv.as(iss, "mallory", groups);
    EXPECT_FALSE(whoami(c).ownership_admin()) << iss << " " << groups[0];
    expect_refused(inspect(c, "pr-admin"), Code::kNotFound, "volume_not_found");
    // Transfer needs an ownership admin.
    v1::UpdateVolumeRequest up;
    up.set_volume("pr-admin");
    up.set_owner(iss + "/mallory");
    v1::VolumeResponse out;
    expect_refused(c.call(kVol + "Update", up, &out), Code::kNotFound, "volume_not_found");
  }
}

// The default is no admin group at all; the old default ["*"] is refused at load.
TEST(AdminGroupsTest, DefaultHasNoAdminGroupsAndStarIsRefused) {
  MultiIssuerServer srv;
  auto refused = srv.try_start(srv.yaml(1, "  admin_groups: [\"*\"]\n"));
  ASSERT_FALSE(refused.is_ok());
  expect_refused(refused.status(), Code::kInvalidArgument, "bad_config",
                 "vg.yaml: security.admin_groups[0]: '*' must be qualified as <group_domain>/<group>");
  srv.start(srv.yaml(1));
  auto star = srv.as("a.example", "root-ish", {"*"});
  EXPECT_FALSE(whoami(star).ownership_admin());
}

// "Test.View" next to "test.view" (or "SYSTEM.ADMIN" next to system.admin) reads as the same
// role in a token or a log: refused, naming the existing role.
TEST(RoleNameTest, CaseVariantOfAnExistingRoleIsRefused) {
  MultiIssuerServer srv;
  srv.start(srv.yaml(1));
  auto admin = srv.as("a.example", "root", {}, {"system.admin"});
  auto role = [](const std::string& name) {
    v1::RoleRequest req;
    req.mutable_role()->set_name(name);
    auto* rule = req.mutable_role()->add_rules();
    rule->add_services("volume");
    rule->add_apis("inspect");
    return req;
  };
  v1::RoleResponse out;
  ASSERT_TRUE(admin.call(kRole + "Create", role("test.view"), &out).is_ok());
  expect_refused(admin.call(kRole + "Create", role("Test.View"), &out), Code::kAlreadyExists,
                 "role_exists", "differs only by case from existing role test.view");
  expect_refused(admin.call(kRole + "Create", role("SYSTEM.ADMIN"), &out), Code::kAlreadyExists,
                 "role_exists", "existing role system.admin");
  expect_refused(admin.call(kRole + "Create", role("System.Guest"), &out), Code::kAlreadyExists,
                 "role_exists", "existing role system.guest");
  // The exact same role again is still an idempotent create.
  EXPECT_TRUE(admin.call(kRole + "Create", role("test.view"), &out).is_ok());
  v1::RoleEnumerateResponse names;
  v1::Empty e;
  ASSERT_TRUE(admin.call(kRole + "Enumerate", e, &names).is_ok());
  for (const auto& n : names.names()) EXPECT_NE(n, "Test.View");
}

// Grants stored before groups were qualified ("eng") are qualified at recovery when one issuer
// makes them unambiguous, and persisted.
TEST(MigrationTest, UnqualifiedGroupGrantsAreQualifiedWithTheOnlyIssuer) {
  MultiIssuerServer srv;
  srv.start(srv.yaml(1));
  v1::VolumeResponse made;
  ASSERT_TRUE(create(srv.as("a.example", "alice"), "pr-legacy", {{"eng", "w"}}, {}, &made).is_ok());
  srv.stop();
  {
    auto store = store::open_sqlite_store(srv.db()).value();
    auto vols = store->list_volumes().value();
    ASSERT_EQ(vols.size(), 1u);
    vols[0].ownership.groups = {{"eng", ownership::Access::kWrite}, {"*", ownership::Access::kRead}};
    ASSERT_TRUE(store->update_volume(vols[0]).is_ok());
  }
  srv.start(srv.yaml(1));
  v1::VolumeResponse seen;
  ASSERT_TRUE(inspect(srv.as("a.example", "dev", {"eng"}), "pr-legacy", &seen).is_ok());
  EXPECT_EQ(seen.volume().ownership().groups().at("a.example/eng"), "w");
  EXPECT_EQ(seen.volume().ownership().groups().at("*"), "r");  // "*" is not a group name
  EXPECT_EQ(seen.volume().ownership().groups().count("eng"), 0u);
  srv.stop();
  auto store = store::open_sqlite_store(srv.db()).value();
  auto vols = store->list_volumes().value();
  ASSERT_EQ(vols.size(), 1u);
  EXPECT_EQ(vols[0].ownership.groups,
            (std::map<std::string, ownership::Access>{{"*", ownership::Access::kRead},
                                                      {"a.example/eng", ownership::Access::kWrite}}));
}

// With several issuers an unqualified grant is ambiguous: left as it is, matching no one, and
// removable by its bare name.
TEST(MigrationTest, UnqualifiedGroupGrantsStayInertWithSeveralIssuers) {
  MultiIssuerServer srv;
  srv.start(srv.yaml(2));
  auto alice = srv.as("a.example", "alice");
  ASSERT_TRUE(create(alice, "pr-legacy2", {}).is_ok());
  srv.stop();
  {
    auto store = store::open_sqlite_store(srv.db()).value();
    auto vols = store->list_volumes().value();
    ASSERT_EQ(vols.size(), 1u);
    vols[0].ownership.groups = {{"eng", ownership::Access::kWrite}};
    ASSERT_TRUE(store->update_volume(vols[0]).is_ok());
  }
  srv.start(srv.yaml(2));
  alice = srv.as("a.example", "alice");
  v1::VolumeResponse seen;
  ASSERT_TRUE(inspect(alice, "pr-legacy2", &seen).is_ok());
  EXPECT_EQ(seen.volume().ownership().groups().at("eng"), "w");
  for (const char* iss : {"a.example", "b.example"}) {
    expect_refused(inspect(srv.as(iss, "dev", {"eng"}), "pr-legacy2"), Code::kNotFound,
                   "volume_not_found");
  }
  v1::UpdateVolumeRequest rm;
  rm.set_volume("pr-legacy2");
  rm.add_remove_groups("eng");
  ASSERT_TRUE(alice.call(kVol + "Update", rm, &seen).is_ok());
  EXPECT_TRUE(seen.volume().ownership().groups().empty());
}

// §6: a secret group or others can read refuses to start, naming the file; nothing is created.
TEST(SecretsAtRestTest, ExposedSecretsRefuseToStart) {
  MultiIssuerServer srv;
  const std::string yaml = srv.yaml(1);
  const std::string secret = srv.dir() + "/a.example.secret";
  ASSERT_EQ(::chmod(secret.c_str(), 0644), 0);
  auto r = srv.try_start(yaml);
  ASSERT_FALSE(r.is_ok());
  expect_refused(r.status(), Code::kFailedPrecondition, "secret_file_exposed",
                 "vg.yaml: security.issuers[0].shared_secret_file: " + secret + ": mode 0644");
  EXPECT_FALSE(fs::exists(srv.dir() + "/data"));
  ASSERT_EQ(::chmod(secret.c_str(), 0600), 0);

  // The TLS private key.
  const std::string key = srv.dir() + "/tls.key";
  ASSERT_TRUE(write_file(key, "not even a key", 0640).is_ok());
  ASSERT_TRUE(write_file(srv.dir() + "/tls.crt", "cert", 0644).is_ok());
  r = srv.try_start(srv.yaml(1, "", "  tls:\n    cert_file: " + srv.dir() + "/tls.crt\n    key_file: " +
                                        key + "\n"));
  ASSERT_FALSE(r.is_ok());
  expect_refused(r.status(), Code::kFailedPrecondition, "secret_file_exposed",
                 "vg.yaml: api.tls.key_file: " + key + ": mode 0640");
  EXPECT_FALSE(fs::exists(srv.dir() + "/data"));

  // The audit chain key.
  const std::string audit_key = srv.dir() + "/audit.key";
  ASSERT_TRUE(write_file(audit_key, std::string(43, 'k') + "\n", 0604).is_ok());
  r = srv.try_start(yaml + "audit:\n  key_file: " + audit_key + "\n");
  ASSERT_FALSE(r.is_ok());
  expect_refused(r.status(), Code::kFailedPrecondition, "secret_file_exposed",
                 "audit.key_file: " + audit_key + ": mode 0604");
}

// §6: whatever the umask, what the server creates is owner-only: the data dir 0700, the
// database and its WAL files 0600, the audit key 0600.
TEST(SecretsAtRestTest, DataDirAndDatabaseAreOwnerOnly) {
  MultiIssuerServer srv;
  const std::string yaml = srv.yaml(1);
  mode_t old = ::umask(0);
  srv.start(yaml);
  ::umask(old);
  ASSERT_TRUE(create(srv.as("a.example", "alice"), "pr-modes", {}).is_ok());
  EXPECT_EQ(mode_of(srv.dir() + "/data"), 0700u);
  EXPECT_EQ(mode_of(srv.db()), 0600u);
  for (const char* suffix : {"-wal", "-shm"}) {
    if (fs::exists(srv.db() + suffix)) {
      EXPECT_EQ(mode_of(srv.db() + suffix), 0600u) << suffix;
    }
  }
  EXPECT_EQ(mode_of(srv.dir() + "/data/audit.key"), 0600u);
}

}  // namespace
}  // namespace volguard
