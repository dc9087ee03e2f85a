#include "ownership/ownership.h"

#include <gtest/gtest.h>

namespace volguard::ownership {
namespace {

identity::Identity user(std::string name, std::vector<std::string> groups = {},
                        std::vector<std::string> roles = {"system.user"},
                        std::string issuer = "iss") {
  identity::Identity id;
  id.issuer = std::move(issuer);
  id.username = id.subject = std::move(name);
  id.groups = std::move(groups);
  id.roles = std::move(roles);
  return id;
}

const AdminPolicy kAdmins{{"*"}};

TEST(AccessOfTest, OwnerAndAdminsHaveAdmin) {
  Ownership o{.owner = "iss/alice"};
  EXPECT_EQ(access_of(user("alice"), o, kAdmins).access, Access::kAdmin);
  EXPECT_EQ(access_of(user("alice"), o, kAdmins).via, "owner");
  // Same username from another issuer is another principal.
  EXPECT_EQ(access_of(user("alice", {}, {"system.user"}, "other"), o, kAdmins).access,
            Access::kNone);
  EXPECT_EQ(access_of(user("root", {}, {"system.admin"}), o, kAdmins).access, Access::kAdmin);
  EXPECT_EQ(access_of(user("ops", {"*"}), o, kAdmins).access, Access::kAdmin);
  EXPECT_EQ(access_of(user("ops", {"*"}), o, AdminPolicy{{"storage-admins"}}).access,
            Access::kNone);
  EXPECT_EQ(access_of(user("ops", {"storage-admins"}), o, AdminPolicy{{"storage-admins"}}).access,
            Access::kAdmin);
}

TEST(AccessOfTest, GroupsCollaboratorsPublicTakeTheBestGrant) {
  Ownership o{.owner = "iss/alice",
              .groups = {{"eng", Access::kRead}, {"ops", Access::kWrite}},
              .collaborators = {{"iss/bob", Access::kAdmin}, {"iss/carol", Access::kRead}},
              .public_access = Access::kNone};
  // OpenStorage takes the first listed group; we take the best.
  EXPECT_EQ(access_of(user("dave", {"eng", "ops"}), o, kAdmins).access, Access::kWrite);
  EXPECT_EQ(access_of(user("dave", {"eng"}), o, kAdmins).access, Access::kRead);
  EXPECT_EQ(access_of(user("dave", {"eng"}), o, kAdmins).via, "group eng:r");
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
