// Metadata store: volumes, snapshots, roles, quotas. Narrow on purpose, so that an etcd
// implementation can serve a cluster later. Every write is durable when it returns.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "ownership/ownership.h"

namespace volguard::store {

// Lifecycle of a record; a crash leaves "creating"/"deleting" rows for recovery to reconcile.
enum class RecordState { kCreating, kReady, kDeleting };
const char* state_name(RecordState s);  // "creating", "ready", "deleting"

struct VolumeRecord {
  std::string id;    // server-generated, unique, never reused
  std::string name;  // unique among volumes
  uint64_t size_bytes = 0;
  std::string fs = "ext4";  // "ext4" | "xfs"
  std::map<std::string, std::string> labels;
  ownership::Ownership ownership;
  RecordState state = RecordState::kCreating;
  std::string source_volume;    // clone parent, if any
  std::string source_snapshot;  // clone/restore source snapshot, if any
  int64_t created_at = 0;       // unix seconds
  // Quota charge, fixed at creation (the owner principal is charged as well, whoever it is
  // now): the creating caller's groups, and whether a guest made it. Absent on volumes made
  // before quotas (schema 1), which are charged to their owner only.
  std::vector<std::string> charged_groups;
  bool charged_guest = false;
  // The node (CSI node id) the volume is attached to for Kubernetes; empty when none. That
  // node's credential may act on it (stage, publish, stats, unpublish, unstage) and no other's.
  std::string attached_node;
  bool operator==(const VolumeRecord&) const = default;
};

struct SnapshotRecord {
  std::string id;
  std::string name;  // unique among snapshots
  std::string volume_id;
  uint64_t size_bytes = 0;
  ownership::Ownership ownership;  // carried from the volume at snapshot time
  RecordState state = RecordState::kCreating;
  int64_t created_at = 0;
  bool operator==(const SnapshotRecord&) const = default;
};

struct RoleRecord {
  std::string name;
  std::string json;  // the role in Portworx/OpenStorage JSON form
  bool operator==(const RoleRecord&) const = default;
};

// A capacity quota of one subject; 0 = unlimited.
enum class QuotaKind { kUser, kGroup, kGuest };
const char* quota_kind_name(QuotaKind k);  // "user", "group", "guest"

struct QuotaRecord {
  QuotaKind kind = QuotaKind::kUser;
  std::string name;  // principal (user), qualified group (group), "" (guest)
  uint64_t max_bytes = 0;
  uint64_t max_volumes = 0;
  uint64_t max_snapshots = 0;
  bool operator==(const QuotaRecord&) const = default;
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  // ALREADY_EXISTS (reason "name_taken") when the name or id is used.
  virtual Status create_volume(const VolumeRecord& v) = 0;
  // Replaces the record with the same id; NOT_FOUND if absent. Name changes must stay unique.
  virtual Status update_volume(const VolumeRecord& v) = 0;
  // NOT_FOUND if absent.
  virtual Status delete_volume(const std::string& id) = 0;
  virtual Result<std::vector<VolumeRecord>> list_volumes() = 0;

  virtual Status create_snapshot(const SnapshotRecord& s) = 0;
  virtual Status update_snapshot(const SnapshotRecord& s) = 0;
  virtual Status delete_snapshot(const std::string& id) = 0;
  virtual Result<std::vector<SnapshotRecord>> list_snapshots() = 0;

  // Upsert / delete (NOT_FOUND if absent) / all.
  virtual Status put_role(const RoleRecord& r) = 0;
  virtual Status delete_role(const std::string& name) = 0;
  virtual Result<std::vector<RoleRecord>> list_roles() = 0;

  // Upsert by (kind, name) / delete (NOT_FOUND if absent) / all.
  virtual Status put_quota(const QuotaRecord& q) = 0;
  virtual Status delete_quota(QuotaKind kind, const std::string& name) = 0;
  virtual Result<std::vector<QuotaRecord>> list_quotas() = 0;
};

// SQLite in one file (WAL, synchronous=FULL). Creates the schema if missing.
Result<std::unique_ptr<MetadataStore>> open_sqlite_store(const std::string& path);

}  // namespace volguard::store
