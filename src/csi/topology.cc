#include "csi/topology.h"

#include <algorithm>
#include <vector>

namespace volguard::csi {
namespace {

using Topologies = google::protobuf::RepeatedPtrField<::csi::v1::Topology>;

// The nodes a list names, in order; a topology volguard cannot read is refused, never skipped
// (skipping it would widen where the volume may go).
Result<std::vector<std::string>> nodes_of(const Topologies& list, const std::string& field) {
  std::vector<std::string> out;
  for (int i = 0; i < list.size(); ++i) {
    const auto& segments = list[i].segments();
    if (segments.empty()) continue;
    const std::string where = "accessibility_requirements." + field + "[" + std::to_string(i) + "]";
    auto it = segments.find(kTopologyKey);
    if (it == segments.end()) {
      return Status(Code::kInvalidArgument, "topology_key_missing",
                    where + " has no segment " + kTopologyKey + " (volguard's only topology key)");
    }
    if (it->second.empty()) {
      return Status(Code::kInvalidArgument, "topology_value_empty",
                    where + " has an empty " + kTopologyKey);
    }
    out.push_back(it->second);
  }
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

Result<std::string> choose_home_node(const ::csi::v1::TopologyRequirement& requirement) {
  auto all = home_candidates(requirement);
  if (!all) return all.status();
  return all->empty() ? std::string() : all->front();
}

Result<std::vector<std::string>> home_candidates(
    const ::csi::v1::TopologyRequirement& requirement) {
  auto requisite = nodes_of(requirement.requisite(), "requisite");
  if (!requisite) return requisite.status();
  auto preferred = nodes_of(requirement.preferred(), "preferred");
  if (!preferred) return preferred.status();
  std::vector<std::string> out;
  // The spec has every preferred topology in requisite when both are given; one that is not
  // would put the volume where it must not be, so it is passed over.
  for (const auto& node : *preferred) {
    if ((requisite->empty() || has(*requisite, node)) && !has(out, node)) out.push_back(node);
  }
  for (const auto& node : *requisite) {
    if (!has(out, node)) out.push_back(node);
  }
  return out;
}

bool meets_requisite(const ::csi::v1::TopologyRequirement& requirement, const std::string& home) {
  bool any = false;
  for (const auto& t : requirement.requisite()) {
    auto it = t.segments().find(kTopologyKey);
    if (it == t.segments().end()) continue;
    if (it->second == home) return true;
    any = true;
  }
  return !any;
}

bool is_valid_topology_value(const std::string& value) {
  if (value.empty() || value.size() > 63) return false;
  if (!is_alnum(value.front()) || !is_alnum(value.back())) return false;
  return std::all_of(value.begin(), value.end(),
                     [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
}

}  // namespace volguard::csi
