#include "config/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/text.h"
#include "identity/verifier.h"

namespace volguard::config {
namespace {

namespace fs = std::filesystem;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/volguard-config-XXXXXX";
    dir_ = mkdtemp(tmpl);
    secret_ = dir_ + "/shared.secret";
    ASSERT_TRUE(write_file(secret_, std::string(40, 's') + "\n", 0600).is_ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string message_of(const std::string& yaml) {
    auto r = parse_config(yaml, "vg.yaml");
    EXPECT_FALSE(r.is_ok()) << "accepted:\n" << yaml;
    return r.is_ok() ? "" : r.status().message();
  }

  std::string dir_;
  std::string secret_;
};

TEST_F(ConfigTest, DefaultsApply) {
  auto r = parse_config("security:\n  issuers: []\n", "vg.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->security.enabled);
  EXPECT_TRUE(r->security.guest_access);
  EXPECT_EQ(r->security.username_claim, UsernameClaim::kSub);
  EXPECT_EQ(r->security.clock_skew.count(), 30);
  EXPECT_EQ(r->security.token_lifetime.count(), 24 * 3600);
  EXPECT_EQ(r->security.max_token_lifetime.count(), 0);
  EXPECT_TRUE(r->security.admin_groups.empty());  // no group makes an admin unless configured
  EXPECT_EQ(r->api.grpc, "127.0.0.1:9020");
  EXPECT_EQ(r->api.rest, "127.0.0.1:9021");
}

TEST_F(ConfigTest, FullExampleParses) {
  std::string yaml = R"(
data_dir: /var/lib/volguard
api:
  grpc: 127.0.0.1:7000
  rest: 127.0.0.1:7001
security:
  enabled: true
  guest_access: false
  username_claim: email
  clock_skew: 1m
  token_lifetime: 7d
  max_token_lifetime: 30d
  issuers:
    - issuer: volguard.local
      shared_secret_file: )" + secret_ + R"(
    - issuer: https://keys.example.com
      public_key_file: /etc/volguard/rsa.pub.pem
      audiences: [volguard-api]
)";
  auto r = parse_config(yaml, "vg.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_FALSE(r->security.guest_access);
  EXPECT_EQ(r->security.username_claim, UsernameClaim::kEmail);
  EXPECT_EQ(r->security.clock_skew.count(), 60);
  EXPECT_EQ(r->security.token_lifetime.count(), 7 * 86400);
  EXPECT_EQ(r->security.max_token_lifetime.count(), 30 * 86400);
  ASSERT_EQ(r->security.issuers.size(), 2u);
  EXPECT_EQ(r->security.issuers[1].audiences, std::vector<std::string>{"volguard-api"});
  EXPECT_EQ(r->data_dir, "/var/lib/volguard");
  EXPECT_EQ(r->api.grpc, "127.0.0.1:7000");
}

TEST_F(ConfigTest, UnknownKeysAreRefusedWithTheirPath) {
  EXPECT_NE(message_of("security:\n  guest_acess: false\n").find("vg.yaml: security.guest_acess: unknown key"),
            std::string::npos);
  EXPECT_NE(message_of("securty: {}\n").find("vg.yaml: securty: unknown key"), std::string::npos);
  EXPECT_NE(message_of("security:\n  issuers:\n    - issuer: a\n      shared_secret_file: x\n      algo: HS256\n")
                .find("security.issuers[0].algo: unknown key"),
            std::string::npos);
}

TEST_F(ConfigTest, BadValuesNameKeyAndReason) {
  EXPECT_NE(message_of("security:\n  enabled: maybe\n").find("security.enabled: must be true or false"),
            std::string::npos);
  EXPECT_NE(message_of("security:\n  username_claim: upn\n").find("security.username_claim"),
            std::string::npos);
  EXPECT_NE(message_of("security:\n  clock_skew: 5 minutes\n").find("security.clock_skew"),
            std::string::npos);
  EXPECT_NE(message_of("security:\n  token_lifetime: 3w\n").find("unknown unit 'w'"),
            std::string::npos);
  EXPECT_NE(message_of("security:\n  issuers:\n    - shared_secret_file: x\n").find(
                "security.issuers[0].issuer: is required"),
            std::string::npos);
  EXPECT_NE(message_of("security:\n  issuers:\n    - issuer: a\n").find("needs exactly one of"),
            std::string::npos);
  EXPECT_NE(message_of("security:\n  issuers:\n    - issuer: a\n      shared_secret_file: x\n      public_key_file: y\n")
                .find("needs exactly one of"),
            std::string::npos);
  EXPECT_NE(message_of("security: [\n").find("invalid YAML"), std::string::npos);
  EXPECT_NE(message_of("").find("empty configuration"), std::string::npos);
  EXPECT_NE(message_of("data_dir: x\n").find("security: is required"), std::string::npos);
  EXPECT_NE(message_of("security:\n  guest_access: false\n").find("nobody could call"),
            std::string::npos);
}

TEST_F(ConfigTest, ClientCertificatesAndX509IdentitiesParseAndRefuseWhatIsIncomplete) {
  const std::string tls = "api:\n  tls:\n    cert_file: c.pem\n    key_file: k.pem\n    client_ca: ca.pem\n";
  const std::string issuer = "  issuers:\n    - issuer: tok\n      shared_secret_file: " + secret_ + "\n";
  auto ok = parse_config(tls + "    client_crl: crl.pem\nsecurity:\n  guest_access: false\n  x509:\n"
                         "    issuer: spiffe\n    principal: cn\n    mappings:\n"
                         "      - prefix: spiffe://c/ns/a/\n        roles: [system.user]\n"
                         "      - match: spiffe://c/ns/a/sa/b\n        groups: [g]\n"
                         "  admin_groups: [spiffe/ops]\n",
                         "vg.yaml");
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string() << " (certificates alone are a way in: no issuer needed)";
  EXPECT_EQ(ok->api.tls.client_ca, "ca.pem");
  EXPECT_EQ(ok->api.tls.client_crl, "crl.pem");
  EXPECT_TRUE(ok->security.x509.enabled);
  EXPECT_EQ(ok->security.x509.principal, X509Principal::kCommonName);
  ASSERT_EQ(ok->security.x509.mappings.size(), 2u);
  EXPECT_EQ(ok->security.x509.mappings[0].prefix, "spiffe://c/ns/a/");
  EXPECT_EQ(ok->security.x509.mappings[1].groups, std::vector<std::string>{"g"});
  EXPECT_EQ(ok->security.admin_groups, std::vector<std::string>{"spiffe/ops"});
  EXPECT_EQ(parse_config(tls + "security:\n" + issuer, "vg.yaml").value().security.x509.enabled, false);

  auto refused = [&](const std::string& yaml, const std::string& where) {
    EXPECT_NE(message_of(yaml).find(where), std::string::npos) << yaml;
  };
  refused("api:\n  tls:\n    client_ca: ca.pem\nsecurity:\n" + issuer, "api.tls.client_ca: needs cert_file");
  refused("api:\n  tls:\n    cert_file: c.pem\n    key_file: k.pem\n    client_crl: x\nsecurity:\n" + issuer,
          "api.tls.client_crl: needs api.tls.client_ca");
  refused("security:\n  x509:\n    issuer: s\n" + issuer, "security.x509: needs api.tls.client_ca");
  const std::string x = tls + "security:\n" + issuer + "  x509:\n";
  refused(x + "    principal: email\n", "security.x509.principal: 'email' is not one of san_uri, cn");
  refused(x + "    issuer: tok\n", "security.x509.issuer: 'tok' is also a token issuer");
  refused(x + "    issuer: \"\"\n", "security.x509.issuer: must be a non-empty name");
  refused(x + "    mappings:\n      - roles: [a]\n", "security.x509.mappings[0]: needs exactly one of match");
  refused(x + "    mappings:\n      - match: a\n        prefix: b\n        roles: [a]\n",
          "security.x509.mappings[0]: needs exactly one of match");
  refused(x + "    mappings:\n      - match: a\n", "security.x509.mappings[0]: gives no roles and no groups");
  refused(x + "    mappings:\n      - match: a\n        role: [x]\n", "role");
  refused(x + "    mappings: {}\n", "security.x509.mappings: must be a list");
}

TEST_F(ConfigTest, EncryptionKeysParseAndRefuseWhatIsAmbiguous) {
  auto r = parse_config("security:\n  issuers: []\nencryption:\n  keys:\n    main: {file: /k/main.key, retired_files: [/k/old.key]}\n"
                        "    vault: {kms: {socket: 'unix:///run/kms.sock', timeout: 3s}}\n"
                        "    tenant-a: {env: KEK_A}\n",
                        "vg.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const auto& e = r->encryption;
  ASSERT_EQ(e.keys.size(), 3u);
  EXPECT_EQ(e.default_key, "main") << "the first key";
  EXPECT_EQ(e.keys[0].retired_files, std::vector<std::string>{"/k/old.key"});
  EXPECT_EQ(e.keys[1].kms_socket, "/run/kms.sock");
  EXPECT_EQ(e.keys[1].kms_timeout, std::chrono::seconds(3));
  EXPECT_EQ(e.keys[2].env, "KEK_A");
  EXPECT_TRUE(parse_config("security:\n  issuers: []\n", "vg.yaml")->encryption.keys.empty());

  const std::string base = "security:\n  issuers: []\nencryption:\n  keys:\n";
  EXPECT_NE(message_of(base + "    k: {file: /a, env: B}\n").find("exactly one of file, env or kms"), std::string::npos);
  EXPECT_NE(message_of(base + "    k: {}\n").find("encryption.keys.k"), std::string::npos);
  EXPECT_NE(message_of(base + "    k: {file: /a, filee: /b}\n").find("filee"), std::string::npos);
  EXPECT_NE(message_of(base + "    k: {kms: {socket: relative.sock}}\n").find("absolute"), std::string::npos);
  EXPECT_NE(message_of(base + "    k: {env: X, retired_files: [/a]}\n").find("retired_files"), std::string::npos);
  EXPECT_NE(message_of(base + "    k: {file: /a}\n  default_key: other\n").find("encryption.default_key"),
            std::string::npos);
  EXPECT_NE(message_of(base + "    'a b': {file: /a}\n").find("key name"), std::string::npos);
}

TEST_F(ConfigTest, DuplicateIssuerRefused) {
  std::string yaml = "security:\n  issuers:\n    - issuer: a\n      shared_secret_file: " + secret_ +
                     "\n    - issuer: a\n      shared_secret_file: " + secret_ + "\n";
  EXPECT_NE(message_of(yaml).find("security.issuers[1].issuer: duplicate issuer 'a'"),
            std::string::npos);
}

std::string verifier_error(const Config& cfg) {
  auto v = identity::Verifier::from_config(cfg.security);
  return v.is_ok() ? "" : v.status().message();
}

TEST_F(ConfigTest, KeyMaterialErrorsNameFileKeyAndReason) {
  auto cfg = parse_config("security:\n  issuers:\n    - issuer: a\n      shared_secret_file: " +
                              dir_ + "/missing\n",
                          "vg.yaml");
  ASSERT_TRUE(cfg.is_ok());
  std::string msg = verifier_error(*cfg);
  EXPECT_NE(msg.find("vg.yaml: security.issuers[0].shared_secret_file: cannot read"),
            std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;

  ASSERT_TRUE(write_file(dir_ + "/weak", "short-secret\n", 0600).is_ok());
  cfg = parse_config("security:\n  issuers:\n    - issuer: a\n      shared_secret_file: " + dir_ +
                         "/weak\n",
                     "vg.yaml");
  msg = verifier_error(*cfg);
  EXPECT_NE(msg.find("security.issuers[0].shared_secret_file"), std::string::npos) << msg;
  EXPECT_NE(msg.find("12 bytes; at least 32"), std::string::npos) << msg;

  ASSERT_TRUE(write_file(dir_ + "/bad.pem", "not a key", 0600).is_ok());
  cfg = parse_config("security:\n  issuers:\n    - issuer: a\n      public_key_file: " + dir_ +
                         "/bad.pem\n",
                     "vg.yaml");
  msg = verifier_error(*cfg);
  EXPECT_NE(msg.find("security.issuers[0].public_key_file"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a PEM public key"), std::string::npos) << msg;
}

TEST_F(ConfigTest, TrailingNewlineIsNotPartOfTheSecret) {
  // 32 bytes + "\n": the newline must be dropped (else 33 bytes and a different MAC key).
  ASSERT_TRUE(write_file(dir_ + "/s32", std::string(32, 'k') + "\n", 0600).is_ok());
  IssuerConfig ic{.where = "x", .issuer = "a", .shared_secret_file = dir_ + "/s32"};
  auto secret = identity::load_secret(ic);
  ASSERT_TRUE(secret.is_ok());
  EXPECT_EQ(*secret, std::string(32, 'k'));
  ASSERT_TRUE(write_file(dir_ + "/s31", std::string(31, 'k') + "\n", 0600).is_ok());
  ic.shared_secret_file = dir_ + "/s31";
  auto key = identity::VerificationKey::from_secret(identity::load_secret(ic).value());
  EXPECT_FALSE(key.is_ok());  // 31 real bytes: the newline must not make it pass
}

TEST_F(ConfigTest, SecretFromEnvironment) {
  auto cfg = parse_config(
      "security:\n  issuers:\n    - issuer: a\n      shared_secret_env: VG_TEST_SECRET\n",
      "vg.yaml");
  ASSERT_TRUE(cfg.is_ok());
  unsetenv("VG_TEST_SECRET");
  EXPECT_NE(verifier_error(*cfg).find("security.issuers[0].shared_secret_env: environment variable "
                                      "VG_TEST_SECRET is not set"),
            std::string::npos);
  setenv("VG_TEST_SECRET", "tiny", 1);
  EXPECT_NE(verifier_error(*cfg).find("at least 32"), std::string::npos);
  setenv("VG_TEST_SECRET", std::string(48, 'e').c_str(), 1);
  EXPECT_EQ(verifier_error(*cfg), "");
  unsetenv("VG_TEST_SECRET");
}

// Groups are trusted per issuer: group_domain defaults to the issuer; admin_groups entries
// must name a group domain; "*" (the old default) never makes an admin.
TEST_F(ConfigTest, GroupDomainsAndQualifiedAdminGroups) {
  const std::string issuers = "  issuers:\n    - issuer: https://idp.example/realms/x\n"
                              "      public_key_file: /k.pem\n"
                              "    - issuer: b\n      public_key_file: /k.pem\n"
                              "      group_domain: https://idp.example/realms/x\n"
                              "    - issuer: c\n      public_key_file: /k.pem\n";
  auto r = parse_config("security:\n  admin_groups: [\"https://idp.example/realms/x/ops%2fadmins\", "
                        "\"c/storage\"]\n" + issuers, "vg.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->security.issuers[0].group_domain, "https://idp.example/realms/x");
  EXPECT_EQ(r->security.issuers[1].group_domain, "https://idp.example/realms/x");
  EXPECT_EQ(r->security.issuers[2].group_domain, "c");
  // Stored canonical: the group part decoded and escaped again.
  EXPECT_EQ(r->security.admin_groups,
            (std::vector<std::string>{"https://idp.example/realms/x/ops%2Fadmins", "c/storage"}));

  struct Refusal {
    std::string entry;
    std::string message;  // the whole "FILE: KEY: reason" prefix that must appear
  };
  for (const Refusal& c : std::vector<Refusal>{
           {"*", "vg.yaml: security.admin_groups[0]: '*' must be qualified as <group_domain>/<group>"},
           {"admins", "vg.yaml: security.admin_groups[0]: 'admins' must be qualified"},
           {"c/*", "vg.yaml: security.admin_groups[0]: a group named '*' never makes an ownership admin"},
           {"c/%2A", "vg.yaml: security.admin_groups[0]: a group named '*' never makes"},
           {"b/admins", "vg.yaml: security.admin_groups[0]: 'b' is not the group_domain of any issuer"},
           {"nope/admins", "vg.yaml: security.admin_groups[0]: 'nope' is not the group_domain"},
           {"c/", "vg.yaml: security.admin_groups[0]: '' is empty"},
           {"c/a%zz", "vg.yaml: security.admin_groups[0]: 'a%zz' has a '%' that is not followed"},
           {"c/a%0Ab", "vg.yaml: security.admin_groups[0]: 'a%0Ab' contains control characters"}}) {
    auto bad = parse_config("security:\n  admin_groups: [\"" + c.entry + "\"]\n" + issuers, "vg.yaml");
    ASSERT_FALSE(bad.is_ok()) << c.entry;
    EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(bad.status().reason(), "bad_config");
    EXPECT_NE(bad.status().message().find(c.message), std::string::npos)
        << c.entry << ": " << bad.status().message();
  }
  EXPECT_NE(message_of("security:\n  issuers:\n    - issuer: a\n      public_key_file: /k\n"
                       "      group_domain: \"\"\n")
                .find("vg.yaml: security.issuers[0].group_domain: must not be empty"),
            std::string::npos);
}

// A shared secret group or others can read (or write) refuses to start: FILE: KEY: path: reason.
TEST_F(ConfigTest, ExposedSharedSecretFileIsRefused) {
  for (unsigned mode : {0644u, 0640u, 0604u, 0620u, 0602u}) {
    ASSERT_EQ(::chmod(secret_.c_str(), mode), 0);
    auto cfg = parse_config("security:\n  issuers:\n    - issuer: a\n      shared_secret_file: " +
                                secret_ + "\n",
                            "vg.yaml");
    ASSERT_TRUE(cfg.is_ok());
    auto v = identity::Verifier::from_config(cfg->security);
    ASSERT_FALSE(v.is_ok()) << std::oct << mode;
    EXPECT_EQ(v.status().code(), Code::kFailedPrecondition);
    EXPECT_EQ(v.status().reason(), "secret_file_exposed");
    EXPECT_NE(v.status().message().find("vg.yaml: security.issuers[0].shared_secret_file: " +
                                        secret_ + ": mode 0"),
              std::string::npos)
        << v.status().message();
    EXPECT_NE(v.status().message().find("chmod 600"), std::string::npos);
  }
  for (unsigned mode : {0600u, 0400u}) {
    ASSERT_EQ(::chmod(secret_.c_str(), mode), 0);
    auto cfg = parse_config("security:\n  issuers:\n    - issuer: a\n      shared_secret_file: " +
                                secret_ + "\n",
                            "vg.yaml");
    EXPECT_EQ(verifier_error(*cfg), "") << std::oct << mode;
  }
}

TEST_F(ConfigTest, UnreadableConfigFile) {
  auto r = load_config(dir_ + "/nope.yaml");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find(dir_ + "/nope.yaml"), std::string::npos);
}

// Quotas and limits: defaults (guest 1G / 10 / 10, 16T per volume), overrides, "unlimited", and
// refusals that name the key — including sizes that would wrap past 2^63.
TEST_F(ConfigTest, QuotasAndLimits) {
  auto d = parse_config("security:\n  issuers: []\n", "vg.yaml");
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  EXPECT_EQ(d->limits.max_volume_size, uint64_t{16} << 40);
  EXPECT_EQ(d->quotas.guest, (QuotaLimits{uint64_t{1} << 30, 10, 10}));

  auto r = parse_config(R"(
limits:
  max_volume_size: 2T
quotas:
  guest:
    max_bytes: 64M
    max_volumes: unlimited
    max_snapshots: 3
security:
  issuers: []
)", "vg.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->limits.max_volume_size, uint64_t{2} << 40);
  EXPECT_EQ(r->quotas.guest, (QuotaLimits{64 << 20, 0, 3}));

  const std::string tail = "security:\n  issuers: []\n";
  EXPECT_EQ(message_of("limits:\n  max_volume_size: 8388608T\n" + tail).rfind(
                "vg.yaml: limits.max_volume_size: size \"8388608T\" is too large", 0),
            0u);
  EXPECT_NE(message_of("limits:\n  max_volume_size: 99999999999999999999999\n" + tail)
                .find("too large"),
            std::string::npos);
  EXPECT_NE(message_of("limits:\n  max_volume_size: -1\n" + tail)
                .find("vg.yaml: limits.max_volume_size:"),
            std::string::npos);
  EXPECT_NE(message_of("limits:\n  max_volume_size: 4K\n" + tail).find("at least 1M"),
            std::string::npos);
  EXPECT_NE(message_of("quotas:\n  guest:\n    max_volumes: ten\n" + tail)
                .find("vg.yaml: quotas.guest.max_volumes: 'ten' is not a count"),
            std::string::npos);
  EXPECT_NE(message_of("quotas:\n  guest:\n    max_bytez: 1G\n" + tail)
                .find("vg.yaml: quotas.guest.max_bytez: unknown key"),
            std::string::npos);
  EXPECT_NE(message_of("quotas:\n  tenant:\n    max_bytes: 1G\n" + tail)
                .find("vg.yaml: quotas.tenant: unknown key"),
            std::string::npos);
}

}  // namespace
}  // namespace volguard::config
