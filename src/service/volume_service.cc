#include "service/volume_service.h"

#include <openssl/rand.h>
#include <sys/statvfs.h>
#include <spdlog/spdlog.h>

#include <ctime>
#include <random>
#include <nlohmann/json.hpp>
#include <filesystem>

#include "common/text.h"
#include "volguard.pb.h"

namespace volguard::service {

namespace fs = std::filesystem;
using store::RecordState;
using store::SnapshotRecord;
using store::VolumeRecord;

namespace {

// Cleanup that cannot undo the caller's failure (an undo, a recovery step): a failure is not the
// caller's answer, but it must never be silent — recovery at the next start finishes the job.
void log_if_failed(const Status& s, const char* what, const std::string& id) {
  if (!s.is_ok()) spdlog::warn("{} {}: {} (left for recovery at the next start)", what, id, s.to_string());
}

// "owner O; groups a/eng:w; collaborators a/bob:r; public r": what a new volume was created
// with, for its audit record (an auditor must see the grants it started with).
std::string grants_text(const ownership::Ownership& o) {
  auto list = [](const std::map<std::string, ownership::Access>& m) {
    std::string out;
    for (const auto& [who, a] : m) out += (out.empty() ? "" : ",") + who + ":" + ownership::access_name(a);
    return out.empty() ? std::string("none") : out;
  };
  return "owner " + (o.owner.empty() ? std::string("none") : o.owner) + "; groups " + list(o.groups) +
         "; collaborators " + list(o.collaborators) + "; public " +
         (o.public_access == ownership::Access::kNone ? std::string("none")
                                                      : std::string(ownership::access_name(o.public_access)));
}

std::string new_id() {
  unsigned char rnd[8];
  if (RAND_bytes(rnd, sizeof rnd) != 1) {
    // OpenSSL's generator failed (it should not): the kernel's, never uninitialised bytes.
    std::random_device dev;
    for (auto& b : rnd) b = static_cast<unsigned char>(dev());
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : rnd) {
    out.push_back(hex[b >> 4]);
    out.push_back(hex[b & 15]);
  }
  return out;
}

int64_t now_unix() { return static_cast<int64_t>(std::time(nullptr)); }

constexpr size_t kIdLength = 16;

// Server ids are 16 lowercase hex digits (new_id); no name may take that shape.
bool looks_like_id(const std::string& ref) {
  if (ref.size() != kIdLength) return false;
  for (char c : ref) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Status invalid(const std::string& field, const std::string& why) {
  return Status(Code::kInvalidArgument, "invalid_" + field, field + ": " + why);
}

// Volume and snapshot names: safe in logs, file names and URLs.
Status check_name(const std::string& field, const std::string& name) {
  if (name.empty()) return invalid(field, "is required");
  if (name.size() > 128) return invalid(field, "must be at most 128 characters");
  if (name[0] == '.' || name[0] == '-') return invalid(field, "'" + name + "' must not start with '.' or '-'");
  if (looks_like_id(name)) {
    return Status(Code::kInvalidArgument, "name_looks_like_id",
                  field + ": '" + name + "' has the shape of an id (16 hex digits); ids and names "
                  "are separate, so pick a name that is not");
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_';
    if (!ok) return invalid(field, "'" + name + "' may contain only letters, digits, '.', '-', '_'");
  }
  return Status::ok();
}

Status check_labels(const google::protobuf::Map<std::string, std::string>& labels) {
  for (const auto& [k, v] : labels) {
    if (k.empty() || k.size() > 253) return invalid("labels", "keys must be 1..253 characters");
    if (v.size() > 1024) return invalid("labels", "value of '" + k + "' exceeds 1024 characters");
    for (char c : k + v) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        return invalid("labels", "'" + k + "' contains control characters");
      }
    }
  }
  return Status::ok();
}

Result<ownership::Access> parse_grant(const std::string& field, const std::string& who,
                                      const std::string& text) {
  auto a = ownership::parse_access(text);
  if (!a) return invalid(field, who + ": access '" + text + "' must be r, w or a");
  return *a;
}

void fill_ownership(const ownership::Ownership& o, v1::Ownership* out) {
  out->set_owner(o.owner);
  for (const auto& [k, v] : o.groups) (*out->mutable_groups())[k] = std::string(1, ownership::access_letter(v));
  for (const auto& [k, v] : o.collaborators) {
    (*out->mutable_collaborators())[k] = std::string(1, ownership::access_letter(v));
  }
  out->set_public_(o.public_access == ownership::Access::kNone
                       ? ""
                       : std::string(1, ownership::access_letter(o.public_access)));
}

// A snapshot shows its volume's ownership: that is what decides access to it.
void fill_snapshot(const SnapshotRecord& s, const ownership::Ownership& o, v1::Snapshot* out) {
  out->set_id(s.id);
  out->set_name(s.name);
  out->set_volume_id(s.volume_id);
  out->set_size_bytes(s.size_bytes);
  fill_ownership(o, out->mutable_ownership());
  out->set_created_at(rfc3339(s.created_at));
}

}  // namespace

VolumeService::VolumeService(const config::Config& config,
                             std::unique_ptr<store::MetadataStore> store,
                             std::unique_ptr<driver::VolumeDriver> driver)
    : config_(config), store_(std::move(store)), driver_(std::move(driver)) {}

void VolumeService::set_pipeline(Pipeline* pipeline) { pipeline_ = pipeline; }

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

const ownership::Ownership* VolumeService::snapshot_ownership(
    const SnapshotRecord& s, std::shared_ptr<const VolumeRecord>* keep) const {
  *keep = find_volume(s.volume_id);
  return *keep ? &(*keep)->ownership : nullptr;
}

std::shared_ptr<std::mutex> VolumeService::op_lock(const std::string& id) {
  std::lock_guard lock(op_locks_mu_);
  auto& m = op_locks_[id];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

void VolumeService::put_volume(std::shared_ptr<const VolumeRecord> rec) {
  std::unique_lock lock(catalog_mu_);
  reserved_names_.erase(rec->name);
  if (auto it = volumes_.find(rec->id); it != volumes_.end() && it->second->name != rec->name) {
    volume_names_.erase(it->second->name);
  }
  volume_names_[rec->name] = rec->id;
  volumes_[rec->id] = std::move(rec);
}

void VolumeService::erase_volume(const std::string& id) {
  std::unique_lock lock(catalog_mu_);
  if (auto it = volumes_.find(id); it != volumes_.end()) {
    volume_names_.erase(it->second->name);
    volumes_.erase(it);
  }
  runtime_.erase(id);
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
    if (!rec || !call.may(rec->ownership, ownership::Access::kWrite)) {
      return Status(Code::kPermissionDenied, "mount_path_on_other_volume",
                    "path: '" + path + "' lies on a volume you may not write");
    }
    return Status::ok();
  };
  return driver::resolve_mount_target(config_.mount_roots, path, checked);
}

Status VolumeService::rebuild_roles() {
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
  if (pipeline_) pipeline_->set_roles(std::make_shared<const policy::RoleSet>(std::move(roles)));
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
  auto vols = store_->list_volumes();
  if (!vols) return vols.status();
  auto snaps = store_->list_snapshots();
  if (!snaps) return snaps.status();
  std::set<std::string> kept_volumes, kept_snapshots;
  for (const auto& s : *snaps) {
    if (s.state != RecordState::kReady || !driver_->snapshot_exists(s.id)) {
      spdlog::warn("recovery: removing {} snapshot {} ({})", store::state_name(s.state), s.id, s.name);
      log_if_failed(driver_->remove_snapshot(s.id), "remove_snapshot", s.id);
      log_if_failed(store_->delete_snapshot(s.id), "delete_snapshot", s.id);
      continue;
    }
    kept_snapshots.insert(s.id);
    auto rec = std::make_shared<const SnapshotRecord>(s);
    snapshots_[s.id] = rec;
    snapshot_names_[s.name] = s.id;
  }
  for (const auto& v : *vols) {
    auto st = driver_->status(v.id);
    bool on_disk = st.is_ok() && st->exists;
    if (v.state != RecordState::kReady || !on_disk) {
      // A create or delete that a crash interrupted: finish undoing it, so that store and disk
      // agree and no half-made volume is ever served.
      spdlog::warn("recovery: removing {} volume {} ({}){}", store::state_name(v.state), v.id,
                   v.name, on_disk ? "" : ", not on disk");
      if (on_disk) {
        log_if_failed(driver_->unmount(v.id), "unmount", v.id);
        log_if_failed(driver_->detach(v.id), "detach", v.id);
        log_if_failed(driver_->remove(v.id), "remove", v.id);
      }
      log_if_failed(store_->delete_volume(v.id), "delete_volume", v.id);
      continue;
    }
    kept_volumes.insert(v.id);
    VolumeRecord rec = v;
    if (migrate_legacy_groups(&rec.ownership, "volume " + v.id + " (" + v.name + ")")) {
      if (auto s = store_->update_volume(rec); !s.is_ok()) return s;
    }
    volumes_[v.id] = std::make_shared<const VolumeRecord>(std::move(rec));
    volume_names_[v.name] = v.id;
    if (!st->device.empty() || !st->mount_path.empty()) runtime_[v.id] = {st->device, st->mount_path};
  }
  // Files with no record: left by a crash between the driver and the store.
  if (auto ids = driver_->volume_ids(); ids.is_ok()) {
    for (const auto& id : *ids) {
      if (!kept_volumes.count(id)) {
        spdlog::warn("recovery: removing orphan volume file {}", id);
        log_if_failed(driver_->unmount(id), "unmount", id);
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
  if (auto s = load_quotas(); !s.is_ok()) return s;
  return rebuild_roles();
}

// Reserves the name, then store (state creating) → disk → ready: a crash at any point leaves a
// record that recovery can undo, and a failure undoes what was done.
Result<std::shared_ptr<const VolumeRecord>> VolumeService::make_volume(
    VolumeRecord rec, const std::function<Status(const std::string& id)>& make_on_disk) {
  {
    std::unique_lock lock(catalog_mu_);
    if (volume_names_.count(rec.name) || reserved_names_.count(rec.name)) {
      return Status(Code::kAlreadyExists, "name_taken",
                    "volume name '" + rec.name + "' already exists");
    }
    reserved_names_.insert(rec.name);
  }
  auto release = [&] {
    std::unique_lock lock(catalog_mu_);
    reserved_names_.erase(rec.name);
  };
  if (auto s = store_->create_volume(rec); !s.is_ok()) {
    release();
    return s;
  }
  if (auto s = make_on_disk(rec.id); !s.is_ok()) {
    log_if_failed(store_->delete_volume(rec.id), "delete_volume", rec.id);
    release();
    return s;
  }
  rec.state = RecordState::kReady;
  if (auto s = store_->update_volume(rec); !s.is_ok()) {
    log_if_failed(driver_->remove(rec.id), "remove", rec.id);
    log_if_failed(store_->delete_volume(rec.id), "delete_volume", rec.id);
    release();
    return s;
  }
  auto shared = std::make_shared<const VolumeRecord>(std::move(rec));
  put_volume(shared);
  return shared;
}

void VolumeService::register_methods(MethodTable* t) {
  using namespace v1;
  using ownership::Access;
  auto vol = [](auto getter, Access a, bool optional = false) {
    return ResourceCheck{ResourceKind::kVolume,
                         [getter](const Message& m) { return getter(m); },
                         [a](const Message&) { return Need{a, false}; }, optional};
  };
  auto snap = [](auto getter, Access a, bool optional = false) {
    return ResourceCheck{ResourceKind::kSnapshot,
                         [getter](const Message& m) { return getter(m); },
                         [a](const Message&) { return Need{a, false}; }, optional};
  };
  auto ref_volume = [](const Message& m) { return static_cast<const VolumeRef&>(m).volume(); };

  // ---- volume.create
  t->add<CreateVolumeRequest, VolumeResponse>(
      "volume", "create", "/volguard.v1.VolguardVolume/Create", {}, true, true,
      [this](Call& call, const CreateVolumeRequest& req, VolumeResponse* resp) -> Status {
        if (auto s = check_name("name", req.name()); !s.is_ok()) return s;
        auto size = parse_volume_size(req.size().empty() ? "1G" : req.size(),
                                      config_.limits.max_volume_size);
        if (!size) return size.status();
        auto fs_type = driver::parse_fs(req.fs().empty() ? "ext4" : req.fs());
        if (!fs_type) return invalid("fs", fs_type.status().message());
        if (auto s = check_labels(req.labels()); !s.is_ok()) return s;
        VolumeRecord rec;
        rec.id = new_id();
        rec.name = req.name();
        rec.size_bytes = *size;
        rec.fs = driver::fs_name(*fs_type);
        rec.labels = {req.labels().begin(), req.labels().end()};
        if (auto s = check_label_bounds("labels", rec.labels); !s.is_ok()) return s;
        rec.created_at = now_unix();
        const identity::Identity& who = *call.who;
        // Guests and security-off create unowned (public) volumes.
        if (call.security_enabled && !who.guest) rec.ownership.owner = who.principal();
        for (const auto& [g, a] : req.groups()) {
          auto access = parse_grant("groups", g, a);
          if (!access) return access.status();
          auto group = qualify_group(who, g);
          if (!group) return group.status();
          rec.ownership.groups[*group] = *access;
        }
        for (const auto& [u, a] : req.collaborators()) {
          auto access = parse_grant("collaborators", u, a);
          if (!access) return access.status();
          auto principal = qualify_user(who, u);
          if (!principal) return principal.status();
          rec.ownership.collaborators[*principal] = *access;
        }
        if (!req.public_().empty()) {
          auto access = parse_grant("public", "public", req.public_());
          if (!access) return access.status();
          rec.ownership.public_access = *access;
        }
        call.resource_for_log = "volume/" + rec.id;
        call.audit_message = "Volume " + rec.id + " created (name " + rec.name + ", size " +
                             driver::format_size(rec.size_bytes) + ", fs " + rec.fs + "; " +
                             grants_text(rec.ownership) + ")";
        auto held = reserve_new_volume(call, &rec);  // released once the volume is in the catalog
        if (!held) return held.status();
        auto made = make_volume(std::move(rec), [&](const std::string& id) {
          return driver_->create(id, *size, *fs_type);
        });
        if (!made) return made.status();
        const auto& shared = *made;
        fill_volume(*shared, resp->mutable_volume());
        return Status::ok();
      });

  // ---- volume.clone: Read on the source volume or snapshot; the clone is owned by its creator.
  t->add<CloneVolumeRequest, VolumeResponse>(
      "volume", "clone", "/volguard.v1.VolguardVolume/Clone",
      {vol([](const Message& m) { return static_cast<const CloneVolumeRequest&>(m).source(); },
           Access::kRead, true),
       snap([](const Message& m) {
              return static_cast<const CloneVolumeRequest&>(m).source_snapshot();
            },
            Access::kRead, true)},
      true, true,
      [this](Call& call, const CloneVolumeRequest& req, VolumeResponse* resp) -> Status {
        const auto& src_vol = call.volumes[0];
        const auto& src_snap = call.snapshots[0];
        if ((src_vol != nullptr) == (src_snap != nullptr)) {
          return invalid("source", "give exactly one of source (volume) or source_snapshot");
        }
        if (auto s = check_name("name", req.name()); !s.is_ok()) return s;
        if (auto s = check_labels(req.labels()); !s.is_ok()) return s;
        VolumeRecord rec;
        rec.id = new_id();
        rec.name = req.name();
        rec.created_at = now_unix();
        rec.labels = {req.labels().begin(), req.labels().end()};
        if (auto s = check_label_bounds("labels", rec.labels); !s.is_ok()) return s;
        if (src_vol) {
          rec.size_bytes = src_vol->size_bytes;
          rec.fs = src_vol->fs;
          rec.source_volume = src_vol->id;
        } else {
          auto parent = find_volume(src_snap->volume_id);
          rec.size_bytes = src_snap->size_bytes;
          rec.fs = parent ? parent->fs : "ext4";
          rec.source_snapshot = src_snap->id;
          rec.source_volume = src_snap->volume_id;
        }
        if (call.security_enabled && !call.who->guest) rec.ownership.owner = call.who->principal();
        call.resource_for_log = "volume/" + rec.id;
        call.audit_message = "Volume " + rec.id + " created as a clone of " +
                             (src_vol ? "volume " + src_vol->id : "snapshot " + src_snap->id +
                                                                      " of volume " + src_snap->volume_id) +
                             " (name " + rec.name + "; " + grants_text(rec.ownership) + ")";
        auto held = reserve_new_volume(call, &rec);  // released once the volume is in the catalog
        if (!held) return held.status();
        auto made = make_volume(std::move(rec), [&](const std::string& id) {
          if (!src_vol) return driver_->clone_snapshot(src_snap->id, id);
          auto lock = op_lock(src_vol->id);
          std::lock_guard guard(*lock);
          return driver_->clone_volume(src_vol->id, id);
        });
        if (!made) return made.status();
        const auto& shared = *made;
        fill_volume(*shared, resp->mutable_volume());
        return Status::ok();
      });

  // ---- volume.delete: Admin.
  t->add<VolumeRef, Empty>(
      "volume", "delete", "/volguard.v1.VolguardVolume/Delete", {vol(ref_volume, Access::kAdmin)}, true,
      true, [this](Call& call, const VolumeRef&, Empty*) -> Status {
        auto lock = op_lock(call.volumes[0]->id);
        std::lock_guard guard(*lock);
        auto current = find_volume(call.volumes[0]->id);
        if (!current) return Status(Code::kNotFound, "volume_not_found", "volume was deleted");
        auto st = driver_->status(current->id);
        if (st.is_ok() && (!st->mount_path.empty() || !st->device.empty())) {
          return Status(Code::kFailedPrecondition, "volume_in_use",
                        "volume " + current->name + " is " +
                            (st->mount_path.empty() ? "attached at " + st->device
                                                    : "mounted at " + st->mount_path) +
                            "; unmount and detach it first");
        }
        // A snapshot's access is its volume's access: deleting the volume would leave its
        // snapshots with no one's ACL to follow, so they go first (snapshotcreate takes the same
        // op lock, so none can appear meanwhile).
        {
          std::shared_lock clock(catalog_mu_);
          size_t count = 0;
          for (const auto& [sid, snap] : snapshots_) count += snap->volume_id == current->id;
          if (count > 0) {
            return Status(Code::kFailedPrecondition, "volume_has_snapshots",
                          "volume " + current->name + " has " + std::to_string(count) +
                              " snapshot(s); delete them first");
          }
        }
        VolumeRecord rec = *current;
        rec.state = RecordState::kDeleting;
        if (auto s = store_->update_volume(rec); !s.is_ok()) return s;
        if (auto s = driver_->remove(rec.id); !s.is_ok()) {
          rec.state = RecordState::kReady;
          log_if_failed(store_->update_volume(rec), "mark ready again after a failed remove:", rec.id);
          return s;
        }
        if (auto s = store_->delete_volume(rec.id); !s.is_ok()) return s;
        erase_volume(rec.id);
        return Status::ok();
      });

  // ---- volume.inspect: Read. No I/O: served from the catalog.
  t->add<VolumeRef, VolumeResponse>(
      "volume", "inspect", "/volguard.v1.VolguardVolume/Inspect", {vol(ref_volume, Access::kRead)}, false,
      false, [this](Call& call, const VolumeRef&, VolumeResponse* resp) -> Status {
        fill_volume(*call.volumes[0], resp->mutable_volume());
        return Status::ok();
      });

  // ---- volume.update: Write for labels/size; Admin for ACLs; ownership admin for owner.
  ResourceCheck update_check{
      ResourceKind::kVolume,
      [](const Message& m) { return static_cast<const UpdateVolumeRequest&>(m).volume(); },
      [](const Message& m) {
        const auto& r = static_cast<const UpdateVolumeRequest&>(m);
        Need n{Access::kWrite, false};
        if (!r.add_groups().empty() || !r.add_collaborators().empty() ||
            !r.remove_groups().empty() || !r.remove_collaborators().empty() ||
            !r.set_public().empty()) {
          n.access = Access::kAdmin;
        }
        if (!r.owner().empty()) n = Need{Access::kAdmin, true};
        return n;
      },
      false};
  t->add<UpdateVolumeRequest, VolumeResponse>(
      "volume", "update", "/volguard.v1.VolguardVolume/Update", {update_check}, true, true,
      [this](Call& call, const UpdateVolumeRequest& req, VolumeResponse* resp) -> Status {
        auto lock = op_lock(call.volumes[0]->id);
        std::lock_guard guard(*lock);
        auto current = find_volume(call.volumes[0]->id);
        if (!current) return Status(Code::kNotFound, "volume_not_found", "volume was deleted");
        VolumeRecord rec = *current;
        google::protobuf::Map<std::string, std::string> set_labels = req.set_labels();
        if (auto s = check_labels(set_labels); !s.is_ok()) return s;
        for (const auto& [k, v] : set_labels) rec.labels[k] = v;
        for (const auto& k : req.remove_labels()) rec.labels.erase(k);
        if (!set_labels.empty()) {
          if (auto s = check_label_bounds("set_labels", rec.labels); !s.is_ok()) return s;
        }
        for (const auto& [g, a] : req.add_groups()) {
          auto access = parse_grant("add_groups", g, a);
          if (!access) return access.status();
          auto group = qualify_group(*call.who, g);
          if (!group) return group.status();
          rec.ownership.groups[*group] = *access;
        }
        for (const auto& g : req.remove_groups()) {
          // A legacy unqualified key (left by recovery when several issuers made it ambiguous)
          // matches no one; removing it by its bare name must still work.
          if (g.find('/') == std::string::npos && rec.ownership.groups.erase(g) > 0) continue;
          auto group = qualify_group(*call.who, g);
          if (!group) return group.status();
          rec.ownership.groups.erase(*group);
        }
        for (const auto& [u, a] : req.add_collaborators()) {
          auto access = parse_grant("add_collaborators", u, a);
          if (!access) return access.status();
          auto principal = qualify_user(*call.who, u);
          if (!principal) return principal.status();
          rec.ownership.collaborators[*principal] = *access;
        }
        for (const auto& u : req.remove_collaborators()) {
          auto principal = qualify_user(*call.who, u);
          if (!principal) return principal.status();
          rec.ownership.collaborators.erase(*principal);
        }
        if (!req.set_public().empty()) {
          if (req.set_public() == "none") {
            rec.ownership.public_access = Access::kNone;
          } else {
            auto access = parse_grant("set_public", "public", req.set_public());
            if (!access) return access.status();
            rec.ownership.public_access = *access;
          }
        }
        if (!req.owner().empty()) {
          // A transfer keeps the ACLs (OpenStorage clears them).
          auto principal = qualify_user(*call.who, req.owner());
          if (!principal) return principal.status();
          if (*principal == "*") return invalid("owner", "must name one user");
          rec.ownership.owner = *principal;
        }
        QuotaReservation growth;  // held until the grown record is in the catalog
        if (!req.size().empty()) {
          auto size = parse_volume_size(req.size(), config_.limits.max_volume_size);
          if (!size) return size.status();
          if (*size < rec.size_bytes) {
            return Status(Code::kOutOfRange, "shrink_refused",
                          "size: volumes only grow (" + driver::format_size(rec.size_bytes) +
                              " → " + driver::format_size(*size) + ")");
          }
          if (*size > rec.size_bytes) {
            auto held = reserve_for(call, rec, {*size - rec.size_bytes, 0, 0});
            if (!held) return held.status();
            growth = std::move(held).value();
            auto fs_type = driver::parse_fs(rec.fs);
            if (!fs_type) return fs_type.status();
            if (auto s = driver_->resize(rec.id, *size, *fs_type); !s.is_ok()) return s;
            rec.size_bytes = *size;
          }
        }
        if (auto s = store_->update_volume(rec); !s.is_ok()) return s;
        // Say exactly what changed: auditors look for access and ownership changes.
        std::vector<std::string> what;
        if (rec.ownership.owner != current->ownership.owner) {
          what.push_back("ownership transferred from " + current->ownership.owner + " to " +
                         rec.ownership.owner);
        }
        for (const auto& [g, a] : rec.ownership.groups) {
          auto old_it = current->ownership.groups.find(g);
          if (old_it == current->ownership.groups.end() || old_it->second != a) {
            what.push_back(std::string("access added: group ") + g + ":" + ownership::access_letter(a));
          }
        }
        for (const auto& [g, a] : current->ownership.groups) {
          if (!rec.ownership.groups.count(g)) what.push_back("access removed: group " + g);
        }
        for (const auto& [u, a] : rec.ownership.collaborators) {
          auto old_it = current->ownership.collaborators.find(u);
          if (old_it == current->ownership.collaborators.end() || old_it->second != a) {
            what.push_back(std::string("access added: collaborator ") + u + ":" + ownership::access_letter(a));
          }
        }
        for (const auto& [u, a] : current->ownership.collaborators) {
          if (!rec.ownership.collaborators.count(u)) what.push_back("access removed: collaborator " + u);
        }
        if (rec.ownership.public_access != current->ownership.public_access) {
          what.push_back(rec.ownership.public_access == Access::kNone
                             ? std::string("access removed: public")
                             : std::string("access added: public:") +
                                   ownership::access_letter(rec.ownership.public_access));
        }
        if (rec.size_bytes != current->size_bytes) {
          what.push_back("resized to " + driver::format_size(rec.size_bytes));
        }
        if (rec.labels != current->labels) what.push_back("labels updated");
        std::string joined;
        for (const auto& w : what) joined += (joined.empty() ? "" : "; ") + w;
        call.audit_message = "Volume " + rec.id + (joined.empty() ? " updated (no change)" : " " + joined);
        auto shared = std::make_shared<const VolumeRecord>(rec);
        put_volume(shared);
        fill_volume(*shared, resp->mutable_volume());
        return Status::ok();
      });

  // ---- volume.enumerate: only what the caller may read.
  t->add<EnumerateRequest, EnumerateResponse>(
      "volume", "enumerate", "/volguard.v1.VolguardVolume/Enumerate", {}, false, false,
      [this](Call& call, const EnumerateRequest& req, EnumerateResponse* resp) -> Status {
        std::vector<std::shared_ptr<const VolumeRecord>> visible;
        {
          std::shared_lock lock(catalog_mu_);
          for (const auto& [id, rec] : volumes_) {
            if (!req.owner().empty() && rec->ownership.owner != req.owner()) continue;
            bool labels_match = true;
            for (const auto& [k, v] : req.labels()) {
              auto it = rec->labels.find(k);
              if (it == rec->labels.end() || it->second != v) {
                labels_match = false;
                break;
              }
            }
            if (!labels_match || !call.may(rec->ownership, Access::kRead)) continue;
            visible.push_back(rec);
          }
        }
        for (const auto& rec : visible) fill_volume(*rec, resp->add_volumes());
        return Status::ok();
      });

  // ---- volume.stats: Read.
  t->add<VolumeRef, StatsResponse>(
      "volume", "stats", "/volguard.v1.VolguardVolume/Stats", {vol(ref_volume, Access::kRead)}, false, true,
      [this](Call& call, const VolumeRef&, StatsResponse* resp) -> Status {
        auto st = driver_->status(call.volumes[0]->id);
        if (!st) return st.status();
        resp->set_volume(call.volumes[0]->id);
        resp->set_size_bytes(st->size_bytes);
        resp->set_allocated_bytes(st->allocated_bytes);
        resp->set_fs_used_bytes(st->fs_used_bytes);
        resp->set_fs_total_bytes(st->fs_total_bytes);
        return Status::ok();
      });

  // ---- volume.snapshotcreate: Write on the volume; the snapshot carries its ownership.
  t->add<SnapshotCreateRequest, SnapshotResponse>(
      "volume", "snapshotcreate", "/volguard.v1.VolguardVolume/SnapshotCreate",
      {vol([](const Message& m) { return static_cast<const SnapshotCreateRequest&>(m).volume(); },
           Access::kWrite)},
      true, true,
      [this](Call& call, const SnapshotCreateRequest& req, SnapshotResponse* resp) -> Status {
        if (auto s = check_name("name", req.name()); !s.is_ok()) return s;
        auto lock = op_lock(call.volumes[0]->id);
        std::lock_guard guard(*lock);
        auto volume = find_volume(call.volumes[0]->id);
        if (!volume) return Status(Code::kNotFound, "volume_not_found", "volume was deleted");
        auto held = reserve_for(call, *volume, {volume->size_bytes, 0, 1});  // released once listed
        if (!held) return held.status();
        SnapshotRecord rec;
        rec.id = new_id();
        rec.name = req.name();
        rec.volume_id = volume->id;
        rec.size_bytes = volume->size_bytes;
        // No ACL of its own: access is always the volume's, evaluated at request time.
        rec.created_at = now_unix();
        {
          std::unique_lock clock(catalog_mu_);
          if (snapshot_names_.count(rec.name) || reserved_snapshot_names_.count(rec.name)) {
            return Status(Code::kAlreadyExists, "name_taken",
                          "snapshot name '" + rec.name + "' already exists");
          }
          reserved_snapshot_names_.insert(rec.name);
        }
        auto release = [&] {
          std::unique_lock clock(catalog_mu_);
          reserved_snapshot_names_.erase(rec.name);
        };
        call.resource_for_log = "volume/" + volume->id + " snapshot/" + rec.id;
        if (auto s = store_->create_snapshot(rec); !s.is_ok()) {
          release();
          return s;
        }
        if (auto s = driver_->snapshot(volume->id, rec.id); !s.is_ok()) {
          log_if_failed(store_->delete_snapshot(rec.id), "delete_snapshot", rec.id);
          release();
          return s;
        }
        rec.state = RecordState::kReady;
        if (auto s = store_->update_snapshot(rec); !s.is_ok()) {
          log_if_failed(driver_->remove_snapshot(rec.id), "remove_snapshot", rec.id);
          log_if_failed(store_->delete_snapshot(rec.id), "delete_snapshot", rec.id);
          release();
          return s;
        }
        {
          std::unique_lock clock(catalog_mu_);
          reserved_snapshot_names_.erase(rec.name);
          snapshots_[rec.id] = std::make_shared<const SnapshotRecord>(rec);
          snapshot_names_[rec.name] = rec.id;
        }
        call.audit_message = "Snapshot " + rec.id + " of volume " + volume->id + " created";
        fill_snapshot(rec, volume->ownership, resp->mutable_snapshot());
        return Status::ok();
      });

  // ---- volume.snapshotrestore: Write on the volume and Read on the snapshot.
  t->add<SnapshotRestoreRequest, VolumeResponse>(
      "volume", "snapshotrestore", "/volguard.v1.VolguardVolume/SnapshotRestore",
      {vol([](const Message& m) { return static_cast<const SnapshotRestoreRequest&>(m).volume(); },
           Access::kWrite),
       snap([](const Message& m) {
              return static_cast<const SnapshotRestoreRequest&>(m).snapshot();
            },
            Access::kRead)},
      true, true,
      [this](Call& call, const SnapshotRestoreRequest&, VolumeResponse* resp) -> Status {
        const auto& volume = call.volumes[0];
        const auto& snapshot = call.snapshots[0];
        if (snapshot->volume_id != volume->id) {
          return Status(Code::kFailedPrecondition, "snapshot_of_other_volume",
                        "snapshot " + snapshot->name + " was taken of another volume (" +
                            snapshot->volume_id + "); clone it instead");
        }
        call.resource_for_log = "volume/" + volume->id + " snapshot/" + snapshot->id;
        auto lock = op_lock(volume->id);
        std::lock_guard guard(*lock);
        if (auto s = driver_->restore(volume->id, snapshot->id); !s.is_ok()) return s;
        call.audit_message = "Volume " + volume->id + " restored from snapshot " + snapshot->id;
        fill_volume(*volume, resp->mutable_volume());
        return Status::ok();
      });

  // ---- volume.snapshotenumerate: Read on the named volume (or all readable snapshots).
  t->add<SnapshotEnumerateRequest, SnapshotEnumerateResponse>(
      "volume", "snapshotenumerate", "/volguard.v1.VolguardVolume/SnapshotEnumerate",
      {vol([](const Message& m) { return static_cast<const SnapshotEnumerateRequest&>(m).volume(); },
           Access::kRead, true)},
      false, false,
      [this](Call& call, const SnapshotEnumerateRequest&, SnapshotEnumerateResponse* resp) -> Status {
        std::shared_lock lock(catalog_mu_);
        for (const auto& [id, rec] : snapshots_) {
          if (call.volumes[0] && rec->volume_id != call.volumes[0]->id) continue;
          auto parent = volumes_.find(rec->volume_id);
          if (parent == volumes_.end()) {
            // Its volume is gone (a record from before snapshots followed their volume):
            // ownership admins only.
            if (call.security_enabled && !pipeline_->admins().is_admin(*call.who)) continue;
            fill_snapshot(*rec, ownership::Ownership{}, resp->add_snapshots());
            continue;
          }
          if (!call.may(parent->second->ownership, Access::kRead)) continue;
          fill_snapshot(*rec, parent->second->ownership, resp->add_snapshots());
        }
        return Status::ok();
      });

  // ---- volume.snapshotdelete: Admin on the snapshot.
  t->add<SnapshotRef, Empty>(
      "volume", "snapshotdelete", "/volguard.v1.VolguardVolume/SnapshotDelete",
      {snap([](const Message& m) { return static_cast<const SnapshotRef&>(m).snapshot(); },
            Access::kAdmin)},
      true, true, [this](Call& call, const SnapshotRef&, Empty*) -> Status {
        const auto& s = call.snapshots[0];
        if (auto st = store_->delete_snapshot(s->id); !st.is_ok()) return st;
        log_if_failed(driver_->remove_snapshot(s->id), "remove_snapshot", s->id);
        std::unique_lock lock(catalog_mu_);
        snapshot_names_.erase(s->name);
        snapshots_.erase(s->id);
        return Status::ok();
      });

  // ---- mountattach: Write.
  t->add<VolumeRef, AttachResponse>(
      "mountattach", "attach", "/volguard.v1.VolguardMountAttach/Attach", {vol(ref_volume, Access::kWrite)},
      true, true, [this](Call& call, const VolumeRef&, AttachResponse* resp) -> Status {
        auto lock = op_lock(call.volumes[0]->id);
        std::lock_guard guard(*lock);
        auto dev = driver_->attach(call.volumes[0]->id);
        if (!dev) return dev.status();
        std::unique_lock clock(catalog_mu_);
        runtime_[call.volumes[0]->id].device = *dev;
        resp->set_device(*dev);
        return Status::ok();
      });
  t->add<VolumeRef, Empty>(
      "mountattach", "detach", "/volguard.v1.VolguardMountAttach/Detach", {vol(ref_volume, Access::kWrite)},
      true, true, [this](Call& call, const VolumeRef&, Empty*) -> Status {
        auto lock = op_lock(call.volumes[0]->id);
        std::lock_guard guard(*lock);
        if (auto s = driver_->detach(call.volumes[0]->id); !s.is_ok()) return s;
        std::unique_lock clock(catalog_mu_);
        runtime_.erase(call.volumes[0]->id);
        return Status::ok();
      });
  t->add<MountRequest, Empty>(
      "mountattach", "mount", "/volguard.v1.VolguardMountAttach/Mount",
      {vol([](const Message& m) { return static_cast<const MountRequest&>(m).volume(); },
           Access::kWrite)},
      true, true, [this](Call& call, const MountRequest& req, Empty*) -> Status {
        const auto& v = call.volumes[0];
        auto fs_type = driver::parse_fs(v->fs);
        if (!fs_type) return fs_type.status();
        auto lock = op_lock(v->id);
        std::lock_guard guard(*lock);
        // Resolved once; the driver mounts on this fd, never on the name.
        auto target = resolve_target(call, req.path(), {.require_empty = true});
        if (!target) return target.status();
        auto mounted = driver_->mount(v->id, *target, *fs_type);
        if (!mounted) return mounted.status();
        call.audit_message = "Volume " + v->id + " mounted at " + *mounted;
        auto st = driver_->status(v->id);
        std::unique_lock clock(catalog_mu_);
        runtime_[v->id] = {st.is_ok() ? st->device : "", *mounted};
        return Status::ok();
      });
  // ---- mountattach.publish / unpublish: the CSI node's bind of a staged volume into a pod.
  // Read access for a read-only view, write access for a writable one; audited like a mount.
  t->add<PublishRequest, Empty>(
      "mountattach", "publish", "/volguard.v1.VolguardMountAttach/Publish",
      {ResourceCheck{ResourceKind::kVolume,
                     [](const Message& m) { return static_cast<const PublishRequest&>(m).volume(); },
                     [](const Message& m) {
                       return Need{static_cast<const PublishRequest&>(m).read_only() ? Access::kRead
                                                                                    : Access::kWrite,
                                   false};
                     },
                     false}},
      true, true, [this](Call& call, const PublishRequest& req, Empty*) -> Status {
        const auto& v = call.volumes[0];
        if (req.staging_path().empty()) return invalid("staging_path", "is required");
        auto lock = op_lock(v->id);
        std::lock_guard guard(*lock);
        // The source is read, not written: the driver checks it is this volume's own mount.
        auto staging = driver::resolve_mount_target(config_.mount_roots, req.staging_path(), {});
        if (!staging) return staging.status();
        auto target = resolve_target(call, req.path(), {.create_last = true, .require_empty = true});
        if (!target) return target.status();
        auto bound = driver_->bind(v->id, *staging, *target, req.read_only());
        if (!bound) {
          driver::remove_created(*target);  // a refused publish leaves no directory behind
          return bound.status();
        }
        call.audit_message = "Volume " + v->id + " published at " + *bound +
                             (req.read_only() ? " (read-only)" : " (read-write)");
        return Status::ok();
      });
  t->add<MountRequest, Empty>(
      "mountattach", "unpublish", "/volguard.v1.VolguardMountAttach/Unpublish",
      {vol([](const Message& m) { return static_cast<const MountRequest&>(m).volume(); },
           Access::kRead)},
      true, true, [this](Call& call, const MountRequest& req, Empty*) -> Status {
        const auto& v = call.volumes[0];
        auto lock = op_lock(v->id);
        std::lock_guard guard(*lock);
        auto target = resolve_target(call, req.path(), {});
        if (!target) return target.status();
        if (target->mount_root) {
          // Unpublish takes down a bind, never the volume's own mount (that is unmount, which
          // needs write): a reader must not pull the staging mount from under its owner's pods.
          {
            std::shared_lock clock(catalog_mu_);
            auto it = runtime_.find(v->id);
            if (it != runtime_.end() && it->second.mount_path == target->path) {
              return Status(Code::kFailedPrecondition, "mount_is_staging",
                            "path: '" + target->path + "' is the volume's own mount, not a publish; "
                            "use unmount");
            }
          }
          if (driver_->volume_on_device(target->dev) != v->id) {
            return Status(Code::kFailedPrecondition, "mount_not_this_volume",
                          "what is mounted at " + target->path + " is not volume '" + req.volume() + "'");
          }
          // A writable view is taken down only by whoever could have made it.
          struct statvfs sv {};
          const bool read_only = ::fstatvfs(target->dir.get(), &sv) == 0 && (sv.f_flag & ST_RDONLY) != 0;
          if (!read_only && !call.may(v->ownership, ownership::Access::kWrite)) {
            return Status(Code::kPermissionDenied, "acl_insufficient",
                          "unpublishing a read-write publish of volume '" + req.volume() +
                              "' needs write access");
          }
        }
        const std::string path = target->path;  // the target is handed over to the driver
        if (auto s = driver_->unbind(v->id, std::move(*target)); !s.is_ok()) return s;
        call.audit_message = "Volume " + v->id + " unpublished from " + path;
        return Status::ok();
      });
  t->add<VolumeRef, Empty>(
      "mountattach", "unmount", "/volguard.v1.VolguardMountAttach/Unmount", {vol(ref_volume, Access::kWrite)},
      true, true, [this](Call& call, const VolumeRef&, Empty*) -> Status {
        auto lock = op_lock(call.volumes[0]->id);
        std::lock_guard guard(*lock);
        if (auto s = driver_->unmount(call.volumes[0]->id); !s.is_ok()) return s;
        std::unique_lock clock(catalog_mu_);
        runtime_[call.volumes[0]->id].mount_path.clear();
        return Status::ok();
      });

  // ---- role.*: RBAC only (roles have no owner).
  auto to_spec = [](const policy::Role& r, RoleSpec* out) {
    out->set_name(r.name);
    for (const auto& rule : r.rules) {
      auto* pr = out->add_rules();
      for (const auto& s : rule.services) pr->add_services(s);
      for (const auto& a : rule.apis) pr->add_apis(a);
    }
  };
  auto from_spec = [](const RoleSpec& spec) {
    policy::Role r;
    r.name = spec.name();
    for (const auto& pr : spec.rules()) {
      r.rules.push_back({{pr.services().begin(), pr.services().end()},
                         {pr.apis().begin(), pr.apis().end()}});
    }
    return r;
  };
  t->add<RoleRequest, RoleResponse>(
      "role", "create", "/volguard.v1.VolguardRole/Create", {}, true, false,
      [this, to_spec, from_spec](Call& call, const RoleRequest& req, RoleResponse* resp) -> Status {
        policy::Role role = from_spec(req.role());
        call.resource_for_log = "role/" + role.name;
        if (auto s = policy::validate_role(role); !s.is_ok()) return s;
        std::lock_guard lock(roles_mu_);
        if (policy::is_default_role(role.name)) {
          return Status(Code::kAlreadyExists, "role_is_system",
                        "role name " + role.name + " is a system role");
        }
        if (const auto* existing = pipeline_->roles()->find(role.name)) {
          if (*existing == role) {  // idempotent create
            to_spec(role, resp->mutable_role());
            return Status::ok();
          }
          return Status(Code::kAlreadyExists, "role_exists", "role " + role.name + " already exists");
        }
        // "System.Admin" next to "system.admin" reads as the same role in a token, a log or a
        // review: names that differ only by case are one name.
        const std::string lowered = to_lower(role.name);
        for (const auto& r : pipeline_->roles()->roles()) {
          if (to_lower(r.name) == lowered) {
            return Status(Code::kAlreadyExists, "role_exists",
                          "role " + role.name + " differs only by case from existing role " + r.name);
          }
        }
        if (auto s = store_->put_role({role.name, policy::role_to_json(role)}); !s.is_ok()) return s;
        if (auto s = rebuild_roles(); !s.is_ok()) return s;
        to_spec(role, resp->mutable_role());
        return Status::ok();
      });
  t->add<Empty, RoleEnumerateResponse>(
      "role", "enumerate", "/volguard.v1.VolguardRole/Enumerate", {}, false, false,
      [this](Call&, const Empty&, RoleEnumerateResponse* resp) -> Status {
        for (const auto& r : pipeline_->roles()->roles()) resp->add_names(r.name);
        return Status::ok();
      });
  t->add<RoleRef, RoleResponse>(
      "role", "inspect", "/volguard.v1.VolguardRole/Inspect", {}, false, false,
      [this, to_spec](Call& call, const RoleRef& req, RoleResponse* resp) -> Status {
        call.resource_for_log = "role/" + req.name();
        auto roles = pipeline_->roles();
        const auto* r = roles->find(req.name());
        if (!r) return Status(Code::kNotFound, "role_not_found", "role '" + req.name() + "' not found");
        to_spec(*r, resp->mutable_role());
        return Status::ok();
      });
  t->add<RoleRequest, RoleResponse>(
      "role", "update", "/volguard.v1.VolguardRole/Update", {}, true, false,
      [this, to_spec, from_spec](Call& call, const RoleRequest& req, RoleResponse* resp) -> Status {
        policy::Role role = from_spec(req.role());
        call.resource_for_log = "role/" + role.name;
        if (auto s = policy::validate_role(role); !s.is_ok()) return s;
        std::lock_guard lock(roles_mu_);
        if (policy::is_default_role(role.name) && !policy::is_mutable_default_role(role.name)) {
          return Status(Code::kPermissionDenied, "role_immutable",
                        "role " + role.name + " is a system role and cannot be updated "
                        "(only system.guest can)");
        }
        if (!pipeline_->roles()->find(role.name)) {
          return Status(Code::kNotFound, "role_not_found", "role '" + role.name + "' not found");
        }
        if (auto s = store_->put_role({role.name, policy::role_to_json(role)}); !s.is_ok()) return s;
        if (auto s = rebuild_roles(); !s.is_ok()) return s;
        to_spec(role, resp->mutable_role());
        return Status::ok();
      });
  t->add<RoleRef, Empty>(
      "role", "delete", "/volguard.v1.VolguardRole/Delete", {}, true, false,
      [this](Call& call, const RoleRef& req, Empty*) -> Status {
        call.resource_for_log = "role/" + req.name();
        std::lock_guard lock(roles_mu_);
        if (policy::is_default_role(req.name())) {
          return Status(Code::kPermissionDenied, "role_immutable",
                        "role " + req.name() + " is a system role and cannot be deleted");
        }
        if (auto s = store_->delete_role(req.name()); !s.is_ok()) {
          if (s.code() == Code::kNotFound) {
            return Status(Code::kNotFound, "role_not_found", "role '" + req.name() + "' not found");
          }
          return s;
        }
        return rebuild_roles();
      });

  // ---- identity.*
  t->add<Empty, VersionResponse>("identity", "version", "/volguard.v1.VolguardIdentity/Version", {}, false,
                                 false, [](Call&, const Empty&, VersionResponse* resp) -> Status {
                                   resp->set_version(kVersion);
                                   resp->set_api("volguard.v1");
                                   return Status::ok();
                                 });
  t->add<Empty, WhoAmIResponse>(
      "identity", "whoami", "/volguard.v1.VolguardIdentity/WhoAmI", {}, false, false,
      [this](Call& call, const Empty&, WhoAmIResponse* resp) -> Status {
        const auto& who = *call.who;
        resp->set_username(who.username);
        resp->set_subject(who.subject);
        resp->set_name(who.name);
        resp->set_email(who.email);
        resp->set_issuer(who.issuer);
        resp->set_group_domain(who.group_domain);
        for (const auto& r : who.roles) resp->add_roles(r);
        for (const auto& g : who.groups) resp->add_groups(g);
        resp->set_principal(who.principal());
        resp->set_guest(who.guest);
        resp->set_ownership_admin(pipeline_->admins().is_admin(who));
        if (who.expires_at) resp->set_expires_at(rfc3339(who.expires_at));
        fill_quotas(who, resp);
        return Status::ok();
      });
  // `auth can-i`: the same decision the pipeline would take, explained.
  t->add<CapabilitiesRequest, CapabilitiesResponse>(
      "identity", "capabilities", "/volguard.v1.VolguardIdentity/Capabilities", {}, false, false,
      [this, t](Call& call, const CapabilitiesRequest& req, CapabilitiesResponse* resp) -> Status {
        std::string key = to_lower(req.method());
        const MethodSpec* spec = t->find(key);
        if (!spec) return invalid("method", "'" + req.method() + "' is not a volguard method");
        // The pipeline's own decision, with only the first resource (the one can-i names).
        std::vector<std::string> refs(spec->resources.size());
        if (!refs.empty()) refs[0] = req.volume();
        CallDecision d = pipeline_->decide(*spec, *call.who, refs, *spec->request_prototype,
                                           /*explain=*/true, nullptr);
        resp->set_role(d.role);
        resp->set_rule(d.rule);
        // Missing and unreadable look the same here as everywhere: not found.
        if (d.status.code() == Code::kNotFound) return d.status;
        resp->set_allowed(d.status.is_ok());
        if (!d.status.is_ok()) resp->set_reason(d.status.message());
        if (!req.volume().empty() && !spec->resources.empty() && d.needed != Access::kNone) {
          resp->set_access_needed(ownership::access_name(d.needed));
          resp->set_access_granted(ownership::access_name(d.granted));
          resp->set_access_via(d.via);
        }
        return Status::ok();
      });

  register_quota_methods(t);  // quota.set, quota.show (quota_methods.cc)
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
