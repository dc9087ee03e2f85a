// Token revocation through a real server: a revoked token is refused `token_revoked` after its
// signature verified (also when its verification was cached), the revocation is admin-only,
// audited, precise about bad input, and survives a restart.
#include <gtest/gtest.h>

#include <atomic>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "audit/audit.h"
#include "identity/token.h"
#include "service/audit_recorder.h"
#include "support/test_keys.h"
#include "support/test_server.h"
#include "volguard.pb.h"

namespace volguard {
namespace {

using testing::TestServer;

const std::string kRevoke = "/volguard.v1.VolguardToken/Revoke";
const std::string kList = "/volguard.v1.VolguardToken/Enumerate";
using testing::kWhoAmI;

int64_t now() { return static_cast<int64_t>(std::time(nullptr)); }

// A token of `sub` issued at `iat` with this jti (HS256, the test issuer's secret).
std::string token_at(const std::string& sub, int64_t iat, const std::string& jti,
                     const std::string& issuer = "test.local") {
  nlohmann::json claims = {{"iss", issuer}, {"sub", sub}, {"roles", {"system.user"}},
                           {"exp", (iat != 0 ? iat : now()) + 3600}, {"jti", jti}};
  if (iat != 0) claims["iat"] = iat;
  auto key = identity::SigningKey::from_secret(testing::kTestSecret).value();
  return testing::make_token(key, {{"alg", "HS256"}, {"typ", "JWT"}}, claims);
}

Status whoami(const TestServer& srv, const std::string& token) {
  v1::WhoAmIResponse resp;
  return srv.client(token).call(kWhoAmI, v1::Empty(), &resp);
}

Status revoke(const TestServer& srv, const std::string& admin, const v1::TokenRevokeRequest& req,
              v1::TokenRevokeResponse* resp = nullptr) {
  v1::TokenRevokeResponse ignored;
  return srv.client(admin).call(kRevoke, req, resp ? resp : &ignored);
}

v1::TokenRevokeRequest by_jti(const std::string& jti, const std::string& issuer = "") {
  v1::TokenRevokeRequest req;
  req.set_jti(jti);
  req.set_issuer(issuer);
  return req;
}

size_t listed(const TestServer& srv, const std::string& admin) {
  v1::RevocationEnumerateResponse resp;
  EXPECT_TRUE(srv.client(admin).call(kList, v1::Empty(), &resp).is_ok());
  return static_cast<size_t>(resp.revocations_size());
}

TEST(RevocationTest, ARevokedJtiIsRefusedEvenWhenItsVerificationWasCachedAndAfterARestart) {
  TestServer srv;
  const std::string admin = srv.token("admin", {"system.admin"});
  const std::string leaked = token_at("alice", now() - 10, "leaked-1");
  const std::string other = token_at("alice", now() - 10, "other-1");
  ASSERT_TRUE(whoami(srv, leaked).is_ok());  // verified, and remembered by the token cache
  ASSERT_TRUE(whoami(srv, leaked).is_ok());
  v1::TokenRevokeResponse resp;
  ASSERT_TRUE(revoke(srv, admin, by_jti("leaked-1"), &resp).is_ok());
  EXPECT_EQ(resp.revocation().kind(), "token");
  EXPECT_EQ(resp.revocation().by(), "test.local/admin");
  EXPECT_EQ(resp.revocation().expires_at(), 0) << "no max_token_lifetime, no exp given: kept";
  const Status refused = whoami(srv, leaked);
  EXPECT_REFUSED(refused, Code::kUnauthenticated, "token_revoked");
  EXPECT_NE(refused.message().find("leaked-1"), std::string::npos) << refused.message();
  EXPECT_TRUE(whoami(srv, other).is_ok()) << "alice's other token still works";

  // Audited: intent and outcome, naming what was revoked.
  bool intent = false, done = false;
  const auto records = audit::read_all(srv.audit_dir() + "/" + service::kAuditLogName).value();
  for (const auto& r : records) {
    const std::string* method = r.get("method");
    if (method == nullptr || *method != "token.revoke") continue;
    if (r.get("outcome") == nullptr) intent = true;
    else if (*r.get("outcome") == "done" && r.get("msg") && r.get("msg")->find("leaked-1") != std::string::npos) done = true;
  }
  EXPECT_TRUE(intent);
  EXPECT_TRUE(done);

  srv.stop();
  srv.start();
  EXPECT_REFUSED(whoami(srv, leaked), Code::kUnauthenticated, "token_revoked");
  EXPECT_TRUE(whoami(srv, other).is_ok());
  EXPECT_EQ(listed(srv, admin), 1u);
}

// Scoped to an issuer, a jti revocation covers that issuer's token (another issuer's token with
// the same jti is left alone: RevocationRegistryTest.CoversExactlyWhatItNames); an issuer that is
// not configured is refused rather than stored to revoke nothing.
TEST(RevocationTest, AJtiRevokedForItsIssuerIsRefusedAndAnUnknownIssuerIsNotStored) {
  TestServer srv;
  const std::string admin = srv.token("admin", {"system.admin"});
  const std::string t = token_at("bob", now() - 10, "shared-jti");
  EXPECT_REFUSED(revoke(srv, admin, by_jti("shared-jti", "elsewhere.example")), Code::kInvalidArgument,
                 "invalid_issuer");
  EXPECT_TRUE(whoami(srv, t).is_ok());
  EXPECT_EQ(listed(srv, admin), 0u);
  ASSERT_TRUE(revoke(srv, admin, by_jti("shared-jti", "test.local")).is_ok());
  EXPECT_REFUSED(whoami(srv, t), Code::kUnauthenticated, "token_revoked");
}

TEST(RevocationTest, AUsersTokensIssuedBeforeTheDateAreRefusedAndLaterOnesAccepted) {
  TestServer srv;
  const std::string admin = srv.token("admin", {"system.admin"});
  const int64_t t0 = now();
  const std::string old_token = token_at("carol", t0 - 100, "c-old");
  const std::string no_iat = token_at("carol", 0, "c-no-iat");
  const std::string fresh = token_at("carol", t0 - 5, "c-fresh");
  const std::string dave = token_at("dave", t0 - 100, "d-old");
  for (const auto& t : {old_token, no_iat, fresh, dave}) {
    const Status s = whoami(srv, t);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }
  v1::TokenRevokeRequest req;
  req.set_user("test.local/carol");
  req.set_before(t0 - 50);
  ASSERT_TRUE(revoke(srv, admin, req).is_ok());
  EXPECT_REFUSED(whoami(srv, old_token), Code::kUnauthenticated, "token_revoked");
  // Without iat nothing shows it was issued after the date.
  EXPECT_REFUSED(whoami(srv, no_iat), Code::kUnauthenticated, "token_revoked");
  EXPECT_TRUE(whoami(srv, fresh).is_ok());
  EXPECT_TRUE(whoami(srv, dave).is_ok());
  // A second, earlier date never narrows the first.
  req.set_before(t0 - 1000);
  ASSERT_TRUE(revoke(srv, admin, req).is_ok());
  EXPECT_REFUSED(whoami(srv, old_token), Code::kUnauthenticated, "token_revoked");
  // An unqualified user is the caller's issuer's.
  v1::TokenRevokeRequest bare;
  bare.set_user("dave");
  ASSERT_TRUE(revoke(srv, admin, bare).is_ok());
  EXPECT_REFUSED(whoami(srv, dave), Code::kUnauthenticated, "token_revoked");
}

TEST(RevocationTest, OnlyAdminsRevokeAndBadRequestsChangeNothing) {
  TestServer srv;
  const std::string admin = srv.token("admin", {"system.admin"});
  const std::string user = srv.token("eve", {"system.user"});
  const std::string victim = token_at("alice", now() - 10, "victim-1");
  EXPECT_REFUSED(revoke(srv, user, by_jti("victim-1")), Code::kPermissionDenied, "rbac_denied");
  EXPECT_REFUSED(revoke(srv, "", by_jti("victim-1")), Code::kPermissionDenied, "rbac_denied");  // a guest
  EXPECT_TRUE(whoami(srv, victim).is_ok());

  v1::TokenRevokeRequest both = by_jti("victim-1");
  both.set_user("test.local/alice");
  EXPECT_REFUSED(revoke(srv, admin, both), Code::kInvalidArgument, "invalid_jti");
  EXPECT_REFUSED(revoke(srv, admin, v1::TokenRevokeRequest()), Code::kInvalidArgument, "invalid_jti");
  v1::TokenRevokeRequest past = by_jti("victim-1");
  past.set_expires_at(now() - 3600);
  EXPECT_REFUSED(revoke(srv, admin, past), Code::kInvalidArgument, "invalid_expires_at");
  v1::TokenRevokeRequest control = by_jti("victim\n1");
  EXPECT_REFUSED(revoke(srv, admin, control), Code::kInvalidArgument, "invalid_jti");
  v1::TokenRevokeRequest before_on_jti = by_jti("victim-1");
  before_on_jti.set_before(now());
  EXPECT_REFUSED(revoke(srv, admin, before_on_jti), Code::kInvalidArgument, "invalid_before");
  v1::TokenRevokeRequest everyone;
  everyone.set_user("*");
  EXPECT_REFUSED(revoke(srv, admin, everyone), Code::kInvalidArgument, "invalid_user");
  // A misspelt (or edited) issuer would revoke nothing while saying "revoked".
  EXPECT_REFUSED(revoke(srv, admin, by_jti("victim-1", "test.locall")), Code::kInvalidArgument, "invalid_issuer");
  v1::TokenRevokeRequest foreign_user;
  foreign_user.set_user("x509/alice");
  EXPECT_REFUSED(revoke(srv, admin, foreign_user), Code::kInvalidArgument, "invalid_user");
  v1::TokenRevokeRequest short_life;
  short_life.set_user("test.local/alice");
  short_life.set_before(now() + 1000);
  short_life.set_expires_at(now() + 10);
  EXPECT_REFUSED(revoke(srv, admin, short_life), Code::kInvalidArgument, "invalid_expires_at");
  EXPECT_TRUE(whoami(srv, victim).is_ok()) << "nothing was revoked";
  EXPECT_EQ(listed(srv, admin), 0u);
  v1::RevocationEnumerateResponse resp;
  EXPECT_REFUSED(srv.client(user).call(kList, v1::Empty(), &resp), Code::kPermissionDenied, "rbac_denied");
}

// Revocations made at the same time are all enforced: each is stored and published as one
// step, so a slower one cannot swap in a list that lacks a faster one.
TEST(RevocationTest, ConcurrentRevocationsAreAllEnforced) {
  TestServer srv;
  const std::string admin = srv.token("admin", {"system.admin"});
  constexpr int kN = 16;
  std::vector<std::string> tokens;
  for (int i = 0; i < kN; ++i) tokens.push_back(token_at("user" + std::to_string(i), now() - 10, "c-" + std::to_string(i)));
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int i = 0; i < kN; ++i) {
    threads.emplace_back([&, i] {
      if (!revoke(srv, admin, by_jti("c-" + std::to_string(i))).is_ok()) ++failed;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  for (int i = 0; i < kN; ++i) {
    EXPECT_REFUSED(whoami(srv, tokens[i]), Code::kUnauthenticated, "token_revoked");
  }
  EXPECT_EQ(listed(srv, admin), static_cast<size_t>(kN));
}

// With security.max_token_lifetime, a jti revocation lasts as long as any token could, then
// goes by itself; an explicit expiry (the token's own exp, as `token revoke --file` sends) is
// extended by the clock skew the verifier allows.
TEST(RevocationTest, RevocationsExpireOnceEveryTokenTheyCoverHasExpired) {
  TestServer srv("  max_token_lifetime: 2h\n");
  const std::string admin = srv.token("admin", {"system.admin"});
  v1::TokenRevokeResponse resp;
  ASSERT_TRUE(revoke(srv, admin, by_jti("j-max"), &resp).is_ok());
  const int64_t t = now();
  EXPECT_NEAR(static_cast<double>(resp.revocation().expires_at()), static_cast<double>(t + 7200 + 30), 5);
  v1::TokenRevokeRequest with_exp = by_jti("j-exp");
  with_exp.set_expires_at(t + 60);
  ASSERT_TRUE(revoke(srv, admin, with_exp, &resp).is_ok());
  EXPECT_EQ(resp.revocation().expires_at(), t + 60 + 30);
}

}  // namespace
}  // namespace volguard
