#include "service/volume_service.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "common/crash_point.h"
#include "common/text.h"
#include "policy/policy.h"
#include "service/access.h"
#include "service/handler_support.h"

namespace volguard::service {

using store::RecordState;
using store::SnapshotRecord;
using store::VolumeRecord;

VolumeService::VolumeService(const config::Config& config,
                             std::unique_ptr<store::MetadataStore> store,
                             std::unique_ptr<driver::VolumeDriver> driver, DataKeys& keys,
                             RoleRegistry& roles, RevocationRegistry& revocations)
    : config_(config),
      store_(std::move(store)),
      driver_(std::move(driver)),
      keys_(keys),
      roles_(roles),
      revocations_(revocations),
      admins_{config.security.admin_groups} {}

size_t VolumeService::volume_count() const {
  std::shared_lock lock(catalog_mu_);
  return volumes_.size();
}

std::shared_ptr<const VolumeRecord> VolumeService::find_volume(const std::string& ref) const {
  std::shared_lock lock(catalog_mu_);
  // Ids and names are separate namespaces: a ref shaped like an id is only ever an id, so a
  // name can never shadow or stand in for another volume's id.
  if (looks_like_id(ref)) {
    auto it = volumes_.find(ref);
    return it == volumes_.end() ? nullptr : it->second;
  }
  if (auto it = volume_names_.find(ref); it != volume_names_.end()) {
    return volumes_.at(it->second);
  }
  return nullptr;
}

std::shared_ptr<const SnapshotRecord> VolumeService::find_snapshot(const std::string& ref) const {
  std::shared_lock lock(catalog_mu_);
  if (looks_like_id(ref)) {
    auto it = snapshots_.find(ref);
    return it == snapshots_.end() ? nullptr : it->second;
  }
  if (auto it = snapshot_names_.find(ref); it != snapshot_names_.end()) {
    return snapshots_.at(it->second);
  }
  return nullptr;
}

std::shared_ptr<const VolumeRecord> VolumeService::snapshot_volume(const SnapshotRecord& s) const {
  return find_volume(s.volume_id);
}

Result<VolumeService::VolumeLock> VolumeService::lock_volume(const Call& call, const std::string& id,
                                                             Access need) {
  VolumeLock locked;
  {
    std::lock_guard lock(op_locks_mu_);
    auto& m = op_locks_[id];
    if (!m) m = std::make_shared<std::mutex>();
    locked.mutex = m;
  }
  locked.guard = std::unique_lock(*locked.mutex);
  locked.record = find_volume(id);
  const Status not_found(Code::kNotFound, "volume_not_found", "volume '" + id + "' not found");
  if (!locked.record) return not_found;
  if (need > Access::kNone && call.may) {
    if (!call.may(*locked.record, Access::kRead)) return not_found;
    if (!call.may(*locked.record, need)) {
      return Status(Code::kPermissionDenied, "acl_insufficient",
                    call.method + " on volume " + locked.record->name + " (" + id + ") needs " +
                        ownership::access_name(need) + " access, which changed while the call waited");
    }
  }
  return locked;
}

void VolumeService::sync_runtime(const std::string& id) {
  auto st = driver_->status(id);
  std::unique_lock lock(catalog_mu_);
  if (st.is_ok() && (!st->device.empty() || !st->mount_path.empty())) {
    runtime_[id] = {st->device, st->mount_path};
  } else {
    // Not attached, or the host cannot say: inspect shows nothing rather than a stale device.
    runtime_.erase(id);
  }
}

std::vector<std::string> VolumeService::access_keys(const VolumeRecord& rec) {
  std::vector<std::string> keys;
  const auto& o = rec.ownership;
  if (o.owner.empty() || o.public_access != Access::kNone) keys.push_back("*");  // everyone's
  if (!o.owner.empty()) keys.push_back("o:" + o.owner);
  for (const auto& [g, a] : o.groups) keys.push_back("g:" + g);
  for (const auto& [c, a] : o.collaborators) keys.push_back("c:" + c);
  if (!rec.attached_node.empty()) keys.push_back("n:" + rec.attached_node);
  return keys;
}

std::optional<std::set<std::string>> VolumeService::enumerate_candidates(const Call& call,
                                                                         const std::string& owner) const {
  std::set<std::string> out;
  auto add = [&](const std::string& key) {
    if (auto it = access_index_.find(key); it != access_index_.end()) out.insert(it->second.begin(), it->second.end());
  };
  // A filter by owner needs only that owner's volumes, whoever asks.
  if (!owner.empty()) {
    add("o:" + owner);
    return out;
  }
  const identity::Identity& who = *call.who;
  if (!call.security_enabled || !call.may || admins_.is_admin(who)) return std::nullopt;
  if (is_node(who)) {
    add("n:" + who.username);  // a node sees the volumes attached to it, nothing else
    return out;
  }
  if (!who.guest && who.roles.size() == 1 && who.roles[0] == policy::kCsiControllerRole) return std::nullopt;
  add("*");
  add("g:*");
  add("c:*");
  if (!who.guest) {
    add("o:" + who.principal());
    add("c:" + who.principal());
    for (const auto& g : who.groups) {
      const std::string q = who.qualified_group(g);
      if (g != "*" && !q.empty()) add("g:" + q);
    }
  }
  return out;
}

void VolumeService::put_volume(std::shared_ptr<const VolumeRecord> rec) {
  std::unique_lock lock(catalog_mu_);
  auto& known = known_revision_["v/" + rec->id];
  if (rec->revision < known) return;  // older than what the catalog has seen
  known = rec->revision;
  if (auto it = volumes_.find(rec->id); it != volumes_.end()) {
    if (it->second->name != rec->name) volume_names_.erase(it->second->name);
    for (const auto& k : access_keys(*it->second)) access_index_[k].erase(rec->id);
  }
  for (const auto& k : access_keys(*rec)) access_index_[k].insert(rec->id);
  volume_names_[rec->name] = rec->id;
  volumes_[rec->id] = std::move(rec);
}

void VolumeService::erase_volume(const VolumeRecord& rec) {
  std::unique_lock lock(catalog_mu_);
  auto& known = known_revision_["v/" + rec.id];
  known = std::max(known, rec.revision);
  if (auto it = volumes_.find(rec.id); it != volumes_.end()) {
    volume_names_.erase(it->second->name);
    for (const auto& k : access_keys(*it->second)) {
      auto entry = access_index_.find(k);
      if (entry == access_index_.end()) continue;
      entry->second.erase(rec.id);
      if (entry->second.empty()) access_index_.erase(entry);
    }
    volumes_.erase(it);
  }
  runtime_.erase(rec.id);
}

void VolumeService::put_snapshot(std::shared_ptr<const SnapshotRecord> rec) {
  std::unique_lock lock(catalog_mu_);
  auto& known = known_revision_["s/" + rec->id];
  if (rec->revision < known) return;
  known = rec->revision;
  if (auto it = snapshots_.find(rec->id); it != snapshots_.end() && it->second->name != rec->name) {
    snapshot_names_.erase(it->second->name);
  }
  snapshot_names_[rec->name] = rec->id;
  snapshots_[rec->id] = std::move(rec);
}

void VolumeService::erase_snapshot(const SnapshotRecord& rec) {
  std::unique_lock lock(catalog_mu_);
  auto& known = known_revision_["s/" + rec.id];
  known = std::max(known, rec.revision);
  if (auto it = snapshots_.find(rec.id); it != snapshots_.end()) {
    snapshot_names_.erase(it->second->name);
    snapshots_.erase(it);
  }
}

void VolumeService::fill_volume(const VolumeRecord& rec, v1::Volume* out) const {
  out->set_id(rec.id);
  out->set_name(rec.name);
  out->set_size_bytes(rec.size_bytes);
  out->set_size(driver::format_size(rec.size_bytes));
  out->set_fs(rec.fs);
  for (const auto& [k, v] : rec.labels) (*out->mutable_labels())[k] = v;
  fill_ownership(rec.ownership, out->mutable_ownership());
  out->set_state(store::state_name(rec.state));
  out->set_source_volume(rec.source_volume);
  out->set_source_snapshot(rec.source_snapshot);
  out->set_created_at(rfc3339(rec.created_at));
  out->set_attached_node(rec.attached_node);
  out->set_home_node(rec.home_node);
  out->set_encrypted(!rec.encryption.empty());
  out->set_secret_key(rec.data_key.key_name);
  out->set_kek_id(rec.data_key.kek_id);
  std::shared_lock lock(catalog_mu_);
  if (auto it = runtime_.find(rec.id); it != runtime_.end()) {
    out->set_device(it->second.device);
    out->set_mount_path(it->second.mount_path);
  }
}

namespace {

bool is_issuer(const config::SecurityConfig& security, std::string_view name) {
  for (const auto& ic : security.issuers) {
    if (ic.issuer == name) return true;
  }
  return false;
}

bool is_group_domain(const config::SecurityConfig& security, std::string_view name) {
  for (const auto& ic : security.issuers) {
    if (ic.group_domain == name) return true;
  }
  return false;
}

}  // namespace

// A collaborator or new owner: "user" means the caller's own issuer; "<issuer>/<user>" names a
// configured issuer explicitly, the user part already escaped (qualify_name). Principals are
// issuer-qualified so that two issuers' "alice" never share a volume by accident, and escaped
// so that the last '/' always separates: the result is the one canonical form.
Result<std::string> VolumeService::qualify_user(const identity::Identity& who,
                                                const std::string& name) const {
  if (name.empty()) return invalid("user", "must not be empty");
  if (name == "*") return std::string("*");
  if (auto parts = split_qualified(name)) {
    if (!is_issuer(config_.security, parts->first)) {
      return invalid("user", "'" + name + "': '" + std::string(parts->first) +
                                 "' is not a configured issuer (escape '/' in usernames as %2F)");
    }
    auto user = unescape_name(parts->second);
    if (!user) return invalid("user", user.status().message());
    return qualify_name(parts->first, *user);
  }
  if (who.guest || who.issuer.empty()) {
    return invalid("user", "'" + name + "' must be written <issuer>/<user> (the caller has no issuer)");
  }
  if (has_control_chars(name)) return invalid("user", "'" + name + "' contains control characters");
  return qualify_name(who.issuer, name);
}

// A group grant: "eng" means the caller's own group domain; "<domain>/<group>" names a
// configured group domain, the group part already escaped. "*" stays "any authenticated".
Result<std::string> VolumeService::qualify_group(const identity::Identity& who,
                                                 const std::string& name) const {
  if (name.empty()) return invalid("group", "must not be empty");
  if (name == "*") return std::string("*");
  std::string domain, group;
  if (auto parts = split_qualified(name)) {
    if (!is_group_domain(config_.security, parts->first)) {
      return invalid("group", "'" + name + "': '" + std::string(parts->first) +
                                  "' is not a configured group_domain (escape '/' in group "
                                  "names as %2F)");
    }
    auto decoded = unescape_name(parts->second);
    if (!decoded) return invalid("group", decoded.status().message());
    domain = parts->first;
    group = std::move(decoded).value();
  } else {
    if (who.guest || who.group_domain.empty()) {
      return invalid("group", "'" + name +
                                  "' must be written <group_domain>/<group> (the caller has no issuer)");
    }
    if (has_control_chars(name)) return invalid("group", "'" + name + "' contains control characters");
    domain = who.group_domain;
    group = name;
  }
  // Nobody is in a group literally named "*" (access_of ignores such a claim): a grant to it
  // would look meaningful and match no one.
  if (group == "*") {
    return invalid("group", "'" + name + "': a group named '*' matches no one; '*' alone grants "
                            "any authenticated caller");
  }
  return qualify_name(domain, group);
}

Result<driver::MountTarget> VolumeService::resolve_target(
    const Call& call, const std::string& path, const driver::ResolveOptions& options) const {
  // Planting a filesystem (or a directory) inside a volume, or pinning it busy, is a write to
  // that volume — the one named in the request included. Decided on the directory the target
  // lies in, before the target is opened or made.
  driver::ResolveOptions checked = options;
  checked.check_parent = [&](dev_t parent_dev) -> Status {
    auto host = driver_->volume_on_device(parent_dev);
    if (!host) return Status::ok();
    auto rec = find_volume(*host);
    if (!rec || !call.may(*rec, ownership::Access::kWrite)) {
      return Status(Code::kPermissionDenied, "mount_path_on_other_volume",
                    "path: '" + path + "' lies on a volume you may not write");
    }
    return Status::ok();
  };
  return driver::resolve_mount_target(config_.mount_roots, path, checked);
}

Status VolumeService::rebuild_roles() {
  std::lock_guard reload(reload_mu_);
  auto stored = store_->list_roles();
  if (!stored) return stored.status();
  std::vector<policy::Role> roles = policy::default_roles();
  for (const auto& rec : *stored) {
    auto role = policy::role_from_json(rec.json);
    if (!role) {
      return Status(Code::kInternal, "store_corrupt",
                    "stored role " + rec.name + ": " + role.status().message());
    }
    if (policy::is_mutable_default_role(role->name)) {
      for (auto& r : roles) {
        if (r.name == role->name) r = *role;
      }
    } else if (!policy::is_default_role(role->name)) {
      roles.push_back(*role);
    }
  }
  roles_.replace(std::make_shared<const policy::RoleSet>(std::move(roles)));
  return Status::ok();
}

bool VolumeService::migrate_legacy_groups(ownership::Ownership* o, const std::string& what) const {
  std::vector<std::string> legacy;
  for (const auto& [g, a] : o->groups) {
    if (g != "*" && g.find('/') == std::string::npos) legacy.push_back(g);
  }
  if (legacy.empty()) return false;
  std::string names;
  for (const auto& g : legacy) names += (names.empty() ? "" : ", ") + g;
  if (config_.security.issuers.size() != 1) {
    spdlog::warn("recovery: {} has group grants from before groups were qualified by issuer ({}); "
                 "with {} issuers configured they are ambiguous and match no one: re-grant them "
                 "as <group_domain>/<group>", what, names, config_.security.issuers.size());
    return false;
  }
  const std::string& domain = config_.security.issuers[0].group_domain;
  for (const auto& g : legacy) {
    auto node = o->groups.extract(g);
    // An explicit qualified grant already there is the newer decision: keep it.
    o->groups.emplace(qualify_name(domain, g), node.mapped());
  }
  spdlog::info("recovery: {}: group grants {} qualified with group domain {}", what, names, domain);
  return true;
}

Status VolumeService::recover() {
  // The revision the lists are read at or after: the watch replays from just past it, and the
  // per-record revisions make a replayed change that the lists already hold a no-op.
  ASSIGN_OR_RETURN(const store::Revision loaded_at, store_->current_revision());
  auto vols = store_->list_volumes();
  if (!vols) return vols.status();
  auto snaps = store_->list_snapshots();
  if (!snaps) return snaps.status();
  std::set<std::string> kept_volumes, kept_snapshots;
  for (const auto& s : *snaps) {
    if (!is_home(s.home_node)) {
      // Another node's: its data is on that node's disk, which that node reconciles.
      if (s.state == RecordState::kReady) put_snapshot(std::make_shared<const SnapshotRecord>(s));
      continue;
    }
    if (s.state != RecordState::kReady || !driver_->snapshot_exists(s.id)) {
      spdlog::warn("recovery: removing {} snapshot {} ({})", store::state_name(s.state), s.id, s.name);
      log_if_failed(driver_->remove_snapshot(s.id), "remove_snapshot", s.id);
      log_if_failed(store_->delete_snapshot(s), "delete_snapshot", s.id);
      continue;
    }
    kept_snapshots.insert(s.id);
    put_snapshot(std::make_shared<const SnapshotRecord>(s));
  }
  for (const auto& v : *vols) {
    if (!is_home(v.home_node)) {
      if (v.state == RecordState::kReady) put_volume(std::make_shared<const VolumeRecord>(v));
      continue;
    }
    auto st = driver_->status(v.id);
    bool on_disk = st.is_ok() && st->exists;
    if (v.state != RecordState::kReady || !on_disk) {
      // A create or delete that a crash interrupted: finish undoing it, so that store and disk
      // agree and no half-made volume is ever served.
      spdlog::warn("recovery: removing {} volume {} ({}){}", store::state_name(v.state), v.id,
                   v.name, on_disk ? "" : ", not on disk");
      if (on_disk) {
        log_if_failed(driver_->unmount(v.id, driver::record_encryption(v.encryption)), "unmount", v.id);
        log_if_failed(driver_->detach(v.id), "detach", v.id);
        log_if_failed(driver_->remove(v.id), "remove", v.id);
      }
      log_if_failed(store_->delete_volume(v), "delete_volume", v.id);
      continue;
    }
    kept_volumes.insert(v.id);
    VolumeRecord rec = v;
    if (migrate_legacy_groups(&rec.ownership, "volume " + v.id + " (" + v.name + ")")) {
      RETURN_IF_ERROR(store_->update_volume(rec));
    }
    put_volume(std::make_shared<const VolumeRecord>(std::move(rec)));
    if (!st->device.empty() || !st->mount_path.empty()) {
      std::unique_lock lock(catalog_mu_);
      runtime_[v.id] = {st->device, st->mount_path};
    }
  }
  // Files with no record: left by a crash between the driver and the store.
  if (auto ids = driver_->volume_ids(); ids.is_ok()) {
    for (const auto& id : *ids) {
      if (!kept_volumes.count(id)) {
        spdlog::warn("recovery: removing orphan volume file {}", id);
        // (Never mounted: made by a create that crashed before its record.)
        log_if_failed(driver_->unmount(id, driver::Encryption::kNone), "unmount", id);
        log_if_failed(driver_->detach(id), "detach", id);
        log_if_failed(driver_->remove(id), "remove", id);
      }
    }
  }
  if (auto ids = driver_->snapshot_ids(); ids.is_ok()) {
    for (const auto& id : *ids) {
      if (!kept_snapshots.count(id)) log_if_failed(driver_->remove_snapshot(id), "remove_snapshot", id);
    }
  }
  RETURN_IF_ERROR(load_quotas());
  RETURN_IF_ERROR(rebuild_roles());
  RETURN_IF_ERROR(load_revocations());
  if (!store_->shared()) return Status::ok();
  {
    ASSIGN_OR_RETURN(auto nodes, store_->list_nodes());
    std::unique_lock lock(catalog_mu_);
    for (auto& n : nodes) nodes_[n.name] = std::move(n);
  }
  return store_->watch(loaded_at + 1, [this](const store::Change& c) { apply_change(c); });
}

Result<VolumeService::NameHold> VolumeService::hold_name(const std::map<std::string, std::string>& listed,
                                                         std::set<std::string>* held,
                                                         const std::string& name, const char* kind) {
  std::unique_lock lock(catalog_mu_);
  if (listed.count(name) || held->count(name)) {
    return Status(Code::kAlreadyExists, "name_taken", std::string(kind) + " name '" + name + "' already exists");
  }
  held->insert(name);
  return NameHold(&catalog_mu_, held, name);
}

// Reserves the name, then store (state creating) → disk → ready: a crash at any point leaves a
// record that recovery can undo, and a failure undoes what was done.
Result<std::shared_ptr<const VolumeRecord>> VolumeService::make_volume(
    VolumeRecord rec, const std::function<Status(const std::string& id)>& make_on_disk) {
  ASSIGN_OR_RETURN(NameHold name, hold_name(volume_names_, &reserved_names_, rec.name, "volume"));
  CreatingId creating(this, rec.id);
  RETURN_IF_ERROR(store_->create_volume(rec));
  if (auto s = make_on_disk(rec.id); !s.is_ok()) {
    log_if_failed(store_->delete_volume(rec), "delete_volume", rec.id);
    return s;
  }
  // Mid-create: the record says "creating" and the image exists (recovery must undo both).
  crash_point("on_disk", "volume.make");
  rec.state = RecordState::kReady;
  if (auto s = store_->update_volume(rec); !s.is_ok()) {
    log_if_failed(driver_->remove(rec.id), "remove", rec.id);
    log_if_failed(store_->delete_volume(rec), "delete_volume", rec.id);
    return s;
  }
  auto shared = std::make_shared<const VolumeRecord>(std::move(rec));
  put_volume(shared);
  return shared;
}

// The one list of methods: what each is (its rule service/api and gRPC path), which resources
// it names and what it needs on them, whether it changes state (audited write-ahead) and where
// it runs. The pipeline enforces all of it before the handler — a member function named here.
void VolumeService::register_methods(MethodTable* t) {
  using namespace v1;
  constexpr auto kMutates = Effect::kMutates;
  constexpr auto kDriverIo = Work::kDriverIo;
  const ResourceCheck volume_read = volume_field("volume", &VolumeRef::volume, Access::kRead);
  const ResourceCheck volume_write = volume_field("volume", &VolumeRef::volume, Access::kWrite);

  // ---- volume.* (volume_methods.cc)
  t->add({.service = "volume", .api = "create", .grpc_path = "/volguard.v1.VolguardVolume/Create",
          .effect = kMutates, .work = kDriverIo},
         this, &VolumeService::create_volume);
  // Read on the source volume or snapshot; the clone is owned by its creator.
  t->add({.service = "volume", .api = "clone", .grpc_path = "/volguard.v1.VolguardVolume/Clone",
          .resources = {volume_field("source", &CloneVolumeRequest::source, Access::kRead, Presence::kOptional),
                        snapshot_field("source_snapshot", &CloneVolumeRequest::source_snapshot,
                                       Access::kRead, Presence::kOptional)},
          .effect = kMutates, .work = kDriverIo},
         this, &VolumeService::clone_volume);
  t->add({.service = "volume", .api = "delete", .grpc_path = "/volguard.v1.VolguardVolume/Delete",
          .resources = {volume_field("volume", &VolumeRef::volume, Access::kAdmin)},
          .effect = kMutates, .work = kDriverIo},
         this, &VolumeService::delete_volume);
  // No I/O: served from the catalog.
  t->add({.service = "volume", .api = "inspect", .grpc_path = "/volguard.v1.VolguardVolume/Inspect",
          .resources = {volume_read}},
         this, &VolumeService::inspect_volume);
  // Write for labels and size; Admin for ACLs; an ownership admin for a new owner.
  t->add({.service = "volume", .api = "update", .grpc_path = "/volguard.v1.VolguardVolume/Update",
          .resources = {{.name = "volume",
                         .kind = ResourceKind::kVolume,
                         .ref = [](const Message& m) { return static_cast<const UpdateVolumeRequest&>(m).volume(); },
                         .need = [](const Message& m) {
                           const auto& r = static_cast<const UpdateVolumeRequest&>(m);
                           if (!r.owner().empty()) return Need{.access = Access::kAdmin, .ownership_admin = true};
                           const bool acl = !r.add_groups().empty() || !r.add_collaborators().empty() ||
                                            !r.remove_groups().empty() || !r.remove_collaborators().empty() ||
                                            !r.set_public().empty();
                           return Need{.access = acl ? Access::kAdmin : Access::kWrite};
                         }}},
          .effect = kMutates, .work = kDriverIo},
         this, &VolumeService::update_volume);
  // Only what the caller may read.
  t->add({.service = "volume", .api = "enumerate", .grpc_path = "/volguard.v1.VolguardVolume/Enumerate"},
         this, &VolumeService::enumerate_volumes);
  t->add({.service = "volume", .api = "stats", .grpc_path = "/volguard.v1.VolguardVolume/Stats",
          .resources = {volume_read}, .work = kDriverIo},
         this, &VolumeService::volume_stats);
  // Free space for new volumes (CSI GetCapacity), within the caller's quotas.
  t->add({.service = "volume", .api = "capacity", .grpc_path = "/volguard.v1.VolguardVolume/Capacity",
          .work = kDriverIo},
         this, &VolumeService::volume_capacity);

  // ---- volume.snapshot* (snapshot_methods.cc): a snapshot's access is its volume's, now.
  t->add({.service = "volume", .api = "snapshotcreate", .grpc_path = "/volguard.v1.VolguardVolume/SnapshotCreate",
          .resources = {volume_field("volume", &SnapshotCreateRequest::volume, Access::kWrite)},
          .effect = kMutates, .work = kDriverIo},
         this, &VolumeService::create_snapshot);
  t->add({.service = "volume", .api = "snapshotrestore",
          .grpc_path = "/volguard.v1.VolguardVolume/SnapshotRestore",
          .resources = {volume_field("volume", &SnapshotRestoreRequest::volume, Access::kWrite),
                        snapshot_field("snapshot", &SnapshotRestoreRequest::snapshot, Access::kRead)},
          .effect = kMutates, .work = kDriverIo},
         this, &VolumeService::restore_snapshot);
  // Read on the named volume, or every snapshot the caller may read.
  t->add({.service = "volume", .api = "snapshotenumerate",
          .grpc_path = "/volguard.v1.VolguardVolume/SnapshotEnumerate",
          .resources = {volume_field("volume", &SnapshotEnumerateRequest::volume, Access::kRead,
                                     Presence::kOptional)}},
         this, &VolumeService::enumerate_snapshots);
  t->add({.service = "volume", .api = "snapshotdelete", .grpc_path = "/volguard.v1.VolguardVolume/SnapshotDelete",
          .resources = {snapshot_field("snapshot", &SnapshotRef::snapshot, Access::kAdmin)},
          .effect = kMutates, .work = kDriverIo},
         this, &VolumeService::delete_snapshot);

  // ---- mountattach.* (mount_methods.cc): Write, except a read-only publish.
  t->add({.service = "mountattach", .api = "attach", .grpc_path = "/volguard.v1.VolguardMountAttach/Attach",
          .resources = {volume_field("volume", &AttachRequest::volume, Access::kWrite)},
          .effect = kMutates, .work = kDriverIo},
         this, &VolumeService::attach);
  t->add({.service = "mountattach", .api = "detach", .grpc_path = "/volguard.v1.VolguardMountAttach/Detach",
          .resources = {volume_field("volume", &AttachRequest::volume, Access::kWrite)},
          .effect = kMutates, .work = kDriverIo},
         this, &VolumeService::detach);
  t->add({.service = "mountattach", .api = "mount", .grpc_path = "/volguard.v1.VolguardMountAttach/Mount",
          .resources = {volume_field("volume", &MountRequest::volume, Access::kWrite)},
          .effect = kMutates, .work = kDriverIo},
         this, &VolumeService::mount);
  // The CSI node's bind of a staged volume into a pod: read for a read-only view, write for a
  // writable one.
  t->add({.service = "mountattach", .api = "publish", .grpc_path = "/volguard.v1.VolguardMountAttach/Publish",
          .resources = {{.name = "volume",
                         .kind = ResourceKind::kVolume,
                         .ref = [](const Message& m) { return static_cast<const PublishRequest&>(m).volume(); },
                         .need = [](const Message& m) {
                           return Need{.access = static_cast<const PublishRequest&>(m).read_only()
                                                     ? Access::kRead
                                                     : Access::kWrite};
                         }}},
          .effect = kMutates, .work = kDriverIo},
         this, &VolumeService::publish);
  t->add({.service = "mountattach", .api = "unpublish",
          .grpc_path = "/volguard.v1.VolguardMountAttach/Unpublish",
          .resources = {volume_field("volume", &MountRequest::volume, Access::kRead)},
          .effect = kMutates, .work = kDriverIo},
         this, &VolumeService::unpublish);
  t->add({.service = "mountattach", .api = "unmount", .grpc_path = "/volguard.v1.VolguardMountAttach/Unmount",
          .resources = {volume_write}, .effect = kMutates, .work = kDriverIo},
         this, &VolumeService::unmount);
  // CSI NodeExpandVolume: grow the volume and its filesystem where it is mounted (write).
  t->add({.service = "mountattach", .api = "expand", .grpc_path = "/volguard.v1.VolguardMountAttach/Expand",
          .resources = {volume_field("volume", &ExpandRequest::volume, Access::kWrite)},
          .effect = kMutates, .work = kDriverIo},
         this, &VolumeService::expand);

  // ---- role.* (role_methods.cc): RBAC only (roles have no owner).
  t->add({.service = "role", .api = "create", .grpc_path = "/volguard.v1.VolguardRole/Create", .effect = kMutates},
         this, &VolumeService::create_role);
  t->add({.service = "role", .api = "enumerate", .grpc_path = "/volguard.v1.VolguardRole/Enumerate"}, this,
         &VolumeService::enumerate_roles);
  t->add({.service = "role", .api = "inspect", .grpc_path = "/volguard.v1.VolguardRole/Inspect"}, this,
         &VolumeService::inspect_role);
  t->add({.service = "role", .api = "update", .grpc_path = "/volguard.v1.VolguardRole/Update", .effect = kMutates},
         this, &VolumeService::update_role);
  t->add({.service = "role", .api = "delete", .grpc_path = "/volguard.v1.VolguardRole/Delete", .effect = kMutates},
         this, &VolumeService::delete_role);

  // ---- key.* (key_methods.cc): KEK rotation, for whoever the rules allow key.rotate (admins).
  t->add({.service = "key", .api = "rotate", .grpc_path = "/volguard.v1.VolguardKey/Rotate", .effect = kMutates},
         this, &VolumeService::rotate_keys);
  // ---- token.* (token_methods.cc): revocations, admins only by default (token.revoke).
  t->add({.service = "token", .api = "revoke", .grpc_path = "/volguard.v1.VolguardToken/Revoke", .effect = kMutates},
         this, &VolumeService::revoke_token);
  t->add({.service = "token", .api = "enumerate", .grpc_path = "/volguard.v1.VolguardToken/Enumerate"}, this,
         &VolumeService::enumerate_revocations);
  // ---- node.* (cluster.cc): the cluster's nodes and their liveness.
  t->add({.service = "node", .api = "enumerate", .grpc_path = "/volguard.v1.VolguardNode/Enumerate"},
         this, &VolumeService::enumerate_nodes);
  // ---- identity.* (identity_methods.cc)
  t->add<Empty, VersionResponse>(
      {.service = "identity", .api = "version", .grpc_path = "/volguard.v1.VolguardIdentity/Version"},
      [](Call&, const Empty&, VersionResponse* resp) {
        resp->set_version(kVersion);
        resp->set_api("volguard.v1");
        return Status::ok();
      });
  t->add({.service = "identity", .api = "whoami", .grpc_path = "/volguard.v1.VolguardIdentity/WhoAmI"}, this,
         &VolumeService::whoami);
  // `auth can-i`: the pipeline's own decision, explained.
  t->add({.service = "identity", .api = "capabilities", .grpc_path = "/volguard.v1.VolguardIdentity/Capabilities"},
         this, &VolumeService::capabilities);

  // ---- quota.* (quota_methods.cc): set by quota admins (default: system.admin only); shown
  // to whom they apply, or to whoever may set them.
  t->add({.service = "quota", .api = "set", .grpc_path = "/volguard.v1.VolguardQuota/Set", .effect = kMutates},
         this, &VolumeService::set_quota);
  t->add({.service = "quota", .api = "show", .grpc_path = "/volguard.v1.VolguardQuota/Show"}, this,
         &VolumeService::show_quota);
}

}  // namespace volguard::service

namespace volguard::service {

std::string VolumeService::describe_for_recovery(const std::string& resource,
                                                 const std::string& params) const {
  auto describe_volume = [this](const std::string& ref) -> std::string {
    auto v = find_volume(ref);
    if (!v) return "";
    auto st = driver_->status(v->id);
    return "volume " + v->id + " (" + v->name + ") is in the store, " +
           (st.is_ok() && st->exists ? "on disk" : "NOT on disk");
  };
  auto describe_snapshot = [this](const std::string& ref) -> std::string {
    auto s = find_snapshot(ref);
    if (!s) return "";
    return "snapshot " + s->id + " (" + s->name + ") of volume " + s->volume_id +
           " is in the store, " + (driver_->snapshot_exists(s->id) ? "on disk" : "NOT on disk");
  };
  if (resource.rfind("volume/", 0) == 0) {
    const std::string id = resource.substr(7);
    std::string d = describe_volume(id);
    return d.empty() ? "volume " + id + " is not in the store" : d;
  }
  if (resource.rfind("snapshot/", 0) == 0) {
    const std::string id = resource.substr(9);
    std::string d = describe_snapshot(id);
    return d.empty() ? "snapshot " + id + " is not in the store" : d;
  }
  // A create names no resource before it runs: look for the name it asked for.
  auto j = nlohmann::json::parse(params, nullptr, false);
  if (j.is_object() && j.contains("name") && j["name"].is_string()) {
    const std::string name = j["name"].get<std::string>();
    if (std::string d = describe_volume(name); !d.empty()) return d;
    if (std::string d = describe_snapshot(name); !d.empty()) return d;
    return "nothing named " + name + " is in the store";
  }
  return resource.empty() ? "no resource named" : resource + ": not a volume or snapshot";
}

}  // namespace volguard::service
