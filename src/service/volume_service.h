// The methods themselves, one named member function each, in one file per family:
// volume_methods.cc, snapshot_methods.cc, mount_methods.cc, role_methods.cc,
// identity_methods.cc, quota_methods.cc. register_methods (volume_service.cc) is the one list of
// what each method is and needs; the pipeline runs every check before a handler.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <utility>

#include "common/version.h"
#include "config/config.h"
#include "driver/driver.h"
#include "service/data_keys.h"
#include "service/pipeline.h"
#include "service/quota.h"
#include "service/role_registry.h"
#include "store/store.h"
#include "volguard.pb.h"

namespace grpc {
class Channel;
}

namespace volguard::service {

using volguard::kVersion;

// Also the cluster's router (cluster.cc): it knows each volume's home and each node's address.
class VolumeService : public ResourceResolver, public Router {
 public:
  // `roles` is the registry the pipeline decides with; role changes are stored, then published
  // there. `store` and `driver` may be null only for a service that registers its methods and
  // is never called (the table test).
  // `keys` makes and opens encrypted volumes' data keys (data_keys.h).
  VolumeService(const config::Config& config, std::unique_ptr<store::MetadataStore> store,
                std::unique_ptr<driver::VolumeDriver> driver, DataKeys& keys, RoleRegistry& roles,
                RevocationRegistry& revocations);
  // The store first: its watch thread calls into the catalog, which must outlive it.
  ~VolumeService() override { store_.reset(); }

  // Crash recovery: store and disk made to agree (half-made volumes removed), the in-memory
  // catalog loaded, attach/mount state read from the host, roles loaded. Only this node's
  // volumes are reconciled with its disk. Then, with a shared store, this node is registered
  // and the catalog follows the store's watch from the revision it was loaded at.
  Status recover();

  void register_methods(MethodTable* table);

  std::shared_ptr<const store::VolumeRecord> find_volume(const std::string& ref) const override;
  std::shared_ptr<const store::SnapshotRecord> find_snapshot(const std::string& ref) const override;
  std::shared_ptr<const store::VolumeRecord> snapshot_volume(const store::SnapshotRecord& s) const override;

  size_t volume_count() const;

  // ---- cluster (cluster.cc)
  Status catalog_fresh(store::Revision min_revision) const override;
  Result<std::string> route(const MethodSpec& spec, const Call& call, const Message& request) const override;
  Status forward(const std::string& node, const MethodSpec& spec, const RequestMeta& meta,
                 const Message& request, Message* response) const override;
  const std::string& node_name() const { return config_.node.name; }
  // What a reply reports as the revision the caller has now seen (read-your-writes).
  store::Revision seen_revision() const override { return store_->seen_revision(); }

 private:
  // ---- volume.* (volume_methods.cc)
  Status create_volume(Call& call, const v1::CreateVolumeRequest& req, v1::VolumeResponse* resp);
  Status clone_volume(Call& call, const v1::CloneVolumeRequest& req, v1::VolumeResponse* resp);
  Status delete_volume(Call& call, const v1::VolumeRef& req, v1::Empty* resp);
  Status inspect_volume(Call& call, const v1::VolumeRef& req, v1::VolumeResponse* resp);
  Status update_volume(Call& call, const v1::UpdateVolumeRequest& req, v1::VolumeResponse* resp);
  Status enumerate_volumes(Call& call, const v1::EnumerateRequest& req, v1::EnumerateResponse* resp);
  Status volume_stats(Call& call, const v1::VolumeRef& req, v1::StatsResponse* resp);
  Status volume_capacity(Call& call, const v1::Empty& req, v1::CapacityResponse* resp);  // quota_methods.cc
  // ---- volume.snapshot* (snapshot_methods.cc)
  Status create_snapshot(Call& call, const v1::SnapshotCreateRequest& req, v1::SnapshotResponse* resp);
  Status restore_snapshot(Call& call, const v1::SnapshotRestoreRequest& req, v1::VolumeResponse* resp);
  Status enumerate_snapshots(Call& call, const v1::SnapshotEnumerateRequest& req,
                             v1::SnapshotEnumerateResponse* resp);
  Status delete_snapshot(Call& call, const v1::SnapshotRef& req, v1::Empty* resp);
  // ---- mountattach.* (mount_methods.cc)
  Status attach(Call& call, const v1::AttachRequest& req, v1::AttachResponse* resp);
  Status detach(Call& call, const v1::AttachRequest& req, v1::Empty* resp);
  Status mount(Call& call, const v1::MountRequest& req, v1::Empty* resp);
  Status unmount(Call& call, const v1::VolumeRef& req, v1::Empty* resp);
  Status publish(Call& call, const v1::PublishRequest& req, v1::Empty* resp);
  Status unpublish(Call& call, const v1::MountRequest& req, v1::Empty* resp);
  Status expand(Call& call, const v1::ExpandRequest& req, v1::VolumeResponse* resp);
  // ---- role.* (role_methods.cc)
  Status create_role(Call& call, const v1::RoleRequest& req, v1::RoleResponse* resp);
  Status enumerate_roles(Call& call, const v1::Empty& req, v1::RoleEnumerateResponse* resp);
  Status inspect_role(Call& call, const v1::RoleRef& req, v1::RoleResponse* resp);
  Status update_role(Call& call, const v1::RoleRequest& req, v1::RoleResponse* resp);
  Status delete_role(Call& call, const v1::RoleRef& req, v1::Empty* resp);
  // ---- identity.* (identity_methods.cc)
  Status whoami(Call& call, const v1::Empty& req, v1::WhoAmIResponse* resp);
  Status capabilities(Call& call, const v1::CapabilitiesRequest& req, v1::CapabilitiesResponse* resp);
  // ---- key.* (key_methods.cc)
  Status rotate_keys(Call& call, const v1::KeyRotateRequest& req, v1::KeyRotateResponse* resp);
  // ---- token.* (token_methods.cc)
  Status revoke_token(Call& call, const v1::TokenRevokeRequest& req, v1::TokenRevokeResponse* resp);
  Status enumerate_revocations(Call& call, const v1::Empty& req, v1::RevocationEnumerateResponse* resp);
  // ---- node.* (cluster.cc)
  Status enumerate_nodes(Call& call, const v1::Empty& req, v1::NodeEnumerateResponse* resp);
  // ---- quota.* (quota_methods.cc)
  Status set_quota(Call& call, const v1::QuotaSetRequest& req, v1::QuotaResponse* resp);
  Status show_quota(Call& call, const v1::QuotaShowRequest& req, v1::QuotaResponse* resp);
  Result<QuotaSubject> quota_subject(const identity::Identity& who, const std::string& user,
                                     const std::string& group, bool guest) const;

  // One operation on one volume at a time. `record` is read from the catalog after the lock is
  // held: a handler acts on it, never on the record the pipeline resolved before the lock (a
  // concurrent update or delete may have replaced it). NOT_FOUND when the volume was deleted
  // meanwhile — or when the caller lost the access the pipeline decided while it waited (a
  // revoked grant, a node whose volume was detached): the check is repeated on the re-read
  // record, with the pipeline's refusals (no read: NOT_FOUND; less than `need`:
  // acl_insufficient).
  struct VolumeLock {
    std::shared_ptr<std::mutex> mutex;  // declared first: outlives the guard
    std::unique_lock<std::mutex> guard;
    std::shared_ptr<const store::VolumeRecord> record;
  };
  [[nodiscard]] Result<VolumeLock> lock_volume(const Call& call, const std::string& id, Access need);
  // The declared resource `resource`, with the access the pipeline decided it needs.
  [[nodiscard]] Result<VolumeLock> lock_volume(const Call& call, std::string_view resource = "volume") {
    return lock_volume(call, call.volume(resource)->id, call.need(resource));
  }
  // Attach/mount state, as the driver (the host) reports it, copied into the catalog for
  // inspect. Called under the volume's lock after every change to it: the driver is the one
  // source of truth; the copy never diverges from what the last operation left.
  void sync_runtime(const std::string& id);

  // A volume or snapshot name held for a create in flight: refused (ALREADY_EXISTS `name_taken`)
  // while it is listed or held by another create; let go when the hold is dropped, by which time
  // the record is listed under it or the create has failed.
  class NameHold {
   public:
    NameHold(std::shared_mutex* mu, std::set<std::string>* held, std::string name)
        : mu_(mu), held_(held), name_(std::move(name)) {}
    NameHold(NameHold&& other) noexcept
        : mu_(std::exchange(other.mu_, nullptr)), held_(other.held_), name_(std::move(other.name_)) {}
    NameHold& operator=(NameHold&&) = delete;
    ~NameHold() {
      if (mu_ == nullptr) return;
      std::unique_lock lock(*mu_);
      held_->erase(name_);
    }

   private:
    std::shared_mutex* mu_;
    std::set<std::string>* held_;
    std::string name_;
  };
  [[nodiscard]] Result<NameHold> hold_name(const std::map<std::string, std::string>& listed,
                                           std::set<std::string>* held, const std::string& name,
                                           const char* kind);
  void fill_volume(const store::VolumeRecord& rec, v1::Volume* out) const;
  Result<std::string> qualify_user(const identity::Identity& who, const std::string& name) const;
  Result<std::string> qualify_group(const identity::Identity& who, const std::string& name) const;
  // Group grants stored before groups were qualified by issuer: qualified in place when one
  // issuer makes them unambiguous, else named in a warning. True when `o` changed.
  bool migrate_legacy_groups(ownership::Ownership* o, const std::string& what) const;
  Status rebuild_roles();
  // The revocations in the store, compiled into the registry the pipeline checks.
  Status load_revocations();
  Status load_revocations_locked();  // the caller holds reload_mu_
  bool token_issuer_known(const std::string& issuer) const;
  // A mount or publish target resolved once beneath the mount roots; one that lies on another
  // volume's filesystem needs write access on that volume.
  // (The volume acted on itself is exempt: its own access was checked by the pipeline.)
  Result<driver::MountTarget> resolve_target(const Call& call, const std::string& path,
                                             const driver::ResolveOptions& options) const;
  // The catalog's writers: handlers after their own store writes, and the store's watch with
  // every change (this node's included). A record older than what the catalog holds for its id
  // (or had before it was erased) is ignored, so the two can arrive in any order.
  void put_volume(std::shared_ptr<const store::VolumeRecord> rec);
  void erase_volume(const store::VolumeRecord& rec);
  void put_snapshot(std::shared_ptr<const store::SnapshotRecord> rec);
  void erase_snapshot(const store::SnapshotRecord& rec);
  void apply_change(const store::Change& change);
  // A "creating" record homed here with no create in flight: a create that failed while etcd
  // could not say whether its first write applied (no quorum), and that etcd applied later.
  // Removed (guarded by its revision) so that its name is free again; it never had data.
  void remove_abandoned(const store::Change& change);
  class CreatingId {  // an id in creating_ids_ for as long as it lives
   public:
    CreatingId(VolumeService* service, std::string id) : service_(service), id_(std::move(id)) {
      std::unique_lock lock(service_->catalog_mu_);
      service_->creating_ids_.insert(id_);
    }
    ~CreatingId() {
      std::unique_lock lock(service_->catalog_mu_);
      service_->creating_ids_.erase(id_);
    }
    CreatingId(const CreatingId&) = delete;
    CreatingId& operator=(const CreatingId&) = delete;

   private:
    VolumeService* service_;
    std::string id_;
  };
  // Whether this node holds the volume's data: always with a store of its own (one node, even
  // if its name changed since), else when the record names it.
  bool is_home(const std::string& home_node) const {
    return !store_->shared() || home_node == config_.node.name;
  }
  Result<std::shared_ptr<const store::VolumeRecord>> make_volume(
      store::VolumeRecord rec, const std::function<Status(const std::string& id)>& make_on_disk);

 public:
  // What is on record now for an intent's resource ("volume/<id>", "snapshot/<id>") or, before
  // the handler named one (a create), for the name in its parameters: for the audit record of an
  // intent a crash left without an outcome. Call after recover().
  std::string describe_for_recovery(const std::string& resource, const std::string& params) const;

 private:
  [[nodiscard]] Status load_quotas();
  // Charges a new volume (create, clone) to the caller, recorded on `rec`, and reserves its
  // size and one volume. Hold the result until make_volume has returned.
  Result<QuotaReservation> reserve_new_volume(const Call& call, store::VolumeRecord* rec);
  // Reserves `amount` against the subjects `volume` is charged to (snapshot, resize).
  Result<QuotaReservation> reserve_for(const Call& call, const store::VolumeRecord& volume,
                                       const QuotaUsage& amount);
  std::vector<QuotaUsage> catalog_usage(const std::vector<QuotaSubject>& subjects) const;
  void fill_quotas(const identity::Identity& who, v1::WhoAmIResponse* out) const;

  config::Config config_;
  std::unique_ptr<store::MetadataStore> store_;
  std::unique_ptr<driver::VolumeDriver> driver_;
  DataKeys& keys_;
  RoleRegistry& roles_;
  RevocationRegistry& revocations_;
  const ownership::AdminPolicy admins_;

  mutable std::shared_mutex catalog_mu_;
  std::map<std::string, std::shared_ptr<const store::VolumeRecord>> volumes_;  // by id
  std::map<std::string, std::string> volume_names_;                           // name -> id
  // Who may see which volume, as candidates for enumerate (access_keys): an owner's, a group's,
  // a collaborator's, a node's, and everyone's (public or unowned) volumes, by key. Only a
  // pre-filter: every candidate still goes through Call::may. Written with volumes_.
  std::unordered_map<std::string, std::set<std::string>> access_index_;  // key -> ids
  // The keys under which `rec` is a candidate (access_index_).
  static std::vector<std::string> access_keys(const store::VolumeRecord& rec);
  // The ids enumerate must look at for `call` (filtered to `owner` if given), in id order;
  // nullopt: every volume (admins, the CSI controller, security off). Under catalog_mu_.
  std::optional<std::set<std::string>> enumerate_candidates(const Call& call, const std::string& owner) const;
  std::set<std::string> reserved_names_;  // creates in flight
  // Ids of this node's creates in flight (volumes and snapshots): a record "creating" on this
  // node's home that is not among them is what a failed create left behind (cluster.cc).
  std::set<std::string> creating_ids_;
  std::map<std::string, std::shared_ptr<const store::SnapshotRecord>> snapshots_;
  std::map<std::string, std::string> snapshot_names_;
  std::set<std::string> reserved_snapshot_names_;
  struct Runtime {
    std::string device;
    std::string mount_path;
  };
  std::map<std::string, Runtime> runtime_;  // attach/mount state by volume id (sync_runtime)
  // The revision of the last record put or erased, by "v/<id>" and "s/<id>"; kept after an
  // erase so that a late, older put cannot bring a deleted record back.
  std::map<std::string, store::Revision> known_revision_;
  std::map<std::string, store::NodeRecord> nodes_;  // the cluster's nodes, fed by the watch
  mutable std::mutex channels_mu_;
  mutable std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;  // by node address

  std::mutex op_locks_mu_;
  std::map<std::string, std::shared_ptr<std::mutex>> op_locks_;

  std::mutex roles_mu_;  // serialises role changes
  // Serialises each read-the-store-then-publish of roles and quotas (a handler's and the
  // watch's): a publish never replaces a newer read with an older one.
  std::mutex reload_mu_;

  QuotaBook quotas_{config_.quotas.guest};
  std::mutex quota_set_mu_;  // serialises quota.set: read, merge, store, publish
};

}  // namespace volguard::service
