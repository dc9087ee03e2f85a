// The access a caller has on a volume: the one rule Pipeline::decide and Call::may apply.
#pragma once

#include "identity/identity.h"
#include "ownership/ownership.h"
#include "store/store.h"

namespace volguard::service {

// Ownership decides (owner, groups, collaborators, public, ownership admins) — except for the
// two CSI service identities, whose access comes from their role and not from any grant:
//  - a node plugin (role system.node; its username is its node id): write on a volume attached
//    to that node, nothing on any other volume, whatever the volume's grants say (a node cannot
//    reach another node's volumes by being in a group);
//  - the CSI controller (a token whose only role is system.csi-controller): read on every
//    volume, for the calls CSI sends without secrets (its role lets it enumerate, inspect and
//    ask capacity, nothing more; a token with any other role besides gets no such read).
ownership::AccessDecision volume_access(const identity::Identity& who, const store::VolumeRecord& volume,
                                        const ownership::AdminPolicy& admins);

bool is_node(const identity::Identity& who);

}  // namespace volguard::service
