#include "policy/policy.h"

#include <gtest/gtest.h>

namespace volguard::policy {
namespace {

RoleSet defaults() { return RoleSet(default_roles()); }

bool allowed(const RoleSet& set, std::vector<std::string> roles, const std::string& method) {
  auto dot = method.find('.');
  return set.decide(roles, method.substr(0, dot), method.substr(dot + 1)).allowed;
}

TEST(PatternTest, Globs) {
  EXPECT_TRUE(Pattern("*").matches("anything"));
  EXPECT_TRUE(Pattern("**").matches(""));
  EXPECT_TRUE(Pattern("inspect*").matches("inspectwithfilters"));
  EXPECT_FALSE(Pattern("inspect*").matches("defaultinspect"));
  EXPECT_TRUE(Pattern("*inspect*").matches("defaultinspect"));
  EXPECT_TRUE(Pattern("*enumerate*").matches("snapshotenumerate"));
  EXPECT_TRUE(Pattern("*enumerate").matches("snapshotenumerate"));
  EXPECT_FALSE(Pattern("*enumerate").matches("enumeratewithfilters"));
  EXPECT_TRUE(Pattern("snap*create").matches("snapshotcreate"));  // interior star works
  EXPECT_FALSE(Pattern("snap*create").matches("snapshotcreatex"));
  EXPECT_TRUE(Pattern("s*a*e").matches("snapshotcreate"));
  EXPECT_TRUE(Pattern("CREATE").matches("create"));  // case-insensitive
  EXPECT_FALSE(Pattern("create").matches("clone"));
  EXPECT_FALSE(Pattern("ab*ba").matches("aba"));  // parts may not overlap
}

// The default roles exactly as OpenStorage defines them.
TEST(DefaultRolesTest, MatrixMatchesOpenStorage) {
  auto set = defaults();
  const std::vector<std::string> volume_all = {
      "volume.create", "volume.clone", "volume.delete", "volume.update", "volume.snapshotcreate",
      "volume.snapshotrestore", "volume.snapshotdelete"};
  const std::vector<std::string> volume_read = {"volume.inspect", "volume.enumerate",
                                                "volume.stats", "volume.snapshotenumerate"};
  const std::vector<std::string> mount = {"mountattach.attach", "mountattach.detach",
                                          "mountattach.mount", "mountattach.unmount"};
  for (const auto& m : volume_all) {
    EXPECT_TRUE(allowed(set, {"system.admin"}, m)) << m;
    EXPECT_TRUE(allowed(set, {"system.user"}, m)) << m;
    EXPECT_TRUE(allowed(set, {"system.guest"}, m)) << m;
    EXPECT_FALSE(allowed(set, {"system.view"}, m)) << m;
  }
  for (const auto& m : volume_read) {
    for (const char* r : {"system.admin", "system.user", "system.guest", "system.view"}) {
      EXPECT_TRUE(allowed(set, {r}, m)) << r << " " << m;
    }
  }
  for (const auto& m : mount) {
    EXPECT_TRUE(allowed(set, {"system.user"}, m));
    EXPECT_TRUE(allowed(set, {"system.guest"}, m));
    EXPECT_FALSE(allowed(set, {"system.view"}, m));
  }
  // Roles: admin all; view inspect/enumerate; user and guest none.
  for (const char* api : {"create", "update", "delete"}) {
    std::string m = std::string("role.") + api;
    EXPECT_TRUE(allowed(set, {"system.admin"}, m));
    EXPECT_FALSE(allowed(set, {"system.view"}, m));
    EXPECT_FALSE(allowed(set, {"system.user"}, m));
    EXPECT_FALSE(allowed(set, {"system.guest"}, m));
  }
  EXPECT_TRUE(allowed(set, {"system.view"}, "role.inspect"));
  EXPECT_TRUE(allowed(set, {"system.view"}, "role.enumerate"));
  EXPECT_FALSE(allowed(set, {"system.user"}, "role.enumerate"));
  // Identity: guest only version.
  EXPECT_TRUE(allowed(set, {"system.guest"}, "identity.version"));
  EXPECT_FALSE(allowed(set, {"system.guest"}, "identity.whoami"));
  EXPECT_TRUE(allowed(set, {"system.view"}, "identity.whoami"));
  EXPECT_TRUE(allowed(set, {"system.user"}, "identity.capabilities"));
  // Policy service: user reaches defaultinspect (*inspect*), view does not (inspect*).
  EXPECT_TRUE(allowed(set, {"system.user"}, "policy.defaultinspect"));
  EXPECT_FALSE(allowed(set, {"system.view"}, "policy.defaultinspect"));
}

TEST(DecideTest, UnknownRolesGrantNothingAndSayWhy) {
  auto set = defaults();
  auto d = set.decide({"no.such.role"}, "volume", "inspect");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "rbac_denied");
  EXPECT_NE(d.message.find("none of these roles exist"), std::string::npos) << d.message;
  d = set.decide({}, "volume", "inspect");
  EXPECT_FALSE(d.allowed);
  d = set.decide({"system.view"}, "volume", "create");
  EXPECT_NE(d.message.find("no rule of roles [system.view] allows volume.create"),
            std::string::npos) << d.message;
}

TEST(DecideTest, DenyInAnyRoleWinsOverEveryAllow) {
  std::vector<Role> roles = default_roles();
  roles.push_back({"no.delete", {{{"volume"}, {"!delete", "inspect"}}}});
  roles.push_back({"no.volume", {{{"!volume"}, {"*"}}}});
  RoleSet set(roles);
  // system.admin allows everything, but the deny role is also held: deny wins.
  auto d = set.decide({"system.admin", "no.delete"}, "volume", "delete");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "rbac_deny_rule");
  EXPECT_EQ(d.role, "no.delete");
  EXPECT_EQ(d.rule_index, 0);
  EXPECT_NE(d.message.find("[volume]->[!delete, inspect]"), std::string::npos) << d.message;
  // Order of roles does not matter.
  EXPECT_FALSE(set.decide({"no.delete", "system.admin"}, "volume", "delete").allowed);
  EXPECT_TRUE(set.decide({"system.admin", "no.delete"}, "volume", "create").allowed);
  EXPECT_FALSE(set.decide({"system.user", "no.volume"}, "volume", "inspect").allowed);
  EXPECT_TRUE(set.decide({"system.user", "no.volume"}, "mountattach", "mount").allowed);
}

TEST(DecideTest, GuestDisabledByDenyAll) {
  std::vector<Role> roles = default_roles();
  roles[3] = {"system.guest", {{{"!*"}, {"!*"}}}};
  RoleSet set(roles);
  for (const char* m : {"volume.create", "volume.inspect", "identity.version"}) {
    EXPECT_FALSE(allowed(set, {"system.guest"}, m)) << m;
  }
}

TEST(DecideTest, CaseInsensitiveRules) {
  RoleSet set({{"shouty", {{{"VOLUME"}, {"Inspect", "!DELETE"}}}}});
  EXPECT_TRUE(set.decide({"shouty"}, "volume", "inspect").allowed);
  EXPECT_FALSE(set.decide({"shouty"}, "volume", "delete").allowed);
  EXPECT_EQ(set.decide({"shouty"}, "volume", "delete").reason, "rbac_deny_rule");
}

TEST(DecideTest, ReportsTheDecidingRule) {
  auto set = defaults();
  auto d = set.decide({"system.view"}, "volume", "inspect");
  ASSERT_TRUE(d.allowed);
  EXPECT_EQ(d.role, "system.view");
  EXPECT_EQ(d.rule_index, 0);
  EXPECT_NE(d.rule.find("inspect*"), std::string::npos);
}

TEST(RoleJsonTest, PortworxFormatRoundTrips) {
  auto role = role_from_json(
      R"({"name": "test.view", "rules": [{"services": ["volume"], "apis": ["inspect", "enumerate"]}]})");
  ASSERT_TRUE(role.is_ok()) << role.status().to_string();
  EXPECT_EQ(role->name, "test.view");
  ASSERT_EQ(role->rules.size(), 1u);
  EXPECT_EQ(role->rules[0].apis, (std::vector<std::string>{"inspect", "enumerate"}));
  EXPECT_TRUE(validate_role(*role).is_ok());
  auto again = role_from_json(role_to_json(*role));
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(*again, *role);
}

TEST(RoleJsonTest, MalformedJsonNamesTheField) {
  auto msg = [](const char* j) {
    auto r = role_from_json(j);
    EXPECT_FALSE(r.is_ok()) << j;
    return r.is_ok() ? std::string() : r.status().message();
  };
  EXPECT_NE(msg("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(msg(R"({"rules": []})").find("name"), std::string::npos);
  EXPECT_NE(msg(R"({"name": "x", "rules": {}})").find("rules"), std::string::npos);
  EXPECT_NE(msg(R"({"name": "x", "rules": [{"services": "volume", "apis": ["*"]}]})")
                .find("rules[0].services"),
            std::string::npos);
  EXPECT_NE(msg(R"({"name": "x", "rules": [{"service": ["volume"], "apis": ["*"]}]})")
                .find("rules[0].service: unknown field"),
            std::string::npos);
  EXPECT_NE(msg(R"({"name": "x", "rules": [], "extra": 1})").find("extra"), std::string::npos);
}

TEST(ValidateRoleTest, RefusesRulesThatCanNeverMatch) {
  auto why = [](Role r) {
    auto s = validate_role(r);
    EXPECT_FALSE(s.is_ok()) << role_to_json(r);
    return s.message();
  };
  // OpenStorage's own documented example uses "volumes": silently inert there, refused here.
  EXPECT_NE(why({"typo", {{{"volumes"}, {"inspect"}}}}).find("rules[0].services: 'volumes' matches no service"),
            std::string::npos);
  EXPECT_NE(why({"typo", {{{"volume"}, {"inspekt"}}}}).find("rules[0].apis: 'inspekt'"),
            std::string::npos);
  EXPECT_NE(why({"x", {{{"mountattach"}, {"create"}}}}).find("apis"), std::string::npos);
  EXPECT_NE(why({"x", {{{""}, {"*"}}}}).find("not a service name"), std::string::npos);
  EXPECT_NE(why({"x", {{{"!"}, {"*"}}}}).find("not a service name"), std::string::npos);
  EXPECT_NE(why({"x", {{{"vol ume"}, {"*"}}}}).find("not a service name"), std::string::npos);
  EXPECT_NE(why({"x", {{{}, {"*"}}}}).find("services: must not be empty"), std::string::npos);
  EXPECT_NE(why({"x", {{{"volume"}, {}}}}).find("apis: must not be empty"), std::string::npos);
  EXPECT_NE(why({"x", {}}).find("at least one rule"), std::string::npos);
  EXPECT_NE(why({"a/b", {{{"*"}, {"*"}}}}).find("name"), std::string::npos);
  EXPECT_NE(why({"a b", {{{"*"}, {"*"}}}}).find("name"), std::string::npos);
  EXPECT_NE(why({"", {{{"*"}, {"*"}}}}).find("name"), std::string::npos);
  // Valid: globs, denies, OpenStorage services volguard does not serve.
  EXPECT_TRUE(validate_role({"ok", {{{"vol*"}, {"snap*create", "!delete"}}}}).is_ok());
  EXPECT_TRUE(validate_role({"ok", {{{"cloudbackup"}, {"create"}}}}).is_ok());
  EXPECT_TRUE(validate_role({"ok", {{{"!*"}, {"!*"}}}}).is_ok());
  for (const auto& r : default_roles()) EXPECT_TRUE(validate_role(r).is_ok()) << r.name;
}

TEST(DefaultRoleNamesTest, Mutability) {
  EXPECT_TRUE(is_default_role("system.admin"));
  EXPECT_FALSE(is_default_role("custom"));
  EXPECT_TRUE(is_mutable_default_role("system.guest"));
  EXPECT_FALSE(is_mutable_default_role("system.user"));
}

}  // namespace
}  // namespace volguard::policy
