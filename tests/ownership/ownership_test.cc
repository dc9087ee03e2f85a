#include "ownership/ownership.h"

#include <gtest/gtest.h>

namespace volguard::ownership {
namespace {

identity::Identity user(std::string name, std::vector<std::string> groups = {},
                        std::vector<std::string> roles = {"system.user"},
                        std::string issuer = "iss") {
  identity::Identity id;
  id.issuer = std::move(issuer);
  id.group_domain = id.issuer;  // what the verifier sets when the config names no group_domain
  id.username = id.subject = std::move(name);
  id.groups = std::move(groups);
  id.roles = std::move(roles);
  return id;
}

const AdminPolicy kAdmins{{"iss/storage-admins"}};

TEST(AccessOfTest, OwnerAndAdminsHaveAdmin) {
  Ownership o{.owner = "iss/alice"};
  EXPECT_EQ(access_of(user("alice"), o, kAdmins).access, Access::kAdmin);
  EXPECT_EQ(access_of(user("alice"), o, kAdmins).via, "owner");
  // Same username from another issuer is another principal.
  EXPECT_EQ(access_of(user("alice", {}, {"system.user"}, "other"), o, kAdmins).access,
            Access::kNone);
  EXPECT_EQ(access_of(user("root", {}, {"system.admin"}), o, kAdmins).access, Access::kAdmin);
  EXPECT_EQ(access_of(user("ops", {"storage-admins"}), o, kAdmins).access, Access::kAdmin);
  EXPECT_EQ(access_of(user("ops", {"storage-admins"}), o, kAdmins).via, "ownership admin");
  // The default policy has no admin groups at all.
  EXPECT_EQ(access_of(user("ops", {"storage-admins"}), o, AdminPolicy{}).access, Access::kNone);
}

// Admin groups are per issuer: the same group name from another issuer is not an admin, and a
// group claim of "*" is never one — not even against a policy that lists "*" (configs refuse
// that entry; the policy must hold on its own).
TEST(AccessOfTest, AdminGroupsArePerIssuerAndStarNeverAdmin) {
  Ownership o{.owner = "iss/alice"};
  EXPECT_EQ(access_of(user("ops", {"storage-admins"}, {"system.user"}, "other"), o, kAdmins).access,
            Access::kNone);
  EXPECT_FALSE(kAdmins.is_admin(user("ops", {"storage-admins"}, {"system.user"}, "other")));
  for (const AdminPolicy& policy : {AdminPolicy{{"*"}}, AdminPolicy{{"iss/*"}}, AdminPolicy{},
                                    AdminPolicy{{"iss/%2A", "iss/storage-admins"}}}) {
    EXPECT_FALSE(policy.is_admin(user("ops", {"*"}))) << policy.admin_groups.size();
    EXPECT_EQ(access_of(user("ops", {"*"}), o, policy).access, Access::kNone);
  }
  // A caller without a group domain (no issuer vouches for its groups) is in no group.
  auto nodomain = user("ops", {"storage-admins"});
  nodomain.group_domain.clear();
  EXPECT_FALSE(kAdmins.is_admin(nodomain));
}

TEST(AccessOfTest, GroupsCollaboratorsPublicTakeTheBestGrant) {
  Ownership o{.owner = "iss/alice",
              .groups = {{"iss/eng", Access::kRead}, {"iss/ops", Access::kWrite}},
              .collaborators = {{"iss/bob", Access::kAdmin}, {"iss/carol", Access::kRead}},
              .public_access = Access::kNone};
  // OpenStorage takes the first listed group; we take the best.
  EXPECT_EQ(access_of(user("dave", {"eng", "ops"}), o, kAdmins).access, Access::kWrite);
  EXPECT_EQ(access_of(user("dave", {"eng"}), o, kAdmins).access, Access::kRead);
  EXPECT_EQ(access_of(user("dave", {"eng"}), o, kAdmins).via, "group iss/eng:r");
  EXPECT_EQ(access_of(user("bob"), o, kAdmins).access, Access::kAdmin);
  EXPECT_EQ(access_of(user("carol", {"ops"}), o, kAdmins).access, Access::kWrite);
  EXPECT_EQ(access_of(user("eve"), o, kAdmins).access, Access::kNone);
  o.public_access = Access::kRead;
  EXPECT_EQ(access_of(user("eve"), o, kAdmins).access, Access::kRead);
  EXPECT_EQ(access_of(identity::guest_identity(), o, kAdmins).access, Access::kRead);
  o.groups["*"] = Access::kWrite;
  EXPECT_EQ(access_of(user("eve"), o, kAdmins).access, Access::kWrite);
  EXPECT_EQ(access_of(identity::guest_identity(), o, kAdmins).access, Access::kRead);
}

// A group grant is for one group domain: issuer B's "eng" does not match a grant to A's "eng",
// unless the config puts B in A's group domain. Legacy unqualified keys match no one.
TEST(AccessOfTest, GroupGrantsArePerGroupDomain) {
  Ownership o{.owner = "a/alice", .groups = {{"a/eng", Access::kWrite}, {"legacy", Access::kRead}}};
  EXPECT_EQ(access_of(user("bob", {"eng"}, {"system.user"}, "a"), o, kAdmins).access, Access::kWrite);
  EXPECT_EQ(access_of(user("bob", {"eng"}, {"system.user"}, "b"), o, kAdmins).access, Access::kNone);
  auto shared = user("carol", {"eng"}, {"system.user"}, "b");
  shared.group_domain = "a";  // issuer b configured with group_domain: a
  EXPECT_EQ(access_of(shared, o, kAdmins).access, Access::kWrite);
  EXPECT_EQ(access_of(shared, o, kAdmins).via, "group a/eng:w");
  EXPECT_EQ(access_of(user("dan", {"legacy"}, {"system.user"}, "a"), o, kAdmins).access,
            Access::kNone);
  // A group claim with '/' is escaped: "x/eng" in domain "a" is "a/x%2Feng", not "a/x" + "eng".
  Ownership slashed{.owner = "a/alice", .groups = {{"a/x%2Feng", Access::kRead}}};
  EXPECT_EQ(access_of(user("erin", {"x/eng"}, {"system.user"}, "a"), slashed, kAdmins).access,
            Access::kRead);
  EXPECT_EQ(access_of(user("erin", {"eng"}, {"system.user"}, "a/x"), slashed, kAdmins).access,
            Access::kNone);
  // A claim of "*" is not membership of every group.
  EXPECT_EQ(access_of(user("fay", {"*"}, {"system.user"}, "a"), o, kAdmins).access, Access::kNone);
}

// issuer "corp" + user "eu/alice" and issuer "corp/eu" + user "alice" are two principals.
TEST(AccessOfTest, ConfusablePrincipalsAreDistinct) {
  auto eu_alice = user("eu/alice", {}, {"system.user"}, "corp");
  auto alice = user("alice", {}, {"system.user"}, "corp/eu");
  EXPECT_NE(eu_alice.principal(), alice.principal());
  EXPECT_EQ(eu_alice.principal(), "corp/eu%2Falice");
  EXPECT_EQ(alice.principal(), "corp/eu/alice");
  Ownership o{.owner = alice.principal()};
  EXPECT_EQ(access_of(alice, o, kAdmins).access, Access::kAdmin);
  EXPECT_EQ(access_of(eu_alice, o, kAdmins).access, Access::kNone);
  // '%' is escaped too, so a literal "%2F" in a username cannot imitate an escaped '/'.
  EXPECT_EQ(user("eu%2Falice", {}, {"system.user"}, "corp").principal(), "corp/eu%252Falice");
}

TEST(AccessOfTest, GuestsAreNeverAdminsAndSeeOnlyPublic) {
  Ownership o{.owner = "iss/alice", .groups = {{"*", Access::kAdmin}},
              .collaborators = {{"*", Access::kAdmin}}};
  auto guest = identity::guest_identity();
  guest.groups = {"*"};  // even if a guest somehow carried the admin group
  EXPECT_EQ(access_of(guest, o, kAdmins).access, Access::kNone);
  EXPECT_EQ(access_of(guest, Ownership{}, kAdmins).access, Access::kAdmin);  // unowned = public
}

TEST(OwnershipJsonTest, RoundTripAndRefusals) {
  Ownership o{.owner = "iss/alice", .groups = {{"eng", Access::kRead}},
              .collaborators = {{"iss/bob", Access::kAdmin}}, .public_access = Access::kWrite};
  auto back = from_json(to_json(o));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(*back, o);
  EXPECT_FALSE(from_json("[]").is_ok());
  EXPECT_FALSE(from_json(R"({"groups":{"eng":"x"}})").is_ok());
  EXPECT_FALSE(from_json(R"({"public":"q"})").is_ok());
  EXPECT_EQ(parse_access("W"), Access::kWrite);
  EXPECT_EQ(parse_access("admin"), Access::kAdmin);
  EXPECT_FALSE(parse_access("x").has_value());
}

}  // namespace
}  // namespace volguard::ownership
