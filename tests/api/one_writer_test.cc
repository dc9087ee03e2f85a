// One server per data directory, ports bound exclusively, and no silent new audit key next to an
// existing chain (issue 10, guarantees 3 and 4).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "api/server.h"
#include "audit/audit.h"
#include "common/text.h"
#include "service/audit_recorder.h"
#include "support/test_server.h"
#include "volguard.pb.h"

namespace volguard {
namespace {

using testing::TestServer;

TEST(OneWriterTest, SecondServerOnTheSameDataDirIsRefusedNamingThePid) {
  TestServer srv;
  auto second = api::Server::start(srv.config());
  ASSERT_FALSE(second.is_ok()) << "a second server started on the same data dir";
  EXPECT_EQ(second.status().code(), Code::kFailedPrecondition) << second.status().to_string();
  EXPECT_EQ(second.status().reason(), "data_dir_in_use");
  EXPECT_NE(second.status().message().find("pid " + std::to_string(::getpid())), std::string::npos)
      << second.status().message();
  // The first is untouched and still serves.
  v1::VersionResponse version;
  Status still = srv.client().call("/volguard.v1.VolguardIdentity/Version", v1::Empty(), &version);
  EXPECT_TRUE(still.is_ok()) << still.to_string();
  // Once the first has stopped, the data dir is free again.
  srv.stop();
  auto third = api::Server::start(srv.config());
  EXPECT_TRUE(third.is_ok()) << third.status().to_string();
}

TEST(OneWriterTest, AnAuditDirOutsideTheDataDirIsLockedToo) {
  TestServer srv("", true, "audit:\n  dir: /tmp/volguard-shared-audit-" + std::to_string(::getpid()) + "\n");
  config::Config other = srv.config();
  other.data_dir = srv.dir() + "/other-data";
  other.audit.key_file = srv.config().audit.key_file;
  auto second = api::Server::start(other);
  ASSERT_FALSE(second.is_ok()) << "two servers append to one audit chain";
  EXPECT_EQ(second.status().reason(), "data_dir_in_use") << second.status().to_string();
  EXPECT_NE(second.status().message().find("audit.dir"), std::string::npos) << second.status().message();
  srv.stop();
  std::filesystem::remove_all(srv.config().audit.dir);
}

TEST(OneWriterTest, PortsAreBoundExclusively) {
  TestServer srv;
  for (const bool grpc : {true, false}) {
    config::Config other = srv.config();
    other.data_dir = srv.dir() + (grpc ? "/g" : "/r");
    other.audit.dir = other.data_dir + "/log/security";
    other.audit.key_file = other.data_dir + "/audit.key";
    if (grpc) {
      other.api.grpc = "127.0.0.1:" + std::to_string(srv.grpc_port());
    } else {
      other.api.rest = "127.0.0.1:" + std::to_string(srv.rest_port());
    }
    auto second = api::Server::start(other);
    ASSERT_FALSE(second.is_ok()) << (grpc ? "gRPC" : "REST") << " port shared by a second server";
    EXPECT_EQ(second.status().code(), Code::kUnavailable) << second.status().to_string();
    EXPECT_EQ(second.status().reason(), "listen_failed") << second.status().to_string();
  }
}

TEST(OneWriterTest, MissingAuditKeyNextToAnExistingTrailRefusesToStart) {
  TestServer srv;
  srv.stop();  // the trail now holds at least "server started" and "server stopped"
  const std::string key = srv.config().audit.key_file;
  ASSERT_TRUE(std::filesystem::exists(key));
  std::filesystem::remove(key);
  auto again = api::Server::start(srv.config());
  ASSERT_FALSE(again.is_ok()) << "a new key was made silently; the chain would break";
  EXPECT_EQ(again.status().code(), Code::kFailedPrecondition) << again.status().to_string();
  EXPECT_EQ(again.status().reason(), "audit_key_missing");
  EXPECT_NE(again.status().message().find(key), std::string::npos) << again.status().message();
  EXPECT_FALSE(std::filesystem::exists(key)) << "refused, yet a key was written";
  // Moving the old trail away alone is refused too: its anchor says a trail exists.
  const std::string trail = srv.audit_dir() + "/" + service::kAuditLogName;
  std::filesystem::rename(trail, srv.dir() + "/old-trail.log");
  auto moved = api::Server::start(srv.config());
  ASSERT_FALSE(moved.is_ok());
  EXPECT_EQ(moved.status().reason(), "audit_tampered") << moved.status().to_string();
  // Moving the trail and its anchor away starts a new chain with a new key.
  const std::string anchor = audit::anchor_path_for(key);
  ASSERT_TRUE(std::filesystem::exists(anchor));
  std::filesystem::rename(anchor, srv.dir() + "/old-trail.anchor");
  auto fresh = api::Server::start(srv.config());
  EXPECT_TRUE(fresh.is_ok()) << fresh.status().to_string();
  EXPECT_TRUE(std::filesystem::exists(key));
}

}  // namespace
}  // namespace volguard
