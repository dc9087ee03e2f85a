#include "common/grpc_call.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <future>

#include "common/text.h"

namespace volguard {

Result<std::shared_ptr<grpc::ChannelCredentials>> channel_credentials(const ClientTls& tls) {
  if (tls.ca.empty()) {
    if (!tls.cert_file.empty()) {
      return Status(Code::kInvalidArgument, "bad_tls", "a client certificate needs TLS: give the CA too");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return Status(Code::kInvalidArgument, "bad_tls", "a client certificate and its key go together");
  }
  grpc::SslCredentialsOptions options;
  ASSIGN_OR_RETURN(options.pem_root_certs, read_file(tls.ca));
  if (!tls.cert_file.empty()) {
    ASSIGN_OR_RETURN(options.pem_cert_chain, read_file(tls.cert_file));
    ASSIGN_OR_RETURN(options.pem_private_key, read_private_file(tls.key_file));
  }
  return grpc::SslCredentials(options);
}

Status grpc_unary_call(const std::shared_ptr<grpc::Channel>& channel, const std::string& path,
                       const google::protobuf::Message& request, google::protobuf::Message* response,
                       const GrpcCallOptions& options) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  std::string bytes;
  request.SerializeToString(&bytes);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request_buf(&slice, 1);
  grpc::ByteBuffer response_buf;
  ctx.set_deadline(std::chrono::system_clock::now() + options.timeout);
  // gRPC aborts the process on a metadata value with a byte outside 0x20-0x7e, after printing
  // the value in full: a token from `$(cat file)` with a CRLF, or a tenant's Secret, would be
  // printed and would kill a CLI, the CSI plugin or a forwarding node. Refused here, unprinted.
  for (const auto& [k, v] : options.metadata) {
    for (unsigned char c : v) {
      if (c < 0x20 || c > 0x7e) {
        return Status(Code::kInvalidArgument, "bad_metadata",
                      "metadata '" + k + "' holds a control or non-ASCII byte (the value is not shown)");
      }
    }
    ctx.AddMetadata(k, v);
  }
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, path, grpc::StubOptions(), &request_buf, &response_buf,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status s = done.get_future().get();
  const auto& trailers = ctx.GetServerTrailingMetadata();
  if (options.trailers != nullptr) {
    for (auto& [key, value] : *options.trailers) {
      if (auto it = trailers.find(key); it != trailers.end()) value.assign(it->second.data(), it->second.size());
    }
  }
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
  if (auto it = trailers.find("volguard-reason"); it != trailers.end()) {
    reason.assign(it->second.data(), it->second.size());
  }
  if (reason.empty() && s.error_code() == grpc::StatusCode::UNAVAILABLE) reason = "unavailable";
  if (reason.empty() && s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) reason = "deadline_exceeded";
  return Status(static_cast<Code>(s.error_code()), reason, s.error_message());
}

}  // namespace volguard
