// The methods themselves: volumes, snapshots, mounts, roles, identity. Registered into the
// method table with what each needs; the pipeline runs every check before a handler.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>

#include "config/config.h"
#include "driver/driver.h"
#include "service/pipeline.h"
#include "service/quota.h"
#include "store/store.h"

namespace volguard::v1 {
class Volume;
class WhoAmIResponse;
}

namespace volguard::service {

inline constexpr char kVersion[] = "0.2.0";

class VolumeService : public ResourceResolver {
 public:
  VolumeService(const config::Config& config, std::unique_ptr<store::MetadataStore> store,
                std::unique_ptr<driver::VolumeDriver> driver);

  // Crash recovery: store and disk made to agree (half-made volumes removed), the in-memory
  // catalog loaded, attach/mount state read from the host, roles loaded.
  Status recover();

  void register_methods(MethodTable* table);
  void set_pipeline(Pipeline* pipeline);  // for roles and `can-i`

  std::shared_ptr<const store::VolumeRecord> find_volume(const std::string& ref) const override;
  std::shared_ptr<const store::SnapshotRecord> find_snapshot(const std::string& ref) const override;
  const ownership::Ownership* snapshot_ownership(
      const store::SnapshotRecord& s, std::shared_ptr<const store::VolumeRecord>* keep) const override;

  size_t volume_count() const;

 private:
  struct Runtime {
    std::string device;
    std::string mount_path;
  };

  std::shared_ptr<std::mutex> op_lock(const std::string& id);
  void fill_volume(const store::VolumeRecord& rec, v1::Volume* out) const;
  Result<std::string> qualify_user(const identity::Identity& who, const std::string& name) const;
  Result<std::string> qualify_group(const identity::Identity& who, const std::string& name) const;
  // Group grants stored before groups were qualified by issuer: qualified in place when one
  // issuer makes them unambiguous, else named in a warning. True when `o` changed.
  bool migrate_legacy_groups(ownership::Ownership* o, const std::string& what) const;
  Status rebuild_roles();
  // A mount or publish target resolved once beneath the mount roots; one that lies on another
  // volume's filesystem needs write access on that volume.
  // (The volume acted on itself is exempt: its own access was checked by the pipeline.)
  Result<driver::MountTarget> resolve_target(const Call& call, const std::string& path,
                                             const driver::ResolveOptions& options) const;
  void put_volume(std::shared_ptr<const store::VolumeRecord> rec);
  Result<std::shared_ptr<const store::VolumeRecord>> make_volume(
      store::VolumeRecord rec, const std::function<Status(const std::string& id)>& make_on_disk);
  void erase_volume(const std::string& id);

  // ---- Quotas and capacity limits (quota_methods.cc).
  void register_quota_methods(MethodTable* table);

 public:
  // What is on record now for an intent's resource ("volume/<id>", "snapshot/<id>") or, before
  // the handler named one (a create), for the name in its parameters: for the audit record of an
  // intent a crash left without an outcome. Call after recover().
  std::string describe_for_recovery(const std::string& resource, const std::string& params) const;

 private:
  Status load_quotas();
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
  Pipeline* pipeline_ = nullptr;

  mutable std::shared_mutex catalog_mu_;
  std::map<std::string, std::shared_ptr<const store::VolumeRecord>> volumes_;  // by id
  std::map<std::string, std::string> volume_names_;                           // name -> id
  std::set<std::string> reserved_names_;  // creates in flight
  std::map<std::string, std::shared_ptr<const store::SnapshotRecord>> snapshots_;
  std::map<std::string, std::string> snapshot_names_;
  std::set<std::string> reserved_snapshot_names_;
  std::map<std::string, Runtime> runtime_;  // attach/mount state by volume id

  std::mutex op_locks_mu_;
  std::map<std::string, std::shared_ptr<std::mutex>> op_locks_;

  std::mutex roles_mu_;  // serialises role changes

  QuotaBook quotas_{config_.quotas.guest};
  std::mutex quota_set_mu_;  // serialises quota.set: read, merge, store, publish
};

}  // namespace volguard::service
