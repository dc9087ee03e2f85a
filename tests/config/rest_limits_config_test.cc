// The REST transport's limits in the config: defaults, accepted values, and each refusal as
// `FILE: KEY: reason`.
#include <gtest/gtest.h>

#include "config/config.h"

namespace volguard::config {
namespace {

Result<Config> parse_api(const std::string& api_lines) {
  return parse_config("api:\n" + api_lines + "security:\n  issuers: []\n", "vg.yaml");
}

std::string refusal(const std::string& api_lines) {
  auto r = parse_api(api_lines);
  EXPECT_FALSE(r.is_ok()) << "accepted:\n" << api_lines;
  return r.is_ok() ? "" : r.status().message();
}

TEST(RestLimitsConfigTest, Defaults) {
  auto r = parse_api("  rest: 127.0.0.1:9021\n");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->api.rest_read_timeout.count(), 10);
  EXPECT_EQ(r->api.rest_max_connections, 64u);
  EXPECT_EQ(r->api.rest_max_connections_per_peer, 16u);
}

TEST(RestLimitsConfigTest, Set) {
  auto r = parse_api("  rest_read_timeout: 1m\n  rest_max_connections: 200\n"
                     "  rest_max_connections_per_peer: 199\n");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->api.rest_read_timeout.count(), 60);
  EXPECT_EQ(r->api.rest_max_connections, 200u);
  EXPECT_EQ(r->api.rest_max_connections_per_peer, 199u);
}

TEST(RestLimitsConfigTest, RefusedWithFileKeyReason) {
  EXPECT_EQ(refusal("  rest_read_timeout: 0\n"),
            "vg.yaml: api.rest_read_timeout: must be from 1s to 5m");
  EXPECT_EQ(refusal("  rest_read_timeout: 10m\n"),
            "vg.yaml: api.rest_read_timeout: must be from 1s to 5m");
  EXPECT_EQ(refusal("  rest_read_timeout: soon\n").rfind("vg.yaml: api.rest_read_timeout: ", 0), 0u);
  const std::string range = "vg.yaml: api.rest_max_connections: must be a whole number from 2 to 4096";
  EXPECT_EQ(refusal("  rest_max_connections: 1\n"), range);
  EXPECT_EQ(refusal("  rest_max_connections: 5000\n"), range);
  EXPECT_EQ(refusal("  rest_max_connections: -3\n"), range);
  EXPECT_EQ(refusal("  rest_max_connections: 12x\n"), range);
  EXPECT_EQ(refusal("  rest_max_connections: [1]\n"), range);
  EXPECT_EQ(refusal("  rest_max_connections_per_peer: 0\n"),
            "vg.yaml: api.rest_max_connections_per_peer: must be a whole number from 1 to 4095");
  // One address must never be able to hold every connection.
  EXPECT_EQ(refusal("  rest_max_connections: 8\n  rest_max_connections_per_peer: 8\n"),
            "vg.yaml: api.rest_max_connections_per_peer: must be below api.rest_max_connections "
            "(8), so that one address can never hold every connection");
  EXPECT_EQ(refusal("  rest_max_connections: 10\n").rfind(
                "vg.yaml: api.rest_max_connections_per_peer: must be below", 0),
            0u)
      << "the default per-peer cap (16) against a smaller total";
  EXPECT_NE(refusal("  rest_timeout: 5s\n").find("vg.yaml: api.rest_timeout: unknown key"),
            std::string::npos);
}

}  // namespace
}  // namespace volguard::config
