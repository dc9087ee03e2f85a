#include "policy/policy.h"

#include <nlohmann/json.hpp>
#include <set>

#include "common/text.h"

namespace volguard::policy {

namespace {

// Every service and api name a role may reasonably mention: volguard's own methods plus the
// OpenStorage SDK catalog, so existing Portworx role files load unchanged.
const std::map<std::string, std::vector<std::string>>& known_methods() {
  static const std::map<std::string, std::vector<std::string>> kKnown = {
      {"volume", {"create", "clone", "delete", "inspect", "inspectwithfilters", "update", "stats",
                  "capacityusage", "enumerate", "enumeratewithfilters", "snapshotcreate",
                  "snapshotrestore", "snapshotenumerate", "snapshotenumeratewithfilters",
                  "snapshotdelete", "snapshotscheduleupdate", "volumecatalog", "capacity"}},
      {"mountattach", {"attach", "detach", "mount", "unmount", "publish", "unpublish", "expand"}},
      {"role", {"create", "enumerate", "inspect", "update", "delete"}},
      {"identity", {"version", "whoami", "capabilities"}},
      {"quota", {"set", "show"}},  // per-tenant capacity quotas
      {"key", {"rotate"}},         // KEK rotation of encrypted volumes' data keys
      {"token", {"revoke", "enumerate"}},  // token revocation (volguard token revoke)
      {"metrics", {"inspect"}},  // GET /metrics when metrics.require_token
      {"migrate", {"start", "cancel", "status"}},
      {"cloudbackup", {"create", "groupcreate", "restore", "delete", "deleteall",
                       "enumeratewithfilters", "status", "catalog", "history", "statechange",
                       "schedcreate", "schedupdate", "scheddelete", "schedenumerate", "size"}},
      {"credentials", {"create", "update", "enumerate", "inspect", "delete", "validate",
                       "deletereferences"}},
      {"objectstore", {"inspect", "create", "delete", "update"}},
      {"schedulepolicy", {"create", "update", "enumerate", "inspect", "delete"}},
      {"policy", {"create", "enumerate", "inspect", "update", "delete", "setdefault",
                  "defaultinspect", "release"}},
      {"cluster", {"inspectcurrent"}},
      {"node", {"inspect", "inspectcurrent", "enumerate", "enumeratewithfilters",
                "volumeusagebynode", "relaxedreclaimpurge", "drainattachments",
                "cordonattachments", "uncordonattachments", "volumebytesusedbynode"}},
      {"clusterpair", {"create", "inspect", "enumerate", "gettoken", "resettoken", "delete"}},
      {"clusterdomains", {"enumerate", "inspect", "activate", "deactivate"}},
      {"alerts", {"enumeratewithfilters", "delete"}},
      {"watch", {"watch"}},
      {"pool", {"resize", "rebalance", "updaterebalancejobstate", "getrebalancejobstatus",
                "enumeraterebalancejobs", "createrebalanceschedule", "getrebalanceschedule",
                "deleterebalanceschedule"}},
      {"filesystemtrim", {"start", "status", "autofstrimstatus", "autofstrimusage", "stop",
                          "autofstrimpush", "autofstrimpop"}},
      {"filesystemcheck", {"start", "status", "stop", "listsnapshots", "deletesnapshots",
                           "listvolumes"}},
      {"filesystemdefrag", {"createschedule", "getnodestatus", "enumeratenodestatus",
                            "cleanupschedules"}},
      {"verifychecksum", {"start", "status", "stop"}},
      {"schedule", {"inspect", "enumerate", "delete"}},
      {"job", {"update", "getstatus", "enumerate"}},
      {"diags", {"collect"}},
      {"bucket", {"create", "delete", "grantaccess", "revokeaccess"}},
  };
  return kKnown;
}

bool valid_pattern_chars(std::string_view p) {
  for (char c : p) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '*' || c == '.' || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// Strips leading '!' (any number, as OpenStorage does) and reports whether it was a deny.
std::string_view strip_deny(std::string_view p, bool* deny) {
  *deny = false;
  while (!p.empty() && p.front() == '!') {
    *deny = true;
    p.remove_prefix(1);
  }
  return p;
}

Status bad_role(const std::string& where, const std::string& why) {
  return Status(Code::kInvalidArgument, "bad_role", where + ": " + why);
}

}  // namespace

Pattern::Pattern(std::string_view text) {
  std::string lower = to_lower(text);
  any_ = lower.find_first_not_of('*') == std::string::npos;
  leading_star_ = !lower.empty() && lower.front() == '*';
  trailing_star_ = !lower.empty() && lower.back() == '*';
  for (auto& piece : split(lower, '*')) {
    if (!piece.empty()) parts_.push_back(piece);
  }
}

bool Pattern::matches(std::string_view s) const {
  if (any_) return true;
  size_t pos = 0;
  for (size_t i = 0; i < parts_.size(); ++i) {
    const std::string& part = parts_[i];
    bool first = i == 0;
    bool last = i + 1 == parts_.size();
    if (first && !leading_star_) {
      if (s.substr(0, part.size()) != part) return false;
      pos = part.size();
      if (last && !trailing_star_) return pos == s.size();
      continue;
    }
    if (last && !trailing_star_) {
      if (s.size() < pos + part.size()) return false;
      return s.substr(s.size() - part.size()) == part;
    }
    size_t found = s.find(part, pos);
    if (found == std::string_view::npos) return false;
    pos = found + part.size();
  }
  return true;
}

struct RoleSet::Compiled {
  struct CompiledRule {
    std::vector<Pattern> allow_services, deny_services, allow_apis, deny_apis;
    std::string text;
  };
  std::vector<CompiledRule> rules;
};

RoleSet::RoleSet(std::vector<Role> roles) : roles_(std::move(roles)) {
  for (const auto& role : roles_) {
    auto compiled = std::make_unique<Compiled>();
    for (const auto& rule : role.rules) {
      Compiled::CompiledRule cr;
      cr.text = rule_text(rule);
      bool deny = false;
      for (const auto& s : rule.services) {
        auto p = strip_deny(s, &deny);
        (deny ? cr.deny_services : cr.allow_services).emplace_back(p);
      }
      for (const auto& a : rule.apis) {
        auto p = strip_deny(a, &deny);
        (deny ? cr.deny_apis : cr.allow_apis).emplace_back(p);
      }
      compiled->rules.push_back(std::move(cr));
    }
    compiled_[role.name] = std::move(compiled);
  }
}

RoleSet::~RoleSet() = default;

const Role* RoleSet::find(std::string_view name) const {
  for (const auto& r : roles_) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

Decision RoleSet::decide(const std::vector<std::string>& role_names, std::string_view service_in,
                         std::string_view api_in) const {
  std::string service = to_lower(service_in);
  std::string api = to_lower(api_in);
  std::string method = service + "." + api;
  auto any_match = [](const std::vector<Pattern>& ps, std::string_view name) {
    for (const auto& p : ps) {
      if (p.matches(name)) return true;
    }
    return false;
  };
  Decision allow;
  std::string known_roles;
  for (const auto& name : role_names) {
    auto it = compiled_.find(name);
    if (it == compiled_.end()) continue;  // an unknown role grants nothing
    known_roles += (known_roles.empty() ? "" : ", ") + name;
    const auto& rules = it->second->rules;
    for (size_t i = 0; i < rules.size(); ++i) {
      const auto& r = rules[i];
      bool service_denied = any_match(r.deny_services, service);
      bool service_allowed = any_match(r.allow_services, service);
      if (service_denied || (service_allowed && any_match(r.deny_apis, api))) {
        // A deny anywhere wins: stop looking.
        return Decision{false, name, static_cast<int>(i), r.text, "rbac_deny_rule",
                        "access to " + method + " is denied by role " + name + " rule " +
                            std::to_string(i) + " " + r.text};
      }
      if (!allow.allowed && service_allowed && any_match(r.allow_apis, api)) {
        allow = Decision{true, name, static_cast<int>(i), r.text, "", ""};
      }
    }
  }
  if (allow.allowed) return allow;
  std::string roles_text;
  for (const auto& n : role_names) roles_text += (roles_text.empty() ? "" : ", ") + n;
  return Decision{false, "", -1, "", "rbac_denied",
                  "no rule of roles [" + roles_text + "] allows " + method +
                      (known_roles.empty() && !role_names.empty()
                           ? " (none of these roles exist)"
                           : "")};
}

std::string rule_text(const Rule& rule) {
  auto list = [](const std::vector<std::string>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + v[i];
    return out + "]";
  };
  return list(rule.services) + "->" + list(rule.apis);
}

Result<Role> role_from_json(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return bad_role("role", "not valid JSON");
  if (!j.is_object()) return bad_role("role", "must be a JSON object with name and rules");
  for (const auto& [k, v] : j.items()) {
    (void)v;
    if (k != "name" && k != "rules") return bad_role(k, "unknown field (allowed: name, rules)");
  }
  Role role;
  if (!j.contains("name") || !j["name"].is_string()) return bad_role("name", "must be a string");
  role.name = j["name"].get<std::string>();
  if (!j.contains("rules") || !j["rules"].is_array()) {
    return bad_role("rules", "must be an array of {services, apis}");
  }
  for (size_t i = 0; i < j["rules"].size(); ++i) {
    const auto& r = j["rules"][i];
    std::string where = "rules[" + std::to_string(i) + "]";
    if (!r.is_object()) return bad_role(where, "must be an object with services and apis");
    Rule rule;
    for (const auto& [k, v] : r.items()) {
      if (k != "services" && k != "apis") {
        return bad_role(where + "." + k, "unknown field (allowed: services, apis)");
      }
      if (!v.is_array()) return bad_role(where + "." + k, "must be an array of strings");
      for (const auto& item : v) {
        if (!item.is_string()) return bad_role(where + "." + k, "must be an array of strings");
        (k == "services" ? rule.services : rule.apis).push_back(item.get<std::string>());
      }
    }
    role.rules.push_back(std::move(rule));
  }
  return role;
}

std::string role_to_json(const Role& role) {
  nlohmann::json j;
  j["name"] = role.name;
  j["rules"] = nlohmann::json::array();
  for (const auto& r : role.rules) j["rules"].push_back({{"services", r.services}, {"apis", r.apis}});
  return j.dump();
}

Status validate_role(const Role& role) {
  if (role.name.empty()) return bad_role("name", "must not be empty");
  if (role.name.size() > 128) return bad_role("name", "must be at most 128 characters");
  for (char c : role.name) {
    if (c == '/' || c == ' ' || c < 0x21 || c == 0x7f) {
      return bad_role("name", "'" + role.name + "' must not contain '/', spaces or control characters");
    }
  }
  if (role.rules.empty()) return bad_role("rules", "a role needs at least one rule");
  const auto& known = known_methods();
  for (size_t i = 0; i < role.rules.size(); ++i) {
    const Rule& rule = role.rules[i];
    std::string where = "rules[" + std::to_string(i) + "]";
    if (rule.services.empty()) return bad_role(where + ".services", "must not be empty");
    if (rule.apis.empty()) return bad_role(where + ".apis", "must not be empty");
    std::set<std::string> services_reached;
    for (const auto& s : rule.services) {
      bool deny = false;
      std::string_view p = strip_deny(s, &deny);
      if (p.empty() || !valid_pattern_chars(p)) {
        return bad_role(where + ".services", "'" + s + "' is not a service name or pattern");
      }
      Pattern pattern(p);
      bool matched = false;
      for (const auto& [svc, apis] : known) {
        (void)apis;
        if (pattern.matches(svc)) {
          matched = true;
          if (!deny) services_reached.insert(svc);
        }
      }
      if (!matched) {
        return bad_role(where + ".services",
                        "'" + s + "' matches no service, so the rule could never apply (services "
                        "include volume, mountattach, role, identity)");
      }
    }
    for (const auto& a : rule.apis) {
      bool deny = false;
      std::string_view p = strip_deny(a, &deny);
      if (p.empty() || !valid_pattern_chars(p)) {
        return bad_role(where + ".apis", "'" + a + "' is not an api name or pattern");
      }
      Pattern pattern(p);
      bool matched = false;
      // An api must exist in a service this rule reaches (any service, for deny-only rules).
      for (const auto& [svc, apis] : known) {
        if (!services_reached.empty() && !services_reached.count(svc)) continue;
        for (const auto& api : apis) matched = matched || pattern.matches(api);
      }
      if (!matched) {
        return bad_role(where + ".apis", "'" + a + "' matches no api of the rule's services, so "
                                         "the rule could never apply");
      }
    }
  }
  return Status::ok();
}

std::vector<Role> default_roles() {
  return {
      {"system.admin", {{{"*"}, {"*"}}}},
      {"system.view",
       {{{"*"}, {"*enumerate*", "inspect*", "stats", "status", "validate", "capacity", "capacityusage", "watch"}},
        {{"identity"}, {"*"}},
        {{"quota"}, {"show"}}}},
      {"system.user",
       {{{"volume", "cloudbackup", "credentials", "objectstore", "schedulepolicy", "mountattach",
          "migrate"},
         {"*"}},
        {{"cluster", "node"}, {"inspect*", "enumerate*"}},
        {{"identity"}, {"*"}},
        {{"policy"}, {"*enumerate*", "*inspect*"}},
        // Their own quotas only (the handler refuses anyone else's); quota.set is for admins.
        {{"quota"}, {"show"}}}},
      {"system.guest",
       {{{"mountattach", "volume", "cloudbackup", "migrate"}, {"*"}},
        {{"identity"}, {"version"}},
        {{"cluster", "node"}, {"inspect*", "enumerate*"}}}},
      // A CSI node plugin's own credential (NodeRestriction-style): the node-side steps kubelet
      // needs — and, by the pipeline's access rule, only on volumes attached to that node.
      {kNodeRole,
       {{{"mountattach"}, {"mount", "unmount", "publish", "unpublish", "expand"}},
        {{"volume"}, {"inspect", "stats"}},
        {{"identity"}, {"version", "whoami"}}}},
      // The CSI controller's credential for the calls CSI sends without secrets (ListVolumes,
      // ControllerGetVolume): reading every volume's metadata, nothing else.
      {kCsiControllerRole,
       {{{"volume"}, {"enumerate", "inspect", "capacity"}}, {{"identity"}, {"version", "whoami"}}}},
  };
}

bool is_default_role(std::string_view name) {
  return name == "system.admin" || name == "system.view" || name == "system.user" ||
         name == "system.guest" || name == kNodeRole || name == kCsiControllerRole;
}

bool is_mutable_default_role(std::string_view name) { return name == "system.guest"; }

}  // namespace volguard::policy
