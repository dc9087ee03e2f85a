// key.rotate: every encrypted volume's and snapshot's data key (of every node: the store is
// shared, the writes are guarded) re-wrapped under its KEK name's
// current version. Only the wrapped keys change (guarded store writes under each volume's
// lock); no volume data is read or written, so mounted volumes stay mounted.
#include "service/handler_support.h"
#include "service/volume_service.h"

namespace volguard::service {

using store::SnapshotRecord;
using store::VolumeRecord;

namespace {

// Rewraps `rec`'s key when it is not under its current KEK: true when it did, false when the key
// was current already.
template <typename Record>
Result<bool> rewrap(DataKeys& keys, Record* rec) {
  ASSIGN_OR_RETURN(bool current, keys.is_current(rec->data_key));
  if (current) return false;
  ASSIGN_OR_RETURN(crypto::SecureBytes raw, keys.unwrap(rec->data_key, rec->id));
  ASSIGN_OR_RETURN(rec->data_key, keys.wrap(rec->data_key.key_name, raw, rec->id));
  return true;
}

}  // namespace

Status VolumeService::rotate_keys(Call& call, const v1::KeyRotateRequest& req, v1::KeyRotateResponse* resp) {
  // (Admins only, by rule: every key may be named.)
  if (!req.secret_key().empty()) RETURN_IF_ERROR(keys_.resolve(req.secret_key(), {.admin = true}).status());
  auto wanted = [&](const std::string& encryption, const store::WrappedDataKey& k) {
    return !encryption.empty() && (req.secret_key().empty() || k.key_name == req.secret_key());
  };
  std::vector<std::string> volume_ids, snapshot_ids;
  {
    std::shared_lock lock(catalog_mu_);
    for (const auto& [id, v] : volumes_) {
      if (wanted(v->encryption, v->data_key)) volume_ids.push_back(id);
    }
    for (const auto& [id, s] : snapshots_) {
      if (wanted(s->encryption, s->data_key)) snapshot_ids.push_back(id);
    }
  }
  auto failed = [&](const std::string& what, const Status& s) {
    resp->set_failed(resp->failed() + 1);
    resp->add_errors(what + ": " + s.to_string());
  };
  auto outcome = [&](const std::string& what, const Result<bool>& done, auto&& store_it) {
    if (!done) return failed(what, done.status());
    if (!*done) return resp->set_current(resp->current() + 1);
    if (Status s = store_it(); !s.is_ok()) return failed(what, s);
    resp->set_rewrapped(resp->rewrapped() + 1);
  };
  for (const auto& id : volume_ids) {
    // Under the volume's lock, on the record re-read there; no access check (the rule decided).
    auto locked = lock_volume(call, id, Access::kNone);
    if (!locked) continue;  // deleted meanwhile
    VolumeRecord rec = *locked->record;
    auto done = rewrap(keys_, &rec);
    outcome("volume " + id, done, [&] {
      RETURN_IF_ERROR(store_->update_volume(rec));
      put_volume(std::make_shared<const VolumeRecord>(rec));
      return Status::ok();
    });
  }
  for (const auto& id : snapshot_ids) {
    auto snap = find_snapshot(id);
    if (!snap) continue;
    std::optional<VolumeLock> parent;
    if (find_volume(snap->volume_id)) {
      auto locked = lock_volume(call, snap->volume_id, Access::kNone);
      if (locked) parent = std::move(*locked);
    }
    snap = find_snapshot(id);
    if (!snap) continue;
    SnapshotRecord rec = *snap;
    auto done = rewrap(keys_, &rec);
    outcome("snapshot " + id, done, [&] {
      RETURN_IF_ERROR(store_->update_snapshot(rec));
      put_snapshot(std::make_shared<const SnapshotRecord>(rec));
      return Status::ok();
    });
  }
  call.audit_message = "Data keys" + (req.secret_key().empty() ? std::string() : " of key " + req.secret_key()) +
                       " rotated: " + std::to_string(resp->rewrapped()) + " re-wrapped, " +
                       std::to_string(resp->current()) + " already current, " +
                       std::to_string(resp->failed()) + " failed";
  if (resp->failed() > 0) {
    return Status(Code::kFailedPrecondition, "rotation_incomplete",
                  std::to_string(resp->failed()) + " data key(s) could not be re-wrapped (first: " +
                      resp->errors(0) + "); keep the retired KEK and run key rotate again");
  }
  return Status::ok();
}

}  // namespace volguard::service
