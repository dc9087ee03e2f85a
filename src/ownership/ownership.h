// Who may do what to one volume or snapshot: its owner and its ACLs.
// Portworx/OpenStorage semantics, made stricter: owners are issuer-qualified principals, a
// transfer keeps the ACLs, and the highest matching grant decides (no first-match under-grant).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "identity/identity.h"

namespace volguard::ownership {

// Ordered: a grant of X allows every request needing ≤ X.
enum class Access { kNone = 0, kRead = 1, kWrite = 2, kAdmin = 3 };

const char* access_name(Access a);          // "none", "read", "write", "admin"
char access_letter(Access a);               // 'r', 'w', 'a' ('-' for none)
// "r" | "w" | "a" | "read" | "write" | "admin" (case-insensitive).
std::optional<Access> parse_access(std::string_view text);

struct Ownership {
  // Principal of the owner ("<issuer>/<username>"); empty = no owner (guest-created: public).
  std::string owner;
  // "<group_domain>/<escaped group>" → access; "*" = any authenticated. Qualified because
  // groups are trusted per issuer: any issuer can put any group name in its tokens.
  std::map<std::string, Access> groups;
  std::map<std::string, Access> collaborators;  // principal → access ("*" = any authenticated)
  Access public_access = Access::kNone;         // granted to everyone, guests included

  bool operator==(const Ownership&) const = default;
};

// Who counts as an ownership admin: role system.admin, or a group in security.admin_groups
// (qualified "<group_domain>/<group>", matched against the caller's qualified groups). A group
// claim literally named "*" never makes an admin.
struct AdminPolicy {
  std::vector<std::string> admin_groups;
  bool is_admin(const identity::Identity& who) const;
};

// Where a grant came from, for `auth can-i` and refusal messages.
struct AccessDecision {
  Access access = Access::kNone;
  std::string via;  // "owner", "ownership admin (group *)", "group eng:w", "collaborator x:r", "public:r", "unowned"
};

// The best access `who` has on a resource with `o`. Unowned resources (owner empty) give
// admin to everyone (the guest-created case); guests otherwise get only public access.
AccessDecision access_of(const identity::Identity& who, const Ownership& o,
                         const AdminPolicy& admins);

// JSON form used by the store and the APIs:
// {"owner":"iss/user","groups":{"g":"r"},"collaborators":{"iss/u":"w"},"public":"r"}
std::string to_json(const Ownership& o);
Result<Ownership> from_json(std::string_view json);

}  // namespace volguard::ownership
