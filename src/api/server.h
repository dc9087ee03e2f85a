// The transports: gRPC (generic: every method of the table, nothing else) and REST/JSON
// (POST /v1/<service>/<api>), both entering the one pipeline.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "config/config.h"

namespace volguard::api {

class Server {
 public:
  // Opens the store and driver under data_dir, recovers, and starts listening.
  static Result<std::unique_ptr<Server>> start(const config::Config& config);
  ~Server();

  // Stops accepting, lets calls in flight finish, closes everything. Idempotent.
  void shutdown();
  int grpc_port() const;
  int rest_port() const;

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// `volguard server --config F`: runs until SIGTERM/SIGINT.
int run_server(const std::string& config_path);

}  // namespace volguard::api
