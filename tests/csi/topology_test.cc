// Which node CreateVolume asks the server to hold a volume's data on, from the CO's
// accessibility_requirements: no server needed.
#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "csi/topology.h"

namespace volguard::csi {
namespace {

using ::csi::v1::Topology;
using ::csi::v1::TopologyRequirement;
using Segments = std::initializer_list<std::pair<const char*, const char*>>;

Topology topology(Segments segments) {
  Topology t;
  for (const auto& [k, v] : segments) (*t.mutable_segments())[k] = v;
  return t;
}

TopologyRequirement requirement(std::initializer_list<Segments> requisite,
                                std::initializer_list<Segments> preferred) {
  TopologyRequirement r;
  for (const auto& s : requisite) *r.add_requisite() = topology(s);
  for (const auto& s : preferred) *r.add_preferred() = topology(s);
  return r;
}

// Refusals first: a requirement volguard cannot read is refused, naming the key, wherever it
// stands — never skipped (that would widen where the volume may go).
TEST(ChooseHomeNodeTest, ATopologyWithoutTheVolguardKeyIsInvalidArgument) {
  for (const auto& r : {
           requirement({{{"topology.kubernetes.io/zone", "z1"}}}, {}),
           requirement({}, {{{"kubernetes.io/hostname", "n1"}}}),
           // The key missing from a later entry only, after a usable one.
           requirement({{{kTopologyKey, "n1"}}, {{"zone", "z1"}}}, {{{kTopologyKey, "n1"}}}),
           requirement({{{kTopologyKey, "n1"}}}, {{{kTopologyKey, "n1"}}, {{"zone", "z1"}}}),
       }) {
    auto home = choose_home_node(r);
    ASSERT_FALSE(home.is_ok()) << r.DebugString();
    EXPECT_EQ(home.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(home.status().reason(), "topology_key_missing");
    EXPECT_NE(home.status().message().find("volguard.io/node"), std::string::npos)
        << home.status().message();
  }
  // Which entry is at fault is named too.
  auto home = choose_home_node(requirement({{{kTopologyKey, "n1"}}, {{"zone", "z1"}}}, {}));
  ASSERT_FALSE(home.is_ok());
  EXPECT_NE(home.status().message().find("requisite[1]"), std::string::npos)
      << home.status().message();
  // The key with no value names no node.
  home = choose_home_node(requirement({{{kTopologyKey, ""}}}, {}));
  ASSERT_FALSE(home.is_ok());
  EXPECT_EQ(home.status().code(), Code::kInvalidArgument);
  EXPECT_NE(home.status().message().find("volguard.io/node"), std::string::npos);
}

TEST(ChooseHomeNodeTest, PreferredFirstInOrder) {
  auto home = choose_home_node(requirement({{{kTopologyKey, "n1"}}, {{kTopologyKey, "n2"}},
                                            {{kTopologyKey, "n3"}}},
                                           {{{kTopologyKey, "n3"}}, {{kTopologyKey, "n1"}}}));
  ASSERT_TRUE(home.is_ok()) << home.status().to_string();
  EXPECT_EQ(*home, "n3");
  // Preferred alone (no requisite): the first one.
  home = choose_home_node(requirement({}, {{{kTopologyKey, "n2"}}, {{kTopologyKey, "n1"}}}));
  ASSERT_TRUE(home.is_ok());
  EXPECT_EQ(*home, "n2");
  // Other keys beside ours are ignored.
  home = choose_home_node(requirement({}, {{{kTopologyKey, "n2"}, {"zone", "z1"}}}));
  ASSERT_TRUE(home.is_ok());
  EXPECT_EQ(*home, "n2");
}

TEST(ChooseHomeNodeTest, RequisiteWhenNothingIsPreferred) {
  auto home = choose_home_node(requirement({{{kTopologyKey, "n2"}}, {{kTopologyKey, "n1"}}}, {}));
  ASSERT_TRUE(home.is_ok()) << home.status().to_string();
  EXPECT_EQ(*home, "n2");
}

// The spec has every preferred topology in requisite; one that is not is passed over, never
// chosen: the volume must be accessible from a requisite topology.
TEST(ChooseHomeNodeTest, APreferredNodeOutsideRequisiteIsIgnored) {
  auto home = choose_home_node(requirement({{{kTopologyKey, "n1"}}, {{kTopologyKey, "n2"}}},
                                           {{{kTopologyKey, "elsewhere"}}, {{kTopologyKey, "n2"}}}));
  ASSERT_TRUE(home.is_ok());
  EXPECT_EQ(*home, "n2");
  home = choose_home_node(requirement({{{kTopologyKey, "n1"}}}, {{{kTopologyKey, "elsewhere"}}}));
  ASSERT_TRUE(home.is_ok());
  EXPECT_EQ(*home, "n1");
}

TEST(ChooseHomeNodeTest, NoRequirementLetsTheServerPick) {
  auto home = choose_home_node(TopologyRequirement());
  ASSERT_TRUE(home.is_ok());
  EXPECT_EQ(*home, "");
  // Topologies with no segments name no node.
  home = choose_home_node(requirement({{}}, {{}}));
  ASSERT_TRUE(home.is_ok());
  EXPECT_EQ(*home, "");
}

// Every node CreateVolume may ask for, in the order the CSI spec wants them tried: the
// preferred ones first to last (those in requisite, when it is given), then the rest of
// requisite; each once.
TEST(HomeCandidatesTest, PreferredFirstToLastThenTheRestOfRequisite) {
  auto all = home_candidates(requirement({{{kTopologyKey, "n1"}}, {{kTopologyKey, "n2"}},
                                          {{kTopologyKey, "n3"}}, {{kTopologyKey, "n2"}}},
                                         {{{kTopologyKey, "n3"}}, {{kTopologyKey, "elsewhere"}},
                                          {{kTopologyKey, "n1"}}, {{kTopologyKey, "n3"}}}));
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  EXPECT_EQ(*all, (std::vector<std::string>{"n3", "n1", "n2"}));
  EXPECT_EQ(*choose_home_node(requirement({{{kTopologyKey, "n1"}}, {{kTopologyKey, "n2"}},
                                           {{kTopologyKey, "n3"}}},
                                          {{{kTopologyKey, "n3"}}, {{kTopologyKey, "n1"}}})),
            "n3");
  // Preferred alone: every preferred node, in order.
  all = home_candidates(requirement({}, {{{kTopologyKey, "n2"}}, {{kTopologyKey, "n1"}}}));
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(*all, (std::vector<std::string>{"n2", "n1"}));
  // Requisite alone: in order.
  all = home_candidates(requirement({{{kTopologyKey, "n2"}}, {{kTopologyKey, "n1"}}}, {}));
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(*all, (std::vector<std::string>{"n2", "n1"}));
  // No requirement: none (the server picks).
  all = home_candidates(requirement({{}}, {{}}));
  ASSERT_TRUE(all.is_ok());
  EXPECT_TRUE(all->empty());
  // Refused as choose_home_node refuses, wherever the unreadable entry stands.
  all = home_candidates(
      requirement({{{kTopologyKey, "n1"}}, {{"zone", "z1"}}}, {{{kTopologyKey, "n1"}}}));
  ASSERT_FALSE(all.is_ok());
  EXPECT_EQ(all.status().reason(), "topology_key_missing");
}

TEST(MeetsRequisiteTest, HomeMustBeOneOfTheRequisiteNodes) {
  const auto r = requirement({{{kTopologyKey, "n1"}}, {{kTopologyKey, "n2"}}}, {});
  EXPECT_TRUE(meets_requisite(r, "n2"));
  EXPECT_FALSE(meets_requisite(r, "n3"));
  EXPECT_FALSE(meets_requisite(r, ""));
  // Preferred is a wish, not a constraint.
  EXPECT_TRUE(meets_requisite(requirement({}, {{{kTopologyKey, "n1"}}}), "n3"));
  EXPECT_TRUE(meets_requisite(TopologyRequirement(), "n3"));
}

TEST(TopologyValueTest, WhatCsiAndKubernetesLabelsAllow) {
  for (const std::string& ok : {std::string("node-1"), std::string("a"), std::string("ip-10-0-0-1.ec2.internal"),
                                std::string("Node_2"), std::string(63, 'n')}) {
    EXPECT_TRUE(is_valid_topology_value(ok)) << ok;
  }
  for (const std::string& bad : {std::string(""), std::string(64, 'n'), std::string("-node"),
                                 std::string("node."), std::string("no de"), std::string("node/1"),
                                 std::string("nöde")}) {
    EXPECT_FALSE(is_valid_topology_value(bad)) << bad;
  }
}

}  // namespace
}  // namespace volguard::csi
