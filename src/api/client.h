// A gRPC client for every method, used by the CLI and the tests.
#pragma once

#include <google/protobuf/message.h>

#include <memory>
#include <string>

#include "common/status.h"

namespace grpc {
class Channel;
}

namespace volguard::api {

class Client {
 public:
  // endpoint "127.0.0.1:9020"; tls_ca empty = plaintext.
  static Result<Client> connect(const std::string& endpoint, const std::string& token,
                                const std::string& tls_ca);
  // grpc_path "/volguard.v1.Volume/Create". The returned Status carries the server's code,
  // reason (trailer volguard-reason) and message.
  Status call(const std::string& grpc_path, const google::protobuf::Message& request,
              google::protobuf::Message* response) const;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::string token_;
};

}  // namespace volguard::api
