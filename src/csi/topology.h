// CSI topology for volguard: a volume's data lives on the disk of one volguard node, its home
// (volguard.v1.Volume.home_node), and a node or a volume is placed by one segment, kTopologyKey,
// whose value is that volguard node's name. No server needed: pure functions of the messages.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "csi.pb.h"

namespace volguard::csi {

// The only topology key volguard reports (NodeGetInfo, CreateVolume) and reads (CreateVolume).
inline constexpr const char* kTopologyKey = "volguard.io/node";

// The home node to ask the server for, from CreateVolume's accessibility_requirements: the
// first `preferred` topology's node that is also requisite (every preferred one counts when no
// requisite is given), else the first `requisite` one, else "" (no requirement: the server
// picks). A topology with segments but no kTopologyKey, or an empty value for it, is
// INVALID_ARGUMENT naming the key; one with no segments at all names no node and is skipped.
Result<std::string> choose_home_node(const ::csi::v1::TopologyRequirement& requirement);

// Every home node the requirement allows, in the order CSI wants them tried: the preferred
// ones as choose_home_node takes them, first to last, then the other requisite ones, in order;
// each once. The first is choose_home_node's choice. Empty: no requirement (the server picks).
// Refused as choose_home_node refuses.
Result<std::vector<std::string>> home_candidates(
    const ::csi::v1::TopologyRequirement& requirement);

// Whether a volume whose data lives on `home` meets the requirement: true when the requirement
// names no requisite node, else when `home` is one of them.
bool meets_requisite(const ::csi::v1::TopologyRequirement& requirement, const std::string& home);

// A segment value CSI allows: 1 to 63 characters, alphanumeric at both ends, '-', '_', '.' or
// alphanumerics between (the same rule as a Kubernetes label value, which kubelet makes of it).
bool is_valid_topology_value(const std::string& value);

}  // namespace volguard::csi
