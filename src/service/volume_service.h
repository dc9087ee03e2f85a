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
#include "store/store.h"

namespace volguard::v1 {
class Volume;
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

  size_t volume_count() const;

 private:
  struct Runtime {
    std::string device;
    std::string mount_path;
  };

  std::shared_ptr<std::mutex> op_lock(const std::string& id);
  void fill_volume(const store::VolumeRecord& rec, v1::Volume* out) const;
  Result<std::string> qualify_user(const identity::Identity& who, const std::string& name) const;
  Status rebuild_roles();
  Status check_mount_path(const std::string& path) const;
  void put_volume(std::shared_ptr<const store::VolumeRecord> rec);
  Result<std::shared_ptr<const store::VolumeRecord>> make_volume(
      store::VolumeRecord rec, const std::function<Status(const std::string& id)>& make_on_disk);
  void erase_volume(const std::string& id);

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
};

}  // namespace volguard::service
