// CSI Node: stage = the server mounts the volume at the staging path; publish = the server
// binds the staging path at the pod's target path. Calls that carry a tenant token (the
// StorageClass names node-stage / node-publish secrets) act as that tenant; the others act
// with this node's own credential (role system.node), which the server lets act only on
// volumes attached to this node (ControllerPublishVolume) — so nothing depends on what the
// plugin remembers, and a restarted plugin can tear down what its predecessor set up.
#include <errno.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "common/mountinfo.h"
#include "csi/internal.h"
#include "csi/topology.h"
#include "volguard.pb.h"

namespace volguard::csi {
namespace {

namespace vg = volguard::v1;
namespace stdfs = std::filesystem;
using grpc::ServerContext;
using grpc::StatusCode;

const std::string kVol = "/volguard.v1.VolguardVolume/";
const std::string kMount = "/volguard.v1.VolguardMountAttach/";

std::string canonical(const std::string& path) {
  std::error_code ec;
  auto c = stdfs::weakly_canonical(path, ec);
  return ec ? path : c.string();
}

bool is_mount_point(const std::string& path) {
  const std::string canon = canonical(path);
  for (const auto& m : read_mountinfo()) {
    if (m.mount_point == canon) return true;
  }
  return false;
}

class NodeService final : public v1::Node::Service {
 public:
  explicit NodeService(std::shared_ptr<Backend> backend) : backend_(std::move(backend)) {}

  grpc::Status NodeStageVolume(ServerContext*, const v1::NodeStageVolumeRequest* req,
                               v1::NodeStageVolumeResponse*) override {
    if (req->volume_id().empty()) return invalid_argument("volume_id is required");
    if (req->staging_target_path().empty()) return invalid_argument("staging_target_path is required");
    if (!req->has_volume_capability()) return invalid_argument("volume_capability is required");
    if (auto why = unsupported_capability(req->volume_capability()); !why.empty()) {
      return invalid_argument(why);
    }
    const std::string token = caller(req->secrets());
    // A volume's data is on its home node only. The server would forward a mount for a volume
    // homed elsewhere to that node — a mount on another machine, useless to this node's pod — so
    // a pod scheduled here against the topology is refused here (an old record without a home is
    // taken to be here).
    {
      vg::VolumeRef ref;
      ref.set_volume(req->volume_id());
      vg::VolumeResponse seen;
      if (Status s = backend_->call(token, kVol + "Inspect", ref, &seen); !s.is_ok()) return to_grpc(s, token);
      const std::string& home = seen.volume().home_node();
      if (!home.empty() && home != backend_->options().volguard_node) {
        return grpc::Status(StatusCode::FAILED_PRECONDITION,
                            "volume " + req->volume_id() + " lives on volguard node " + home + ", not on this node (" +
                                backend_->options().volguard_node +
                                "): its pods must run there (topology volguard.io/node=" + home + ")");
      }
    }
    // The server checks write access, the mount roots, and that the path is free; mounting
    // again at the same path is its idempotent no-op.
    if (Status st = mount_at(token, req->volume_id(), req->staging_target_path()); !st.is_ok()) {
      return to_grpc(st, token);
    }
    return grpc::Status::OK;
  }

  grpc::Status NodeUnstageVolume(ServerContext*, const v1::NodeUnstageVolumeRequest* req,
                                 v1::NodeUnstageVolumeResponse*) override {
    if (req->volume_id().empty()) return invalid_argument("volume_id is required");
    if (req->staging_target_path().empty()) return invalid_argument("staging_target_path is required");
    const std::string path = canonical(req->staging_target_path());
    // Already unstaged (a retry after success): nothing to undo, so nothing to authorize.
    if (!is_mount_point(path)) return grpc::Status::OK;
    // The node's own credential: CSI gives unstage no secrets. The device stays attached
    // (ControllerUnpublishVolume detaches it, as the tenant).
    const std::string token = backend_->node_token();
    vg::VolumeRef ref;
    ref.set_volume(req->volume_id());
    vg::Empty e;
    if (Status s = backend_->call(token, kMount + "Unmount", ref, &e); !s.is_ok()) return to_grpc(s, token);
    return grpc::Status::OK;
  }

  grpc::Status NodePublishVolume(ServerContext*, const v1::NodePublishVolumeRequest* req,
                                 v1::NodePublishVolumeResponse*) override {
    if (req->volume_id().empty()) return invalid_argument("volume_id is required");
    if (req->target_path().empty()) return invalid_argument("target_path is required");
    if (!req->has_volume_capability()) return invalid_argument("volume_capability is required");
    if (auto why = unsupported_capability(req->volume_capability()); !why.empty()) {
      return invalid_argument(why);
    }
    if (req->staging_target_path().empty()) {
      return grpc::Status(StatusCode::FAILED_PRECONDITION, "staging_target_path is required");
    }
    const std::string token = caller(req->secrets());
    // The server does the bind: it resolves both paths once beneath its mount roots, checks
    // that the staging path is this volume's own mount, needs read access for a read-only view
    // and write access for a writable one, and records it in the audit trail.
    vg::PublishRequest publish;
    publish.set_volume(req->volume_id());
    publish.set_path(req->target_path());
    publish.set_staging_path(req->staging_target_path());
    publish.set_read_only(req->readonly());
    vg::Empty e;
    if (Status s = backend_->call(token, kMount + "Publish", publish, &e); !s.is_ok()) {
      return to_grpc(s, token);
    }
    return grpc::Status::OK;
  }

  grpc::Status NodeUnpublishVolume(ServerContext*, const v1::NodeUnpublishVolumeRequest* req,
                                   v1::NodeUnpublishVolumeResponse*) override {
    if (req->volume_id().empty()) return invalid_argument("volume_id is required");
    if (req->target_path().empty()) return invalid_argument("target_path is required");
    const std::string target = canonical(req->target_path());
    // Only an unmount needs the server's word; a retry after success has nothing to undo.
    if (is_mount_point(target)) {
      const std::string token = backend_->node_token();  // CSI gives unpublish no secrets
      vg::MountRequest m;
      m.set_volume(req->volume_id());
      m.set_path(req->target_path());
      vg::Empty e;
      if (Status s = backend_->call(token, kMount + "Unpublish", m, &e); !s.is_ok()) {
        return to_grpc(s, token);
      }
    }
    // The target directory was made for the publish; CSI asks for it to be removed. rmdir only:
    // never a recursive delete, so nothing but an empty directory can go.
    ::rmdir(target.c_str());
    return grpc::Status::OK;
  }

  grpc::Status NodeGetVolumeStats(ServerContext*, const v1::NodeGetVolumeStatsRequest* req,
                                  v1::NodeGetVolumeStatsResponse* resp) override {
    if (req->volume_id().empty()) return invalid_argument("volume_id is required");
    if (req->volume_path().empty()) return invalid_argument("volume_path is required");
    const std::string path = canonical(req->volume_path());
    std::error_code ec;
    if (!stdfs::exists(path, ec)) {
      return grpc::Status(StatusCode::NOT_FOUND, "volume_path " + path + " does not exist");
    }
    const std::string token = backend_->node_token();  // CSI gives stats no secrets
    vg::VolumeRef ref;
    ref.set_volume(req->volume_id());
    // The path must be on this volume: its staging mount, or a publish of it (same device).
    vg::VolumeResponse seen;
    if (Status s = backend_->call(token, kVol + "Inspect", ref, &seen); !s.is_ok()) return to_grpc(s, token);
    struct stat on_path {}, on_volume {};
    if (seen.volume().mount_path().empty() || ::stat(path.c_str(), &on_path) != 0 ||
        ::stat(seen.volume().mount_path().c_str(), &on_volume) != 0 || on_path.st_dev != on_volume.st_dev) {
      return grpc::Status(StatusCode::NOT_FOUND,
                          "volume_path " + path + " is not on volume " + req->volume_id());
    }
    vg::StatsResponse stats;
    if (Status s = backend_->call(token, kVol + "Stats", ref, &stats); !s.is_ok()) {
      return to_grpc(s, token);
    }
    auto* usage = resp->add_usage();
    usage->set_unit(v1::VolumeUsage::BYTES);
    const auto total = static_cast<int64_t>(stats.fs_total_bytes());
    const auto used = static_cast<int64_t>(stats.fs_used_bytes());
    usage->set_total(total);
    usage->set_used(used);
    usage->set_available(total > used ? total - used : 0);
    return grpc::Status::OK;
  }

  // The node's side of an expansion (ControllerExpandVolume asked for it: xfs, or mounted).
  grpc::Status NodeExpandVolume(ServerContext*, const v1::NodeExpandVolumeRequest* req,
                                v1::NodeExpandVolumeResponse* resp) override {
    if (req->volume_id().empty()) return invalid_argument("volume_id is required");
    if (req->volume_path().empty()) return invalid_argument("volume_path is required");
    if (req->has_volume_capability()) {
      if (auto why = unsupported_capability(req->volume_capability()); !why.empty()) {
        return invalid_argument(why);
      }
    }
    const std::string token = caller(req->secrets());
    // The server grows the volume to the requested size and its filesystem to fill it, online
    // where it is mounted; asked again, it finishes a grow that stopped half way.
    vg::ExpandRequest expand;
    expand.set_volume(req->volume_id());
    if (req->has_capacity_range() && req->capacity_range().required_bytes() > 0) {
      expand.set_size(std::to_string(req->capacity_range().required_bytes()));
    }
    vg::VolumeResponse grown;
    if (Status s = backend_->call(token, kMount + "Expand", expand, &grown); !s.is_ok()) {
      return to_grpc(s, token);
    }
    resp->set_capacity_bytes(static_cast<int64_t>(grown.volume().size_bytes()));
    return grpc::Status::OK;
  }

  grpc::Status NodeGetCapabilities(ServerContext*, const v1::NodeGetCapabilitiesRequest*,
                                   v1::NodeGetCapabilitiesResponse* resp) override {
    using T = v1::NodeServiceCapability::RPC;
    for (auto t : {T::STAGE_UNSTAGE_VOLUME, T::GET_VOLUME_STATS, T::EXPAND_VOLUME}) {
      resp->add_capabilities()->mutable_rpc()->set_type(t);
    }
    return grpc::Status::OK;
  }

  grpc::Status NodeGetInfo(ServerContext*, const v1::NodeGetInfoRequest*,
                           v1::NodeGetInfoResponse* resp) override {
    resp->set_node_id(backend_->options().node_id);
    // Where this node is: the volguard node whose server holds the volumes it mounts
    // (Plugin::start filled it in from node_id when not given).
    (*resp->mutable_accessible_topology()->mutable_segments())[kTopologyKey] =
        backend_->options().volguard_node;
    return grpc::Status::OK;
  }

 private:
  // Who a node call acts as: the tenant when the StorageClass passed its token in the call's
  // secrets, else this node.
  std::string caller(const SecretMap& secrets) const {
    std::string token = token_of(secrets);
    return token.empty() ? backend_->node_token() : token;
  }

  // The server's mountattach.mount at `path`, as the caller (token).
  Status mount_at(const std::string& token, const std::string& volume, const std::string& path) {
    vg::MountRequest m;
    m.set_volume(volume);
    m.set_path(path);
    vg::Empty e;
    return backend_->call(token, kMount + "Mount", m, &e);
  }

  std::shared_ptr<Backend> backend_;
};

}  // namespace

std::unique_ptr<v1::Node::Service> make_node(std::shared_ptr<Backend> backend) {
  return std::make_unique<NodeService>(std::move(backend));
}

}  // namespace volguard::csi
