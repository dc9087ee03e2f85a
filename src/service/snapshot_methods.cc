// volume.snapshot*: create, restore, enumerate, delete. A snapshot has no ACL of its own: its
// access is its volume's, evaluated at request time; every change runs under the volume's lock.
#include <optional>

#include "service/handler_support.h"
#include "service/volume_service.h"

namespace volguard::service {

using store::RecordState;
using store::SnapshotRecord;

// ---- volume.snapshotcreate
Status VolumeService::create_snapshot(Call& call, const v1::SnapshotCreateRequest& req, v1::SnapshotResponse* resp) {
  RETURN_IF_ERROR(check_name("name", req.name()));
  ASSIGN_OR_RETURN(VolumeLock locked, lock_volume(call));
  const auto& volume = locked.record;
  auto held = reserve_for(call, *volume, {volume->size_bytes, 0, 1});  // released once listed
  if (!held) return held.status();
  SnapshotRecord rec;
  rec.id = new_id();
  rec.name = req.name();
  rec.volume_id = volume->id;
  rec.size_bytes = volume->size_bytes;
  // No ACL of its own: access is always the volume's, evaluated at request time.
  rec.created_at = now_unix();
  rec.home_node = volume->home_node;
  if (!volume->encryption.empty()) {
    // Its own wrapped copy of the volume's data key, so that it stays readable (and clonable)
    // after the volume is gone.
    ASSIGN_OR_RETURN(crypto::SecureBytes raw, keys_.unwrap(volume->data_key, volume->id));
    ASSIGN_OR_RETURN(rec.data_key, keys_.wrap(volume->data_key.key_name, raw, rec.id));
    rec.encryption = volume->encryption;
  }
  ASSIGN_OR_RETURN(NameHold name, hold_name(snapshot_names_, &reserved_snapshot_names_, rec.name, "snapshot"));
  call.resource_for_log = "volume/" + volume->id + " snapshot/" + rec.id;
  CreatingId creating(this, rec.id);
  RETURN_IF_ERROR(store_->create_snapshot(rec));
  if (auto s = driver_->snapshot(volume->id, rec.id); !s.is_ok()) {
    log_if_failed(store_->delete_snapshot(rec), "delete_snapshot", rec.id);
    return s;
  }
  rec.state = RecordState::kReady;
  if (auto s = store_->update_snapshot(rec); !s.is_ok()) {
    log_if_failed(driver_->remove_snapshot(rec.id), "remove_snapshot", rec.id);
    log_if_failed(store_->delete_snapshot(rec), "delete_snapshot", rec.id);
    return s;
  }
  put_snapshot(std::make_shared<const SnapshotRecord>(rec));
  call.audit_message = "Snapshot " + rec.id + " of volume " + volume->id + " created" +
                       encryption_text(rec.encryption, rec.data_key);
  fill_snapshot(rec, volume->ownership, resp->mutable_snapshot());
  return Status::ok();
}

// ---- volume.snapshotrestore
Status VolumeService::restore_snapshot(Call& call, const v1::SnapshotRestoreRequest&, v1::VolumeResponse* resp) {
  ASSIGN_OR_RETURN(VolumeLock locked, lock_volume(call));
  const auto& volume = locked.record;
  const auto& snapshot = call.snapshot();
  if (snapshot->volume_id != volume->id) {
    return Status(Code::kFailedPrecondition, "snapshot_of_other_volume",
                  "snapshot " + snapshot->name + " was taken of another volume (" +
                      snapshot->volume_id + "); clone it instead");
  }
  call.resource_for_log = "volume/" + volume->id + " snapshot/" + snapshot->id;
  // Restore refuses a volume that is attached or mounted, and snapshot delete takes this lock:
  // the snapshot cannot vanish and the volume cannot be mounted while its contents change.
  if (!find_snapshot(snapshot->id)) {
    return Status(Code::kNotFound, "snapshot_not_found", "snapshot '" + snapshot->id + "' not found");
  }
  Status restored = driver_->restore(volume->id, snapshot->id);
  sync_runtime(volume->id);
  RETURN_IF_ERROR(restored);
  call.audit_message = "Volume " + volume->id + " restored from snapshot " + snapshot->id;
  fill_volume(*volume, resp->mutable_volume());
  return Status::ok();
}

// ---- volume.snapshotenumerate
Status VolumeService::enumerate_snapshots(Call& call, const v1::SnapshotEnumerateRequest&, v1::SnapshotEnumerateResponse* resp) {
  const auto& only = call.volume();  // null: every snapshot the caller may read
  std::shared_lock lock(catalog_mu_);
  for (const auto& [id, rec] : snapshots_) {
    if (only && rec->volume_id != only->id) continue;
    auto parent = volumes_.find(rec->volume_id);
    if (parent == volumes_.end()) {
      // Its volume is gone (a record from before snapshots followed their volume):
      // ownership admins only.
      if (call.security_enabled && !admins_.is_admin(*call.who)) continue;
      fill_snapshot(*rec, ownership::Ownership{}, resp->add_snapshots());
      continue;
    }
    if (!call.may(*parent->second, Access::kRead)) continue;
    fill_snapshot(*rec, parent->second->ownership, resp->add_snapshots());
  }
  return Status::ok();
}

// ---- volume.snapshotdelete
Status VolumeService::delete_snapshot(Call& call, const v1::SnapshotRef&, v1::Empty*) {
  // Under the parent volume's lock (snapshot create and restore take it too), on the snapshot
  // re-read there: a concurrent delete of the same snapshot finds it gone.
  const std::string id = call.snapshot()->id;
  // (A volume with snapshots cannot be deleted, so a parent that exists stays; one already gone
  // — a record from before snapshots followed their volume — is left to ownership admins.)
  std::optional<VolumeLock> parent;
  if (find_volume(call.snapshot()->volume_id)) {
    ASSIGN_OR_RETURN(VolumeLock locked, lock_volume(call, call.snapshot()->volume_id, call.need("snapshot")));
    parent = std::move(locked);
  }
  auto s = find_snapshot(id);
  if (!s) return Status(Code::kNotFound, "snapshot_not_found", "snapshot '" + id + "' not found");
  if (!s->encryption.empty()) {
    SnapshotRecord shredded = *s;  // crypto-shredding, as for volumes
    shredded.state = RecordState::kDeleting;  // a failed delete leaves no "ready" keyless snapshot
    shredded.data_key = {};
    RETURN_IF_ERROR(store_->update_snapshot(shredded));
    s = std::make_shared<const SnapshotRecord>(std::move(shredded));
    call.audit_message = "Snapshot " + id + " deleted; its data key was destroyed";
  }
  RETURN_IF_ERROR(store_->delete_snapshot(*s));
  log_if_failed(driver_->remove_snapshot(s->id), "remove_snapshot", s->id);
  erase_snapshot(*s);
  return Status::ok();
}

}  // namespace volguard::service
