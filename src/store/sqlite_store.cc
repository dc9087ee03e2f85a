// MetadataStore on one SQLite file. One connection behind one mutex: simple, and SQLite
// serializes writers anyway. Statements are prepared once because the store is on request paths.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <string_view>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/fd.h"
#include "common/text.h"
#include "common/hex.h"
#include "store/store.h"

namespace volguard::store {

const char* state_name(RecordState s) {
  switch (s) {
    case RecordState::kCreating:
      return "creating";
    case RecordState::kReady:
      return "ready";
    case RecordState::kDeleting:
      return "deleting";
  }
  return "creating";
}

const char* quota_kind_name(QuotaKind k) {
  switch (k) {
    case QuotaKind::kUser:
      return "user";
    case QuotaKind::kGroup:
      return "group";
    case QuotaKind::kGuest:
      return "guest";
  }
  return "user";
}

const char* revocation_kind_name(RevocationKind k) {
  return k == RevocationKind::kUser ? "user" : "token";
}

namespace {
// Long enough to ride out another process's checkpoint, short enough to fail a request visibly.
constexpr int kBusyTimeoutMs = 5000;

// No foreign key from snapshots to volumes: a thin snapshot outlives its origin, and clone
// sources may be deleted, so those references are informational. The CHECK on state keeps a
// hand-edited row from being misread as another state.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE IF NOT EXISTS volumes (
  id              TEXT PRIMARY KEY NOT NULL,
  name            TEXT NOT NULL UNIQUE,
  size_bytes      INTEGER NOT NULL,
  fs              TEXT NOT NULL,
  labels          TEXT NOT NULL,
  ownership       TEXT NOT NULL,
  state           TEXT NOT NULL CHECK (state IN ('creating', 'ready', 'deleting')),
  source_volume   TEXT NOT NULL,
  source_snapshot TEXT NOT NULL,
  created_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS volumes_by_created ON volumes (created_at, id);
CREATE TABLE IF NOT EXISTS snapshots (
  id         TEXT PRIMARY KEY NOT NULL,
  name       TEXT NOT NULL UNIQUE,
  volume_id  TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  ownership  TEXT NOT NULL,
  state      TEXT NOT NULL CHECK (state IN ('creating', 'ready', 'deleting')),
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_by_created ON snapshots (created_at, id);
CREATE TABLE IF NOT EXISTS roles (
  name TEXT PRIMARY KEY NOT NULL,
  json TEXT NOT NULL
);
)sql";

// Quotas: the charge each volume carries (existing volumes get "no groups, not a guest": they
// stay charged to their owner only) and the quotas themselves, one row per subject.
constexpr const char* kSchemaV2 = R"sql(
ALTER TABLE volumes ADD COLUMN charged_groups TEXT NOT NULL DEFAULT '[]';
ALTER TABLE volumes ADD COLUMN charged_guest INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS quotas (
  kind          TEXT NOT NULL CHECK (kind IN ('user', 'group', 'guest')),
  name          TEXT NOT NULL,
  max_bytes     INTEGER NOT NULL,
  max_volumes   INTEGER NOT NULL,
  max_snapshots INTEGER NOT NULL,
  PRIMARY KEY (kind, name)
);
)sql";

// CSI: the node a volume is attached to (ControllerPublishVolume), which the node's own
// credential may then stage, publish, unpublish and unstage. Empty: attached to no node.
constexpr const char* kSchemaV3 = R"sql(
ALTER TABLE volumes ADD COLUMN attached_node TEXT NOT NULL DEFAULT '';
)sql";

// Each step takes the schema from version `to - 1` to `to`, together with the user_version
// bump in one transaction: a crash leaves the old schema or the new one, never half of one.
// Append steps; never edit one that has shipped.
struct Migration {
  int to;
  const char* sql;
};
// Revisions and homes (the cluster work): the revision a row was last written at, guarding
// writes the way etcd's mod_revision does; the node holding a volume's data; the node itself.
constexpr const char* kSchemaV4 = R"sql(
ALTER TABLE volumes ADD COLUMN home_node TEXT NOT NULL DEFAULT '';
ALTER TABLE volumes ADD COLUMN mod_revision INTEGER NOT NULL DEFAULT 0;
ALTER TABLE snapshots ADD COLUMN home_node TEXT NOT NULL DEFAULT '';
ALTER TABLE snapshots ADD COLUMN mod_revision INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS nodes (
  name         TEXT PRIMARY KEY NOT NULL,
  grpc_address TEXT NOT NULL,
  rest_address TEXT NOT NULL,
  started_at   INTEGER NOT NULL,
  version      TEXT NOT NULL
);
)sql";

// Encryption at rest: the scheme and the wrapped data key (hex) of encrypted volumes and
// snapshots.
constexpr const char* kSchemaV5 = R"sql(
ALTER TABLE volumes ADD COLUMN encryption TEXT NOT NULL DEFAULT '';
ALTER TABLE volumes ADD COLUMN key_name TEXT NOT NULL DEFAULT '';
ALTER TABLE volumes ADD COLUMN kek_id TEXT NOT NULL DEFAULT '';
ALTER TABLE volumes ADD COLUMN wrapped_key TEXT NOT NULL DEFAULT '';
ALTER TABLE snapshots ADD COLUMN encryption TEXT NOT NULL DEFAULT '';
ALTER TABLE snapshots ADD COLUMN key_name TEXT NOT NULL DEFAULT '';
ALTER TABLE snapshots ADD COLUMN kek_id TEXT NOT NULL DEFAULT '';
ALTER TABLE snapshots ADD COLUMN wrapped_key TEXT NOT NULL DEFAULT '';
)sql";
// Token revocations (volguard token revoke).
constexpr const char* kSchemaV6 = R"sql(
CREATE TABLE IF NOT EXISTS revocations (
  kind       TEXT NOT NULL CHECK (kind IN ('token', 'user')),
  issuer     TEXT NOT NULL,
  subject    TEXT NOT NULL,
  before     INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  by         TEXT NOT NULL,
  PRIMARY KEY (kind, issuer, subject)
);
)sql";
constexpr Migration kMigrations[] = {{1, kSchemaV1}, {2, kSchemaV2}, {3, kSchemaV3},
                                     {4, kSchemaV4}, {5, kSchemaV5}, {6, kSchemaV6}};
constexpr int kSchemaVersion = kMigrations[std::size(kMigrations) - 1].to;

constexpr const char* kVolumeColumns =
    "id, name, size_bytes, fs, labels, ownership, state, source_volume, source_snapshot, "
    "created_at, charged_groups, charged_guest, attached_node, home_node, mod_revision, "
    "encryption, key_name, kek_id, wrapped_key";
constexpr const char* kSnapshotColumns =
    "id, name, volume_id, size_bytes, ownership, state, created_at, home_node, mod_revision, "
    "encryption, key_name, kek_id, wrapped_key";

struct DbCloser {
  // close_v2 tolerates statements still alive, so a destruction-order slip cannot leak the file.
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// One use of a prepared statement. Resetting on scope exit matters beyond reuse: a SELECT left
// mid-iteration keeps a read transaction open, which pins the WAL and blocks checkpoints.
class StmtUse {
 public:
  explicit StmtUse(sqlite3_stmt* s) : s_(s) {}
  ~StmtUse() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  StmtUse(const StmtUse&) = delete;
  StmtUse& operator=(const StmtUse&) = delete;

  // Copies (SQLITE_TRANSIENT): callers' temporaries may die before the bindings are cleared.
  void text(int i, std::string_view v) {
    // A null data pointer would bind SQL NULL and trip NOT NULL; an empty string is meant.
    const char* data = v.data() != nullptr ? v.data() : "";
    note(sqlite3_bind_text64(s_, i, data, v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  void int64(int i, int64_t v) { note(sqlite3_bind_int64(s_, i, v)); }
  // Two's-complement storage so that the full uint64 range round-trips through INTEGER.
  void uint64(int i, uint64_t v) { int64(i, static_cast<int64_t>(v)); }

  // A failed bind is reported as the step's result so call sites check one code.
  int step() { return bind_rc_ != SQLITE_OK ? bind_rc_ : sqlite3_step(s_); }

  std::string col_text(int i) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, i));
    int n = sqlite3_column_bytes(s_, i);  // after column_text: the byte count of that form
    return p != nullptr ? std::string(p, static_cast<size_t>(n)) : std::string();
  }
  int64_t col_int64(int i) const { return sqlite3_column_int64(s_, i); }
  uint64_t col_uint64(int i) const { return static_cast<uint64_t>(col_int64(i)); }

 private:
  void note(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }
  sqlite3_stmt* s_;
  int bind_rc_ = SQLITE_OK;
};

std::optional<RecordState> parse_state(std::string_view text) {
  if (text == "creating") return RecordState::kCreating;
  if (text == "ready") return RecordState::kReady;
  if (text == "deleting") return RecordState::kDeleting;
  return std::nullopt;
}

std::string in_quotes(std::string_view s) {
  // Built with append: GCC 12's -Wrestrict misfires on "'" + std::string at -O3.
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('\'');
  out.append(s);
  out.push_back('\'');
  return out;
}

Status name_taken(std::string_view kind, std::string_view name) {
  return Status(Code::kAlreadyExists, "name_taken",
                std::string(kind) + " name " + in_quotes(name) + " is already taken");
}

Status revision_conflict(std::string_view kind, std::string_view id) {
  return Status(Code::kAborted, "revision_conflict",
                std::string(kind) + " " + in_quotes(id) + " was changed by another request; retry");
}

Status not_found(std::string_view kind, std::string_view id) {
  return Status(Code::kNotFound, "not_found",
                std::string(kind) + " " + in_quotes(id) + " not found");
}

// Refuses, at write time, values that would not read back: one unreadable row would otherwise
// make every later list call fail.
Result<std::string> ownership_json(std::string_view kind, std::string_view name,
                                   const ownership::Ownership& o) {
  std::string json;
  try {
    json = ownership::to_json(o);
  } catch (const nlohmann::json::exception&) {
    // dump() throws on strings that are not UTF-8.
    return Status(
        Code::kInvalidArgument, "bad_ownership",
        "ownership of " + std::string(kind) + " " + in_quotes(name) + " is not valid UTF-8");
  }
  auto back = ownership::from_json(json);
  if (!back.is_ok() || *back != o) {
    return Status(Code::kInvalidArgument, "bad_ownership",
                  "ownership of " + std::string(kind) + " " + in_quotes(name) +
                      " cannot be stored (an ACL entry with no access?)");
  }
  return json;
}

Result<std::string> labels_json(std::string_view name,
                                const std::map<std::string, std::string>& labels) {
  try {
    return nlohmann::json(labels).dump();
  } catch (const nlohmann::json::exception&) {
    return Status(Code::kInvalidArgument, "bad_labels",
                  "labels of volume " + in_quotes(name) + " are not valid UTF-8");
  }
}

Result<std::string> groups_json(std::string_view name, const std::vector<std::string>& groups) {
  try {
    return nlohmann::json(groups).dump();
  } catch (const nlohmann::json::exception&) {
    return Status(Code::kInvalidArgument, "bad_groups",
                  "charged groups of volume " + in_quotes(name) + " are not valid UTF-8");
  }
}

std::optional<std::vector<std::string>> parse_groups(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array()) return std::nullopt;
  std::vector<std::string> groups;
  for (const auto& v : j) {
    if (!v.is_string()) return std::nullopt;
    groups.push_back(v.get<std::string>());
  }
  return groups;
}

std::optional<QuotaKind> parse_quota_kind(std::string_view text) {
  if (text == "user") return QuotaKind::kUser;
  if (text == "group") return QuotaKind::kGroup;
  if (text == "guest") return QuotaKind::kGuest;
  return std::nullopt;
}

std::optional<std::map<std::string, std::string>> parse_labels(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  std::map<std::string, std::string> labels;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) return std::nullopt;
    labels.emplace(k, v.get<std::string>());
  }
  return labels;
}

// The database holds every owner, grant and quota: 0600, whoever creates it. SQLite would
// create it 0644 (minus the umask) and gives -wal/-shm the database's mode, so the database is
// made here first, and files from an older, wider run are narrowed (they are ours). Best effort:
// when this fails, sqlite3_open_v2 reports the path's real problem.
void make_files_private(const std::string& path) {
  const UniqueFd db(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!db) return;
  ::fchmod(db.get(), 0600);
  for (const char* suffix : {"-wal", "-shm", "-journal"}) {
    const UniqueFd f(::open((path + suffix).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (f) ::fchmod(f.get(), 0600);
  }
}

class SqliteStore final : public MetadataStore {
 public:
  static Result<std::unique_ptr<MetadataStore>> open(const std::string& path) {
    make_files_private(path);
    sqlite3* raw = nullptr;
    int rc =
        sqlite3_open_v2(path.c_str(), &raw,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    DbPtr db(raw);  // owned even on failure: sqlite3_open_v2 allocates a handle to report errors
    std::unique_ptr<SqliteStore> store(new SqliteStore(path, std::move(db)));
    if (rc != SQLITE_OK) {
      return store->error_rc("cannot open database", rc);
    }
    RETURN_IF_ERROR(store->init());
    return std::unique_ptr<MetadataStore>(std::move(store));
  }

  Status create_volume(VolumeRecord& v) override {
    ASSIGN_OR_RETURN(const std::string labels, labels_json(v.name, v.labels));
    ASSIGN_OR_RETURN(const std::string own, ownership_json("volume", v.name, v.ownership));
    ASSIGN_OR_RETURN(const std::string groups, groups_json(v.name, v.charged_groups));
    Revision next = 0;
    RETURN_IF_ERROR(write([&]() -> Status {
      StmtUse q(insert_volume_.get());
      next = revision_ + 1;
      bind_volume(q, v, labels, own, groups, next);
      int rc = q.step();
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status(Code::kAlreadyExists, "name_taken",
                      "volume id " + in_quotes(v.id) + " is already in use (creating volume " +
                          in_quotes(v.name) + ")");
      }
      if (rc == SQLITE_CONSTRAINT_UNIQUE) return name_taken("volume", v.name);
      if (rc != SQLITE_DONE) return error("creating volume " + in_quotes(v.name));
      revision_ = next;
      return Status::ok();
    }));
    v.revision = next;  // only once the change is committed
    return Status::ok();
  }

  Status update_volume(VolumeRecord& v) override {
    ASSIGN_OR_RETURN(const std::string labels, labels_json(v.name, v.labels));
    ASSIGN_OR_RETURN(const std::string own, ownership_json("volume", v.name, v.ownership));
    ASSIGN_OR_RETURN(const std::string groups, groups_json(v.name, v.charged_groups));
    Revision next = 0;
    RETURN_IF_ERROR(write([&]() -> Status {
      StmtUse q(update_volume_.get());
      next = revision_ + 1;
      bind_volume(q, v, labels, own, groups, next);
      q.int64(16, v.revision);
      int rc = q.step();
      if (rc == SQLITE_CONSTRAINT_UNIQUE) return name_taken("volume", v.name);
      if (rc != SQLITE_DONE) return error("updating volume " + in_quotes(v.id));
      if (sqlite3_changes(db_.get()) == 0) return missing_or_changed(volume_exists_.get(), "volume", v.id);
      revision_ = next;
      return Status::ok();
    }));
    v.revision = next;  // only once the change is committed
    return Status::ok();
  }

  Status delete_volume(const VolumeRecord& v) override {
    RETURN_IF_ERROR(delete_by_key(delete_volume_.get(), volume_exists_.get(), "volume", v.id, v.revision));
    return v.encryption.empty() ? Status::ok() : shred();
  }

  Result<std::vector<VolumeRecord>> list_volumes() override {
    std::lock_guard lock(mu_);
    StmtUse q(list_volumes_.get());
    std::vector<VolumeRecord> out;
    for (;;) {
      int rc = q.step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return error("listing volumes");
      VolumeRecord v;
      v.id = q.col_text(0);
      v.name = q.col_text(1);
      v.size_bytes = q.col_uint64(2);
      v.fs = q.col_text(3);
      auto labels = parse_labels(q.col_text(4));
      if (!labels) return corrupt("volume", v.id, "labels");
      v.labels = std::move(*labels);
      auto own = ownership::from_json(q.col_text(5));
      if (!own) return corrupt("volume", v.id, "ownership");
      v.ownership = std::move(*own);
      auto state = parse_state(q.col_text(6));
      if (!state) return corrupt("volume", v.id, "state");
      v.state = *state;
      v.source_volume = q.col_text(7);
      v.source_snapshot = q.col_text(8);
      v.created_at = q.col_int64(9);
      auto groups = parse_groups(q.col_text(10));
      if (!groups) return corrupt("volume", v.id, "charged_groups");
      v.charged_groups = std::move(*groups);
      v.charged_guest = q.col_int64(11) != 0;
      v.attached_node = q.col_text(12);
      v.home_node = q.col_text(13);
      v.revision = q.col_int64(14);
      if (!read_key(q, 15, &v.encryption, &v.data_key)) return corrupt("volume", v.id, "wrapped_key");
      out.push_back(std::move(v));
    }
    return out;
  }

  Status create_snapshot(SnapshotRecord& s) override {
    ASSIGN_OR_RETURN(const std::string own, ownership_json("snapshot", s.name, s.ownership));
    Revision next = 0;
    RETURN_IF_ERROR(write([&]() -> Status {
      StmtUse q(insert_snapshot_.get());
      next = revision_ + 1;
      bind_snapshot(q, s, own, next);
      int rc = q.step();
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status(Code::kAlreadyExists, "name_taken",
                      "snapshot id " + in_quotes(s.id) + " is already in use (creating snapshot " +
                          in_quotes(s.name) + ")");
      }
      if (rc == SQLITE_CONSTRAINT_UNIQUE) return name_taken("snapshot", s.name);
      if (rc != SQLITE_DONE) return error("creating snapshot " + in_quotes(s.name));
      revision_ = next;
      return Status::ok();
    }));
    s.revision = next;  // only once the change is committed
    return Status::ok();
  }

  Status update_snapshot(SnapshotRecord& s) override {
    ASSIGN_OR_RETURN(const std::string own, ownership_json("snapshot", s.name, s.ownership));
    Revision next = 0;
    RETURN_IF_ERROR(write([&]() -> Status {
      StmtUse q(update_snapshot_.get());
      next = revision_ + 1;
      bind_snapshot(q, s, own, next);
      q.int64(10, s.revision);
      int rc = q.step();
      if (rc == SQLITE_CONSTRAINT_UNIQUE) return name_taken("snapshot", s.name);
      if (rc != SQLITE_DONE) return error("updating snapshot " + in_quotes(s.id));
      if (sqlite3_changes(db_.get()) == 0) {
        return missing_or_changed(snapshot_exists_.get(), "snapshot", s.id);
      }
      revision_ = next;
      return Status::ok();
    }));
    s.revision = next;  // only once the change is committed
    return Status::ok();
  }

  Status delete_snapshot(const SnapshotRecord& s) override {
    RETURN_IF_ERROR(delete_by_key(delete_snapshot_.get(), snapshot_exists_.get(), "snapshot", s.id, s.revision));
    return s.encryption.empty() ? Status::ok() : shred();
  }

  // After a wrapped key's row was deleted: secure_delete zeroed it in the database's pages, but
  // the write-ahead log still holds earlier images of those pages. A TRUNCATE checkpoint copies
  // the log into the database and empties it, so no copy of the key is left in either file.
  // The delete has happened either way: a checkpoint kept from finishing (only a reader in
  // another process can) is finished by the next one.
  Status shred() {
    std::lock_guard lock(mu_);
    (void)query_text("PRAGMA wal_checkpoint(TRUNCATE)");
    return Status::ok();
  }

  Result<std::vector<SnapshotRecord>> list_snapshots() override {
    std::lock_guard lock(mu_);
    StmtUse q(list_snapshots_.get());
    std::vector<SnapshotRecord> out;
    for (;;) {
      int rc = q.step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return error("listing snapshots");
      SnapshotRecord s;
      s.id = q.col_text(0);
      s.name = q.col_text(1);
      s.volume_id = q.col_text(2);
      s.size_bytes = q.col_uint64(3);
      auto own = ownership::from_json(q.col_text(4));
      if (!own) return corrupt("snapshot", s.id, "ownership");
      s.ownership = std::move(*own);
      auto state = parse_state(q.col_text(5));
      if (!state) return corrupt("snapshot", s.id, "state");
      s.state = *state;
      s.created_at = q.col_int64(6);
      s.home_node = q.col_text(7);
      s.revision = q.col_int64(8);
      if (!read_key(q, 9, &s.encryption, &s.data_key)) return corrupt("snapshot", s.id, "wrapped_key");
      out.push_back(std::move(s));
    }
    return out;
  }

  Status put_role(const RoleRecord& r, PutMode mode) override {
    return write([&]() -> Status {
      StmtUse q(mode == PutMode::kCreate ? insert_role_.get() : upsert_role_.get());
      q.text(1, r.name);
      q.text(2, r.json);
      int rc = q.step();
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status(Code::kAlreadyExists, "role_exists", "role " + in_quotes(r.name) + " already exists");
      }
      if (rc != SQLITE_DONE) return error("storing role " + in_quotes(r.name));
      return Status::ok();
    });
  }

  Status delete_role(const std::string& name) override {
    return write([&]() -> Status {
      StmtUse q(delete_role_.get());
      q.text(1, name);
      if (q.step() != SQLITE_DONE) return error("deleting role " + in_quotes(name));
      if (sqlite3_changes(db_.get()) == 0) return not_found("role", name);
      return Status::ok();
    });
  }

  Result<std::vector<RoleRecord>> list_roles() override {
    std::lock_guard lock(mu_);
    StmtUse q(list_roles_.get());
    std::vector<RoleRecord> out;
    for (;;) {
      int rc = q.step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return error("listing roles");
      out.push_back(RoleRecord{.name = q.col_text(0), .json = q.col_text(1)});
    }
    return out;
  }

  Status put_quota(const QuotaRecord& r) override {
    return write([&]() -> Status {
      StmtUse q(put_quota_.get());
      q.text(1, quota_kind_name(r.kind));
      q.text(2, r.name);
      q.uint64(3, r.max_bytes);
      q.uint64(4, r.max_volumes);
      q.uint64(5, r.max_snapshots);
      if (q.step() != SQLITE_DONE) {
        return error("storing " + std::string(quota_kind_name(r.kind)) + " quota " + in_quotes(r.name));
      }
      return Status::ok();
    });
  }

  Status delete_quota(QuotaKind kind, const std::string& name) override {
    return write([&]() -> Status {
      StmtUse q(delete_quota_.get());
      q.text(1, quota_kind_name(kind));
      q.text(2, name);
      std::string what = std::string(quota_kind_name(kind)) + " quota";
      if (q.step() != SQLITE_DONE) return error("deleting " + what + " " + in_quotes(name));
      if (sqlite3_changes(db_.get()) == 0) return not_found(what, name);
      return Status::ok();
    });
  }

  Result<std::vector<QuotaRecord>> list_quotas() override {
    std::lock_guard lock(mu_);
    StmtUse q(list_quotas_.get());
    std::vector<QuotaRecord> out;
    for (;;) {
      int rc = q.step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return error("listing quotas");
      auto kind = parse_quota_kind(q.col_text(0));
      if (!kind) return corrupt("quota", q.col_text(1), "kind");
      out.push_back(QuotaRecord{.kind = *kind,
                                .name = q.col_text(1),
                                .max_bytes = q.col_uint64(2),
                                .max_volumes = q.col_uint64(3),
                                .max_snapshots = q.col_uint64(4)});
    }
    return out;
  }

  Status put_revocation(const RevocationRecord& r) override {
    return write([&]() -> Status {
      StmtUse q(put_revocation_.get());
      q.text(1, revocation_kind_name(r.kind));
      q.text(2, r.issuer);
      q.text(3, r.subject);
      q.int64(4, r.before);
      q.int64(5, r.expires_at);
      q.int64(6, r.created_at);
      q.text(7, r.by);
      if (q.step() != SQLITE_DONE) return error("storing the revocation of " + in_quotes(r.subject));
      return Status::ok();
    });
  }

  Status delete_revocation(const RevocationRecord& r) override {
    return write([&]() -> Status {
      StmtUse q(delete_revocation_.get());
      q.text(1, revocation_kind_name(r.kind));
      q.text(2, r.issuer);
      q.text(3, r.subject);
      if (q.step() != SQLITE_DONE) return error("deleting the revocation of " + in_quotes(r.subject));
      if (sqlite3_changes(db_.get()) == 0) return not_found("revocation", r.subject);
      return Status::ok();
    });
  }

  Result<std::vector<RevocationRecord>> list_revocations() override {
    std::lock_guard lock(mu_);
    StmtUse q(list_revocations_.get());
    std::vector<RevocationRecord> out;
    for (;;) {
      int rc = q.step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return error("listing revocations");
      const std::string kind = q.col_text(0);
      if (kind != "token" && kind != "user") return corrupt("revocation", q.col_text(2), "kind");
      out.push_back(RevocationRecord{.kind = kind == "user" ? RevocationKind::kUser : RevocationKind::kToken,
                                     .issuer = q.col_text(1),
                                     .subject = q.col_text(2),
                                     .before = q.col_int64(3),
                                     .expires_at = q.col_int64(4),
                                     .created_at = q.col_int64(5),
                                     .by = q.col_text(6)});
    }
    return out;
  }

  Status register_node(const NodeRecord& self) override {
    return write([&]() -> Status {
      StmtUse q(put_node_.get());
      q.text(1, self.name);
      q.text(2, self.grpc_address);
      q.text(3, self.rest_address);
      q.int64(4, self.started_at);
      q.text(5, self.version);
      if (q.step() != SQLITE_DONE) return error("registering node " + in_quotes(self.name));
      self_ = self.name;
      return Status::ok();
    });
  }

  Result<std::vector<NodeRecord>> list_nodes() override {
    std::lock_guard lock(mu_);
    StmtUse q(list_nodes_.get());
    std::vector<NodeRecord> out;
    for (;;) {
      int rc = q.step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return error("listing nodes");
      NodeRecord n{.name = q.col_text(0),
                   .grpc_address = q.col_text(1),
                   .rest_address = q.col_text(2),
                   .started_at = q.col_int64(3),
                   .version = q.col_text(4)};
      // One writer: the node that registered in this process is the one alive; rows left by a
      // database copied from elsewhere are not.
      n.alive = n.name == self_;
      out.push_back(std::move(n));
    }
    return out;
  }

  Result<Revision> current_revision() override {
    std::lock_guard lock(mu_);
    return revision_;
  }
  bool shared() const override { return false; }
  Status watch(Revision, ChangeHandler) override { return Status::ok(); }
  Status fresh(Revision, std::chrono::milliseconds) const override { return Status::ok(); }
  Revision seen_revision() const override {
    std::lock_guard lock(mu_);
    return revision_;
  }

 private:
  SqliteStore(std::string path, DbPtr db) : path_(std::move(path)), db_(std::move(db)) {}

  // Group commit. With synchronous=FULL a commit returns only after the log is fsynced, and
  // one connection commits one change at a time: every audited change waited for its own
  // fsync behind everyone else's. Writers now queue; the first one in leads: it applies every
  // queued change in one transaction, each inside its own savepoint (a refused change, e.g. a
  // revision conflict, rolls back alone and the others see exactly the state they would have
  // seen one after another), commits once, and only then answers each writer. No writer hears
  // "done" before its change is durable; a failed commit fails every change of the batch.
  // `apply` runs with mu_ held, inside the transaction.
  struct PendingWrite {
    std::function<Status()> apply;
    Status result;
    bool done = false;
  };

  Status write(std::function<Status()> apply) {
    PendingWrite self{.apply = std::move(apply)};
    std::unique_lock queue(queue_mu_);
    queue_.push_back(&self);
    while (!self.done) {
      if (leading_) {
        queue_cv_.wait(queue);
        continue;
      }
      leading_ = true;
      std::vector<PendingWrite*> batch;
      batch.swap(queue_);
      queue.unlock();
      commit_batch(batch);
      queue.lock();
      // Published under queue_mu_: a waiter reads its result only after seeing `done` under
      // the same lock, so it never sees a result from before a failed COMMIT.
      for (PendingWrite* w : batch) w->done = true;
      leading_ = false;
      queue_cv_.notify_all();
    }
    return self.result;
  }

  void commit_batch(const std::vector<PendingWrite*>& batch) {
    std::lock_guard lock(mu_);
    sqlite3* db = db_.get();
    if (batch.size() == 1) {  // alone: its statement commits itself
      batch[0]->result = batch[0]->apply();
      return;
    }
    const Revision before = revision_;
    Status failed;  // the batch as a whole: its transaction could not begin or commit
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
      failed = error("beginning a transaction");
    }
    for (PendingWrite* w : batch) {
      if (!failed.is_ok()) break;
      if (sqlite3_exec(db, "SAVEPOINT change", nullptr, nullptr, nullptr) != SQLITE_OK) {
        failed = error("opening a savepoint");
        break;
      }
      w->result = w->apply();
      // A refused change set no revision; its statements (if any ran) are undone here.
      if (!w->result.is_ok() &&
          sqlite3_exec(db, "ROLLBACK TO change", nullptr, nullptr, nullptr) != SQLITE_OK) {
        failed = error("rolling back a refused change");
        break;
      }
      if (sqlite3_exec(db, "RELEASE change", nullptr, nullptr, nullptr) != SQLITE_OK) {
        failed = error("releasing a savepoint");
        break;
      }
    }
    if (failed.is_ok() && sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      failed = error("committing");
    }
    if (!failed.is_ok()) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);  // no-op if nothing is open
      revision_ = before;
      for (PendingWrite* w : batch) w->result = failed;
    }
  }

  Status init() {
    sqlite3* db = db_.get();
    sqlite3_extended_result_codes(db, 1);  // so a constraint failure says which constraint
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
    // journal_mode answers with the mode in force; anything but "wal" (e.g. a read-only
    // medium) would silently weaken the durability the interface promises.
    auto mode = query_text("PRAGMA journal_mode=WAL");
    if (!mode) return mode.status();
    if (*mode != "wal") {
      return Status(Code::kInternal, "store_error",
                    "sqlite store " + in_quotes(path_) + ": cannot enable WAL (journal_mode is " +
                        in_quotes(*mode) + ")");
    }
    // secure_delete: a deleted row's bytes are overwritten in the file, so that a deleted
    // volume's wrapped key does not linger in free pages (crypto-shredding, see shred()).
    for (const char* pragma : {"PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON", "PRAGMA secure_delete=ON"}) {
      if (sqlite3_exec(db, pragma, nullptr, nullptr, nullptr) != SQLITE_OK) return error(pragma);
    }
    auto version = query_text("PRAGMA user_version");
    if (!version) return version.status();
    const auto parsed = parse_count(*version);
    if (!parsed) {
      return Status(Code::kInternal, "store_error",
                    "sqlite store " + in_quotes(path_) + ": user_version '" + *version + "' is not a number");
    }
    if (*parsed > static_cast<uint64_t>(kSchemaVersion)) {
      return Status(Code::kInternal, "store_error",
                    "sqlite store " + in_quotes(path_) + ": schema version " + *version +
                        " is newer than this build supports (" + std::to_string(kSchemaVersion) +
                        ")");
    }
    const int current = static_cast<int>(*parsed);
    for (const Migration& m : kMigrations) {
      if (m.to <= current) continue;
      std::string sql = std::string("BEGIN IMMEDIATE;\n") + m.sql + "PRAGMA user_version = " +
                        std::to_string(m.to) + ";\nCOMMIT;\n";
      if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
        Status s = error(m.to == 1 ? std::string("creating schema")
                                   : "migrating schema to version " + std::to_string(m.to));
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);  // no-op if nothing is open
        return s;
      }
    }

    const std::string vol_cols = kVolumeColumns;
    const std::string snap_cols = kSnapshotColumns;
    struct Spec {
      StmtPtr* target;
      std::string sql;
    };
    const Spec specs[] = {
        {&insert_volume_,
         "INSERT INTO volumes (" + vol_cols +
             ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?17, ?18, ?19, ?20)"},
        {&update_volume_,
         "UPDATE volumes SET name = ?2, size_bytes = ?3, fs = ?4, labels = ?5, ownership = ?6, "
         "state = ?7, source_volume = ?8, source_snapshot = ?9, created_at = ?10, "
         "charged_groups = ?11, charged_guest = ?12, attached_node = ?13, home_node = ?14, "
         "mod_revision = ?15, encryption = ?17, key_name = ?18, kek_id = ?19, wrapped_key = ?20 "
         "WHERE id = ?1 AND mod_revision = ?16"},
        {&delete_volume_, "DELETE FROM volumes WHERE id = ?1 AND mod_revision = ?2"},
        {&volume_exists_, "SELECT 1 FROM volumes WHERE id = ?1"},
        {&list_volumes_, "SELECT " + vol_cols + " FROM volumes ORDER BY created_at, id"},
        {&insert_snapshot_,
         "INSERT INTO snapshots (" + snap_cols + ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?11, ?12, ?13, ?14)"},
        {&update_snapshot_,
         "UPDATE snapshots SET name = ?2, volume_id = ?3, size_bytes = ?4, ownership = ?5, "
         "state = ?6, created_at = ?7, home_node = ?8, mod_revision = ?9, encryption = ?11, "
         "key_name = ?12, kek_id = ?13, wrapped_key = ?14 WHERE id = ?1 AND mod_revision = ?10"},
        {&delete_snapshot_, "DELETE FROM snapshots WHERE id = ?1 AND mod_revision = ?2"},
        {&snapshot_exists_, "SELECT 1 FROM snapshots WHERE id = ?1"},
        {&list_snapshots_, "SELECT " + snap_cols + " FROM snapshots ORDER BY created_at, id"},
        {&insert_role_, "INSERT INTO roles (name, json) VALUES (?1, ?2)"},
        {&upsert_role_,
         "INSERT INTO roles (name, json) VALUES (?1, ?2) "
         "ON CONFLICT (name) DO UPDATE SET json = excluded.json"},
        {&delete_role_, "DELETE FROM roles WHERE name = ?1"},
        {&list_roles_, "SELECT name, json FROM roles ORDER BY name"},
        {&put_quota_,
         "INSERT INTO quotas (kind, name, max_bytes, max_volumes, max_snapshots) "
         "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (kind, name) DO UPDATE SET "
         "max_bytes = excluded.max_bytes, max_volumes = excluded.max_volumes, "
         "max_snapshots = excluded.max_snapshots"},
        {&delete_quota_, "DELETE FROM quotas WHERE kind = ?1 AND name = ?2"},
        {&put_revocation_,
         "INSERT OR REPLACE INTO revocations (kind, issuer, subject, before, expires_at, created_at, by) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
        {&delete_revocation_, "DELETE FROM revocations WHERE kind = ?1 AND issuer = ?2 AND subject = ?3"},
        {&list_revocations_,
         "SELECT kind, issuer, subject, before, expires_at, created_at, by FROM revocations "
         "ORDER BY created_at, kind, issuer, subject"},
        {&list_quotas_, "SELECT kind, name, max_bytes, max_volumes, max_snapshots FROM quotas "
                        "ORDER BY kind, name"},
        {&put_node_,
         "INSERT INTO nodes (name, grpc_address, rest_address, started_at, version) "
         "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO UPDATE SET "
         "grpc_address = excluded.grpc_address, rest_address = excluded.rest_address, "
         "started_at = excluded.started_at, version = excluded.version"},
        {&list_nodes_, "SELECT name, grpc_address, rest_address, started_at, version FROM nodes "
                       "ORDER BY name"},
    };
    for (const Spec& spec : specs) {
      sqlite3_stmt* raw = nullptr;
      int rc = sqlite3_prepare_v3(db, spec.sql.c_str(), static_cast<int>(spec.sql.size()),
                                  SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
      spec.target->reset(raw);
      if (rc != SQLITE_OK) return error("preparing statement");
    }
    // Every write takes a revision above every row's: a record's revision only grows, which is
    // all a guarded write compares.
    auto highest = query_text(
        "SELECT MAX(COALESCE((SELECT MAX(mod_revision) FROM volumes), 0), "
        "COALESCE((SELECT MAX(mod_revision) FROM snapshots), 0))");
    if (!highest) return highest.status();
    revision_ = static_cast<Revision>(parse_count(*highest).value_or(0));
    return Status::ok();
  }

  // Runs a one-row, one-column statement (pragmas) and returns its value as text.
  Result<std::string> query_text(const char* sql) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_.get(), sql, -1, &raw, nullptr);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) return error(sql);
    StmtUse q(stmt.get());
    if (q.step() != SQLITE_ROW) return error(sql);
    return q.col_text(0);
  }

  // The four encryption columns from `first` on (encryption, key_name, kek_id, wrapped_key);
  // false when the wrapped key is not hex.
  static bool read_key(StmtUse& q, int first, std::string* encryption, WrappedDataKey* key) {
    *encryption = q.col_text(first);
    key->key_name = q.col_text(first + 1);
    key->kek_id = q.col_text(first + 2);
    auto blob = from_hex(q.col_text(first + 3));
    if (!blob) return false;
    key->blob = std::move(*blob);
    return true;
  }

  static void bind_volume(StmtUse& q, const VolumeRecord& v, const std::string& labels,
                          const std::string& own, const std::string& charged_groups,
                          Revision revision) {
    q.text(1, v.id);
    q.text(2, v.name);
    q.uint64(3, v.size_bytes);
    q.text(4, v.fs);
    q.text(5, labels);
    q.text(6, own);
    q.text(7, state_name(v.state));
    q.text(8, v.source_volume);
    q.text(9, v.source_snapshot);
    q.int64(10, v.created_at);
    q.text(11, charged_groups);
    q.int64(12, v.charged_guest ? 1 : 0);
    q.text(13, v.attached_node);
    q.text(14, v.home_node);
    q.int64(15, revision);
    q.text(17, v.encryption);
    q.text(18, v.data_key.key_name);
    q.text(19, v.data_key.kek_id);
    q.text(20, to_hex(v.data_key.blob));
  }

  static void bind_snapshot(StmtUse& q, const SnapshotRecord& s, const std::string& own,
                            Revision revision) {
    q.text(1, s.id);
    q.text(2, s.name);
    q.text(3, s.volume_id);
    q.uint64(4, s.size_bytes);
    q.text(5, own);
    q.text(6, state_name(s.state));
    q.int64(7, s.created_at);
    q.text(8, s.home_node);
    q.int64(9, revision);
    q.text(11, s.encryption);
    q.text(12, s.data_key.key_name);
    q.text(13, s.data_key.kek_id);
    q.text(14, to_hex(s.data_key.blob));
  }

  // A guarded delete of `key` at `revision`.
  Status delete_by_key(sqlite3_stmt* stmt, sqlite3_stmt* exists, std::string_view kind,
                       const std::string& key, Revision revision) {
    return write([&]() -> Status {
      StmtUse q(stmt);
      q.text(1, key);
      q.int64(2, revision);
      if (q.step() != SQLITE_DONE)
        return error("deleting " + std::string(kind) + " " + in_quotes(key));
      if (sqlite3_changes(db_.get()) == 0) return missing_or_changed(exists, kind, key);
      return Status::ok();
    });
  }

  // After a guarded write changed nothing: was the row gone, or at another revision? Callers
  // hold mu_.
  Status missing_or_changed(sqlite3_stmt* exists, std::string_view kind, const std::string& key) {
    StmtUse q(exists);
    q.text(1, key);
    int rc = q.step();
    if (rc == SQLITE_ROW) return revision_conflict(kind, key);
    if (rc != SQLITE_DONE) return error("reading " + std::string(kind) + " " + in_quotes(key));
    return not_found(kind, key);
  }

  // Callers hold mu_ (or are in open()): sqlite3_errmsg reports the connection's last error.
  Status error(const std::string& what) const {
    const char* msg = db_ ? sqlite3_errmsg(db_.get()) : "out of memory";
    return Status(Code::kInternal, "store_error",
                  "sqlite store " + in_quotes(path_) + ": " + what + ": " + msg);
  }
  Status error_rc(const std::string& what, int rc) const {
    const char* msg = db_ ? sqlite3_errmsg(db_.get()) : sqlite3_errstr(rc);
    return Status(Code::kInternal, "store_error",
                  "sqlite store " + in_quotes(path_) + ": " + what + ": " + msg);
  }
  Status corrupt(std::string_view kind, std::string_view id, std::string_view column) const {
    return Status(Code::kInternal, "store_error",
                  "sqlite store " + in_quotes(path_) + ": " + std::string(kind) + " " +
                      in_quotes(id) + " has an unreadable " + std::string(column) + " column");
  }

  std::string path_;
  // Declared before the statements: members die in reverse order, so statements are
  // finalized before the connection closes.
  DbPtr db_;
  StmtPtr insert_volume_, update_volume_, delete_volume_, volume_exists_, list_volumes_;
  StmtPtr insert_snapshot_, update_snapshot_, delete_snapshot_, snapshot_exists_, list_snapshots_;
  StmtPtr insert_role_, upsert_role_, delete_role_, list_roles_;
  StmtPtr put_quota_, delete_quota_, list_quotas_;
  StmtPtr put_revocation_, delete_revocation_, list_revocations_;
  StmtPtr put_node_, list_nodes_;
  mutable std::mutex mu_;
  std::mutex queue_mu_;  // guards queue_ and leading_; never held while waiting for mu_
  std::condition_variable queue_cv_;
  std::vector<PendingWrite*> queue_;  // writers waiting for the next batch
  bool leading_ = false;              // a writer is committing a batch
  Revision revision_ = 0;  // GUARDED_BY(mu_): the highest revision written
  std::string self_;       // GUARDED_BY(mu_): the node registered by this process
};

}  // namespace

Result<std::unique_ptr<MetadataStore>> open_sqlite_store(const std::string& path) {
  return SqliteStore::open(path);
}

}  // namespace volguard::store
