// The volguard CSI v1 plugin: Identity, Controller and Node services on one unix socket, served
// to the Kubernetes sidecars and the kubelet. It is only a client of the volguard server: every
// request is forwarded with the caller's token (secrets["auth-token"]), so the server's
// authentication, roles, ownership and audit decide; the plugin never touches the store.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "common/status.h"
#include "common/version.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace volguard::csi {

inline constexpr const char* kPluginName = "csi.volguard.io";
inline constexpr const char* kVendorVersion = kVersion;
// The key of a request's `secrets` map that carries the caller's bearer token.
inline constexpr const char* kTokenSecret = "auth-token";

struct PluginOptions {
  std::string endpoint;  // "unix:///csi/csi.sock"
  std::string node_id;
  // The volguard node this node plugin is on (the node whose server holds the volumes it
  // mounts), reported by NodeGetInfo as its topology {volguard.io/node: name}; "" = node_id.
  std::string volguard_node;
  std::string server;  // volguard gRPC address, "127.0.0.1:9020"
  std::string tls_ca;  // empty = plaintext to the server
  // The plugin's client certificate and key, for a server that requires one (api.tls.client_ca).
  std::string tls_cert, tls_key;
  // This node's own credential (a token with role system.node whose username is node_id),
  // mounted from a Secret: the node calls kubelet makes without secrets (unstage, unpublish,
  // stats) and stage/publish when the StorageClass names no node secrets. Read at each call,
  // so a rotated Secret takes effect without a restart.
  std::string node_token_file;
  // The controller's read-only credential (role system.csi-controller) for ListVolumes and
  // ControllerGetVolume, which CSI sends without secrets. Read at each call.
  std::string controller_token_file;
};

class Plugin {
 public:
  // Binds the unix socket (a stale socket file is replaced) and starts serving. Refuses an
  // endpoint that is not unix://, an empty node id, and a volguard node name (volguard_node,
  // else node_id) that is not a valid topology value.
  static Result<std::unique_ptr<Plugin>> start(const PluginOptions& options);
  ~Plugin();
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  void shutdown();
  void wait();

 private:
  Plugin() = default;
  std::string socket_path_;
  // The socket this instance bound: shutdown removes the path only while it is still this
  // socket (a new instance may have replaced it meanwhile).
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;
  std::unique_ptr<grpc::Service> identity_, controller_, node_;
  std::unique_ptr<grpc::Server> server_;
};

// `volguard csi`: serves until SIGINT/SIGTERM. Returns the process exit code.
int run_plugin(const PluginOptions& options);

}  // namespace volguard::csi
