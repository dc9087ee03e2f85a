#include "api/client.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/generic/generic_stub.h>

#include <chrono>
#include <future>

#include "common/text.h"

namespace volguard::api {

Result<Client> Client::connect(const std::string& endpoint, const std::string& token,
                               const std::string& tls_ca) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (tls_ca.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    auto ca = read_file(tls_ca);
    if (!ca) return ca.status();
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = *ca;
    creds = grpc::SslCredentials(options);
  }
  Client c;
  c.channel_ = grpc::CreateChannel(endpoint, creds);
  c.token_ = token;
  return c;
}

Status Client::call(const std::string& path, const google::protobuf::Message& request,
                    google::protobuf::Message* response) const {
  grpc::GenericStub stub(channel_);
  grpc::ClientContext ctx;
  std::string bytes;
  request.SerializeToString(&bytes);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request_buf(&slice, 1);
  grpc::ByteBuffer response_buf;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  if (!token_.empty()) ctx.AddMetadata("authorization", "bearer " + token_);
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, path, grpc::StubOptions(), &request_buf, &response_buf,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status s = done.get_future().get();
  if (s.ok()) {
    std::vector<grpc::Slice> slices;
    std::string out;
    if (response_buf.Dump(&slices).ok()) {
      for (const auto& sl : slices) out.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    }
    if (!response->ParseFromString(out)) {
      return Status(Code::kInternal, "bad_response", "server reply is not a " + response->GetTypeName());
    }
    return Status::ok();
  }
  std::string reason;
  const auto& trailers = ctx.GetServerTrailingMetadata();
  if (auto it = trailers.find("volguard-reason"); it != trailers.end()) {
    reason.assign(it->second.data(), it->second.size());
  }
  if (reason.empty() && s.error_code() == grpc::StatusCode::UNAVAILABLE) reason = "unavailable";
  return Status(static_cast<Code>(s.error_code()), reason, s.error_message());
}

}  // namespace volguard::api
