// How clients reach a server: plaintext, TLS, mTLS, and the refusals of a half-given setup.
#include "common/grpc_call.h"

#include <gtest/gtest.h>

namespace volguard {
namespace {

TEST(ChannelCredentials, AClientCertificateNeedsTlsAndItsKey) {
  EXPECT_TRUE(channel_credentials({}).is_ok()) << "no CA: plaintext";
  EXPECT_EQ(channel_credentials({.cert_file = "c.pem", .key_file = "k.pem"}).status().reason(), "bad_tls");
  EXPECT_EQ(channel_credentials({.ca = "/etc/hostname", .cert_file = "c.pem"}).status().reason(), "bad_tls");
  // Files are read now: a missing one is named, not found at the first call.
  const Status missing = channel_credentials({.ca = "/nonexistent/ca.pem"}).status();
  EXPECT_FALSE(missing.is_ok());
  EXPECT_NE(missing.message().find("/nonexistent/ca.pem"), std::string::npos) << missing.to_string();
}

}  // namespace
}  // namespace volguard
