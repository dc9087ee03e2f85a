// Role-based access control: Portworx/OpenStorage role JSON, compiled once into matchers.
// Stricter than OpenStorage: matching is case-insensitive, `*` may appear anywhere, a deny in
// any of the caller's roles wins over every allow, an unknown role grants nothing, and a rule
// that can never match is refused when the role is created.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace volguard::policy {

struct Rule {
  std::vector<std::string> services;
  std::vector<std::string> apis;
  bool operator==(const Rule&) const = default;
};

struct Role {
  std::string name;
  std::vector<Rule> rules;
  bool operator==(const Role&) const = default;
};

// {"name": "...", "rules": [{"services": [...], "apis": [...]}]}; errors name the field.
Result<Role> role_from_json(std::string_view json);
std::string role_to_json(const Role& role);
// "[volume]→[inspect, enumerate]" for messages and `auth can-i`.
std::string rule_text(const Rule& rule);

// Name, rule shape and that every pattern can match something volguard or OpenStorage knows
// (so `volumes` — OpenStorage's documented typo — is refused rather than silently inert).
Status validate_role(const Role& role);

std::vector<Role> default_roles();
bool is_default_role(std::string_view name);
// The CSI node plugin's role: its token's username is its node id, and it reaches only the
// volumes attached to that node (service::volume_access).
inline constexpr char kNodeRole[] = "system.node";
// The CSI controller's read-only role for the calls CSI sends without secrets.
inline constexpr char kCsiControllerRole[] = "system.csi-controller";

// Only system.guest may be edited; no default role may be deleted.
bool is_mutable_default_role(std::string_view name);

struct Decision {
  bool allowed = false;
  std::string role;       // the deciding role (empty when none applied)
  int rule_index = -1;    // index of the deciding rule in that role
  std::string rule;       // rule_text of the deciding rule
  std::string reason;     // "", "rbac_denied" (no allow) or "rbac_deny_rule" (explicit deny)
  std::string message;    // names the method and the role set
};

// An immutable compiled snapshot of all roles; swapped atomically when roles change, so a
// request never reads the store or takes a lock to decide.
class RoleSet {
 public:
  explicit RoleSet(std::vector<Role> roles);
  ~RoleSet();
  RoleSet(const RoleSet&) = delete;
  RoleSet& operator=(const RoleSet&) = delete;

  Decision decide(const std::vector<std::string>& role_names, std::string_view service,
                  std::string_view api) const;
  const Role* find(std::string_view name) const;
  const std::vector<Role>& roles() const { return roles_; }

 private:
  struct Compiled;
  std::vector<Role> roles_;
  std::map<std::string, std::unique_ptr<Compiled>, std::less<>> compiled_;
};

// A glob where `*` matches any run of characters; case-insensitive.
class Pattern {
 public:
  explicit Pattern(std::string_view text);  // text without any leading '!'
  bool matches(std::string_view lowercase_name) const;

 private:
  std::vector<std::string> parts_;  // literal pieces between stars
  bool leading_star_ = false;
  bool trailing_star_ = false;
  bool any_ = false;
};

}  // namespace volguard::policy
