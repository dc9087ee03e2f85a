// RevocationRegistry on its own: what a revocation covers, and that it goes by itself once
// every token it covers has expired.
#include <gtest/gtest.h>

#include "service/revocations.h"
#include "support/test_keys.h"

namespace volguard::service {
namespace {

using store::RevocationKind;
using store::RevocationRecord;

identity::Identity caller(const std::string& issuer, const std::string& username, const std::string& jti,
                          int64_t iat) {
  identity::Identity who;
  who.issuer = issuer;
  who.username = username;
  who.token_id = jti;
  who.issued_at = iat;
  return who;
}

TEST(RevocationRegistryTest, CoversExactlyWhatItNames) {
  RevocationRegistry r;
  EXPECT_TRUE(r.check(caller("a", "alice", "j1", 100)).is_ok()) << "nothing revoked: everyone passes";
  r.replace({{.kind = RevocationKind::kToken, .issuer = "a", .subject = "j1"},
             {.kind = RevocationKind::kToken, .issuer = "", .subject = "j2"},
             {.kind = RevocationKind::kUser, .subject = "a/bob", .before = 500}},
            1000);
  EXPECT_EQ(r.check(caller("a", "alice", "j1", 100)).reason(), "token_revoked");
  EXPECT_TRUE(r.check(caller("b", "alice", "j1", 100)).is_ok()) << "another issuer's j1";
  EXPECT_EQ(r.check(caller("b", "x", "j2", 100)).reason(), "token_revoked") << "any issuer's j2";
  EXPECT_TRUE(r.check(caller("a", "alice", "", 100)).is_ok()) << "no jti: no jti revocation applies";
  EXPECT_EQ(r.check(caller("a", "bob", "", 499)).reason(), "token_revoked");
  EXPECT_EQ(r.check(caller("a", "bob", "", 0)).reason(), "token_revoked") << "no iat";
  EXPECT_EQ(r.check(caller("a", "bob", "", 500)).reason(), "token_revoked") << "issued in the date's second";
  EXPECT_TRUE(r.check(caller("a", "bob", "", 501)).is_ok()) << "issued after the date";
  EXPECT_TRUE(r.check(caller("b", "bob", "", 100)).is_ok()) << "b/bob is another principal";
  // A username holding the separator is another principal (escaped), never a/bob.
  EXPECT_TRUE(r.check(caller("a/bob", "", "", 100)).is_ok());
  EXPECT_TRUE(r.check(caller("a", "bob/x", "", 100)).is_ok());
}

TEST(RevocationRegistryTest, ExpiredRevocationsAreLeftOutAndTheLaterDateWins) {
  RevocationRegistry r;
  const std::vector<RevocationRecord> records = {
      {.kind = RevocationKind::kToken, .subject = "gone", .expires_at = 999},
      {.kind = RevocationKind::kToken, .subject = "kept", .expires_at = 0},
      {.kind = RevocationKind::kToken, .subject = "until", .expires_at = 1000},
      {.kind = RevocationKind::kUser, .subject = "a/bob", .before = 300},
      {.kind = RevocationKind::kUser, .subject = "a/bob", .before = 700}};
  r.replace(records, 1000);
  EXPECT_EQ(r.size(), 3u);
  EXPECT_TRUE(r.check(caller("a", "x", "gone", 1)).is_ok());
  EXPECT_EQ(r.check(caller("a", "x", "kept", 1)).reason(), "token_revoked");
  EXPECT_EQ(r.check(caller("a", "x", "until", 1)).reason(), "token_revoked");
  EXPECT_EQ(r.check(caller("a", "bob", "", 600)).reason(), "token_revoked");
  r.replace(records, 1001);
  EXPECT_TRUE(r.check(caller("a", "x", "until", 1)).is_ok());
  EXPECT_EQ(r.size(), 2u);
}

}  // namespace
}  // namespace volguard::service
