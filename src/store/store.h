// Metadata store: volumes, snapshots, roles, quotas, nodes. Two implementations: SQLite (one
// node, the embedded default) and etcd (a cluster: several nodes, one truth). Every write is
// durable when it returns.
//
// Several writers: every record carries the store revision it was last written at. A write of
// a volume or snapshot names the revision it was read at and fails (ABORTED
// `revision_conflict`) if the record changed since — no update is lost between nodes; a new
// name is claimed in the same transaction as the record (ALREADY_EXISTS `name_taken` for the
// loser). Each node keeps its catalog in memory, fed by `watch`; `fresh` says whether that
// catalog may still be trusted.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "ownership/ownership.h"

namespace volguard::store {

// The store's revision: increases with every write (etcd's own; SQLite keeps a counter).
using Revision = int64_t;

// Lifecycle of a record; a crash leaves "creating"/"deleting" rows for recovery to reconcile.
enum class RecordState { kCreating, kReady, kDeleting };
const char* state_name(RecordState s);  // "creating", "ready", "deleting"

// An encrypted volume's or snapshot's data key as stored: only ever wrapped by a key-encryption
// key (crypto/kek.h), bound to the record's own id, so that a blob copied onto another record
// does not open. None of it is secret. Deleting the record destroys the key (crypto-shredding):
// without it the ciphertext on disk, in backups and in copies of the image cannot be read.
struct WrappedDataKey {
  std::string key_name;  // the configured KEK it was made under (volume create --secret-key)
  std::string kek_id;    // which version of that KEK wrapped it ("local:…", "kms:…")
  std::string blob;      // binary; stored as hex (SQLite) or in JSON (etcd)
  bool operator==(const WrappedDataKey&) const = default;
};

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
  // The volguard node whose disk holds the data (cluster); "" on a single node. Requests for
  // the volume are served there.
  std::string home_node;
  // "fscrypt" for an encrypted volume (driver::Encryption), "" for a plain one; data_key is
  // set exactly when it is encrypted.
  std::string encryption;
  WrappedDataKey data_key;
  // The revision the record was last written at: set by every read and write; a write must
  // carry the revision it read (0 for a create).
  Revision revision = 0;
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
  std::string home_node;  // its volume's home when it was taken (where the data is)
  // As the volume's: a snapshot of an encrypted volume is encrypted with the same data key,
  // kept here wrapped for the snapshot's own id so that it outlives the volume's copy.
  std::string encryption;
  WrappedDataKey data_key;
  Revision revision = 0;  // as VolumeRecord::revision
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

// A volguard node of a cluster: registered once (kept) and alive while its lease lasts.
struct NodeRecord {
  std::string name;
  std::string grpc_address;  // where other nodes forward requests for its volumes
  std::string rest_address;
  int64_t started_at = 0;    // unix seconds of the registration that is alive
  std::string version;
  bool alive = false;        // read only: a live lease holds its liveness key
  bool operator==(const NodeRecord&) const = default;
};

// Taken-back tokens (volguard token revoke). A token is refused `token_revoked` after its
// signature verified when a revocation covers it:
//  - kToken: its jti is `subject`, from `issuer` ("" = whatever issuer signed it);
//  - kUser: its principal (issuer/username, as grants write it) is `subject` and it was issued
//    (iat) before `before` or in that second, or it has no iat (nothing shows it was after).
// `expires_at`: when every token it covers has expired and it may go (0 = kept until removed).
enum class RevocationKind { kToken, kUser };
const char* revocation_kind_name(RevocationKind k);  // "token", "user"

struct RevocationRecord {
  RevocationKind kind = RevocationKind::kToken;
  std::string issuer;   // kToken only
  std::string subject;  // the jti (kToken) or the principal (kUser)
  int64_t before = 0;   // kUser: unix seconds
  int64_t expires_at = 0;
  int64_t created_at = 0;
  std::string by;       // the principal who revoked
  bool operator==(const RevocationRecord&) const = default;
};

// One change, as a watch delivers it.
struct Change {
  enum class Kind { kVolume, kSnapshot, kRole, kQuota, kNode, kRevocation };
  Kind kind = Kind::kVolume;
  bool deleted = false;
  Revision revision = 0;  // of the write or the delete
  std::string key;        // volume/snapshot id, role name, quota "<kind>/<name>", node name
  std::optional<VolumeRecord> volume;      // kVolume put
  std::optional<SnapshotRecord> snapshot;  // kSnapshot put
  std::optional<NodeRecord> node;          // kNode put (membership or liveness changed)
};
using ChangeHandler = std::function<void(const Change&)>;

enum class PutMode { kCreate, kUpsert };  // create: must not exist; upsert: either

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  // Writes set `v.revision` to the revision they were made at.
  // ALREADY_EXISTS (reason "name_taken") when the name or id is used.
  [[nodiscard]] virtual Status create_volume(VolumeRecord& v) = 0;
  // Replaces the record with the same id if it is still at `v.revision` (ABORTED
  // `revision_conflict` otherwise); NOT_FOUND if absent. Name changes must stay unique.
  [[nodiscard]] virtual Status update_volume(VolumeRecord& v) = 0;
  // Removes the record and its name if still at `v.revision`; NOT_FOUND if absent.
  [[nodiscard]] virtual Status delete_volume(const VolumeRecord& v) = 0;
  virtual Result<std::vector<VolumeRecord>> list_volumes() = 0;

  [[nodiscard]] virtual Status create_snapshot(SnapshotRecord& s) = 0;
  [[nodiscard]] virtual Status update_snapshot(SnapshotRecord& s) = 0;
  [[nodiscard]] virtual Status delete_snapshot(const SnapshotRecord& s) = 0;
  virtual Result<std::vector<SnapshotRecord>> list_snapshots() = 0;

  // Create (ALREADY_EXISTS `role_exists` if present) or upsert / delete (NOT_FOUND if absent) /
  // all.
  [[nodiscard]] virtual Status put_role(const RoleRecord& r, PutMode mode) = 0;
  virtual Status delete_role(const std::string& name) = 0;
  virtual Result<std::vector<RoleRecord>> list_roles() = 0;

  // Upsert by (kind, name) / delete (NOT_FOUND if absent) / all.
  virtual Status put_quota(const QuotaRecord& q) = 0;
  virtual Status delete_quota(QuotaKind kind, const std::string& name) = 0;
  virtual Result<std::vector<QuotaRecord>> list_quotas() = 0;

  // Upsert by (kind, issuer, subject) / delete (NOT_FOUND if absent) / all. Every node reads
  // them at start and follows them through `watch`.
  [[nodiscard]] virtual Status put_revocation(const RevocationRecord& r) = 0;
  [[nodiscard]] virtual Status delete_revocation(const RevocationRecord& r) = 0;
  virtual Result<std::vector<RevocationRecord>> list_revocations() = 0;

  // Nodes: `self` registered (kept) and marked alive for as long as the store is open (etcd: a
  // key under a lease the store keeps renewing). Single-node stores keep just `self`.
  [[nodiscard]] virtual Status register_node(const NodeRecord& self) = 0;
  virtual Result<std::vector<NodeRecord>> list_nodes() = 0;

  // The store's revision now (etcd: a quorum read, so it fails without a quorum).
  virtual Result<Revision> current_revision() = 0;
  // Whether other processes write to this store. When false (SQLite: one writer, this process),
  // `watch` delivers nothing and `fresh` always holds: every change is this process's own.
  virtual bool shared() const = 0;
  // Delivers every change after `from` to `on_change`, in revision order from one thread,
  // until the store is destroyed. Call once, after loading what the lists held at `from`.
  [[nodiscard]] virtual Status watch(Revision from, ChangeHandler on_change) = 0;
  // OK when the catalog fed by `watch` can be trusted: it has every change through `min`
  // (waiting up to `wait` for it) and it was confirmed complete within the staleness bound.
  // UNAVAILABLE `metadata_stale` otherwise (its message says since when).
  [[nodiscard]] virtual Status fresh(Revision min, std::chrono::milliseconds wait) const = 0;
  // The highest revision this store has seen (read, written or delivered): what a caller
  // passes to another node to read its own writes there.
  virtual Revision seen_revision() const = 0;
};

// SQLite in one file (WAL, synchronous=FULL). Creates the schema if missing.
Result<std::unique_ptr<MetadataStore>> open_sqlite_store(const std::string& path);

// etcd: every key under `prefix`. The watch and node lease run on the store's own threads.
struct EtcdStoreOptions {
  std::vector<std::string> endpoints;
  std::string prefix = "/volguard";
  std::string ca_file, cert_file, key_file;  // TLS to etcd (client cert optional)
  std::string username, password;            // etcd auth (password from a file, never inline)
  std::chrono::milliseconds timeout{2000};   // per etcd call
  std::chrono::milliseconds stale_after{3000};  // fresh() fails once unconfirmed this long
  std::chrono::seconds node_ttl{5};          // node liveness lease
};
Result<std::unique_ptr<MetadataStore>> open_etcd_store(const EtcdStoreOptions& options);

}  // namespace volguard::store
