#include "ownership/ownership.h"

#include <nlohmann/json.hpp>

#include "common/text.h"

namespace volguard::ownership {

const char* access_name(Access a) {
  switch (a) {
    case Access::kNone: return "none";
    case Access::kRead: return "read";
    case Access::kWrite: return "write";
    case Access::kAdmin: return "admin";
  }
  return "none";
}

char access_letter(Access a) {
  switch (a) {
    case Access::kRead: return 'r';
    case Access::kWrite: return 'w';
    case Access::kAdmin: return 'a';
    default: return '-';
  }
}

std::optional<Access> parse_access(std::string_view text) {
  std::string t = to_lower(text);
  if (t == "r" || t == "read") return Access::kRead;
  if (t == "w" || t == "write") return Access::kWrite;
  if (t == "a" || t == "admin") return Access::kAdmin;
  return std::nullopt;
}

bool AdminPolicy::is_admin(const identity::Identity& who) const {
  if (who.guest) return false;
  for (const auto& r : who.roles) {
    if (r == "system.admin") return true;
  }
  if (admin_groups.empty()) return false;
  for (const auto& g : who.groups) {
    // "*" in a token is a wildcard to some (Portworx admin tokens carry it) and a plain name to
    // others: never let it decide who is an admin.
    if (g == "*") continue;
    const std::string qualified = who.qualified_group(g);
    if (qualified.empty()) return false;  // no group domain: in no group at all
    for (const auto& admin : admin_groups) {
      if (qualified == admin) return true;
    }
  }
  return false;
}

AccessDecision access_of(const identity::Identity& who, const Ownership& o,
                         const AdminPolicy& admins) {
  if (o.owner.empty()) return {Access::kAdmin, "unowned"};
  AccessDecision best{o.public_access,
                      o.public_access == Access::kNone
                          ? ""
                          : std::string("public:") + access_letter(o.public_access)};
  if (who.guest) return best;
  const std::string principal = who.principal();
  if (principal == o.owner) return {Access::kAdmin, "owner"};
  if (admins.is_admin(who)) return {Access::kAdmin, "ownership admin"};
  auto consider = [&](Access a, std::string via) {
    if (a > best.access) best = {a, std::move(via)};
  };
  if (!o.groups.empty()) {
    // Only the qualified form matches: "eng" from issuer A is not a grant made to B's "eng".
    for (const auto& g : who.groups) {
      if (g == "*") continue;  // a claim of "*" is not membership of every group
      const std::string qualified = who.qualified_group(g);
      if (qualified.empty()) break;
      if (auto it = o.groups.find(qualified); it != o.groups.end()) {
        consider(it->second, "group " + qualified + ":" + access_letter(it->second));
      }
    }
  }
  if (auto it = o.groups.find("*"); it != o.groups.end()) {
    consider(it->second, std::string("group *:") + access_letter(it->second));
  }
  if (auto it = o.collaborators.find(principal); it != o.collaborators.end()) {
    consider(it->second, "collaborator " + principal + ":" + access_letter(it->second));
  }
  if (auto it = o.collaborators.find("*"); it != o.collaborators.end()) {
    consider(it->second, std::string("collaborator *:") + access_letter(it->second));
  }
  return best;
}

std::string to_json(const Ownership& o) {
  nlohmann::json j;
  j["owner"] = o.owner;
  j["groups"] = nlohmann::json::object();
  for (const auto& [k, v] : o.groups) j["groups"][k] = std::string(1, access_letter(v));
  j["collaborators"] = nlohmann::json::object();
  for (const auto& [k, v] : o.collaborators) j["collaborators"][k] = std::string(1, access_letter(v));
  j["public"] = o.public_access == Access::kNone ? "" : std::string(1, access_letter(o.public_access));
  return j.dump();
}

Result<Ownership> from_json(std::string_view text) {
  auto bad = [](const std::string& why) {
    return Status(Code::kInvalidArgument, "bad_ownership", why);
  };
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("ownership is not a JSON object");
  Ownership o;
  if (j.contains("owner")) {
    if (!j["owner"].is_string()) return bad("owner must be a string");
    o.owner = j["owner"].get<std::string>();
  }
  for (const char* field : {"groups", "collaborators"}) {
    if (!j.contains(field)) continue;
    if (!j[field].is_object()) return bad(std::string(field) + " must be an object");
    auto& target = std::string(field) == "groups" ? o.groups : o.collaborators;
    for (const auto& [k, v] : j[field].items()) {
      if (!v.is_string()) return bad(std::string(field) + "." + k + " must be r, w or a");
      auto a = parse_access(v.get<std::string>());
      if (!a) return bad(std::string(field) + "." + k + " must be r, w or a");
      target[k] = *a;
    }
  }
  if (j.contains("public") && j["public"].is_string() && !j["public"].get<std::string>().empty()) {
    auto a = parse_access(j["public"].get<std::string>());
    if (!a) return bad("public must be r, w, a or empty");
    o.public_access = *a;
  }
  return o;
}

}  // namespace volguard::ownership
