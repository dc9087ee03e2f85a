#include "service/access.h"

#include <algorithm>

#include "policy/policy.h"

namespace volguard::service {

namespace {

bool has_role(const identity::Identity& who, std::string_view role) {
  return std::find(who.roles.begin(), who.roles.end(), role) != who.roles.end();
}

}  // namespace

bool is_node(const identity::Identity& who) { return !who.guest && has_role(who, policy::kNodeRole); }

ownership::AccessDecision volume_access(const identity::Identity& who, const store::VolumeRecord& volume,
                                        const ownership::AdminPolicy& admins) {
  using ownership::Access;
  if (is_node(who)) {
    // Checked first and alone: a node credential never falls back to grants.
    if (!volume.attached_node.empty() && volume.attached_node == who.username) {
      return {Access::kWrite, "node " + who.username + " (attached)"};
    }
    return {Access::kNone, ""};
  }
  ownership::AccessDecision granted = ownership::access_of(who, volume.ownership, admins);
  // Only a credential that is the controller and nothing else: its role allows enumerate,
  // inspect and capacity alone, so "read everything" can never reach clone, publish or
  // restore through a second role on the same token.
  if (!who.guest && who.roles.size() == 1 && who.roles[0] == policy::kCsiControllerRole &&
      granted.access < Access::kRead) {
    return {Access::kRead, "csi controller"};
  }
  return granted;
}

}  // namespace volguard::service
