// volume.*: create, clone, delete, inspect, update, enumerate, stats. Changes to an existing
// volume run under its lock, on the record re-read there (lock_volume).
#include <optional>

#include "driver/driver.h"
#include "service/handler_support.h"
#include "service/volume_service.h"

namespace volguard::service {

using store::RecordState;
using store::VolumeRecord;

// ---- volume.create
Status VolumeService::create_volume(Call& call, const v1::CreateVolumeRequest& req, v1::VolumeResponse* resp) {
  RETURN_IF_ERROR(check_name("name", req.name()));
  auto size = parse_volume_size(req.size().empty() ? "1G" : req.size(),
                                config_.limits.max_volume_size);
  if (!size) return size.status();
  auto fs_type = driver::parse_fs(req.fs().empty() ? "ext4" : req.fs());
  if (!fs_type) return invalid("fs", fs_type.status().message());
  RETURN_IF_ERROR(check_labels(req.labels()));
  // --secret-key alone asks for encryption too (pxctl needs --secure with it; nothing else
  // could be meant).
  const bool secure = req.secure() || !req.secret_key().empty();
  std::string key_name;
  if (secure) {
    if (*fs_type != driver::FsType::kExt4) {
      return Status(Code::kInvalidArgument, "encryption_unsupported",
                    "fs: encrypted volumes are ext4 (fscrypt); " + req.fs() + " was asked for");
    }
    const identity::Identity& caller = *call.who;
    const KeyRequester requester{
        .admin = !call.security_enabled || admins_.is_admin(caller),
        .in_group = [&](const std::string& qualified) {
          for (const auto& g : caller.groups) {
            if (g != "*" && caller.qualified_group(g) == qualified) return true;
          }
          return false;
        }};
    ASSIGN_OR_RETURN(key_name, keys_.resolve(req.secret_key(), requester));
  }
  VolumeRecord rec;
  rec.id = new_id();
  rec.home_node = config_.node.name;  // the data is made on this node's disk
  rec.name = req.name();
  rec.size_bytes = *size;
  rec.fs = driver::fs_name(*fs_type);
  rec.labels = {req.labels().begin(), req.labels().end()};
  RETURN_IF_ERROR(check_label_bounds("labels", rec.labels));
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
  if (secure) {
    // The data key exists wrapped before anything is on disk: a create that cannot reach its
    // KEK is refused (kms_unavailable) having changed nothing. Its raw form is not needed until
    // the first mount, which encrypts the volume's data directory with it.
    ASSIGN_OR_RETURN(DataKeys::NewKey key, keys_.generate(key_name, rec.id));
    rec.encryption = driver::encryption_name(driver::Encryption::kFscrypt);
    rec.data_key = std::move(key.wrapped);
  }
  call.audit_message = "Volume " + rec.id + " created (name " + rec.name + ", size " +
                       driver::format_size(rec.size_bytes) + ", fs " + rec.fs + "; " +
                       grants_text(rec.ownership) + ")" + encryption_text(rec.encryption, rec.data_key);
  auto held = reserve_new_volume(call, &rec);  // released once the volume is in the catalog
  if (!held) return held.status();
  const auto encryption = secure ? driver::Encryption::kFscrypt : driver::Encryption::kNone;
  auto made = make_volume(std::move(rec), [&](const std::string& id) {
    return driver_->create(id, *size, *fs_type, encryption);
  });
  if (!made) return made.status();
  const auto& shared = *made;
  fill_volume(*shared, resp->mutable_volume());
  return Status::ok();
}

// ---- volume.clone
Status VolumeService::clone_volume(Call& call, const v1::CloneVolumeRequest& req, v1::VolumeResponse* resp) {
  const auto& src_vol = call.volume("source");
  const auto& src_snap = call.snapshot("source_snapshot");
  if ((src_vol != nullptr) == (src_snap != nullptr)) {
    return invalid("source", "give exactly one of source (volume) or source_snapshot");
  }
  RETURN_IF_ERROR(check_name("name", req.name()));
  RETURN_IF_ERROR(check_labels(req.labels()));
  VolumeRecord rec;
  rec.id = new_id();
  rec.home_node = config_.node.name;  // the data is made on this node's disk
  rec.name = req.name();
  rec.created_at = now_unix();
  rec.labels = {req.labels().begin(), req.labels().end()};
  RETURN_IF_ERROR(check_label_bounds("labels", rec.labels));
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
  // A clone is encrypted exactly when its source is, with the same data key (its blocks are
  // the source's ciphertext), wrapped anew for the clone's id under the source's KEK name.
  const std::string& source_encryption = src_vol ? src_vol->encryption : src_snap->encryption;
  const store::WrappedDataKey& source_key = src_vol ? src_vol->data_key : src_snap->data_key;
  const std::string& source_id = src_vol ? src_vol->id : src_snap->id;
  if (req.has_secure() && req.secure() != !source_encryption.empty()) {
    return Status(Code::kFailedPrecondition, "encryption_mismatch",
                  std::string("secure: a clone is encrypted exactly when its source is, and ") +
                      (src_vol ? "volume " : "snapshot ") + source_id + " is " +
                      (source_encryption.empty() ? "not encrypted" : "encrypted"));
  }
  if (!source_encryption.empty()) {
    ASSIGN_OR_RETURN(crypto::SecureBytes raw, keys_.unwrap(source_key, source_id));
    ASSIGN_OR_RETURN(rec.data_key, keys_.wrap(source_key.key_name, raw, rec.id));
    rec.encryption = source_encryption;
  }
  call.audit_message = "Volume " + rec.id + " created as a clone of " +
                       (src_vol ? "volume " + src_vol->id : "snapshot " + src_snap->id +
                                                                " of volume " + src_snap->volume_id) +
                       " (name " + rec.name + "; " + grants_text(rec.ownership) + ")" +
                       encryption_text(rec.encryption, rec.data_key);
  auto held = reserve_new_volume(call, &rec);  // released once the volume is in the catalog
  if (!held) return held.status();
  auto made = make_volume(std::move(rec), [&](const std::string& id) -> Status {
    if (!src_vol) {
      // Under its volume's lock, as snapshot delete and restore take it: the snapshot cannot be
      // deleted (and its key destroyed) while it is copied. Re-read there: one deleted while
      // this call waited is gone.
      std::optional<VolumeLock> parent;
      if (find_volume(src_snap->volume_id)) {
        ASSIGN_OR_RETURN(VolumeLock locked, lock_volume(call, src_snap->volume_id, call.need("source_snapshot")));
        parent = std::move(locked);
      }
      if (!find_snapshot(src_snap->id)) {
        return Status(Code::kNotFound, "snapshot_not_found", "snapshot '" + src_snap->id + "' not found");
      }
      return driver_->clone_snapshot(src_snap->id, id);
    }
    // The source is copied under its own lock (frozen if mounted): no resize or restore of it
    // can run meanwhile.
    ASSIGN_OR_RETURN(VolumeLock source, lock_volume(call, "source"));
    return driver_->clone_volume(source.record->id, id);
  });
  if (!made) return made.status();
  const auto& shared = *made;
  fill_volume(*shared, resp->mutable_volume());
  return Status::ok();
}

// ---- volume.delete
Status VolumeService::delete_volume(Call& call, const v1::VolumeRef&, v1::Empty*) {
  ASSIGN_OR_RETURN(VolumeLock locked, lock_volume(call));
  const auto& current = locked.record;
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
  RETURN_IF_ERROR(store_->update_volume(rec));
  if (auto s = driver_->remove(rec.id); !s.is_ok()) {
    rec.state = RecordState::kReady;
    log_if_failed(store_->update_volume(rec), "mark ready again after a failed remove:", rec.id);
    return s;
  }
  if (!rec.encryption.empty()) {
    // Crypto-shredding: the wrapped key is overwritten before the record goes, so that the
    // record's last version holds no key either (etcd keeps old versions until compaction).
    rec.data_key = {};
    RETURN_IF_ERROR(store_->update_volume(rec));
    call.audit_message = "Volume " + rec.id + " deleted; its data key was destroyed";
  }
  RETURN_IF_ERROR(store_->delete_volume(rec));
  erase_volume(rec);
  return Status::ok();
}

// ---- volume.inspect
Status VolumeService::inspect_volume(Call& call, const v1::VolumeRef&, v1::VolumeResponse* resp) {
  fill_volume(*call.volume(), resp->mutable_volume());
  return Status::ok();
}

// ---- volume.update
Status VolumeService::update_volume(Call& call, const v1::UpdateVolumeRequest& req, v1::VolumeResponse* resp) {
  ASSIGN_OR_RETURN(VolumeLock locked, lock_volume(call));
  const auto& current = locked.record;
  VolumeRecord rec = *current;
  google::protobuf::Map<std::string, std::string> set_labels = req.set_labels();
  RETURN_IF_ERROR(check_labels(set_labels));
  for (const auto& [k, v] : set_labels) rec.labels[k] = v;
  for (const auto& k : req.remove_labels()) rec.labels.erase(k);
  if (!set_labels.empty()) {
    RETURN_IF_ERROR(check_label_bounds("set_labels", rec.labels));
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
      RETURN_IF_ERROR(driver_->resize(rec.id, *size, *fs_type));
      rec.size_bytes = *size;
    }
  }
  RETURN_IF_ERROR(store_->update_volume(rec));
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
}

// ---- volume.enumerate
Status VolumeService::enumerate_volumes(Call& call, const v1::EnumerateRequest& req, v1::EnumerateResponse* resp) {
  std::vector<std::shared_ptr<const VolumeRecord>> visible;
  {
    std::shared_lock lock(catalog_mu_);
    // Only the volumes the caller could see (the access index), each still decided by
    // Call::may; every volume for those who may see all.
    const auto candidates = enumerate_candidates(call, req.owner());
    std::vector<const std::shared_ptr<const VolumeRecord>*> records;
    if (candidates) {
      records.reserve(candidates->size());
      for (const auto& id : *candidates) {
        if (auto it = volumes_.find(id); it != volumes_.end()) records.push_back(&it->second);
      }
    } else {
      records.reserve(volumes_.size());
      for (const auto& [id, rec] : volumes_) records.push_back(&rec);
    }
    for (const auto* entry : records) {
      const auto& rec = *entry;
      if (!req.owner().empty() && rec->ownership.owner != req.owner()) continue;
      bool labels_match = true;
      for (const auto& [k, v] : req.labels()) {
        auto it = rec->labels.find(k);
        if (it == rec->labels.end() || it->second != v) {
          labels_match = false;
          break;
        }
      }
      if (!labels_match || !call.may(*rec, Access::kRead)) continue;
      visible.push_back(rec);
    }
  }
  for (const auto& rec : visible) fill_volume(*rec, resp->add_volumes());
  return Status::ok();
}

// ---- volume.stats
Status VolumeService::volume_stats(Call& call, const v1::VolumeRef&, v1::StatsResponse* resp) {
  ASSIGN_OR_RETURN(driver::VolumeStatus st, driver_->status(call.volume()->id));
  resp->set_volume(call.volume()->id);
  resp->set_size_bytes(st.size_bytes);
  resp->set_allocated_bytes(st.allocated_bytes);
  resp->set_fs_used_bytes(st.fs_used_bytes);
  resp->set_fs_total_bytes(st.fs_total_bytes);
  return Status::ok();
}

}  // namespace volguard::service
