// mountattach.*: attach, detach, mount, unmount, and the CSI node's publish/unpublish. Each runs
// under its volume's lock on the record re-read there, and leaves the catalog's copy of the
// attach/mount state as the driver reports it (sync_runtime).
#include <sys/statvfs.h>

#include <algorithm>

#include "driver/driver.h"
#include "service/handler_support.h"
#include "service/volume_service.h"

namespace volguard::service {

// With `node` (CSI ControllerPublishVolume): the volume is attached for that node, recorded on
// the volume, so that the node's own credential may stage and publish it (volume_access). A
// volume is attached for one node at a time (single-node access modes).
Status VolumeService::attach(Call& call, const v1::AttachRequest& req, v1::AttachResponse* resp) {
  if (!req.node().empty() &&
      std::find(config_.nodes.begin(), config_.nodes.end(), req.node()) == config_.nodes.end()) {
    return Status(Code::kNotFound, "node_not_found",
                  "node '" + req.node() + "' is not one of this server's nodes (config `nodes`)");
  }
  ASSIGN_OR_RETURN(VolumeLock locked, lock_volume(call));
  const auto& v = locked.record;
  if (!req.node().empty() && !v->attached_node.empty() && v->attached_node != req.node()) {
    return Status(Code::kFailedPrecondition, "attached_to_other_node",
                  "volume '" + v->name + "' is attached to node " + v->attached_node +
                      "; unpublish it there first");
  }
  auto dev = driver_->attach(v->id);
  sync_runtime(v->id);
  if (!dev) return dev.status();
  if (!req.node().empty() && v->attached_node != req.node()) {
    store::VolumeRecord rec = *v;
    rec.attached_node = req.node();
    RETURN_IF_ERROR(store_->update_volume(rec));
    put_volume(std::make_shared<const store::VolumeRecord>(std::move(rec)));
  }
  call.audit_message = "Volume " + v->id + " attached at " + *dev +
                       (req.node().empty() ? "" : " for node " + req.node());
  resp->set_device(*dev);
  return Status::ok();
}

// With `node`: a volume attached for another node is left alone (CSI ControllerUnpublish is
// idempotent per node). The node keeps its access until the device is gone: a detach refused
// because the volume is still mounted leaves it able to unstage.
Status VolumeService::detach(Call& call, const v1::AttachRequest& req, v1::Empty*) {
  ASSIGN_OR_RETURN(VolumeLock locked, lock_volume(call));
  const auto& v = locked.record;
  if (!req.node().empty() && v->attached_node != req.node()) {
    call.audit_message = "Volume " + v->id + " not attached for node " + req.node() + ": nothing to do";
    return Status::ok();
  }
  Status detached = driver_->detach(v->id);
  sync_runtime(v->id);
  RETURN_IF_ERROR(detached);
  if (!v->attached_node.empty()) {
    store::VolumeRecord rec = *v;
    rec.attached_node.clear();
    RETURN_IF_ERROR(store_->update_volume(rec));
    put_volume(std::make_shared<const store::VolumeRecord>(std::move(rec)));
  }
  call.audit_message = "Volume " + v->id + " detached" + (req.node().empty() ? "" : " from node " + req.node());
  return Status::ok();
}

Status VolumeService::mount(Call& call, const v1::MountRequest& req, v1::Empty*) {
  ASSIGN_OR_RETURN(VolumeLock locked, lock_volume(call));
  const auto& v = locked.record;
  ASSIGN_OR_RETURN(driver::FsType fs_type, driver::parse_fs(v->fs));
  // Resolved once; the driver mounts on this fd, never on the name.
  ASSIGN_OR_RETURN(driver::MountTarget target, resolve_target(call, req.path(), {.require_empty = true}));
  // An encrypted volume's key is unwrapped for this call only (and wiped when `key` goes).
  std::optional<crypto::SecureBytes> key;
  if (!v->encryption.empty()) {
    ASSIGN_OR_RETURN(key, keys_.unwrap(v->data_key, v->id));
  }
  auto mounted = driver_->mount(v->id, target, fs_type, key ? &*key : nullptr);
  sync_runtime(v->id);
  if (!mounted) return mounted.status();
  call.audit_message = "Volume " + v->id + " mounted at " + *mounted;
  return Status::ok();
}

Status VolumeService::unmount(Call& call, const v1::VolumeRef&, v1::Empty*) {
  ASSIGN_OR_RETURN(VolumeLock locked, lock_volume(call));
  Status unmounted = driver_->unmount(locked.record->id, driver::record_encryption(locked.record->encryption));
  sync_runtime(locked.record->id);
  return unmounted;
}

// The CSI node's bind of a staged volume into a pod. Read access for a read-only view, write
// access for a writable one (the method's resource check); audited like a mount.
Status VolumeService::publish(Call& call, const v1::PublishRequest& req, v1::Empty*) {
  if (req.staging_path().empty()) return invalid("staging_path", "is required");
  ASSIGN_OR_RETURN(VolumeLock locked, lock_volume(call));
  const auto& v = locked.record;
  // The source is read, not written: the driver checks it is this volume's own mount.
  ASSIGN_OR_RETURN(driver::MountTarget staging,
                   driver::resolve_mount_target(config_.mount_roots, req.staging_path(), {}));
  ASSIGN_OR_RETURN(driver::MountTarget target,
                   resolve_target(call, req.path(), {.create_last = true, .require_empty = true}));
  auto bound = driver_->bind(v->id, staging, target, req.read_only());
  if (!bound) {
    driver::remove_created(target);  // a refused publish leaves no directory behind
    return bound.status();
  }
  call.audit_message = "Volume " + v->id + " published at " + *bound +
                       (req.read_only() ? " (read-only)" : " (read-write)");
  return Status::ok();
}

Status VolumeService::unpublish(Call& call, const v1::MountRequest& req, v1::Empty*) {
  ASSIGN_OR_RETURN(VolumeLock locked, lock_volume(call));
  const auto& v = locked.record;
  ASSIGN_OR_RETURN(driver::MountTarget target, resolve_target(call, req.path(), {}));
  if (target.mount_root) {
    // Unpublish takes down a bind, never the volume's own mount (that is unmount, which
    // needs write): a reader must not pull the staging mount from under its owner's pods.
    // Asked of the driver, the one source of truth for where the volume is mounted.
    if (auto st = driver_->status(v->id); st.is_ok() && st->mount_path == target.path) {
      return Status(Code::kFailedPrecondition, "mount_is_staging",
                    "path: '" + target.path + "' is the volume's own mount, not a publish; use unmount");
    }
    if (driver_->volume_on_device(target.dev) != v->id) {
      return Status(Code::kFailedPrecondition, "mount_not_this_volume",
                    "what is mounted at " + target.path + " is not volume '" + req.volume() + "'");
    }
    // A writable view is taken down only by whoever could have made it.
    struct statvfs sv {};
    const bool read_only = ::fstatvfs(target.dir.get(), &sv) == 0 && (sv.f_flag & ST_RDONLY) != 0;
    if (!read_only && !call.may(*v, Access::kWrite)) {
      return Status(Code::kPermissionDenied, "acl_insufficient",
                    "unpublishing a read-write publish of volume '" + req.volume() +
                        "' needs write access");
    }
  }
  const std::string path = target.path;  // the target is handed over to the driver
  RETURN_IF_ERROR(driver_->unbind(v->id, std::move(target)));
  call.audit_message = "Volume " + v->id + " unpublished from " + path;
  return Status::ok();
}

// CSI NodeExpandVolume, on the node where the volume is mounted: at least `size` (never
// smaller than it is), and the filesystem grown to fill the volume — online where it is
// mounted. Asked again after a grow that stopped between file and filesystem, it finishes it.
Status VolumeService::expand(Call& call, const v1::ExpandRequest& req, v1::VolumeResponse* resp) {
  ASSIGN_OR_RETURN(VolumeLock locked, lock_volume(call));
  const auto& v = locked.record;
  uint64_t size = v->size_bytes;
  if (!req.size().empty()) {
    ASSIGN_OR_RETURN(uint64_t asked, parse_volume_size(req.size(), config_.limits.max_volume_size));
    size = std::max(size, asked);
  }
  ASSIGN_OR_RETURN(driver::FsType fs, driver::parse_fs(v->fs));
  QuotaReservation growth;  // held until the grown record is in the catalog
  if (size > v->size_bytes) {
    ASSIGN_OR_RETURN(growth, reserve_for(call, *v, {size - v->size_bytes, 0, 0}));
  }
  RETURN_IF_ERROR(driver_->resize(v->id, size, fs));
  auto grown = v;
  if (size != v->size_bytes) {
    store::VolumeRecord rec = *v;
    rec.size_bytes = size;
    RETURN_IF_ERROR(store_->update_volume(rec));
    grown = std::make_shared<const store::VolumeRecord>(std::move(rec));
    put_volume(grown);
  }
  call.audit_message = "Volume " + v->id + " expanded to " + driver::format_size(size) +
                       " (filesystem grown to fill it)";
  fill_volume(*grown, resp->mutable_volume());
  return Status::ok();
}

}  // namespace volguard::service
