// Starts a real volguard server (gRPC + REST on loopback, SQLite, local driver) in-process
// for integration tests, with a shared-secret issuer and helpers to mint tokens.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <ctime>
#include <filesystem>
#include <memory>
#include <string>

#include "api/client.h"
#include "api/server.h"
#include "common/text.h"
#include "config/config.h"
#include "identity/token.h"

// A refusal with exactly this code and reason (the message is printed when it is not).
#define EXPECT_REFUSED(expr, code_, reason_)                                \
  do {                                                                      \
    const ::volguard::Status refused_ = (expr);                             \
    EXPECT_EQ(refused_.code(), code_) << #expr << ": " << refused_.to_string();     \
    EXPECT_EQ(refused_.reason(), reason_) << #expr << ": " << refused_.to_string(); \
  } while (0)

namespace volguard::testing {

// The gRPC service paths the integration tests call.
inline const std::string kVolumeSvc = "/volguard.v1.VolguardVolume/";
inline const std::string kMountSvc = "/volguard.v1.VolguardMountAttach/";
inline const std::string kIdentitySvc = "/volguard.v1.VolguardIdentity/";

inline const std::string kTestSecret = "integration-test-secret-0123456789abcdef";
// Who the caller is, as the server sees it: the tests' probe of authentication.
inline const std::string kWhoAmI = "/volguard.v1.VolguardIdentity/WhoAmI";

// Removes a test server's directory, leaving no mounts or loop devices behind (stop the
// server first).
inline void remove_server_dir(const std::string& dir) {
  std::system(("for m in $(awk '{print $2}' /proc/mounts | grep '^" + dir +
               "'); do umount -l $m; done; for f in " + dir +
               "/data/volumes/*.img; do losetup -j $f 2>/dev/null | cut -d: -f1 | xargs -r "
               "losetup -d; done")
                  .c_str());
  std::filesystem::remove_all(dir);
}

class TestServer {
 public:
  explicit TestServer(const std::string& extra_security = "", bool guest_access = true,
                      const std::string& extra_top = "") {
    char tmpl[] = "/tmp/volguard-it-XXXXXX";
    dir_ = mkdtemp(tmpl);
    if (Status s = write_file(dir_ + "/secret", kTestSecret + "\n", 0600); !s.is_ok()) {
      ADD_FAILURE() << s.to_string();
    }
    std::string yaml = "data_dir: " + dir_ + "/data\n" +
                       "api:\n  grpc: 127.0.0.1:0\n  rest: 127.0.0.1:0\n" + extra_top +
                       "security:\n  guest_access: " + (guest_access ? "true" : "false") + "\n" +
                       extra_security +
                       "  issuers:\n    - issuer: test.local\n      shared_secret_file: " + dir_ +
                       "/secret\n";
    config_ = config::parse_config(yaml, "test.yaml").value();
    start();
  }
  ~TestServer() {
    server_.reset();
    remove_server_dir(dir_);
  }
  void start() {
    auto s = api::Server::start(config_);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    server_ = std::move(s).value();
  }
  void stop() { server_.reset(); }

  std::string token(const std::string& sub, std::vector<std::string> roles,
                    std::vector<std::string> groups = {},
                    const std::string& secret = kTestSecret) const {
    identity::TokenClaims c{.issuer = "test.local", .subject = sub, .name = sub,
                            .email = sub + "@example.com", .roles = std::move(roles),
                            .groups = std::move(groups), .lifetime_seconds = 3600};
    auto key = identity::SigningKey::from_secret(secret).value();
    return identity::generate_token(key, c, static_cast<int64_t>(std::time(nullptr))).value();
  }
  api::Client client(const std::string& token = "") const {
    return api::Client::connect("127.0.0.1:" + std::to_string(server_->grpc_port()), token, "")
        .value();
  }
  int rest_port() const { return server_->rest_port(); }
  int grpc_port() const { return server_->grpc_port(); }
  const std::string& dir() const { return dir_; }
  std::string audit_dir() const { return config_.audit.dir; }
  const config::Config& config() const { return config_; }
  // For a restart with another configuration: stop(), change it, start().
  config::Config& mutable_config() { return config_; }

 private:
  std::string dir_;
  config::Config config_;
  std::unique_ptr<api::Server> server_;
};

}  // namespace volguard::testing
