// CSI Controller: provisioning, attach/detach, snapshots and expansion, each forwarded to the
// volguard server with the caller's token.
#include <google/protobuf/util/time_util.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/text.h"
#include "csi/internal.h"
#include "csi/topology.h"
#include "driver/driver.h"
#include "volguard.pb.h"

namespace volguard::csi {
namespace {

namespace vg = volguard::v1;
using grpc::ServerContext;
using grpc::StatusCode;

const std::string kVol = "/volguard.v1.VolguardVolume/";
const std::string kMount = "/volguard.v1.VolguardMountAttach/";

constexpr int64_t kDefaultSize = int64_t{1} << 30;  // 1Gi when the CO gives no range
constexpr int64_t kBlock = 4096;                    // the server rounds sizes up to this

int64_t min_size(const std::string& fs) {
  return static_cast<int64_t>(
      driver::min_volume_size(fs == "xfs" ? driver::FsType::kXfs : driver::FsType::kExt4));
}

// Validated parameters of CreateVolume.
struct Params {
  std::string fs;  // "" = not given
  std::map<std::string, std::string> labels;
  std::string public_access;
  std::map<std::string, std::string> groups;
  std::optional<bool> secure;  // StorageClass `secure: "true"` (Portworx's parameter)
  std::string secret_key;      // the KEK name (config encryption.keys); implies secure
};

grpc::Status parse_params(const SecretMap& params, Params* out) {
  for (const auto& [key, value] : params) {
    if (key == "fs") {
      if (value != "ext4" && value != "xfs") {
        return invalid_argument("parameter fs: \"" + value + "\" is not ext4 or xfs");
      }
      out->fs = value;
    } else if (key == "labels") {
      size_t start = 0;
      while (start <= value.size()) {
        size_t comma = value.find(',', start);
        if (comma == std::string::npos) comma = value.size();
        const std::string item = value.substr(start, comma - start);
        const size_t eq = item.find('=');
        if (eq == std::string::npos || eq == 0) {
          return invalid_argument("parameter labels: \"" + item + "\" is not key=value");
        }
        out->labels[item.substr(0, eq)] = item.substr(eq + 1);
        start = comma + 1;
      }
    } else if (key == "public") {
      if (value != "r" && value != "w" && value != "a") {
        return invalid_argument("parameter public: \"" + value + "\" is not r, w or a");
      }
      out->public_access = value;
    } else if (key == "group") {
      size_t start = 0;
      while (start <= value.size()) {
        size_t comma = value.find(',', start);
        if (comma == std::string::npos) comma = value.size();
        const std::string item = value.substr(start, comma - start);
        const size_t colon = item.rfind(':');
        const std::string access = colon == std::string::npos ? "" : item.substr(colon + 1);
        if (colon == 0 || (access != "r" && access != "w" && access != "a")) {
          return invalid_argument("parameter group: \"" + item + "\" is not group:r|w|a");
        }
        out->groups[item.substr(0, colon)] = access;
        start = comma + 1;
      }
    } else if (key == "secure") {
      if (value != "true" && value != "false") {
        return invalid_argument("parameter secure: \"" + value + "\" is not \"true\" or \"false\"");
      }
      out->secure = value == "true";
    } else if (key == "secret_key") {
      if (value.empty()) return invalid_argument("parameter secret_key is empty");
      out->secret_key = value;
    } else if (key == "csi.storage.k8s.io/pvc/name") {
      out->labels["pvc"] = value;
    } else if (key == "csi.storage.k8s.io/pvc/namespace") {
      out->labels["namespace"] = value;
    } else if (key == "csi.storage.k8s.io/pv/name") {
      out->labels["pv"] = value;
    } else {
      // Refused rather than ignored: a misspelt "fs" must not silently give ext4.
      return invalid_argument("unknown parameter \"" + key + "\"");
    }
  }
  if (!out->secret_key.empty() && out->secure == false) {
    return invalid_argument("parameter secret_key names a key for encryption, but secure is \"false\"");
  }
  return grpc::Status::OK;
}

grpc::Status check_capabilities(
    const google::protobuf::RepeatedPtrField<v1::VolumeCapability>& caps) {
  if (caps.empty()) return invalid_argument("volume_capabilities is required");
  for (const auto& cap : caps) {
    if (auto why = unsupported_capability(cap); !why.empty()) return invalid_argument(why);
  }
  return grpc::Status::OK;
}

grpc::Status check_range(const v1::CapacityRange& r) {
  if (r.required_bytes() < 0 || r.limit_bytes() < 0) {
    return grpc::Status(StatusCode::OUT_OF_RANGE, "capacity_range must not be negative");
  }
  if (r.limit_bytes() > 0 && r.required_bytes() > r.limit_bytes()) {
    return grpc::Status(StatusCode::OUT_OF_RANGE, "capacity_range: required_bytes " +
                                                      std::to_string(r.required_bytes()) +
                                                      " exceeds limit_bytes " +
                                                      std::to_string(r.limit_bytes()));
  }
  return grpc::Status::OK;
}

bool fits(int64_t size, const v1::CapacityRange& r) {
  return size >= r.required_bytes() && (r.limit_bytes() == 0 || size <= r.limit_bytes());
}

// The size to provision for a range: at least required (default 1Gi), block-rounded, raised to
// the filesystem's minimum, never above the limit.
Result<int64_t> size_for(const v1::CapacityRange& r, const std::string& fs) {
  int64_t size = r.required_bytes() > 0 ? r.required_bytes() : kDefaultSize;
  if (r.required_bytes() == 0 && r.limit_bytes() > 0) size = std::min(size, r.limit_bytes());
  if (size > INT64_MAX - kBlock) {
    return Status(Code::kOutOfRange, "size_too_large", "capacity is too large");
  }
  size = (size + kBlock - 1) / kBlock * kBlock;
  size = std::max(size, min_size(fs));
  if (r.limit_bytes() > 0 && size > r.limit_bytes()) {
    return Status(Code::kOutOfRange, "capacity_out_of_range",
                  "no " + fs + " volume fits limit_bytes " + std::to_string(r.limit_bytes()) +
                      " (minimum " + std::to_string(min_size(fs)) + ", 4096-byte blocks)");
  }
  return size;
}

// Where the volume is accessible from: its home node; none when unknown (then the CO may use
// it from any node).
void set_home(const std::string& home, v1::Volume* to) {
  to->clear_accessible_topology();
  if (!home.empty()) (*to->add_accessible_topology()->mutable_segments())[kTopologyKey] = home;
}

void fill_volume(const vg::Volume& from, v1::Volume* to) {
  to->set_volume_id(from.id());
  to->set_capacity_bytes(static_cast<int64_t>(from.size_bytes()));
  (*to->mutable_volume_context())["name"] = from.name();
  (*to->mutable_volume_context())["fs"] = from.fs();
  if (from.encrypted()) (*to->mutable_volume_context())["encrypted"] = "true";
  if (!from.source_snapshot().empty()) {
    to->mutable_content_source()->mutable_snapshot()->set_snapshot_id(from.source_snapshot());
  } else if (!from.source_volume().empty()) {
    to->mutable_content_source()->mutable_volume()->set_volume_id(from.source_volume());
  }
  set_home(from.home_node(), to);
}

// The volume CreateVolume answers with, placed where the server says its data is: the server
// fills home_node on every volume it makes (its own node name, or in a cluster the node it
// forwarded the create to), whatever the plugin asked for.
//
// The fallback below is only for volumes made before volumes had homes (records from before
// SQLite schema 4 keep home_node ""), met again by an idempotent retry: such a volume is on the
// one server asked, and `asked` is reported only when that server accepted the ask — a single
// server refuses any home_node but its own name, so an accepted `asked` is that name. `asked`
// is "" when the plugin asked for no node (a clone or restore lives with its source) or the
// server refused the node asked: then no topology is claimed. Never for a new volume.
void fill_created(const vg::Volume& from, const std::string& asked, v1::Volume* to) {
  fill_volume(from, to);
  if (from.home_node().empty()) set_home(asked, to);
}

// The server's refusals of a home_node: not a node it knows (a single server knows only itself),
// or a node that is down. CreateVolume answers them as CSI's "unable to provision in
// accessible_topology".
bool is_placement_refusal(const Status& s) {
  return s.reason() == "node_unknown" || s.reason() == "node_unavailable";
}

void fill_snapshot(const vg::Snapshot& from, v1::Snapshot* to) {
  to->set_snapshot_id(from.id());
  to->set_source_volume_id(from.volume_id());
  to->set_size_bytes(static_cast<int64_t>(from.size_bytes()));
  to->set_ready_to_use(true);  // snapshots are cut synchronously
  google::protobuf::util::TimeUtil::FromString(from.created_at(), to->mutable_creation_time());
}

// Pages through a list for List* calls: starting_token is the index of the first entry.
template <typename T>
grpc::Status page(const std::vector<T>& all, int32_t max_entries, const std::string& start,
                  std::vector<T>* out, std::string* next) {
  size_t from = 0;
  if (!start.empty()) {
    char* end = nullptr;
    const unsigned long long n = std::strtoull(start.c_str(), &end, 10);
    if (*end != '\0' || n > all.size()) {
      return grpc::Status(StatusCode::ABORTED, "starting_token is not valid");
    }
    from = static_cast<size_t>(n);
  }
  if (max_entries < 0) return invalid_argument("max_entries must not be negative");
  size_t to = all.size();
  if (max_entries > 0) to = std::min(to, from + static_cast<size_t>(max_entries));
  out->assign(all.begin() + static_cast<std::ptrdiff_t>(from),
              all.begin() + static_cast<std::ptrdiff_t>(to));
  if (to < all.size()) *next = std::to_string(to);
  return grpc::Status::OK;
}

class ControllerService final : public v1::Controller::Service {
 public:
  explicit ControllerService(std::shared_ptr<Backend> backend) : backend_(std::move(backend)) {}

  grpc::Status CreateVolume(ServerContext*, const v1::CreateVolumeRequest* req,
                            v1::CreateVolumeResponse* resp) override {
    if (req->name().empty()) return invalid_argument("name is required");
    if (auto s = check_capabilities(req->volume_capabilities()); !s.ok()) return s;
    Params params;
    if (auto s = parse_params(req->parameters(), &params); !s.ok()) return s;
    // The fs comes from the parameters, else from the capabilities, else ext4.
    std::string fs = params.fs;
    for (const auto& cap : req->volume_capabilities()) {
      const std::string& want = cap.mount().fs_type();
      if (want.empty()) continue;
      if (!fs.empty() && fs != want) {
        return invalid_argument("fs_type " + want + " conflicts with fs " + fs);
      }
      fs = want;
    }
    if (fs.empty()) fs = "ext4";
    if (auto s = check_range(req->capacity_range()); !s.ok()) return s;
    const std::string token = token_of(req->secrets());
    const std::string name = volguard_name(req->name());
    // The home nodes to ask for: where the CO wants the volume (with WaitForFirstConsumer, the
    // node its pod was scheduled to comes first). A requirement naming no volguard node is
    // refused before the server.
    auto homes = home_candidates(req->accessibility_requirements());
    if (!homes) return to_grpc(homes.status(), token);

    vg::VolumeResponse made;
    Status s;
    // The node the server took the create for ("": none asked; a clone's home is its source's)
    // and the nodes it would not put the volume on.
    std::string asked;
    std::vector<std::pair<std::string, Status>> refused;
    const bool from_source = req->has_volume_content_source();
    if (from_source) {
      const auto& src = req->volume_content_source();
      vg::CloneVolumeRequest clone;
      if (src.has_snapshot()) {
        if (src.snapshot().snapshot_id().empty()) return invalid_argument("snapshot_id is empty");
        clone.set_source_snapshot(src.snapshot().snapshot_id());
      } else if (src.has_volume()) {
        if (src.volume().volume_id().empty()) return invalid_argument("volume_id is empty");
        clone.set_source(src.volume().volume_id());
      } else {
        return invalid_argument("volume_content_source names no snapshot or volume");
      }
      clone.set_name(name);
      for (const auto& [k, v] : params.labels) (*clone.mutable_labels())[k] = v;
      // A clone keeps its source's encryption; a StorageClass that says otherwise is refused.
      if (params.secure || !params.secret_key.empty()) {
        clone.set_secure(params.secure.value_or(true));
      }
      s = backend_->call(token, kVol + "Clone", clone, &made);
      if (s.is_ok()) {
        if (auto done = finish_clone(token, req, params, fs, &made); !done.ok()) return done;
      }
    } else {
      auto size = size_for(req->capacity_range(), fs);
      if (!size) return to_grpc(size.status(), token);
      vg::CreateVolumeRequest create;
      create.set_name(name);
      create.set_size(std::to_string(*size));
      create.set_fs(fs);
      for (const auto& [k, v] : params.labels) (*create.mutable_labels())[k] = v;
      for (const auto& [g, a] : params.groups) (*create.mutable_groups())[g] = a;
      create.set_public_(params.public_access);
      create.set_secure(params.secure.value_or(false) || !params.secret_key.empty());
      create.set_secret_key(params.secret_key);
      // CSI: the preferred nodes are tried first to last, and CreateVolume fails only when no
      // requisite one will do. The server refuses a node it cannot put the volume on
      // (node_unknown: a single server takes only its own name; node_unavailable: a cluster
      // node that is down): the next one is asked. No requirement: one create, the server picks.
      const std::vector<std::string> tries = homes->empty() ? std::vector<std::string>{""} : *homes;
      for (const auto& node : tries) {
        create.set_home_node(node);
        made.Clear();
        s = backend_->call(token, kVol + "Create", create, &made);
        if (node.empty() || !is_placement_refusal(s)) {
          asked = node;
          refused.clear();
          break;
        }
        refused.emplace_back(node, s);
      }
    }
    // (A clone refused because its source's node is down stays UNAVAILABLE: it can be made
    // only there, later.)
    if (s.code() == Code::kAlreadyExists) return existing(token, name, *req, params, fs, asked, resp);
    if (!refused.empty()) return not_placed(token, name, *req, params, fs, refused, resp);
    if (!s.is_ok()) return to_grpc(s, token);
    fill_created(made.volume(), asked, resp->mutable_volume());
    return grpc::Status::OK;
  }

  grpc::Status DeleteVolume(ServerContext*, const v1::DeleteVolumeRequest* req,
                            v1::DeleteVolumeResponse*) override {
    if (req->volume_id().empty()) return invalid_argument("volume_id is required");
    const std::string token = token_of(req->secrets());
    vg::VolumeRef ref;
    ref.set_volume(req->volume_id());
    vg::Empty e;
    Status s = backend_->call(token, kVol + "Delete", ref, &e);
    // Gone already is success: DeleteVolume must be idempotent.
    if (s.code() == Code::kNotFound) return grpc::Status::OK;
    return to_grpc(s, token);
  }

  grpc::Status ControllerPublishVolume(ServerContext*, const v1::ControllerPublishVolumeRequest* req,
                                       v1::ControllerPublishVolumeResponse* resp) override {
    if (req->volume_id().empty()) return invalid_argument("volume_id is required");
    if (req->node_id().empty()) return invalid_argument("node_id is required");
    if (!req->has_volume_capability()) return invalid_argument("volume_capability is required");
    if (auto why = unsupported_capability(req->volume_capability()); !why.empty()) {
      return invalid_argument(why);
    }
    const std::string token = token_of(req->secrets());
    // Attached *for* the node: the server refuses a node it does not know (NOT_FOUND) and
    // records the node, whose own credential may then stage and publish the volume.
    vg::AttachRequest attach;
    attach.set_volume(req->volume_id());
    attach.set_node(req->node_id());
    vg::AttachResponse attached;
    Status s = backend_->call(token, kMount + "Attach", attach, &attached);
    if (!s.is_ok()) return to_grpc(s, token);
    (*resp->mutable_publish_context())["device"] = attached.device();
    (*resp->mutable_publish_context())["read_only"] = req->readonly() ? "true" : "false";
    return grpc::Status::OK;
  }

  grpc::Status ControllerUnpublishVolume(ServerContext*,
                                         const v1::ControllerUnpublishVolumeRequest* req,
                                         v1::ControllerUnpublishVolumeResponse*) override {
    if (req->volume_id().empty()) return invalid_argument("volume_id is required");
    const std::string token = token_of(req->secrets());
    vg::AttachRequest detach;
    detach.set_volume(req->volume_id());
    detach.set_node(req->node_id());
    vg::Empty e;
    Status s = backend_->call(token, kMount + "Detach", detach, &e);
    if (s.code() == Code::kNotFound) {
      // Gone: nothing left to detach. But a volume that exists and that this tenant may no
      // longer see (its grant was revoked, it was transferred) is not detached: answering OK
      // would make the attacher forget an attachment the node still has.
      vg::VolumeResponse seen;
      if (inspect(backend_->controller_token(), req->volume_id(), &seen).is_ok()) return to_grpc(s, token);
      return grpc::Status::OK;
    }
    return to_grpc(s, token);
  }

  grpc::Status ValidateVolumeCapabilities(ServerContext*,
                                          const v1::ValidateVolumeCapabilitiesRequest* req,
                                          v1::ValidateVolumeCapabilitiesResponse* resp) override {
    if (req->volume_id().empty()) return invalid_argument("volume_id is required");
    if (req->volume_capabilities().empty()) {
      return invalid_argument("volume_capabilities is required");
    }
    const std::string token = token_of(req->secrets());
    vg::VolumeResponse seen;
    if (Status s = inspect(token, req->volume_id(), &seen); !s.is_ok()) return to_grpc(s, token);
    for (const auto& cap : req->volume_capabilities()) {
      if (auto why = unsupported_capability(cap); !why.empty()) {
        resp->set_message(why);
        return grpc::Status::OK;
      }
      const std::string& want = cap.mount().fs_type();
      if (!want.empty() && want != seen.volume().fs()) {
        resp->set_message("volume is " + seen.volume().fs() + ", not " + want);
        return grpc::Status::OK;
      }
    }
    Params params;
    if (auto s = parse_params(req->parameters(), &params); !s.ok()) {
      resp->set_message(s.error_message());
      return grpc::Status::OK;
    }
    auto* confirmed = resp->mutable_confirmed();
    *confirmed->mutable_volume_context() = req->volume_context();
    *confirmed->mutable_volume_capabilities() = req->volume_capabilities();
    *confirmed->mutable_parameters() = req->parameters();
    return grpc::Status::OK;
  }

  // No secrets in CSI's ListVolumes: asked with the controller's read-only credential (role
  // system.csi-controller), which reads every volume's metadata and changes nothing.
  grpc::Status ListVolumes(ServerContext*, const v1::ListVolumesRequest* req,
                           v1::ListVolumesResponse* resp) override {
    const std::string token = backend_->controller_token();
    vg::EnumerateRequest all;
    vg::EnumerateResponse listed;
    if (Status s = backend_->call(token, kVol + "Enumerate", all, &listed); !s.is_ok()) {
      return to_grpc(s, token);
    }
    std::vector<vg::Volume> volumes(listed.volumes().begin(), listed.volumes().end());
    std::vector<vg::Volume> chosen;
    std::string next;
    if (auto s = page(volumes, req->max_entries(), req->starting_token(), &chosen, &next); !s.ok()) {
      return s;
    }
    for (const auto& v : chosen) fill_volume(v, resp->add_entries()->mutable_volume());
    resp->set_next_token(next);
    return grpc::Status::OK;
  }

  // The free space of the server's volume directory (no secrets in CSI: the controller's
  // credential), within that credential's quotas if it has any. An accessible_topology is
  // accepted and not told apart: the server the controller asks answers for itself (capacity
  // tracking, which asks per node, is not deployed).
  grpc::Status GetCapacity(ServerContext*, const v1::GetCapacityRequest*,
                           v1::GetCapacityResponse* resp) override {
    const std::string token = backend_->controller_token();
    vg::Empty e;
    vg::CapacityResponse cap;
    if (Status s = backend_->call(token, kVol + "Capacity", e, &cap); !s.is_ok()) return to_grpc(s, token);
    uint64_t available = cap.available_bytes();
    if (cap.quota_limited()) available = std::min(available, cap.quota_available_bytes());
    resp->set_available_capacity(static_cast<int64_t>(std::min<uint64_t>(available, INT64_MAX)));
    return grpc::Status::OK;
  }

  grpc::Status ControllerGetCapabilities(ServerContext*, const v1::ControllerGetCapabilitiesRequest*,
                                         v1::ControllerGetCapabilitiesResponse* resp) override {
    using T = v1::ControllerServiceCapability::RPC;
    for (auto t : {T::CREATE_DELETE_VOLUME, T::PUBLISH_UNPUBLISH_VOLUME, T::LIST_VOLUMES,
                   T::GET_CAPACITY, T::CREATE_DELETE_SNAPSHOT, T::LIST_SNAPSHOTS, T::CLONE_VOLUME,
                   T::EXPAND_VOLUME, T::GET_VOLUME}) {
      resp->add_capabilities()->mutable_rpc()->set_type(t);
    }
    return grpc::Status::OK;
  }

  grpc::Status CreateSnapshot(ServerContext*, const v1::CreateSnapshotRequest* req,
                              v1::CreateSnapshotResponse* resp) override {
    if (req->source_volume_id().empty()) return invalid_argument("source_volume_id is required");
    if (req->name().empty()) return invalid_argument("name is required");
    if (!req->parameters().empty()) {
      return invalid_argument("unknown parameter \"" + req->parameters().begin()->first + "\"");
    }
    const std::string token = token_of(req->secrets());
    vg::SnapshotCreateRequest create;
    create.set_volume(req->source_volume_id());
    create.set_name(volguard_name(req->name()));
    vg::SnapshotResponse made;
    Status s = backend_->call(token, kVol + "SnapshotCreate", create, &made);
    if (s.code() == Code::kAlreadyExists) {
      // Idempotent: the same name on the same volume is the snapshot made before.
      vg::SnapshotEnumerateRequest list;
      list.set_volume(req->source_volume_id());
      vg::SnapshotEnumerateResponse listed;
      Status ls = backend_->call(token, kVol + "SnapshotEnumerate", list, &listed);
      if (!ls.is_ok()) return to_grpc(ls, token);
      for (const auto& snap : listed.snapshots()) {
        if (snap.name() == create.name()) {
          fill_snapshot(snap, resp->mutable_snapshot());
          return grpc::Status::OK;
        }
      }
      return grpc::Status(StatusCode::ALREADY_EXISTS,
                          "snapshot name " + create.name() + " is taken by another volume");
    }
    if (!s.is_ok()) return to_grpc(s, token);
    fill_snapshot(made.snapshot(), resp->mutable_snapshot());
    return grpc::Status::OK;
  }

  grpc::Status DeleteSnapshot(ServerContext*, const v1::DeleteSnapshotRequest* req,
                              v1::DeleteSnapshotResponse*) override {
    if (req->snapshot_id().empty()) return invalid_argument("snapshot_id is required");
    const std::string token = token_of(req->secrets());
    vg::SnapshotRef ref;
    ref.set_snapshot(req->snapshot_id());
    vg::Empty e;
    Status s = backend_->call(token, kVol + "SnapshotDelete", ref, &e);
    if (s.code() == Code::kNotFound) return grpc::Status::OK;
    return to_grpc(s, token);
  }

  grpc::Status ListSnapshots(ServerContext*, const v1::ListSnapshotsRequest* req,
                             v1::ListSnapshotsResponse* resp) override {
    const std::string token = token_of(req->secrets());
    vg::SnapshotEnumerateRequest list;
    list.set_volume(req->source_volume_id());
    vg::SnapshotEnumerateResponse listed;
    Status s = backend_->call(token, kVol + "SnapshotEnumerate", list, &listed);
    // An unknown volume has no snapshots; the spec wants an empty list, not an error.
    if (s.code() == Code::kNotFound) return grpc::Status::OK;
    if (!s.is_ok()) return to_grpc(s, token);
    std::vector<vg::Snapshot> all;
    for (const auto& snap : listed.snapshots()) {
      if (!req->snapshot_id().empty() && snap.id() != req->snapshot_id()) continue;
      all.push_back(snap);
    }
    std::vector<vg::Snapshot> chosen;
    std::string next;
    if (auto ps = page(all, req->max_entries(), req->starting_token(), &chosen, &next); !ps.ok()) {
      return ps;
    }
    for (const auto& snap : chosen) fill_snapshot(snap, resp->add_entries()->mutable_snapshot());
    resp->set_next_token(next);
    return grpc::Status::OK;
  }

  grpc::Status ControllerExpandVolume(ServerContext*, const v1::ControllerExpandVolumeRequest* req,
                                      v1::ControllerExpandVolumeResponse* resp) override {
    if (req->volume_id().empty()) return invalid_argument("volume_id is required");
    if (!req->has_capacity_range()) return invalid_argument("capacity_range is required");
    if (req->has_volume_capability()) {
      if (auto why = unsupported_capability(req->volume_capability()); !why.empty()) {
        return invalid_argument(why);
      }
    }
    if (auto s = check_range(req->capacity_range()); !s.ok()) return s;
    const std::string token = token_of(req->secrets());
    vg::VolumeResponse seen;
    if (Status s = inspect(token, req->volume_id(), &seen); !s.is_ok()) return to_grpc(s, token);
    const int64_t current = static_cast<int64_t>(seen.volume().size_bytes());
    resp->set_node_expansion_required(false);  // the server grows the filesystem itself
    if (current >= req->capacity_range().required_bytes()) {
      if (!fits(current, req->capacity_range())) {
        return grpc::Status(StatusCode::OUT_OF_RANGE, "volume is already larger than limit_bytes");
      }
      resp->set_capacity_bytes(current);
      return grpc::Status::OK;
    }
    auto size = size_for(req->capacity_range(), seen.volume().fs());
    if (!size) return to_grpc(size.status(), token);
    // xfs grows only mounted, and a mounted volume is grown where it is mounted: left to
    // NodeExpandVolume (the node's side), which grows volume and filesystem together.
    if (seen.volume().fs() == "xfs" || !seen.volume().mount_path().empty()) {
      resp->set_node_expansion_required(true);
      resp->set_capacity_bytes(*size);
      return grpc::Status::OK;
    }
    vg::UpdateVolumeRequest update;
    update.set_volume(req->volume_id());
    update.set_size(std::to_string(*size));
    vg::VolumeResponse grown;
    if (Status s = backend_->call(token, kVol + "Update", update, &grown); !s.is_ok()) {
      return to_grpc(s, token);
    }
    resp->set_capacity_bytes(static_cast<int64_t>(grown.volume().size_bytes()));
    return grpc::Status::OK;
  }

  // No secrets in CSI's ControllerGetVolume: the controller's read-only credential, as above.
  grpc::Status ControllerGetVolume(ServerContext*, const v1::ControllerGetVolumeRequest* req,
                                   v1::ControllerGetVolumeResponse* resp) override {
    if (req->volume_id().empty()) return invalid_argument("volume_id is required");
    const std::string token = backend_->controller_token();
    vg::VolumeResponse seen;
    if (Status s = inspect(token, req->volume_id(), &seen); !s.is_ok()) return to_grpc(s, token);
    fill_volume(seen.volume(), resp->mutable_volume());
    return grpc::Status::OK;
  }

 private:
  Status inspect(const std::string& token, const std::string& volume, vg::VolumeResponse* out) {
    vg::VolumeRef ref;
    ref.set_volume(volume);
    return backend_->call(token, kVol + "Inspect", ref, out);
  }

  // A clone has its source's size and no ACLs: grow it to the range and apply the grants.
  grpc::Status finish_clone(const std::string& token, const v1::CreateVolumeRequest* req,
                            const Params& params, const std::string& fs, vg::VolumeResponse* made) {
    const auto& r = req->capacity_range();
    const int64_t size = static_cast<int64_t>(made->volume().size_bytes());
    grpc::Status refused;
    if (made->volume().fs() != fs) {
      refused = invalid_argument("source is " + made->volume().fs() + ", not " + fs);
    } else if (r.limit_bytes() > 0 && size > r.limit_bytes()) {
      refused = grpc::Status(StatusCode::OUT_OF_RANGE,
                             "source is " + std::to_string(size) + " bytes, over limit_bytes");
    }
    vg::UpdateVolumeRequest update;
    update.set_volume(made->volume().id());
    if (refused.ok() && r.required_bytes() > size) {
      auto want = size_for(r, fs);
      if (!want) return to_grpc(want.status(), token);
      update.set_size(std::to_string(*want));
    }
    for (const auto& [g, a] : params.groups) (*update.mutable_add_groups())[g] = a;
    if (!params.public_access.empty()) update.set_set_public(params.public_access);
    if (refused.ok() && (!update.size().empty() || !update.add_groups().empty() ||
                         !update.set_public().empty())) {
      Status s = backend_->call(token, kVol + "Update", update, made);
      if (!s.is_ok()) refused = to_grpc(s, token);
    }
    if (!refused.ok()) {
      // Leave nothing half-made behind: the CO will not learn this volume's id.
      vg::VolumeRef ref;
      ref.set_volume(made->volume().id());
      vg::Empty e;
      (void)backend_->call(token, kVol + "Delete", ref, &e);
    }
    return refused;
  }

  // The server refused to make the volume on every node the requirement allows (`refused`:
  // each node with its node_unknown or node_unavailable). It decides where before it looks at
  // the name, so a retry for a volume made before — elsewhere: the CO's preferred node may have
  // changed since — is answered as any retry is. Otherwise CSI's "unable to provision in
  // accessible_topology": RESOURCE_EXHAUSTED, naming each node with the server's reason and
  // message (csi-provisioner then has the pod rescheduled rather than asking again).
  grpc::Status not_placed(const std::string& token, const std::string& name,
                          const v1::CreateVolumeRequest& req, const Params& params,
                          const std::string& fs,
                          const std::vector<std::pair<std::string, Status>>& refused,
                          v1::CreateVolumeResponse* resp) {
    vg::VolumeResponse seen;
    Status found = inspect(token, name, &seen);
    // The server accepted none of the nodes asked: none is reported for a volume without a home.
    if (found.is_ok()) return compare(token, name, seen.volume(), req, params, fs, "", resp);
    if (found.code() != Code::kNotFound) return to_grpc(found, token);
    std::string why;
    for (const auto& [node, s] : refused) {
      why += (why.empty() ? "" : "; ") + std::string("volguard node ") + node + ": " + s.reason() +
             ": " + s.message();
    }
    return to_grpc(Status(Code::kResourceExhausted, "",
                          std::string("cannot provision in accessible_topology (") + kTopologyKey +
                              "): " + why),
                   token);
  }

  // The name exists: the same request made it before (idempotent retry) or it is another
  // volume (ALREADY_EXISTS).
  grpc::Status existing(const std::string& token, const std::string& name,
                        const v1::CreateVolumeRequest& req, const Params& params,
                        const std::string& fs, const std::string& asked,
                        v1::CreateVolumeResponse* resp) {
    vg::VolumeResponse seen;
    if (Status s = inspect(token, name, &seen); !s.is_ok()) {
      // Taken by a volume this tenant may not see: the name is all it learns (the server's
      // create said as much), never its id or owner.
      if (s.code() == Code::kNotFound) {
        return grpc::Status(StatusCode::ALREADY_EXISTS,
                            "name_taken: volume name " + name + " is taken by another tenant's volume");
      }
      return to_grpc(s, token);
    }
    return compare(token, name, seen.volume(), req, params, fs, asked, resp);
  }

  // An existing volume of the name against the request: the same request made it before (it is
  // answered) or it is incompatible (ALREADY_EXISTS). Compared: owner, size within the range,
  // fs, labels, grants, source, and its home node against the requisite topology.
  grpc::Status compare(const std::string& token, const std::string& name, const vg::Volume& v,
                       const v1::CreateVolumeRequest& req, const Params& params,
                       const std::string& fs, const std::string& asked,
                       v1::CreateVolumeResponse* resp) {
    std::string principal;  // a guest's volumes are unowned
    std::string group_domain;  // grants are stored "<group_domain>/<group>"
    if (!token.empty()) {
      vg::Empty e;
      vg::WhoAmIResponse who;
      Status s = backend_->call(token, "/volguard.v1.VolguardIdentity/WhoAmI", e, &who);
      if (!s.is_ok()) return to_grpc(s, token);
      principal = who.guest() ? "" : who.principal();
      group_domain = who.group_domain();
    }
    std::string why;
    if (v.ownership().owner() != principal) why = "it belongs to another owner";
    if (why.empty() && !fits(static_cast<int64_t>(v.size_bytes()), req.capacity_range())) {
      why = "its size " + std::to_string(v.size_bytes()) + " is outside the capacity_range";
    }
    if (why.empty() && v.fs() != fs) why = "it is " + v.fs() + ", not " + fs;
    for (const auto& [k, val] : params.labels) {
      auto it = v.labels().find(k);
      if (why.empty() && (it == v.labels().end() || it->second != val)) why = "label " + k + " differs";
    }
    for (const auto& [g, a] : params.groups) {
      // As the server stored it: a bare name is the caller's domain; "*" and "<domain>/<g>" as is.
      const std::string key = g == "*" || g.find('/') != std::string::npos || group_domain.empty()
                                  ? g
                                  : qualify_name(group_domain, g);
      auto it = v.ownership().groups().find(key);
      if (why.empty() && (it == v.ownership().groups().end() || it->second != a)) {
        why = "group " + g + " differs";
      }
    }
    if (why.empty() && v.ownership().public_() != params.public_access) why = "public differs";
    // An existing plain volume never stands in for an encrypted one (nor the reverse).
    const bool want_secure = params.secure.value_or(false) || !params.secret_key.empty();
    if (why.empty() && (params.secure || !params.secret_key.empty()) && v.encrypted() != want_secure) {
      why = v.encrypted() ? "it is encrypted" : "it is not encrypted";
    }
    if (why.empty() && !params.secret_key.empty() && v.secret_key() != params.secret_key) {
      why = "its data key is under another KEK";
    }
    if (why.empty() && req.has_volume_content_source()) {
      const auto& src = req.volume_content_source();
      if ((src.has_snapshot() && v.source_snapshot() != src.snapshot().snapshot_id()) ||
          (src.has_volume() && v.source_volume() != src.volume().volume_id())) {
        why = "its content source differs";
      }
    } else if (why.empty() && (!v.source_snapshot().empty() || !v.source_volume().empty())) {
      why = "it was made from another volume or snapshot";
    }
    // Its data cannot move: a home outside requisite cannot be made accessible from there.
    // (A volume made before volumes had homes has "": nothing to compare.)
    if (why.empty() && !v.home_node().empty() &&
        !meets_requisite(req.accessibility_requirements(), v.home_node())) {
      why = "its home node " + v.home_node() + " is not in the requisite topology (" +
            kTopologyKey + ")";
    }
    if (!why.empty()) {
      return grpc::Status(StatusCode::ALREADY_EXISTS,
                          "volume " + name + " exists and is incompatible: " + why);
    }
    fill_created(v, asked, resp->mutable_volume());
    return grpc::Status::OK;
  }

  std::shared_ptr<Backend> backend_;
};

}  // namespace

std::unique_ptr<v1::Controller::Service> make_controller(std::shared_ptr<Backend> backend) {
  return std::make_unique<ControllerService>(std::move(backend));
}

}  // namespace volguard::csi
