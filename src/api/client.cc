#include "api/client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>

#include "common/grpc_call.h"
#include "common/text.h"

namespace volguard::api {

Result<Client> Client::connect(const std::string& endpoint, const std::string& token,
                               const std::string& tls_ca) {
  return connect(endpoint, token, ClientTls{.ca = tls_ca});
}

Result<Client> Client::connect(const std::string& endpoint, const std::string& token, const ClientTls& tls) {
  ASSIGN_OR_RETURN(auto creds, channel_credentials(tls));
  Client c;
  c.channel_ = grpc::CreateChannel(endpoint, creds);
  c.token_ = token;
  return c;
}

Status Client::call(const std::string& path, const google::protobuf::Message& request,
                    google::protobuf::Message* response) const {
  GrpcCallOptions options;
  if (!token_.empty()) options.metadata.emplace_back("authorization", "bearer " + token_);
  if (min_revision_ > 0) options.metadata.emplace_back("volguard-min-revision", std::to_string(min_revision_));
  std::map<std::string, std::string> trailers{{"volguard-revision", ""}};
  options.trailers = &trailers;
  Status s = grpc_unary_call(channel_, path, request, response, options);
  if (auto seen = parse_count(trailers["volguard-revision"]); seen && static_cast<int64_t>(*seen) > revision_) {
    revision_ = static_cast<int64_t>(*seen);
  }
  return s;
}

}  // namespace volguard::api
