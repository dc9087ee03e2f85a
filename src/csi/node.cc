// CSI Node: stage = the server mounts the volume at the staging path; publish = the plugin
// bind-mounts the staging path at the pod's target path once the server has said the caller
// may use the volume.
#include <errno.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "csi/internal.h"
#include "volguard.pb.h"

namespace volguard::csi {
namespace {

namespace vg = volguard::v1;
namespace stdfs = std::filesystem;
using grpc::ServerContext;
using grpc::StatusCode;

const std::string kVol = "/volguard.v1.VolguardVolume/";
const std::string kMount = "/volguard.v1.VolguardMountAttach/";

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

bool is_mount_point(const std::string& path) {
  std::error_code ec;
  const std::string canon = stdfs::weakly_canonical(path, ec).string();
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, point;
    fields >> id >> parent >> devno >> root >> point;
    if (unescape(point) == canon) return true;
  }
  return false;
}

std::string canonical(const std::string& path) {
  std::error_code ec;
  auto c = stdfs::weakly_canonical(path, ec);
  return ec ? path : c.string();
}

grpc::Status errno_status(const std::string& what, int err) {
  return grpc::Status(StatusCode::INTERNAL, what + ": " + std::strerror(err));
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
    const std::string token = token_of(req->secrets());
    // The server checks write access, the mount roots, and that the path is free; mounting
    // again at the same path is its idempotent no-op.
    if (Status st = mount_at(token, req->volume_id(), req->staging_target_path()); !st.is_ok()) {
      return to_grpc(st, token);
    }
    tokens_.remember(req->volume_id(), canonical(req->staging_target_path()), token);
    return grpc::Status::OK;
  }

  grpc::Status NodeUnstageVolume(ServerContext*, const v1::NodeUnstageVolumeRequest* req,
                                 v1::NodeUnstageVolumeResponse*) override {
    if (req->volume_id().empty()) return invalid_argument("volume_id is required");
    if (req->staging_target_path().empty()) return invalid_argument("staging_target_path is required");
    const std::string path = canonical(req->staging_target_path());
    // Already unstaged (a retry after success): nothing to undo, so nothing to authorize.
    if (!is_mount_point(path) && !tokens_.known(req->volume_id(), path)) return grpc::Status::OK;
    const std::string token = tokens_.recall(req->volume_id(), path);
    vg::VolumeRef ref;
    ref.set_volume(req->volume_id());
    vg::Empty e;
    Status s = backend_->call(token, kMount + "Unmount", ref, &e);
    if (s.is_ok()) s = backend_->call(token, kMount + "Detach", ref, &e);
    if (!s.is_ok()) return to_grpc(s, token);
    tokens_.forget(req->volume_id(), path);
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
    const std::string token = token_of(req->secrets());
    const std::string staging = canonical(req->staging_target_path());
    const std::string target = canonical(req->target_path());
    // Authorize with the server before touching the host: read access for the volume, and it
    // must be the volume staged at staging_target_path — else a caller could bind another
    // tenant's staging directory while presenting its own volume.
    vg::VolumeRef ref;
    ref.set_volume(req->volume_id());
    vg::VolumeResponse seen;
    if (Status s = backend_->call(token, kVol + "Inspect", ref, &seen); !s.is_ok()) {
      return to_grpc(s, token);
    }
    if (seen.volume().mount_path().empty() || canonical(seen.volume().mount_path()) != staging) {
      return grpc::Status(StatusCode::FAILED_PRECONDITION,
                          "volume " + req->volume_id() + " is not staged at " + staging);
    }
    if (!req->readonly()) {
      // A writable bind needs write access: the server's Mount at the same path asks for it and
      // is a no-op otherwise.
      if (Status st = mount_at(token, req->volume_id(), req->staging_target_path()); !st.is_ok()) {
        return to_grpc(st, token);
      }
    }
    std::error_code ec;
    stdfs::create_directories(target, ec);
    if (ec) return grpc::Status(StatusCode::INTERNAL, "create " + target + ": " + ec.message());
    if (!is_mount_point(target)) {
      if (::mount(staging.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
        return errno_status("bind mount at " + target, errno);
      }
      if (req->readonly() &&
          ::mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) {
        const int err = errno;
        ::umount2(target.c_str(), 0);
        return errno_status("remount read-only at " + target, err);
      }
    }
    tokens_.remember(req->volume_id(), target, token);
    return grpc::Status::OK;
  }

  grpc::Status NodeUnpublishVolume(ServerContext*, const v1::NodeUnpublishVolumeRequest* req,
                                   v1::NodeUnpublishVolumeResponse*) override {
    if (req->volume_id().empty()) return invalid_argument("volume_id is required");
    if (req->target_path().empty()) return invalid_argument("target_path is required");
    const std::string target = canonical(req->target_path());
    // Only an unmount needs the server's word; a retry after success has nothing to undo.
    if (is_mount_point(target)) {
      const std::string token = tokens_.recall(req->volume_id(), target);
      vg::VolumeRef ref;
      ref.set_volume(req->volume_id());
      vg::VolumeResponse seen;
      if (Status s = backend_->call(token, kVol + "Inspect", ref, &seen); !s.is_ok()) {
        return to_grpc(s, token);
      }
      if (::umount2(target.c_str(), 0) != 0) return errno_status("unmount " + target, errno);
    }
    // The plugin created the target directory; CSI asks it to remove it.
    std::error_code ec;
    stdfs::remove(target, ec);
    tokens_.forget(req->volume_id(), target);
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
    std::string token = tokens_.recall(req->volume_id(), path);
    if (token.empty() && !req->staging_target_path().empty()) {
      token = tokens_.recall(req->volume_id(), canonical(req->staging_target_path()));
    }
    vg::VolumeRef ref;
    ref.set_volume(req->volume_id());
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

  // The server grew the filesystem in ControllerExpandVolume; report the size it has now.
  grpc::Status NodeExpandVolume(ServerContext*, const v1::NodeExpandVolumeRequest* req,
                                v1::NodeExpandVolumeResponse* resp) override {
    if (req->volume_id().empty()) return invalid_argument("volume_id is required");
    if (req->volume_path().empty()) return invalid_argument("volume_path is required");
    if (req->has_volume_capability()) {
      if (auto why = unsupported_capability(req->volume_capability()); !why.empty()) {
        return invalid_argument(why);
      }
    }
    std::string token = token_of(req->secrets());
    if (token.empty()) token = tokens_.recall(req->volume_id(), canonical(req->volume_path()));
    vg::VolumeRef ref;
    ref.set_volume(req->volume_id());
    vg::VolumeResponse seen;
    if (Status s = backend_->call(token, kVol + "Inspect", ref, &seen); !s.is_ok()) {
      return to_grpc(s, token);
    }
    resp->set_capacity_bytes(static_cast<int64_t>(seen.volume().size_bytes()));
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
    return grpc::Status::OK;
  }

 private:
  // The server's mountattach.mount at `path`, as the caller (token).
  Status mount_at(const std::string& token, const std::string& volume, const std::string& path) {
    vg::MountRequest m;
    m.set_volume(volume);
    m.set_path(path);
    vg::Empty e;
    return backend_->call(token, kMount + "Mount", m, &e);
  }

  std::shared_ptr<Backend> backend_;
  TokenMemory tokens_;
};

}  // namespace

std::unique_ptr<v1::Node::Service> make_node(std::shared_ptr<Backend> backend) {
  return std::make_unique<NodeService>(std::move(backend));
}

}  // namespace volguard::csi
