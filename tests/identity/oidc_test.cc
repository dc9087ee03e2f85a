// OIDC key source against a small in-test provider (discovery + JWKS over real HTTP on
// loopback). The real provider (npm oidc-provider) is exercised by the OIDC integration test.
#include "identity/oidc.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "config/config.h"
#include "identity/token.h"
#include "support/test_keys.h"

namespace volguard::identity {
namespace {

using nlohmann::json;
using volguard::testing::generate_key_pair;
using volguard::testing::jwk_of;
using volguard::testing::make_token;

class FakeProvider {
 public:
  FakeProvider() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    issuer_ = "http://127.0.0.1:" + std::to_string(port_);
    server_.Get("/.well-known/openid-configuration", [this](const httplib::Request&, httplib::Response& res) {
      discovery_hits_++;
      json d = {{"issuer", discovery_issuer_.empty() ? issuer_ : discovery_issuer_},
                {"jwks_uri", issuer_ + "/jwks"}};
      res.set_content(d.dump(), "application/json");
    });
    server_.Get("/jwks", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard lock(mu_);
      res.set_content(jwks_.dump(), "application/json");
    });
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~FakeProvider() {
    server_.stop();
    thread_.join();
  }
  void set_keys(const std::vector<std::pair<std::string, volguard::testing::KeyPair>>& keys) {
    std::lock_guard lock(mu_);
    jwks_ = {{"keys", json::array()}};
    for (const auto& [kid, kp] : keys) jwks_["keys"].push_back(jwk_of(kp.private_pem, kid));
  }
  const std::string& issuer() const { return issuer_; }
  std::atomic<int> discovery_hits_{0};
  std::string discovery_issuer_;

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::string issuer_;
  std::mutex mu_;
  json jwks_ = {{"keys", json::array()}};
};

config::OidcConfig oidc_config() {
  config::OidcConfig c;
  c.enabled = true;
  c.client_id = "urn:volguard";
  c.min_refetch_interval = std::chrono::seconds(2);
  c.fetch_timeout = std::chrono::seconds(2);
  return c;
}

std::string token_for(const volguard::testing::KeyPair& kp, const std::string& kid,
                      const std::string& iss, json extra = json::object()) {
  auto key = SigningKey::from_private_pem(kp.private_pem).value();
  json header = {{"alg", alg_name(key.alg())}, {"kid", kid}};
  json payload = {{"iss", iss}, {"sub", "svc"}, {"aud", "urn:volguard"},
                  {"exp", std::time(nullptr) + 600}, {"iat", std::time(nullptr)}};
  payload.update(extra);
  return make_token(key, header, payload);
}

std::unique_ptr<Verifier> verifier_for(const FakeProvider& p, std::shared_ptr<OidcKeySource> src,
                                       config::UsernameClaim claim = config::UsernameClaim::kSub,
                                       std::string ns = "", std::string roles_ptr = "") {
  TrustedIssuer t{p.issuer(), std::move(src), {"urn:volguard"}};
  t.claims_namespace = std::move(ns);
  t.roles_pointer = std::move(roles_ptr);
  return std::make_unique<Verifier>(VerifierOptions{.username_claim = claim},
                                    std::vector<TrustedIssuer>{t});
}

TEST(OidcTest, KeysFollowTheProviderWithoutRestart) {
  FakeProvider p;
  auto k1 = generate_key_pair("EC", "P-256");
  auto k2 = generate_key_pair("RSA", "2048");
  p.set_keys({{"k1", k1}});
  auto src = std::make_shared<OidcKeySource>(p.issuer(), oidc_config(),
                                             make_http_fetcher("", std::chrono::seconds(2)));
  ASSERT_TRUE(src->refresh().is_ok());
  auto v = verifier_for(p, src);
  auto ok = v->verify(token_for(k1, "k1", p.issuer()));
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(ok->issuer, p.issuer());
  // Rotation: the provider adds k2; a k2 token triggers one refetch and is accepted.
  p.set_keys({{"k1", k1}, {"k2", k2}});
  auto rotated = v->verify(token_for(k2, "k2", p.issuer()));
  ASSERT_TRUE(rotated.is_ok()) << rotated.status().to_string();
  // k1 removed: after the next refresh its tokens stop verifying.
  p.set_keys({{"k2", k2}});
  ASSERT_TRUE(src->refresh().is_ok());
  auto removed = v->verify(token_for(k1, "k1", p.issuer()));
  EXPECT_EQ(removed.status().reason(), reason::kKidUnknown);
  // A forged token with the provider's kid but another key.
  auto attacker = generate_key_pair("RSA", "2048");
  EXPECT_EQ(v->verify(token_for(attacker, "k2", p.issuer())).status().reason(), reason::kSignatureInvalid);
  // Another client's audience.
  auto other_aud = v->verify(token_for(k2, "k2", p.issuer(), {{"aud", "urn:someone-else"}}));
  EXPECT_EQ(other_aud.status().reason(), reason::kAudMismatch);
}

TEST(OidcTest, UnknownKidFloodIsRateLimited) {
  FakeProvider p;
  auto k1 = generate_key_pair("EC", "P-256");
  p.set_keys({{"k1", k1}});
  auto src = std::make_shared<OidcKeySource>(p.issuer(), oidc_config(),
                                             make_http_fetcher("", std::chrono::seconds(2)));
  ASSERT_TRUE(src->refresh().is_ok());
  auto v = verifier_for(p, src);
  uint64_t before = src->fetch_count();
  for (int i = 0; i < 50; ++i) {
    auto r = v->verify(token_for(k1, "made-up-" + std::to_string(i), p.issuer()));
    EXPECT_EQ(r.status().reason(), reason::kKidUnknown);
  }
  EXPECT_LE(src->fetch_count() - before, 1u) << "50 unknown kids must cause at most one refetch";
}

TEST(OidcTest, ProviderDownIsKeysUnavailableThenRecovers) {
  auto k1 = generate_key_pair("EC", "P-256");
  // A free port, closed again: nothing listens there yet.
  int port = 0;
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    ::close(fd);
  }
  std::string issuer = "http://127.0.0.1:" + std::to_string(port);
  auto src = std::make_shared<OidcKeySource>(issuer, oidc_config(),
                                             make_http_fetcher("", std::chrono::seconds(1)));
  src->start();
  TrustedIssuer t{issuer, src, {"urn:volguard"}};
  Verifier v(VerifierOptions{}, {t});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto down = v.verify(token_for(k1, "k1", issuer));
  EXPECT_EQ(down.status().code(), Code::kUnauthenticated);
  EXPECT_EQ(down.status().reason(), reason::kKeysUnavailable);
  EXPECT_NE(down.status().message().find("keys unavailable"), std::string::npos);
  // The provider comes up on that port; the background retry (with backoff) finds it.
  httplib::Server provider;
  provider.Get("/.well-known/openid-configuration", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(json({{"issuer", issuer}, {"jwks_uri", issuer + "/jwks"}}).dump(), "application/json");
  });
  provider.Get("/jwks", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(json({{"keys", {jwk_of(k1.private_pem, "k1")}}}).dump(), "application/json");
  });
  ASSERT_TRUE(provider.bind_to_port("127.0.0.1", port));
  std::thread th([&] { provider.listen_after_bind(); });
  bool accepted = false;
  Status last;
  for (int i = 0; i < 200 && !accepted; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto r = v.verify(token_for(k1, "k1", issuer));
    accepted = r.is_ok();
    last = r.status();
  }
  provider.stop();
  th.join();
  EXPECT_TRUE(accepted) << "keys were not fetched once the provider came up: " << last.to_string();
}

// A slow fetch (refresh in progress) must not stall requests whose kid is already known: the
// request path reads an atomic snapshot and never waits on the fetch lock.
TEST(OidcTest, RequestsDoNotWaitForAFetchInProgress) {
  auto k1 = generate_key_pair("EC", "P-256");
  const std::string issuer = "https://idp.example";
  std::atomic<bool> slow{false};
  Fetcher fetch = [&](const std::string& url) -> Result<std::string> {
    if (slow) std::this_thread::sleep_for(std::chrono::seconds(2));
    if (url.find("openid-configuration") != std::string::npos) {
      return json({{"issuer", issuer}, {"jwks_uri", issuer + "/jwks"}}).dump();
    }
    return json({{"keys", {jwk_of(k1.private_pem, "k1")}}}).dump();
  };
  auto src = std::make_shared<OidcKeySource>(issuer, oidc_config(), fetch);
  ASSERT_TRUE(src->refresh().is_ok());
  TrustedIssuer t{issuer, src, {"urn:volguard"}};
  Verifier v(VerifierOptions{}, {t});
  slow = true;
  std::thread refresher([&] { (void)src->refresh(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the fetch is now under way
  auto t0 = std::chrono::steady_clock::now();
  auto known = v.verify(token_for(k1, "k1", issuer));
  auto known_elapsed = std::chrono::steady_clock::now() - t0;
  // An unknown kid while a fetch is under way: refused at once, not queued behind it.
  t0 = std::chrono::steady_clock::now();
  auto unknown = v.verify(token_for(k1, "not-yet-known", issuer));
  auto unknown_elapsed = std::chrono::steady_clock::now() - t0;
  refresher.join();
  EXPECT_TRUE(known.is_ok()) << known.status().to_string();
  EXPECT_LT(known_elapsed, std::chrono::milliseconds(500)) << "a known-kid request waited";
  EXPECT_EQ(unknown.status().reason(), reason::kKidUnknown);
  EXPECT_LT(unknown_elapsed, std::chrono::milliseconds(500)) << "an unknown-kid request queued";
}

// What the keys-age gauge of /metrics reads: when the keys last arrived, kept through failed
// fetches; issuers with keys from the config are not listed.
TEST(OidcTest, FetchStateSaysWhenTheKeysLastArrived) {
  auto k1 = generate_key_pair("EC", "P-256");
  const std::string issuer = "https://idp.example";
  std::atomic<bool> down{false};
  Fetcher fetch = [&](const std::string& url) -> Result<std::string> {
    if (down) return Status(Code::kUnavailable, "fetch_failed", url + ": connection refused");
    if (url.find("openid-configuration") != std::string::npos) {
      return json({{"issuer", issuer}, {"jwks_uri", issuer + "/jwks"}}).dump();
    }
    return json({{"keys", {jwk_of(k1.private_pem, "k1")}}}).dump();
  };
  auto src = std::make_shared<OidcKeySource>(issuer, oidc_config(), fetch);
  ASSERT_TRUE(src->fetch_state().has_value());
  EXPECT_FALSE(src->fetch_state()->last_success) << "no fetch yet";
  const auto before = std::chrono::steady_clock::now();
  ASSERT_TRUE(src->refresh().is_ok());
  const auto fetched = src->fetch_state()->last_success;
  ASSERT_TRUE(fetched);
  EXPECT_GE(*fetched, before);
  down = true;
  EXPECT_FALSE(src->refresh().is_ok());
  EXPECT_EQ(src->fetch_state()->last_success, fetched) << "a failed fetch keeps the last success";

  Verifier v(VerifierOptions{},
             {TrustedIssuer{issuer, src, {"urn:volguard"}},
              TrustedIssuer{"volguard.local", std::make_shared<StaticKeySource>(nullptr), {}}});
  const auto states = v.key_fetch_states();
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states.begin()->first, issuer);
  EXPECT_EQ(states.begin()->second.last_success, fetched);
}

TEST(OidcTest, DiscoveryMustNameTheSameIssuer) {
  FakeProvider p;
  p.discovery_issuer_ = "https://impostor.example";
  p.set_keys({{"k1", generate_key_pair("EC", "P-256")}});
  OidcKeySource src(p.issuer(), oidc_config(), make_http_fetcher("", std::chrono::seconds(2)));
  Status s = src.refresh();
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("impostor"), std::string::npos);
  EXPECT_FALSE(src.has_keys());
}

TEST(OidcTest, NamespacedAndNestedClaimsAndEmailVerified) {
  FakeProvider p;
  auto k1 = generate_key_pair("EC", "P-256");
  p.set_keys({{"k1", k1}});
  auto src = std::make_shared<OidcKeySource>(p.issuer(), oidc_config(),
                                             make_http_fetcher("", std::chrono::seconds(2)));
  ASSERT_TRUE(src->refresh().is_ok());
  auto ns = verifier_for(p, src, config::UsernameClaim::kSub, "https://volguard.io/");
  auto r = ns->verify(token_for(k1, "k1", p.issuer(),
                                {{"https://volguard.io/roles", {"system.user"}},
                                 {"https://volguard.io/groups", {"eng"}}}));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->roles, std::vector<std::string>{"system.user"});
  EXPECT_EQ(r->groups, std::vector<std::string>{"eng"});
  auto nested = verifier_for(p, src, config::UsernameClaim::kSub, "", "/realm_access/roles");
  r = nested->verify(token_for(k1, "k1", p.issuer(), {{"realm_access", {{"roles", {"system.admin"}}}}}));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->roles, std::vector<std::string>{"system.admin"});
  auto by_email = verifier_for(p, src, config::UsernameClaim::kEmail);
  auto unverified = by_email->verify(
      token_for(k1, "k1", p.issuer(), {{"email", "a@x"}, {"email_verified", false}}));
  EXPECT_EQ(unverified.status().reason(), reason::kEmailUnverified);
  auto verified = by_email->verify(
      token_for(k1, "k1", p.issuer(), {{"email", "a@x"}, {"email_verified", true}}));
  ASSERT_TRUE(verified.is_ok());
  EXPECT_EQ(verified->username, "a@x");
}

TEST(OidcTest, ConfigRefusesPlainHttpOffLoopbackAndMissingClientId) {
  auto msg = [](const std::string& yaml) {
    auto r = config::parse_config(yaml, "vg.yaml");
    return r.is_ok() ? std::string() : r.status().message();
  };
  EXPECT_NE(msg("security:\n  issuers:\n    - issuer: http://idp.example\n      oidc: {client_id: x}\n")
                .find("https://"),
            std::string::npos);
  EXPECT_NE(msg("security:\n  issuers:\n    - issuer: https://idp.example\n      oidc: {}\n")
                .find("oidc.client_id: is required"),
            std::string::npos);
  EXPECT_NE(msg("security:\n  issuers:\n    - issuer: https://idp.example\n      oidc: {client_id: x, colour: red}\n")
                .find("oidc.colour: unknown key"),
            std::string::npos);
  EXPECT_NE(msg("security:\n  issuers:\n    - issuer: https://idp.example\n      shared_secret_file: /x\n      oidc: {client_id: x}\n")
                .find("exactly one of"),
            std::string::npos);
  auto ok = config::parse_config(
      "security:\n  issuers:\n    - issuer: https://dev-123.okta.com/oauth2/default\n      oidc:\n"
      "        client_id: 0oac1\n        namespace: \"https://volguard.io/\"\n"
      "        roles_claim: realm_access.roles\n        jwks_refresh: 1h\n",
      "vg.yaml");
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(ok->security.issuers[0].oidc.roles_claim, "realm_access.roles");
}

}  // namespace
}  // namespace volguard::identity
