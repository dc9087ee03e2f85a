// The cluster side of the service: the catalog fed by the store's watch, the freshness gate,
// routing a call to its volume's home node, and node.enumerate. With a store of its own (SQLite)
// none of it does anything: every volume is home, every catalog fresh.
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "common/text.h"
#include "common/grpc_call.h"
#include "service/handler_support.h"
#include "service/volume_service.h"

namespace volguard::service {

using store::RecordState;

namespace {
// How long a request waits for the catalog to reach the caller's own last write (made on
// another node a moment ago) before it is refused as stale.
constexpr std::chrono::milliseconds kReadYourWritesWait{2000};
}  // namespace

Status VolumeService::catalog_fresh(store::Revision min_revision) const {
  return store_->fresh(min_revision, kReadYourWritesWait);
}

void VolumeService::apply_change(const store::Change& c) {
  using Kind = store::Change::Kind;
  switch (c.kind) {
    case Kind::kVolume:
      if (c.deleted) {
        store::VolumeRecord gone;
        gone.id = c.key;
        gone.revision = c.revision;
        erase_volume(gone);
      } else if (c.volume && c.volume->state != RecordState::kCreating) {
        // A volume in the making is not served anywhere until it is ready (its name is already
        // claimed in the store, which is what refuses a second create).
        put_volume(std::make_shared<const store::VolumeRecord>(*c.volume));
      } else if (c.volume && is_home(c.volume->home_node)) {
        remove_abandoned(c);
      }
      return;
    case Kind::kSnapshot:
      if (c.deleted) {
        store::SnapshotRecord gone;
        gone.id = c.key;
        gone.revision = c.revision;
        erase_snapshot(gone);
      } else if (c.snapshot && c.snapshot->state != RecordState::kCreating) {
        put_snapshot(std::make_shared<const store::SnapshotRecord>(*c.snapshot));
      } else if (c.snapshot && is_home(c.snapshot->home_node)) {
        remove_abandoned(c);
      }
      return;
    case Kind::kRole:
      // Rare: the role set is rebuilt from the store and swapped in whole.
      if (Status s = rebuild_roles(); !s.is_ok()) {
        spdlog::error("cluster: role change at revision {} not applied: {}", c.revision, s.message());
      }
      return;
    case Kind::kQuota:
      if (Status s = load_quotas(); !s.is_ok()) {
        spdlog::error("cluster: quota change at revision {} not applied: {}", c.revision, s.message());
      }
      return;
    case Kind::kRevocation:
      // Rare, and wanted everywhere at once: rebuilt from the store and swapped in whole.
      if (Status s = load_revocations(); !s.is_ok()) {
        spdlog::error("cluster: revocation at revision {} not applied: {}", c.revision, s.message());
      }
      return;
    case Kind::kNode: {
      std::unique_lock lock(catalog_mu_);
      if (c.deleted) {
        nodes_.erase(c.key);
      } else if (c.node) {
        nodes_[c.key] = *c.node;
      }
      return;
    }
  }
}

void VolumeService::remove_abandoned(const store::Change& c) {
  {
    std::shared_lock lock(catalog_mu_);
    if (creating_ids_.count(c.key)) return;  // a create in flight here: it finishes or undoes it
  }
  // Only the record: its create failed at this first step, before anything reached the disk.
  Status s = c.volume ? store_->delete_volume(*c.volume) : store_->delete_snapshot(*c.snapshot);
  if (s.is_ok()) {
    spdlog::warn("cluster: removed {} {} ({}), left 'creating' by a create that had failed", c.volume ? "volume" : "snapshot",
                 c.key, c.volume ? c.volume->name : c.snapshot->name);
  } else if (s.code() != Code::kNotFound && s.reason() != "revision_conflict") {
    spdlog::error("cluster: {} {} left 'creating' by a failed create could not be removed ({}); the node's "
                  "next start removes it", c.volume ? "volume" : "snapshot", c.key, s.message());
  }
}

Result<std::string> VolumeService::route(const MethodSpec& spec, const Call& call,
                                         const Message& request) const {
  std::string home;
  std::string what;
  if (const auto* create = dynamic_cast<const v1::CreateVolumeRequest*>(&request)) {
    home = create->home_node();
    what = "home_node";
    if (!home.empty() && home != node_name()) {
      // A volume asked for elsewhere is never quietly made here (Kubernetes would schedule its
      // pods on the node it asked for, where the data would not be).
      std::shared_lock lock(catalog_mu_);
      if (!store_->shared() || !nodes_.count(home)) {
        return Status(Code::kInvalidArgument, "node_unknown",
                      "home_node: '" + home + "' is not a node of this cluster (volguard node list)");
      }
    }
  } else if (!store_->shared()) {
    return std::string();  // one node: every volume is here
  } else {
    // The first resource named: the volume (or the snapshot's volume) whose data the call is
    // about. A clone runs where its source is.
    for (const auto& check : spec.resources) {
      if (check.kind == ResourceKind::kVolume) {
        if (const auto& v = call.volume(check.name)) {
          home = v->home_node;
          what = "volume " + v->name;
          break;
        }
      } else if (const auto& s = call.snapshot(check.name)) {
        home = s->home_node;
        what = "snapshot " + s->name;
        break;
      }
    }
  }
  if (home.empty() || home == node_name()) return std::string();
  std::shared_lock lock(catalog_mu_);
  auto it = nodes_.find(home);
  if (it == nodes_.end() || !it->second.alive) {
    return Status(Code::kUnavailable, "node_unavailable",
                  what + " lives on node " + home + ", which is unavailable (no live registration)");
  }
  return home;
}

Status VolumeService::forward(const std::string& node, const MethodSpec& spec, const RequestMeta& meta,
                              const Message& request, Message* response) const {
  std::string address;
  {
    std::shared_lock lock(catalog_mu_);
    if (auto it = nodes_.find(node); it != nodes_.end()) address = it->second.grpc_address;
  }
  const Status unavailable(Code::kUnavailable, "node_unavailable",
                           "node " + node + " is unavailable" + (address.empty() ? "" : " at " + address));
  if (address.empty()) return unavailable;
  std::shared_ptr<grpc::Channel> channel;
  {
    std::lock_guard lock(channels_mu_);
    auto& c = channels_[address];
    // With api.tls the other nodes listen with TLS: verified against api.tls.client_ca (the
    // cluster's CA), presenting this node's own certificate (mTLS) — the home node requires one.
    // The caller's token still decides there.
    if (!c) {
      const auto& tls = config_.api.tls;
      auto creds = channel_credentials(ClientTls{.ca = tls.cert_file.empty() ? "" : tls.client_ca,
                                                 .cert_file = tls.client_ca.empty() ? "" : tls.cert_file,
                                                 .key_file = tls.client_ca.empty() ? "" : tls.key_file});
      if (!creds) {
        return Status(Code::kUnavailable, "node_unavailable",
                      "node " + node + ": " + creds.status().message());
      }
      c = grpc::CreateChannel(address, *creds);
    }
    channel = c;
  }
  GrpcCallOptions options;
  // The caller's own credential, unchanged: the home node authenticates and decides again.
  // As the pipeline read it: trailing whitespace (a Secret's newline, an URL-decoded %0A) is not
  // part of the token, and forwarding it raw would be refused by the transport.
  if (!meta.authorization.empty()) {
    options.metadata.emplace_back("authorization", std::string(trim_trailing_whitespace(meta.authorization)));
  }
  options.metadata.emplace_back("volguard-forwarded-by", node_name());
  // The home node must decide on a catalog at least as new as the one this node decided on.
  options.metadata.emplace_back("volguard-min-revision",
                                std::to_string(std::max(meta.min_revision, store_->seen_revision())));
  options.timeout = spec.driver_io() ? std::chrono::minutes(5) : std::chrono::seconds(30);
  Status s = grpc_unary_call(channel, spec.grpc_path, request, response, options);
  if (s.code() == Code::kUnavailable && s.reason() == "unavailable") return unavailable;
  return s;
}

// ---- node.enumerate
Status VolumeService::enumerate_nodes(Call& call, const v1::Empty&, v1::NodeEnumerateResponse* resp) {
  std::map<std::string, store::NodeRecord> nodes;
  if (store_->shared()) {
    std::shared_lock lock(catalog_mu_);
    nodes = nodes_;
  } else {
    ASSIGN_OR_RETURN(auto listed, store_->list_nodes());
    for (auto& n : listed) nodes[n.name] = std::move(n);
  }
  std::map<std::string, uint64_t> homed;
  {
    std::shared_lock lock(catalog_mu_);
    for (const auto& [id, v] : volumes_) {
      if (call.may(*v, Access::kRead)) ++homed[is_home(v->home_node) ? node_name() : v->home_node];
    }
  }
  for (const auto& [name, n] : nodes) {
    auto* out = resp->add_nodes();
    out->set_name(name);
    out->set_address(n.grpc_address);
    out->set_alive(n.alive);
    if (n.started_at > 0) out->set_started_at(rfc3339(n.started_at));
    out->set_version(n.version);
    out->set_volumes(homed[name]);
    out->set_self(name == node_name());
  }
  return Status::ok();
}

}  // namespace volguard::service
