// Shared by the plugin's services; not part of the plugin's interface.
#pragma once

#include <google/protobuf/map.h>
#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "csi.grpc.pb.h"
#include "csi/plugin.h"

namespace volguard::csi {

// The CSI messages; volguard's own API stays volguard::v1.
namespace v1 = ::csi::v1;

using SecretMap = google::protobuf::Map<std::string, std::string>;

// Calls the volguard server as the caller of one CSI request.
class Backend {
 public:
  explicit Backend(const PluginOptions& options) : options_(options) {}
  // grpc_path "/volguard.v1.VolguardVolume/Inspect"; an empty token calls as a guest.
  Status call(const std::string& token, const std::string& grpc_path,
              const google::protobuf::Message& request, google::protobuf::Message* response) const;
  const PluginOptions& options() const { return options_; }
  // The node's / the controller's own token, read from its file now (empty when the option is
  // unset or the file unreadable: the server then sees a guest, and refuses or shows only
  // public volumes).
  std::string node_token() const { return read_token(options_.node_token_file); }
  std::string controller_token() const { return read_token(options_.controller_token_file); }

 private:
  static std::string read_token(const std::string& path);
  PluginOptions options_;
};

std::string token_of(const SecretMap& secrets);

// A volguard Status as a gRPC status for the CO: codes pass through (they share numbers);
// the message carries the server's reason and never the token.
grpc::Status to_grpc(const Status& s, const std::string& token);
grpc::Status invalid_argument(const std::string& message);

// CSI names may be any Unicode; volguard names are what is_valid_name (common/text.h) accepts.
// A valid name is kept; one that needed changes gets a hash of the original appended, so two CO
// names never map onto one volguard name and the mapping stays stable across retries.
std::string volguard_name(const std::string& co_name);

// Mount access with SINGLE_NODE_WRITER / SINGLE_NODE_READER_ONLY and fs ext4|xfs|"" is
// supported; anything else is refused with the reason in the returned text (empty = ok).
std::string unsupported_capability(const v1::VolumeCapability& cap);

std::unique_ptr<v1::Identity::Service> make_identity(std::shared_ptr<Backend> backend);
std::unique_ptr<v1::Controller::Service> make_controller(std::shared_ptr<Backend> backend);
std::unique_ptr<v1::Node::Service> make_node(std::shared_ptr<Backend> backend);

}  // namespace volguard::csi
