// One unary gRPC call by method path with protobuf messages: the CLI's client (api::Client) and
// the cluster's forwarding (service/cluster_router) both call volguard this way, with the
// server's reason carried back from the `volguard-reason` trailer.
#pragma once

#include <google/protobuf/message.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace grpc {
class Channel;
class ChannelCredentials;
}

namespace volguard {

struct GrpcCallOptions {
  std::vector<std::pair<std::string, std::string>> metadata;  // sent as is
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  // Trailing metadata of the reply the caller wants back (e.g. "volguard-revision"), filled in.
  std::map<std::string, std::string>* trailers = nullptr;
};

// How a client reaches a volguard server: plaintext (no ca), TLS verifying the server against
// `ca`, and with a client certificate (mTLS) when cert_file and key_file are set.
struct ClientTls {
  std::string ca;
  std::string cert_file;
  std::string key_file;  // must be the owner's alone (read_private_file)
};
Result<std::shared_ptr<grpc::ChannelCredentials>> channel_credentials(const ClientTls& tls);

// grpc_path "/volguard.v1.VolguardVolume/Create". The returned Status carries the server's
// code, reason and message; UNAVAILABLE with reason `unavailable` when nothing answered.
Status grpc_unary_call(const std::shared_ptr<grpc::Channel>& channel, const std::string& grpc_path,
                       const google::protobuf::Message& request, google::protobuf::Message* response,
                       const GrpcCallOptions& options);

}  // namespace volguard
