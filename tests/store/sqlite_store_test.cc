#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"

namespace volguard::store {
namespace {

namespace fs = std::filesystem;
using ownership::Access;

// Reads one value through a connection of its own, to see what is really in the file.
std::string raw_query(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  } else {
    ADD_FAILURE() << "query failed: " << sql << ": " << sqlite3_errmsg(db);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

void raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
      << sql << ": " << sqlite3_errmsg(db);
  sqlite3_close(db);
}

VolumeRecord full_volume() {
  VolumeRecord v;
  v.id = "vol-0001";
  v.name = "pg-data";
  v.size_bytes = std::numeric_limits<uint64_t>::max();  // beyond int64: must still round-trip
  v.fs = "xfs";
  v.labels = {{"app", "postgres"}, {"tier", "gold"}, {"empty", ""}, {"ünï", "cödé \"q\""}};
  v.ownership.owner = "https://idp.example/alice";
  v.ownership.groups = {{"eng", Access::kWrite}, {"*", Access::kRead}};
  v.ownership.collaborators = {{"https://idp.example/bob", Access::kAdmin}};
  v.ownership.public_access = Access::kRead;
  v.state = RecordState::kReady;
  v.source_volume = "vol-parent";
  v.source_snapshot = "snap-parent";
  v.created_at = 1'900'000'123;
  v.charged_groups = {"test.local/eng", "https://idp.example/ops%2Fsre"};
  v.charged_guest = true;
  v.encryption = "fscrypt";
  v.data_key = {.key_name = "tenant-a", .kek_id = "local:0123456789abcdef",
                .blob = std::string("\x01\x00\xff wrapped \n\"", 14)};
  return v;
}

SnapshotRecord full_snapshot() {
  SnapshotRecord s;
  s.id = "snap-0001";
  s.name = "pg-data-nightly";
  s.volume_id = "vol-0001";
  s.size_bytes = 42ull << 30;
  s.ownership.owner = "https://idp.example/alice";
  s.ownership.groups = {{"ops", Access::kRead}};
  s.ownership.collaborators = {{"*", Access::kWrite}};
  s.ownership.public_access = Access::kNone;
  s.state = RecordState::kDeleting;
  s.created_at = 1'900'000'456;
  s.encryption = "fscrypt";
  s.data_key = {.key_name = "tenant-a", .kek_id = "kms:key-2", .blob = std::string("\x00\x01\x02\xfe", 4)};
  return s;
}

VolumeRecord volume(const std::string& id, const std::string& name, int64_t created_at = 100) {
  VolumeRecord v;
  v.id = id;
  v.name = name;
  v.size_bytes = 1 << 20;
  v.created_at = created_at;
  return v;
}

SnapshotRecord snapshot(const std::string& id, const std::string& name, int64_t created_at = 100) {
  SnapshotRecord s;
  s.id = id;
  s.name = name;
  s.volume_id = "vol-x";
  s.created_at = created_at;
  return s;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/volguard-store-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/meta.db";
    reopen();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  void reopen() {
    store_.reset();  // the old connection closes before the new one opens
    auto r = open_sqlite_store(path_);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    store_ = std::move(r).value();
  }

  std::vector<VolumeRecord> volumes() {
    auto r = store_->list_volumes();
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : std::vector<VolumeRecord>{};
  }
  std::vector<SnapshotRecord> snapshots() {
    auto r = store_->list_snapshots();
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : std::vector<SnapshotRecord>{};
  }
  // Writes of temporaries (the store sets the revision on the record it is given).
  Status create(VolumeRecord v) { return store_->create_volume(v); }
  Status create(SnapshotRecord s) { return store_->create_snapshot(s); }
  Status update(VolumeRecord v) { return store_->update_volume(v); }
  Status update(SnapshotRecord s) { return store_->update_snapshot(s); }
  // The stored record with this id, at its current revision (a bare one naming the id if none).
  VolumeRecord stored_volume(const std::string& id) {
    for (auto& v : volumes()) {
      if (v.id == id) return v;
    }
    VolumeRecord v;
    v.id = id;
    return v;
  }
  SnapshotRecord stored_snapshot(const std::string& id) {
    for (auto& sn : snapshots()) {
      if (sn.id == id) return sn;
    }
    SnapshotRecord sn;
    sn.id = id;
    return sn;
  }
  std::vector<RoleRecord> roles() {
    auto r = store_->list_roles();
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : std::vector<RoleRecord>{};
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<MetadataStore> store_;
};

TEST(StateName, Names) {
  EXPECT_STREQ(state_name(RecordState::kCreating), "creating");
  EXPECT_STREQ(state_name(RecordState::kReady), "ready");
  EXPECT_STREQ(state_name(RecordState::kDeleting), "deleting");
}

TEST_F(SqliteStoreTest, EmptyStoreListsNothing) {
  EXPECT_TRUE(volumes().empty());
  EXPECT_TRUE(snapshots().empty());
  EXPECT_TRUE(roles().empty());
}

TEST_F(SqliteStoreTest, VolumeRoundTripsEveryField) {
  VolumeRecord full = full_volume();
  VolumeRecord plain = volume("vol-0002", "scratch", full.created_at + 1);  // defaults, unowned
  ASSERT_TRUE(store_->create_volume(full).is_ok());
  ASSERT_TRUE(store_->create_volume(plain).is_ok());
  auto got = volumes();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], full);
  EXPECT_EQ(got[1], plain);
  EXPECT_EQ(got[1].fs, "ext4");
  EXPECT_TRUE(got[1].ownership.owner.empty());
}

TEST_F(SqliteStoreTest, SnapshotRoundTripsEveryField) {
  SnapshotRecord full = full_snapshot();
  ASSERT_TRUE(store_->create_snapshot(full).is_ok());
  auto got = snapshots();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], full);
}

TEST_F(SqliteStoreTest, EveryStateRoundTripsAndIsStoredAsText) {
  const RecordState states[] = {RecordState::kCreating, RecordState::kReady,
                                RecordState::kDeleting};
  for (int i = 0; i < 3; ++i) {
    VolumeRecord v = volume("v" + std::to_string(i), "n" + std::to_string(i), i);
    v.state = states[i];
    ASSERT_TRUE(store_->create_volume(v).is_ok());
    SnapshotRecord s = snapshot("s" + std::to_string(i), "n" + std::to_string(i), i);
    s.state = states[i];
    ASSERT_TRUE(store_->create_snapshot(s).is_ok());
  }
  auto vols = volumes();
  auto snaps = snapshots();
  ASSERT_EQ(vols.size(), 3u);
  ASSERT_EQ(snaps.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(vols[i].state, states[i]);
    EXPECT_EQ(snaps[i].state, states[i]);
  }
  EXPECT_EQ(raw_query(path_, "SELECT state FROM volumes WHERE id = 'v2'"), "deleting");
  EXPECT_EQ(raw_query(path_, "SELECT state FROM snapshots WHERE id = 's1'"), "ready");
}

TEST_F(SqliteStoreTest, LabelsAndOwnershipAreJsonText) {
  ASSERT_TRUE(create(full_volume()).is_ok());
  EXPECT_EQ(raw_query(path_, "SELECT json_extract(labels, '$.app') FROM volumes"), "postgres");
  EXPECT_EQ(raw_query(path_, "SELECT json_extract(ownership, '$.owner') FROM volumes"),
            "https://idp.example/alice");
}

TEST_F(SqliteStoreTest, SqlMetacharactersAreStoredLiterally) {
  VolumeRecord v = volume("id'; DROP TABLE volumes; --", "name\"); DELETE FROM volumes; --");
  v.labels = {{"k'", "v'\"`"}};
  ASSERT_TRUE(store_->create_volume(v).is_ok());
  ASSERT_TRUE(create(volume("other", "other")).is_ok());
  auto got = volumes();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], v);
}

TEST_F(SqliteStoreTest, PersistsAcrossReopen) {
  VolumeRecord v = full_volume();
  SnapshotRecord s = full_snapshot();
  ASSERT_TRUE(store_->create_volume(v).is_ok());
  ASSERT_TRUE(create(volume("gone", "gone")).is_ok());
  ASSERT_TRUE(store_->create_snapshot(s).is_ok());
  ASSERT_TRUE(store_->put_role({"ops.viewer", R"({"rules":[]})"}, PutMode::kUpsert).is_ok());
  v.state = RecordState::kDeleting;
  v.labels["new"] = "label";
  ASSERT_TRUE(store_->update_volume(v).is_ok());
  ASSERT_TRUE(store_->delete_volume(stored_volume("gone")).is_ok());

  reopen();
  EXPECT_EQ(volumes(), std::vector<VolumeRecord>{v});
  EXPECT_EQ(snapshots(), std::vector<SnapshotRecord>{s});
  EXPECT_EQ(roles(), (std::vector<RoleRecord>{{"ops.viewer", R"({"rules":[]})"}}));

  // A reopened store keeps enforcing the constraints of the existing schema.
  Status dup = create(volume("vol-new", v.name));
  EXPECT_EQ(dup.code(), Code::kAlreadyExists);
  reopen();  // and reopening an existing file twice is harmless
  EXPECT_EQ(volumes().size(), 1u);
}

TEST_F(SqliteStoreTest, DuplicateVolumeNameIsAlreadyExists) {
  VolumeRecord first = volume("vol-1", "data");
  ASSERT_TRUE(store_->create_volume(first).is_ok());
  VolumeRecord second = volume("vol-2", "data");
  second.size_bytes = 7;
  Status s = store_->create_volume(second);
  EXPECT_EQ(s.code(), Code::kAlreadyExists);
  EXPECT_EQ(s.reason(), "name_taken");
  EXPECT_NE(s.message().find("'data'"), std::string::npos) << s.message();
  EXPECT_EQ(volumes(), std::vector<VolumeRecord>{first});
}

TEST_F(SqliteStoreTest, DuplicateVolumeIdIsAlreadyExists) {
  VolumeRecord first = volume("vol-1", "data");
  ASSERT_TRUE(store_->create_volume(first).is_ok());
  Status s = create(volume("vol-1", "other"));
  EXPECT_EQ(s.code(), Code::kAlreadyExists);
  EXPECT_EQ(s.reason(), "name_taken");
  EXPECT_NE(s.message().find("'other'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("'vol-1'"), std::string::npos) << s.message();
  EXPECT_EQ(volumes(), std::vector<VolumeRecord>{first});
}

TEST_F(SqliteStoreTest, DuplicateSnapshotNameOrIdIsAlreadyExists) {
  SnapshotRecord first = snapshot("snap-1", "nightly");
  ASSERT_TRUE(store_->create_snapshot(first).is_ok());
  Status by_name = create(snapshot("snap-2", "nightly"));
  EXPECT_EQ(by_name.code(), Code::kAlreadyExists);
  EXPECT_EQ(by_name.reason(), "name_taken");
  EXPECT_NE(by_name.message().find("'nightly'"), std::string::npos) << by_name.message();
  Status by_id = create(snapshot("snap-1", "weekly"));
  EXPECT_EQ(by_id.code(), Code::kAlreadyExists);
  EXPECT_EQ(by_id.reason(), "name_taken");
  EXPECT_NE(by_id.message().find("'snap-1'"), std::string::npos) << by_id.message();
  EXPECT_EQ(snapshots(), std::vector<SnapshotRecord>{first});
}

TEST_F(SqliteStoreTest, VolumesAndSnapshotsHaveSeparateNamespaces) {
  EXPECT_TRUE(create(volume("same-id", "same-name")).is_ok());
  EXPECT_TRUE(create(snapshot("same-id", "same-name")).is_ok());
}

TEST_F(SqliteStoreTest, MissingRecordsAreNotFound) {
  ASSERT_TRUE(create(volume("vol-1", "data")).is_ok());
  ASSERT_TRUE(create(snapshot("snap-1", "nightly")).is_ok());
  const Status results[] = {
      update(volume("vol-missing", "x")),
      store_->delete_volume(stored_volume("vol-missing")),
      update(snapshot("snap-missing", "x")),
      store_->delete_snapshot(stored_snapshot("snap-missing")),
  };
  for (const Status& s : results) {
    EXPECT_EQ(s.code(), Code::kNotFound) << s.to_string();
    EXPECT_EQ(s.reason(), "not_found");
    EXPECT_NE(s.message().find("-missing'"), std::string::npos) << s.message();
  }
  // Nothing else was touched.
  EXPECT_EQ(volumes().size(), 1u);
  EXPECT_EQ(snapshots().size(), 1u);
  // A deleted record is gone for good: a second delete is NOT_FOUND too.
  EXPECT_TRUE(store_->delete_volume(stored_volume("vol-1")).is_ok());
  EXPECT_EQ(store_->delete_volume(stored_volume("vol-1")).code(), Code::kNotFound);
  EXPECT_TRUE(store_->delete_snapshot(stored_snapshot("snap-1")).is_ok());
  EXPECT_EQ(store_->delete_snapshot(stored_snapshot("snap-1")).code(), Code::kNotFound);
  EXPECT_TRUE(volumes().empty());
  EXPECT_TRUE(snapshots().empty());
}

TEST_F(SqliteStoreTest, UpdateReplacesTheWholeRecord) {
  ASSERT_TRUE(create(volume("vol-1", "data")).is_ok());
  VolumeRecord v = full_volume();
  v.id = "vol-1";
  v.revision = stored_volume("vol-1").revision;
  ASSERT_TRUE(store_->update_volume(v).is_ok());
  EXPECT_EQ(volumes(), std::vector<VolumeRecord>{v});
  // Writing identical values is still a successful update, not NOT_FOUND.
  EXPECT_TRUE(store_->update_volume(v).is_ok());

  ASSERT_TRUE(create(snapshot("snap-1", "nightly")).is_ok());
  SnapshotRecord s = full_snapshot();
  s.id = "snap-1";
  s.revision = stored_snapshot("snap-1").revision;
  ASSERT_TRUE(store_->update_snapshot(s).is_ok());
  EXPECT_EQ(snapshots(), std::vector<SnapshotRecord>{s});
}

// Several writers (the cluster's contract, kept by SQLite too): a write made on a record read
// before another write changed it loses, and says so; nothing is changed by the loser.
TEST_F(SqliteStoreTest, StaleWritesAreRevisionConflicts) {
  VolumeRecord v = volume("vol-1", "data");
  ASSERT_TRUE(store_->create_volume(v).is_ok());
  ASSERT_GT(v.revision, 0);
  VolumeRecord first = v, second = v;
  first.labels["by"] = "first";
  ASSERT_TRUE(store_->update_volume(first).is_ok());
  EXPECT_GT(first.revision, v.revision);
  second.labels["by"] = "second";
  Status lost = store_->update_volume(second);
  EXPECT_EQ(lost.code(), Code::kAborted) << lost.to_string();
  EXPECT_EQ(lost.reason(), "revision_conflict");
  EXPECT_EQ(volumes()[0].labels.at("by"), "first");
  Status stale_delete = store_->delete_volume(v);
  EXPECT_EQ(stale_delete.code(), Code::kAborted);
  EXPECT_EQ(volumes().size(), 1u);
  EXPECT_TRUE(store_->delete_volume(first).is_ok());

  SnapshotRecord sn = snapshot("snap-1", "nightly");
  ASSERT_TRUE(store_->create_snapshot(sn).is_ok());
  SnapshotRecord old = sn;
  sn.size_bytes = 9;
  ASSERT_TRUE(store_->update_snapshot(sn).is_ok());
  EXPECT_EQ(store_->update_snapshot(old).reason(), "revision_conflict");
  EXPECT_EQ(store_->delete_snapshot(old).reason(), "revision_conflict");
  EXPECT_TRUE(store_->delete_snapshot(sn).is_ok());
}

// Revisions only grow, across reopen too: a record's next write is always above its last.
TEST_F(SqliteStoreTest, RevisionsGrowAcrossReopen) {
  VolumeRecord v = volume("vol-1", "data");
  ASSERT_TRUE(store_->create_volume(v).is_ok());
  const Revision before = v.revision;
  reopen();
  EXPECT_EQ(store_->current_revision().value(), before);
  VolumeRecord w = volume("vol-2", "more");
  ASSERT_TRUE(store_->create_volume(w).is_ok());
  EXPECT_GT(w.revision, before);
  EXPECT_FALSE(store_->shared());
  EXPECT_TRUE(store_->fresh(1000, std::chrono::milliseconds(0)).is_ok()) << "one writer: always fresh";
}

TEST_F(SqliteStoreTest, RoleCreateRefusesAnExistingRole) {
  ASSERT_TRUE(store_->put_role({"ops.viewer", "{}"}, PutMode::kCreate).is_ok());
  Status again = store_->put_role({"ops.viewer", R"({"x":1})"}, PutMode::kCreate);
  EXPECT_EQ(again.code(), Code::kAlreadyExists);
  EXPECT_EQ(again.reason(), "role_exists");
  EXPECT_EQ(roles()[0].json, "{}");
  ASSERT_TRUE(store_->put_role({"ops.viewer", R"({"x":1})"}, PutMode::kUpsert).is_ok());
  EXPECT_EQ(roles()[0].json, R"({"x":1})");
}

TEST_F(SqliteStoreTest, TheRegisteredNodeIsTheLiveOne) {
  ASSERT_TRUE(store_->register_node({.name = "node-a", .grpc_address = "127.0.0.1:1", .started_at = 5}).is_ok());
  reopen();
  ASSERT_TRUE(store_->register_node({.name = "node-b", .grpc_address = "127.0.0.1:2", .started_at = 6}).is_ok());
  auto nodes = store_->list_nodes().value();
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[0].name, "node-a");
  EXPECT_FALSE(nodes[0].alive) << "registered by an earlier process";
  EXPECT_EQ(nodes[1].name, "node-b");
  EXPECT_TRUE(nodes[1].alive);
  EXPECT_EQ(nodes[1].grpc_address, "127.0.0.1:2");
}

TEST_F(SqliteStoreTest, RenameCollisionIsAlreadyExists) {
  VolumeRecord a = volume("vol-a", "alpha", 1);
  VolumeRecord b = volume("vol-b", "beta", 2);
  ASSERT_TRUE(store_->create_volume(a).is_ok());
  ASSERT_TRUE(store_->create_volume(b).is_ok());
  VolumeRecord renamed = b;
  renamed.name = "alpha";
  Status s = store_->update_volume(renamed);
  EXPECT_EQ(s.code(), Code::kAlreadyExists);
  EXPECT_EQ(s.reason(), "name_taken");
  EXPECT_NE(s.message().find("'alpha'"), std::string::npos) << s.message();
  EXPECT_EQ(volumes(), (std::vector<VolumeRecord>{a, b}));
  // Renaming to a free name works, and frees the old one.
  renamed.name = "gamma";
  ASSERT_TRUE(store_->update_volume(renamed).is_ok());
  EXPECT_TRUE(create(volume("vol-c", "beta", 3)).is_ok());

  SnapshotRecord sa = snapshot("snap-a", "alpha", 1);
  SnapshotRecord sb = snapshot("snap-b", "beta", 2);
  ASSERT_TRUE(store_->create_snapshot(sa).is_ok());
  ASSERT_TRUE(store_->create_snapshot(sb).is_ok());
  sb.name = "alpha";
  Status ss = store_->update_snapshot(sb);
  EXPECT_EQ(ss.code(), Code::kAlreadyExists);
  EXPECT_EQ(ss.reason(), "name_taken");
  EXPECT_EQ(snapshots()[1].name, "beta");
}

TEST_F(SqliteStoreTest, ListsOrderByCreatedAtThenId) {
  ASSERT_TRUE(create(volume("c", "n1", 20)).is_ok());
  ASSERT_TRUE(create(volume("b", "n2", 10)).is_ok());
  ASSERT_TRUE(create(volume("a", "n3", 20)).is_ok());
  ASSERT_TRUE(create(volume("z", "n4", -5)).is_ok());
  std::vector<std::string> ids;
  for (const auto& v : volumes()) ids.push_back(v.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"z", "b", "a", "c"}));

  ASSERT_TRUE(create(snapshot("y", "n1", 7)).is_ok());
  ASSERT_TRUE(create(snapshot("x", "n2", 7)).is_ok());
  ASSERT_TRUE(create(snapshot("w", "n3", 9)).is_ok());
  ids.clear();
  for (const auto& s : snapshots()) ids.push_back(s.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"x", "y", "w"}));
}

TEST_F(SqliteStoreTest, RolesUpsertDeleteList) {
  ASSERT_TRUE(store_->put_role({"system.view", R"({"v":1})"}, PutMode::kUpsert).is_ok());
  ASSERT_TRUE(store_->put_role({"app.admin", R"({"a":1})"}, PutMode::kUpsert).is_ok());
  EXPECT_EQ(roles(),
            (std::vector<RoleRecord>{{"app.admin", R"({"a":1})"}, {"system.view", R"({"v":1})"}}));
  // Put again replaces instead of failing.
  ASSERT_TRUE(store_->put_role({"system.view", R"({"v":2})"}, PutMode::kUpsert).is_ok());
  EXPECT_EQ(roles(),
            (std::vector<RoleRecord>{{"app.admin", R"({"a":1})"}, {"system.view", R"({"v":2})"}}));
  ASSERT_TRUE(store_->delete_role("app.admin").is_ok());
  EXPECT_EQ(roles(), (std::vector<RoleRecord>{{"system.view", R"({"v":2})"}}));
  Status s = store_->delete_role("app.admin");
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.reason(), "not_found");
  EXPECT_NE(s.message().find("'app.admin'"), std::string::npos) << s.message();
}

TEST_F(SqliteStoreTest, FileIsInWalMode) {
  ASSERT_TRUE(create(volume("vol-1", "data")).is_ok());
  // The store's connection is still open, so its WAL has not been checkpointed away.
  EXPECT_TRUE(fs::exists(path_ + "-wal"));
  EXPECT_EQ(raw_query(path_, "PRAGMA journal_mode"), "wal");
  // A second connection sees the committed row: the write was not left in a transaction.
  EXPECT_EQ(raw_query(path_, "SELECT name FROM volumes WHERE id = 'vol-1'"), "data");
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// The database (owners, grants, quotas) and its -wal/-shm are 0600 whoever creates them and
// whatever the umask; files from an older, wider run are narrowed when the store opens.
TEST_F(SqliteStoreTest, DatabaseFilesAreOwnerOnly) {
  store_.reset();
  const std::string fresh = dir_ + "/fresh.db";
  mode_t old = ::umask(0);  // the widest umask: SQLite alone would make 0644
  auto r = open_sqlite_store(fresh);
  ::umask(old);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  VolumeRecord first = volume("vol-1", "data");
  ASSERT_TRUE((*r)->create_volume(first).is_ok());
  ASSERT_TRUE(fs::exists(fresh + "-wal"));
  ASSERT_TRUE(fs::exists(fresh + "-shm"));
  for (const std::string& f : {fresh, fresh + "-wal", fresh + "-shm"}) {
    EXPECT_EQ(mode_of(f), 0600u) << f;
  }

  // Files an older run (or another tool) left world-readable are narrowed by the next open;
  // the first connection stays open so that the -wal and -shm still exist.
  for (const std::string& f : {fresh, fresh + "-wal", fresh + "-shm"}) {
    ASSERT_EQ(::chmod(f.c_str(), 0644), 0) << f;
  }
  auto again = open_sqlite_store(fresh);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ((*again)->list_volumes()->size(), 1u);
  for (const std::string& f : {fresh, fresh + "-wal", fresh + "-shm"}) {
    EXPECT_EQ(mode_of(f), 0600u) << f;
  }
}

TEST_F(SqliteStoreTest, OpenInMissingDirectoryNamesThePath) {
  std::string bad = dir_ + "/no/such/dir/meta.db";
  auto r = open_sqlite_store(bad);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kInternal);
  EXPECT_EQ(r.status().reason(), "store_error");
  EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("unable to open"), std::string::npos) << r.status().message();
}

TEST_F(SqliteStoreTest, CorruptFileNamesThePathAndTheSqliteError) {
  std::string bad = dir_ + "/corrupt.db";
  {
    std::ofstream out(bad, std::ios::binary);
    out << std::string(8192, 'x');  // two pages of garbage, no SQLite header
  }
  auto r = open_sqlite_store(bad);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kInternal);
  EXPECT_EQ(r.status().reason(), "store_error");
  EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("not a database"), std::string::npos) << r.status().message();
}

TEST_F(SqliteStoreTest, NewerSchemaVersionIsRefused) {
  store_.reset();
  raw_exec(path_, "PRAGMA user_version = 99");
  EXPECT_EQ(raw_query(path_, "PRAGMA user_version"), "99");
  auto r = open_sqlite_store(path_);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().reason(), "store_error");
  EXPECT_NE(r.status().message().find("99"), std::string::npos) << r.status().message();
}

TEST_F(SqliteStoreTest, UnreadableValuesAreRefusedAtWriteTime) {
  // An ACL entry of "none" has no JSON form that reads back; storing it would poison listing.
  VolumeRecord v = volume("vol-1", "data");
  v.ownership.owner = "iss/alice";
  v.ownership.groups["eng"] = Access::kNone;
  Status s = store_->create_volume(v);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.reason(), "bad_ownership");

  VolumeRecord bad_label = volume("vol-2", "data2");
  bad_label.labels["k"] = std::string("\xff\xfe", 2);
  Status l = store_->create_volume(bad_label);
  EXPECT_EQ(l.code(), Code::kInvalidArgument);
  EXPECT_EQ(l.reason(), "bad_labels");

  ASSERT_TRUE(create(volume("vol-3", "ok")).is_ok());
  EXPECT_EQ(volumes().size(), 1u);
}

TEST_F(SqliteStoreTest, CorruptRowIsReportedNotMisread) {
  ASSERT_TRUE(create(volume("vol-1", "data")).is_ok());
  raw_exec(path_, "UPDATE volumes SET labels = '[1,2]'");
  auto r = store_->list_volumes();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kInternal);
  EXPECT_NE(r.status().message().find("'vol-1'"), std::string::npos) << r.status().message();
}

TEST_F(SqliteStoreTest, ConcurrentWritersAllSucceed) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 50;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string suffix = std::to_string(t) + "-" + std::to_string(i);
        if (!create(volume("vol-" + suffix, "name-" + suffix, i)).is_ok()) {
          ++failures[t];
        }
        // Readers interleave with writers on the same connection.
        if (i % 10 == 0 && !store_->list_volumes().is_ok()) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;

  auto all = volumes();
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  std::set<std::string> names;
  for (const auto& v : all) names.insert(v.name);
  EXPECT_EQ(names.size(), all.size());
  reopen();
  EXPECT_EQ(volumes().size(), static_cast<size_t>(kThreads * kPerThread));
}

// Concurrent writers share commits (group commit): refused changes (revision conflicts, a
// taken name) roll back alone inside a shared transaction, and every change reported done is
// in the file, exactly once, under the revision it was given.
TEST_F(SqliteStoreTest, ConcurrentConflictingWritersCommitExactlyTheWinners) {
  VolumeRecord shared = volume("vol-shared", "shared");
  shared.labels["count"] = "0";
  ASSERT_TRUE(store_->create_volume(shared).is_ok());
  constexpr int kThreads = 8;
  constexpr int kIncrements = 40;
  std::vector<std::thread> threads;
  std::vector<std::vector<Revision>> won(kThreads);
  std::vector<int> conflicts(kThreads, 0), dup_wins(kThreads, 0), errors(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int done = 0; done < kIncrements;) {
        VolumeRecord v = stored_volume("vol-shared");
        v.labels["count"] = std::to_string(std::stoi(v.labels.at("count")) + 1);
        Status s = store_->update_volume(v);
        if (s.is_ok()) {
          won[t].push_back(v.revision);
          ++done;
        } else if (s.reason() == "revision_conflict") {
          ++conflicts[t];
        } else {
          ++errors[t];
          return;
        }
        // Everyone also races for one name: exactly one create may win.
        if (done == kIncrements / 2) {
          Status d = create(volume("vol-dup-" + std::to_string(t), "dup"));
          if (d.is_ok()) ++dup_wins[t];
          else if (d.reason() != "name_taken") ++errors[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<Revision> revisions;
  int wins = 0, dups = 0;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], 0) << "thread " << t;
    for (Revision r : won[t]) revisions.insert(r);
    wins += static_cast<int>(won[t].size());
    dups += dup_wins[t];
  }
  EXPECT_EQ(wins, kThreads * kIncrements);
  EXPECT_EQ(revisions.size(), static_cast<size_t>(wins)) << "each committed change has its own revision";
  EXPECT_EQ(dups, 1) << "one name, one winner";
  // Lost updates would show as a count below the number of successes.
  EXPECT_EQ(stored_volume("vol-shared").labels.at("count"), std::to_string(wins));
  EXPECT_EQ(stored_volume("vol-shared").revision, *revisions.rbegin());
  reopen();
  EXPECT_EQ(stored_volume("vol-shared").labels.at("count"), std::to_string(wins));
  EXPECT_EQ(volumes().size(), 2u);
}

TEST_F(SqliteStoreTest, RevocationsUpsertDeleteListAndSurviveReopen) {
  auto list = [&] {
    auto r = store_->list_revocations();
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : std::vector<RevocationRecord>{};
  };
  EXPECT_TRUE(list().empty());
  const RevocationRecord jti{.kind = RevocationKind::kToken, .issuer = "https://idp.example/a",
                             .subject = "j'1\"; DROP TABLE volumes; --", .expires_at = 2'000'000'000,
                             .created_at = 1'900'000'000, .by = "test.local/admin"};
  const RevocationRecord any{.kind = RevocationKind::kToken, .subject = jti.subject, .created_at = 1'900'000'001};
  const RevocationRecord user{.kind = RevocationKind::kUser, .subject = "test.local/eu%2Falice",
                              .before = 1'900'000'100, .created_at = 1'900'000'002, .by = "x"};
  for (const auto& r : {jti, any, user}) ASSERT_TRUE(store_->put_revocation(r).is_ok());
  EXPECT_EQ(list(), (std::vector<RevocationRecord>{jti, any, user}));
  RevocationRecord later = user;
  later.before = 1'900'000'200;
  ASSERT_TRUE(store_->put_revocation(later).is_ok());
  reopen();
  EXPECT_EQ(list(), (std::vector<RevocationRecord>{jti, any, later}));
  ASSERT_TRUE(store_->delete_revocation(any).is_ok());
  EXPECT_EQ(store_->delete_revocation(any).code(), Code::kNotFound);
  EXPECT_EQ(list(), (std::vector<RevocationRecord>{jti, later}));
}

TEST_F(SqliteStoreTest, QuotasUpsertDeleteList) {
  const uint64_t big = static_cast<uint64_t>(INT64_MAX);
  QuotaRecord alice{QuotaKind::kUser, "test.local/alice", 1ull << 30, 5, 0};
  QuotaRecord eng{QuotaKind::kGroup, "test.local/eng", big, 0, 7};
  QuotaRecord guest{QuotaKind::kGuest, "", 0, 2, 2};
  // The same name under two kinds is two quotas.
  QuotaRecord alice_group{QuotaKind::kGroup, "test.local/alice", 1, 1, 1};
  for (const auto& q : {alice, eng, guest, alice_group}) ASSERT_TRUE(store_->put_quota(q).is_ok());
  auto list = store_->list_quotas();
  ASSERT_TRUE(list.is_ok()) << list.status().to_string();
  EXPECT_EQ(*list, (std::vector<QuotaRecord>{alice_group, eng, guest, alice}));
  alice.max_volumes = 9;
  ASSERT_TRUE(store_->put_quota(alice).is_ok());  // upsert
  ASSERT_TRUE(store_->delete_quota(QuotaKind::kGroup, "test.local/alice").is_ok());
  reopen();
  list = store_->list_quotas();
  ASSERT_TRUE(list.is_ok());
  EXPECT_EQ(*list, (std::vector<QuotaRecord>{eng, guest, alice}));
  Status s = store_->delete_quota(QuotaKind::kGroup, "test.local/alice");
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_NE(s.message().find("group quota 'test.local/alice'"), std::string::npos) << s.message();
  EXPECT_STREQ(quota_kind_name(QuotaKind::kGuest), "guest");
}

// A database written by the first release (schema 1, no quotas) opens, is migrated in place to
// the current schema, keeps its rows (charged to their owner only), and reopens unchanged.
TEST_F(SqliteStoreTest, MigratesSchemaOneInPlace) {
  store_.reset();
  fs::remove(path_);
  fs::remove(path_ + "-wal");
  fs::remove(path_ + "-shm");
  // Schema 1 exactly as it shipped.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    const char* v1 = R"sql(
CREATE TABLE volumes (
  id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL UNIQUE, size_bytes INTEGER NOT NULL,
  fs TEXT NOT NULL, labels TEXT NOT NULL, ownership TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('creating', 'ready', 'deleting')),
  source_volume TEXT NOT NULL, source_snapshot TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX volumes_by_created ON volumes (created_at, id);
CREATE TABLE snapshots (
  id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL UNIQUE, volume_id TEXT NOT NULL,
  size_bytes INTEGER NOT NULL, ownership TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('creating', 'ready', 'deleting')),
  created_at INTEGER NOT NULL);
CREATE INDEX snapshots_by_created ON snapshots (created_at, id);
CREATE TABLE roles (name TEXT PRIMARY KEY NOT NULL, json TEXT NOT NULL);
INSERT INTO volumes VALUES ('vol-old', 'legacy', 1048576, 'ext4', '{"app":"db"}',
  '{"owner":"test.local/alice"}', 'ready', '', '', 100);
INSERT INTO roles VALUES ('app.view', '{}');
PRAGMA user_version = 1;
)sql";
    ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  reopen();
  EXPECT_EQ(raw_query(path_, "PRAGMA user_version"), "6");
  auto vols = volumes();
  ASSERT_EQ(vols.size(), 1u);
  EXPECT_EQ(vols[0].name, "legacy");
  EXPECT_EQ(vols[0].ownership.owner, "test.local/alice");
  EXPECT_EQ(vols[0].labels, (std::map<std::string, std::string>{{"app", "db"}}));
  EXPECT_TRUE(vols[0].charged_groups.empty());
  EXPECT_FALSE(vols[0].charged_guest);
  EXPECT_EQ(vols[0].attached_node, "");  // v3: attached for no node
  EXPECT_EQ(vols[0].home_node, "");      // v4: no home (one node: every volume is here)
  EXPECT_EQ(vols[0].revision, 0);        // v4: written before revisions
  EXPECT_EQ(vols[0].encryption, "");     // v5: plain, no key
  EXPECT_EQ(vols[0].data_key, store::WrappedDataKey{});
  EXPECT_EQ(roles().size(), 1u);
  // The new columns and table work on the migrated file.
  VolumeRecord updated = vols[0];
  updated.charged_groups = {"test.local/eng"};
  updated.attached_node = "node-1";
  updated.encryption = "fscrypt";
  updated.data_key = {.key_name = "main", .kek_id = "local:00", .blob = "\x01wrapped"};
  ASSERT_TRUE(store_->update_volume(updated).is_ok());
  ASSERT_TRUE(store_->put_quota({QuotaKind::kUser, "test.local/alice", 0, 3, 0}).is_ok());
  ASSERT_TRUE(store_->put_revocation({.kind = RevocationKind::kToken, .subject = "j"}).is_ok());  // v6
  reopen();  // a second open runs no step again
  EXPECT_EQ(raw_query(path_, "PRAGMA user_version"), "6");
  ASSERT_EQ(volumes().size(), 1u);
  EXPECT_EQ(volumes()[0], updated);
  auto quotas = store_->list_quotas();
  ASSERT_TRUE(quotas.is_ok());
  EXPECT_EQ(quotas->size(), 1u);
}

}  // namespace
}  // namespace volguard::store
