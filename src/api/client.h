// A gRPC client for every method, used by the CLI and the tests.
#pragma once

#include <google/protobuf/message.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/grpc_call.h"
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
  // With a client certificate (mTLS) when tls.cert_file is set.
  static Result<Client> connect(const std::string& endpoint, const std::string& token, const ClientTls& tls);
  // grpc_path "/volguard.v1.Volume/Create". The returned Status carries the server's code,
  // reason (trailer volguard-reason) and message.
  Status call(const std::string& grpc_path, const google::protobuf::Message& request,
              google::protobuf::Message* response) const;

  // Read-your-writes across the nodes of a cluster: every call asks for a catalog at least this
  // new (metadata volguard-min-revision); each reply's revision (trailer volguard-revision)
  // raises it. A CLI session passes it from one process to the next (--session).
  void set_min_revision(int64_t revision) { min_revision_ = revision; }
  int64_t revision() const { return revision_ > min_revision_ ? revision_ : min_revision_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::string token_;
  int64_t min_revision_ = 0;
  mutable int64_t revision_ = 0;
};

}  // namespace volguard::api
