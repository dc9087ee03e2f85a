// The plugin's gRPC server, the Identity service and the helpers the services share.
#include "csi/plugin.h"

#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "api/client.h"
#include "common/hex.h"
#include "common/openssl.h"
#include "common/text.h"
#include "csi/internal.h"
#include "csi/topology.h"
#include "volguard.pb.h"

namespace volguard::csi {

Status Backend::call(const std::string& token, const std::string& grpc_path,
                     const google::protobuf::Message& request,
                     google::protobuf::Message* response) const {
  auto client = api::Client::connect(
      options_.server, token,
      ClientTls{.ca = options_.tls_ca, .cert_file = options_.tls_cert, .key_file = options_.tls_key});
  if (!client) return client.status();
  return client->call(grpc_path, request, response);
}

std::string token_of(const SecretMap& secrets) {
  auto it = secrets.find(kTokenSecret);
  // A Secret made with `--from-file` ends in a newline: not part of the token.
  return it == secrets.end() ? std::string() : std::string(trim_trailing_whitespace(it->second));
}

namespace {

// Defence in depth: the server never echoes a token, but a message that somehow carried one
// must not reach the CO's events and logs.
std::string scrub(std::string text, const std::string& token) {
  if (token.empty()) return text;
  for (size_t at = text.find(token); at != std::string::npos; at = text.find(token, at)) {
    text.replace(at, token.size(), "[token]");
  }
  return text;
}

}  // namespace

grpc::Status to_grpc(const Status& s, const std::string& token) {
  if (s.is_ok()) return grpc::Status::OK;
  std::string message = s.reason().empty() ? s.message() : s.reason() + ": " + s.message();
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), scrub(std::move(message), token));
}

grpc::Status invalid_argument(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

std::string volguard_name(const std::string& co_name) {
  if (is_valid_name(co_name)) return co_name;
  std::string out;
  for (char c : co_name) out.push_back(is_name_char(c) ? c : '-');
  if (out.empty() || out[0] == '.' || out[0] == '-') out.insert(0, "v");
  // The name changed: the hash of the original keeps two CO names from meeting in one.
  const std::string hash = to_hex(sha256(co_name).substr(0, 8));  // 16 hex digits
  if (out.size() > kMaxNameLength - 1 - hash.size()) out.resize(kMaxNameLength - 1 - hash.size());
  return out + "-" + hash;
}

std::string unsupported_capability(const v1::VolumeCapability& cap) {
  if (cap.has_block()) return "block volumes not supported";
  if (!cap.has_mount()) return "volume_capability needs an access type (mount)";
  const std::string& fs = cap.mount().fs_type();
  if (!fs.empty() && fs != "ext4" && fs != "xfs") {
    return "fs_type \"" + fs + "\" not supported (ext4 or xfs)";
  }
  if (!cap.has_access_mode()) return "volume_capability needs an access_mode";
  using Mode = v1::VolumeCapability::AccessMode;
  const auto mode = cap.access_mode().mode();
  // A loop device lives on one host: only single-node modes can be honoured.
  if (mode != Mode::SINGLE_NODE_WRITER && mode != Mode::SINGLE_NODE_READER_ONLY) {
    return "access mode " + Mode::Mode_Name(mode) +
           " not supported (SINGLE_NODE_WRITER or SINGLE_NODE_READER_ONLY)";
  }
  return "";
}

std::string Backend::read_token(const std::string& path) {
  if (path.empty()) return "";
  // A Secret's file: private to the plugin's user is not checkable here (kubelet mounts Secret
  // volumes 0644 by default, inside a directory only the pod sees); the content is the token.
  auto text = read_file(path);
  if (!text) {
    spdlog::warn("csi: cannot read the credential {}: {}", path, text.status().message());
    return "";
  }
  return std::string(trim_trailing_whitespace(*text));
}

namespace {

class IdentityService final : public v1::Identity::Service {
 public:
  explicit IdentityService(std::shared_ptr<Backend> backend) : backend_(std::move(backend)) {}

  grpc::Status GetPluginInfo(grpc::ServerContext*, const v1::GetPluginInfoRequest*,
                             v1::GetPluginInfoResponse* resp) override {
    resp->set_name(kPluginName);
    resp->set_vendor_version(kVendorVersion);
    return grpc::Status::OK;
  }

  grpc::Status GetPluginCapabilities(grpc::ServerContext*, const v1::GetPluginCapabilitiesRequest*,
                                     v1::GetPluginCapabilitiesResponse* resp) override {
    resp->add_capabilities()->mutable_service()->set_type(
        v1::PluginCapability::Service::CONTROLLER_SERVICE);
    // A volume's data is on one volguard node: NodeGetInfo and CreateVolume say which
    // (volguard.io/node), and the CO schedules its pods there.
    resp->add_capabilities()->mutable_service()->set_type(
        v1::PluginCapability::Service::VOLUME_ACCESSIBILITY_CONSTRAINTS);
    // ONLINE: an unmounted ext4 volume is grown by the controller (ControllerExpandVolume, as
    // the tenant); a mounted one, and xfs (which grows only mounted), by NodeExpandVolume on the
    // node where it is mounted. A mounted ext4 needs CAP_SYS_RESOURCE in the server (the
    // shipped DaemonSet runs it privileged); without it the refusal says so.
    resp->add_capabilities()->mutable_volume_expansion()->set_type(
        v1::PluginCapability::VolumeExpansion::ONLINE);
    return grpc::Status::OK;
  }

  // Healthy while the server answers at all: a refusal (guest access off) still proves it is up.
  grpc::Status Probe(grpc::ServerContext*, const v1::ProbeRequest*, v1::ProbeResponse*) override {
    volguard::v1::Empty e;
    volguard::v1::VersionResponse version;
    Status s = backend_->call("", "/volguard.v1.VolguardIdentity/Version", e, &version);
    if (s.code() == Code::kUnavailable) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "volguard server " + backend_->options().server + " unavailable");
    }
    return grpc::Status::OK;
  }

 private:
  std::shared_ptr<Backend> backend_;
};

}  // namespace

std::unique_ptr<v1::Identity::Service> make_identity(std::shared_ptr<Backend> backend) {
  return std::make_unique<IdentityService>(std::move(backend));
}

Result<std::unique_ptr<Plugin>> Plugin::start(const PluginOptions& given) {
  PluginOptions options = given;
  const std::string prefix = "unix://";
  if (options.endpoint.rfind(prefix, 0) != 0 || options.endpoint.size() <= prefix.size()) {
    return Status(Code::kInvalidArgument, "invalid_endpoint",
                  "endpoint \"" + options.endpoint + "\" must be unix:///path/to/csi.sock");
  }
  if (options.node_id.empty()) {
    return Status(Code::kInvalidArgument, "invalid_node_id", "node id is required");
  }
  if (options.volguard_node.empty()) options.volguard_node = options.node_id;
  // NodeGetInfo reports it as a topology segment, which kubelet makes a node label of: a value
  // neither would take is refused here, not at registration.
  if (!is_valid_topology_value(options.volguard_node)) {
    return Status(Code::kInvalidArgument, "invalid_volguard_node",
                  "volguard node \"" + options.volguard_node +
                      "\" is not a valid topology value (1-63 characters: letters, digits, '-', '_', "
                      "'.', alphanumeric at both ends); give one with --volguard-node");
  }
  std::unique_ptr<Plugin> p(new Plugin());
  p->socket_path_ = options.endpoint.substr(prefix.size());
  // Bound under a name of its own, then renamed over the endpoint in one step: a socket left by
  // a previous run (or still served by the instance this one replaces) is swapped atomically,
  // and gRPC's own unlink of the bound name at shutdown cannot hit the endpoint.
  // Random, not the pid (1 in every container): two instances never share the name.
  const std::string bound_path = p->socket_path_ + "." + random_hex(8) + ".new";
  auto backend = std::make_shared<Backend>(options);
  p->identity_ = make_identity(backend);
  p->controller_ = make_controller(backend);
  p->node_ = make_node(backend);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix://" + bound_path, grpc::InsecureServerCredentials());
  builder.RegisterService(p->identity_.get());
  builder.RegisterService(p->controller_.get());
  builder.RegisterService(p->node_.get());
  p->server_ = builder.BuildAndStart();
  if (!p->server_) {
    return Status(Code::kUnavailable, "listen_failed", "cannot listen on " + options.endpoint);
  }
  // Only this user (root for kubelet and the node's sidecars, the controller pod's one uid) may
  // connect: whoever can reach the socket acts with the node's credential.
  if (::chmod(bound_path.c_str(), 0600) != 0 || ::rename(bound_path.c_str(), p->socket_path_.c_str()) != 0) {
    const int err = errno;
    p->server_->Shutdown();
    p->server_.reset();
    return Status(Code::kUnavailable, "listen_failed",
                  "cannot put the socket at " + p->socket_path_ + ": " + std::strerror(err));
  }
  if (struct stat st {}; ::lstat(p->socket_path_.c_str(), &st) == 0) {
    p->socket_dev_ = st.st_dev;
    p->socket_ino_ = st.st_ino;
  }
  return p;
}

Plugin::~Plugin() { shutdown(); }

void Plugin::shutdown() {
  if (!server_) return;
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server_->Wait();
  server_.reset();
  // Only our own socket: during a rolling restart the new instance has already bound a new
  // socket at this path, and removing it would cut kubelet off from the new plugin.
  if (struct stat st {}; ::lstat(socket_path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
                         st.st_dev == socket_dev_ && st.st_ino == socket_ino_) {
    ::unlink(socket_path_.c_str());
  }
}

void Plugin::wait() {
  if (server_) server_->Wait();
}

int run_plugin(const PluginOptions& options) {
  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  auto plugin = Plugin::start(options);
  if (!plugin) {
    spdlog::error("csi: {}", plugin.status().to_string());
    return 2;
  }
  spdlog::info("csi: {} {} serving {} for node {}, volguard node {} (server {})", kPluginName,
               kVendorVersion, options.endpoint, options.node_id,
               options.volguard_node.empty() ? options.node_id : options.volguard_node,
               options.server);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("csi: signal {}: stopping", sig);
  (*plugin)->shutdown();
  return 0;
}

}  // namespace volguard::csi
