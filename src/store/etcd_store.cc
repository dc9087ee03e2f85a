// MetadataStore on etcd: the cluster's one truth. Every record is a JSON value under the
// configured prefix; every write is one etcd transaction guarded by the record's mod_revision
// and its presence (a new record: its name's and id's create_revision = 0), so two nodes never
// both win. A rename (volume or snapshot) moves the name's claim in the same transaction.
//
// Keys (P = prefix):
//   P/volumes/<id>, P/snapshots/<id>        the records (JSON)
//   P/names/volume/<name>, P/names/snapshot/<name>   → id: a name is claimed with its record
//   P/roles/<name>                          the role's JSON (Portworx format)
//   P/quotas/<kind>/<name>                  a quota (JSON)
//   P/revocations/<kind>/<hex of issuer NUL subject>   a token revocation (JSON, every field)
//   P/nodes/<name>                          a node's registration (kept)
//   P/alive/<name>                          its liveness, under a lease the node renews
//
// The watch (one thread, etcd's) turns every event under P into a Change for the service's
// catalog, and keeps the freshness clock: the catalog is confirmed complete whenever events
// or a progress notification arrive on a stream whose member has a leader.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "common/text.h"
#include "etcd/client.h"
#include "common/hex.h"
#include "store/store.h"

namespace volguard::store {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

Status corrupt(const std::string& key, const std::string& why) {
  return Status(Code::kInternal, "store_error", "etcd key " + key + " holds an unreadable record: " + why);
}

Result<RecordState> state_of(const std::string& s) {
  if (s == "creating") return RecordState::kCreating;
  if (s == "ready") return RecordState::kReady;
  if (s == "deleting") return RecordState::kDeleting;
  return Status(Code::kInternal, "store_error", "unknown state '" + s + "'");
}

// Values that do not serialize (not UTF-8) are refused at write time: one unreadable record
// would make every later load fail.
Result<std::string> dump(const json& j, const std::string& what) {
  try {
    return j.dump();
  } catch (const json::exception&) {
    return Status(Code::kInvalidArgument, "bad_record", what + " holds text that is not valid UTF-8");
  }
}

// The ownership as a JSON value (to_json throws on text that is not UTF-8).
Result<json> ownership_value(const ownership::Ownership& o, const std::string& what) {
  try {
    return json::parse(ownership::to_json(o));
  } catch (const json::exception&) {
    return Status(Code::kInvalidArgument, "bad_ownership", "ownership of " + what + " is not valid UTF-8");
  }
}

// An encrypted record's scheme and wrapped key: {"scheme", "key_name", "kek_id", "wrapped_key"
// (hex)}; absent on plain records.
json encode_key(const std::string& scheme, const WrappedDataKey& k) {
  return {{"scheme", scheme}, {"key_name", k.key_name}, {"kek_id", k.kek_id}, {"wrapped_key", to_hex(k.blob)}};
}

Status decode_key(const etcd::KeyValue& kv, const json& j, std::string* scheme, WrappedDataKey* k) {
  *scheme = j.at("scheme").get<std::string>();
  k->key_name = j.at("key_name").get<std::string>();
  k->kek_id = j.at("kek_id").get<std::string>();
  auto blob = from_hex(j.at("wrapped_key").get<std::string>());
  if (!blob || scheme->empty()) return corrupt(kv.key, "encryption.wrapped_key is not hex");
  k->blob = std::move(*blob);
  return Status::ok();
}

Result<std::string> encode(const VolumeRecord& v) {
  ASSIGN_OR_RETURN(json own, ownership_value(v.ownership, "volume " + v.name));
  json j = {{"id", v.id},
            {"name", v.name},
            {"size_bytes", v.size_bytes},
            {"fs", v.fs},
            {"labels", v.labels},
            {"ownership", own},
            {"state", state_name(v.state)},
            {"source_volume", v.source_volume},
            {"source_snapshot", v.source_snapshot},
            {"created_at", v.created_at},
            {"charged_groups", v.charged_groups},
            {"charged_guest", v.charged_guest},
            {"attached_node", v.attached_node},
            {"home_node", v.home_node}};
  if (!v.encryption.empty()) j["encryption"] = encode_key(v.encryption, v.data_key);
  return dump(j, "volume " + v.name);
}

Result<VolumeRecord> decode_volume(const etcd::KeyValue& kv) {
  VolumeRecord v;
  try {
    json j = json::parse(kv.value);
    v.id = j.at("id").get<std::string>();
    v.name = j.at("name").get<std::string>();
    v.size_bytes = j.at("size_bytes").get<uint64_t>();
    v.fs = j.at("fs").get<std::string>();
    v.labels = j.at("labels").get<std::map<std::string, std::string>>();
    auto own = ownership::from_json(j.at("ownership").dump());
    if (!own) return corrupt(kv.key, own.status().message());
    v.ownership = std::move(*own);
    ASSIGN_OR_RETURN(v.state, state_of(j.at("state").get<std::string>()));
    v.source_volume = j.at("source_volume").get<std::string>();
    v.source_snapshot = j.at("source_snapshot").get<std::string>();
    v.created_at = j.at("created_at").get<int64_t>();
    v.charged_groups = j.at("charged_groups").get<std::vector<std::string>>();
    v.charged_guest = j.at("charged_guest").get<bool>();
    v.attached_node = j.at("attached_node").get<std::string>();
    v.home_node = j.at("home_node").get<std::string>();
    if (j.contains("encryption")) RETURN_IF_ERROR(decode_key(kv, j.at("encryption"), &v.encryption, &v.data_key));
  } catch (const json::exception& e) {
    return corrupt(kv.key, e.what());
  }
  v.revision = kv.mod_revision;
  return v;
}

Result<std::string> encode(const SnapshotRecord& s) {
  ASSIGN_OR_RETURN(json own, ownership_value(s.ownership, "snapshot " + s.name));
  json j = {{"id", s.id},
            {"name", s.name},
            {"volume_id", s.volume_id},
            {"size_bytes", s.size_bytes},
            {"ownership", own},
            {"state", state_name(s.state)},
            {"created_at", s.created_at},
            {"home_node", s.home_node}};
  if (!s.encryption.empty()) j["encryption"] = encode_key(s.encryption, s.data_key);
  return dump(j, "snapshot " + s.name);
}

Result<SnapshotRecord> decode_snapshot(const etcd::KeyValue& kv) {
  SnapshotRecord s;
  try {
    json j = json::parse(kv.value);
    s.id = j.at("id").get<std::string>();
    s.name = j.at("name").get<std::string>();
    s.volume_id = j.at("volume_id").get<std::string>();
    s.size_bytes = j.at("size_bytes").get<uint64_t>();
    auto own = ownership::from_json(j.at("ownership").dump());
    if (!own) return corrupt(kv.key, own.status().message());
    s.ownership = std::move(*own);
    ASSIGN_OR_RETURN(s.state, state_of(j.at("state").get<std::string>()));
    s.created_at = j.at("created_at").get<int64_t>();
    s.home_node = j.at("home_node").get<std::string>();
    if (j.contains("encryption")) RETURN_IF_ERROR(decode_key(kv, j.at("encryption"), &s.encryption, &s.data_key));
  } catch (const json::exception& e) {
    return corrupt(kv.key, e.what());
  }
  s.revision = kv.mod_revision;
  return s;
}

Result<NodeRecord> decode_node(const etcd::KeyValue& kv) {
  NodeRecord n;
  try {
    json j = json::parse(kv.value);
    n.name = j.at("name").get<std::string>();
    n.grpc_address = j.at("grpc_address").get<std::string>();
    n.rest_address = j.at("rest_address").get<std::string>();
    n.started_at = j.at("started_at").get<int64_t>();
    n.version = j.at("version").get<std::string>();
  } catch (const json::exception& e) {
    return corrupt(kv.key, e.what());
  }
  return n;
}

Result<QuotaKind> quota_kind_of(const std::string& s) {
  if (s == "user") return QuotaKind::kUser;
  if (s == "group") return QuotaKind::kGroup;
  if (s == "guest") return QuotaKind::kGuest;
  return Status(Code::kInternal, "store_error", "unknown quota kind '" + s + "'");
}

using etcd::Compare;
using etcd::Op;

Compare absent(const std::string& key) {
  return Compare{.key = key, .target = Compare::Target::kCreate, .result = Compare::Result::kEqual, .number = 0};
}
Compare present(const std::string& key) {
  return Compare{.key = key, .target = Compare::Target::kVersion, .result = Compare::Result::kGreater, .number = 0};
}
Compare at_revision(const std::string& key, Revision r) {
  return Compare{.key = key, .target = Compare::Target::kMod, .result = Compare::Result::kEqual, .number = r};
}
// The record is there at revision `r`. Both: an absent key's mod_revision is 0, so a revision 0
// (a record never read) alone would match a missing record and write (or delete) blind.
std::vector<Compare> still_at(const std::string& key, Revision r) {
  return {present(key), at_revision(key, r)};
}
Op put(const std::string& key, const std::string& value) { return Op{.type = Op::Type::kPut, .key = key, .value = value}; }
Op del(const std::string& key) { return Op{.type = Op::Type::kDelete, .key = key}; }
Op get(const std::string& key) { return Op{.type = Op::Type::kGet, .key = key}; }

class EtcdStore final : public MetadataStore {
 public:
  EtcdStore(EtcdStoreOptions options, std::unique_ptr<etcd::Client> client)
      : options_(std::move(options)), client_(std::move(client)), p_(options_.prefix + "/") {}

  ~EtcdStore() override {
    // The watch first: no callback into the service after this returns.
    watch_.reset();
    alive_.reset();
  }

  // ---- volumes
  Status create_volume(VolumeRecord& v) override {
    ASSIGN_OR_RETURN(const std::string value, encode(v));
    const std::string key = vol_key(v.id), name = name_key("volume", v.name);
    auto attempt = txn({absent(key), absent(name)}, {put(key, value), put(name, v.id)}, {get(key), get(name)});
    if (!attempt) return settle_put(attempt.status(), key, value, &v.revision);
    const auto& r = *attempt;
    if (!r.succeeded) {
      if (!r.ranges[0].empty()) {
        return Status(Code::kAlreadyExists, "name_taken", "volume id '" + v.id + "' is already in use");
      }
      return Status(Code::kAlreadyExists, "name_taken", "volume name '" + v.name + "' is already taken");
    }
    v.revision = r.revision;
    return Status::ok();
  }

  Status update_volume(VolumeRecord& v) override {
    ASSIGN_OR_RETURN(const std::string value, encode(v));
    const std::string key = vol_key(v.id);
    // The stored name, to move the name claim if it changes.
    ASSIGN_OR_RETURN(auto current, client_->range(key, ""));
    note_read(current);
    if (current.empty()) return not_found("volume", v.id);
    ASSIGN_OR_RETURN(VolumeRecord stored, decode_volume(current[0]));
    std::vector<Compare> cmp = still_at(key, v.revision);
    std::vector<Op> ops{put(key, value)};
    if (stored.name != v.name) {
      cmp.push_back(absent(name_key("volume", v.name)));
      ops.push_back(put(name_key("volume", v.name), v.id));
      ops.push_back(del(name_key("volume", stored.name)));
    }
    auto attempt = txn(cmp, ops, {get(key), get(name_key("volume", v.name))});
    if (!attempt) return settle_put(attempt.status(), key, value, &v.revision);
    const auto& r = *attempt;
    if (!r.succeeded) return why_not("volume", v.id, v.revision, r, stored.name != v.name ? v.name : "");
    v.revision = r.revision;
    return Status::ok();
  }

  Status delete_volume(const VolumeRecord& v) override {
    const std::string key = vol_key(v.id);
    auto attempt = txn(still_at(key, v.revision), {del(key), del(name_key("volume", v.name))},
                       {get(key), get(name_key("volume", v.name))});
    if (!attempt) return settle_delete(attempt.status(), key);
    const auto& r = *attempt;
    if (!r.succeeded) return why_not("volume", v.id, v.revision, r, "");
    return Status::ok();
  }

  Result<std::vector<VolumeRecord>> list_volumes() override {
    ASSIGN_OR_RETURN(auto kvs, list(p_ + "volumes/"));
    std::vector<VolumeRecord> out;
    for (const auto& kv : kvs) {
      ASSIGN_OR_RETURN(auto v, decode_volume(kv));
      out.push_back(std::move(v));
    }
    return out;
  }

  // ---- snapshots
  Status create_snapshot(SnapshotRecord& s) override {
    ASSIGN_OR_RETURN(const std::string value, encode(s));
    const std::string key = snap_key(s.id), name = name_key("snapshot", s.name);
    auto attempt = txn({absent(key), absent(name)}, {put(key, value), put(name, s.id)}, {get(key), get(name)});
    if (!attempt) return settle_put(attempt.status(), key, value, &s.revision);
    const auto& r = *attempt;
    if (!r.succeeded) {
      if (!r.ranges[0].empty()) {
        return Status(Code::kAlreadyExists, "name_taken", "snapshot id '" + s.id + "' is already in use");
      }
      return Status(Code::kAlreadyExists, "name_taken", "snapshot name '" + s.name + "' is already taken");
    }
    s.revision = r.revision;
    return Status::ok();
  }

  Status update_snapshot(SnapshotRecord& s) override {
    ASSIGN_OR_RETURN(const std::string value, encode(s));
    const std::string key = snap_key(s.id);
    // The stored name: a changed name moves its claim, as for volumes.
    ASSIGN_OR_RETURN(auto current, client_->range(key, ""));
    note_read(current);
    if (current.empty()) return not_found("snapshot", s.id);
    ASSIGN_OR_RETURN(SnapshotRecord stored, decode_snapshot(current[0]));
    std::vector<Compare> cmp = still_at(key, s.revision);
    std::vector<Op> ops{put(key, value)};
    if (stored.name != s.name) {
      cmp.push_back(absent(name_key("snapshot", s.name)));
      ops.push_back(put(name_key("snapshot", s.name), s.id));
      ops.push_back(del(name_key("snapshot", stored.name)));
    }
    auto attempt = txn(cmp, ops, {get(key), get(name_key("snapshot", s.name))});
    if (!attempt) return settle_put(attempt.status(), key, value, &s.revision);
    const auto& r = *attempt;
    if (!r.succeeded) return why_not("snapshot", s.id, s.revision, r, stored.name != s.name ? s.name : "");
    s.revision = r.revision;
    return Status::ok();
  }

  Status delete_snapshot(const SnapshotRecord& s) override {
    const std::string key = snap_key(s.id);
    auto attempt = txn(still_at(key, s.revision), {del(key), del(name_key("snapshot", s.name))}, {get(key)});
    if (!attempt) return settle_delete(attempt.status(), key);
    const auto& r = *attempt;
    if (!r.succeeded) return why_not("snapshot", s.id, s.revision, r, "");
    return Status::ok();
  }

  Result<std::vector<SnapshotRecord>> list_snapshots() override {
    ASSIGN_OR_RETURN(auto kvs, list(p_ + "snapshots/"));
    std::vector<SnapshotRecord> out;
    for (const auto& kv : kvs) {
      ASSIGN_OR_RETURN(auto s, decode_snapshot(kv));
      out.push_back(std::move(s));
    }
    return out;
  }

  // ---- roles
  Status put_role(const RoleRecord& r, PutMode mode) override {
    const std::string key = p_ + "roles/" + r.name;
    if (mode == PutMode::kUpsert) {
      ASSIGN_OR_RETURN(auto t, txn({}, {put(key, r.json)}, {}));
      (void)t;
      return Status::ok();
    }
    ASSIGN_OR_RETURN(auto t, txn({absent(key)}, {put(key, r.json)}, {}));
    if (!t.succeeded) return Status(Code::kAlreadyExists, "role_exists", "role " + r.name + " already exists");
    return Status::ok();
  }

  Status delete_role(const std::string& name) override {
    const std::string key = p_ + "roles/" + name;
    ASSIGN_OR_RETURN(auto t, txn({present(key)}, {del(key)}, {}));
    if (!t.succeeded) return not_found("role", name);
    return Status::ok();
  }

  Result<std::vector<RoleRecord>> list_roles() override {
    ASSIGN_OR_RETURN(auto kvs, list(p_ + "roles/"));
    std::vector<RoleRecord> out;
    for (const auto& kv : kvs) out.push_back(RoleRecord{.name = kv.key.substr(p_.size() + 6), .json = kv.value});
    return out;
  }

  // ---- quotas
  Status put_quota(const QuotaRecord& q) override {
    json j = {{"max_bytes", q.max_bytes}, {"max_volumes", q.max_volumes}, {"max_snapshots", q.max_snapshots}};
    ASSIGN_OR_RETURN(const std::string value, dump(j, "quota"));
    ASSIGN_OR_RETURN(auto t, txn({}, {put(quota_key(q.kind, q.name), value)}, {}));
    (void)t;
    return Status::ok();
  }

  Status delete_quota(QuotaKind kind, const std::string& name) override {
    const std::string key = quota_key(kind, name);
    ASSIGN_OR_RETURN(auto t, txn({present(key)}, {del(key)}, {}));
    if (!t.succeeded) return not_found(std::string(quota_kind_name(kind)) + " quota", name);
    return Status::ok();
  }

  Result<std::vector<QuotaRecord>> list_quotas() override {
    const std::string base = p_ + "quotas/";
    ASSIGN_OR_RETURN(auto kvs, list(base));
    std::vector<QuotaRecord> out;
    for (const auto& kv : kvs) {
      const std::string rest = kv.key.substr(base.size());
      const auto slash = rest.find('/');
      if (slash == std::string::npos) return corrupt(kv.key, "no kind/name");
      ASSIGN_OR_RETURN(QuotaKind kind, quota_kind_of(rest.substr(0, slash)));
      QuotaRecord q{.kind = kind, .name = rest.substr(slash + 1)};
      try {
        json j = json::parse(kv.value);
        q.max_bytes = j.at("max_bytes").get<uint64_t>();
        q.max_volumes = j.at("max_volumes").get<uint64_t>();
        q.max_snapshots = j.at("max_snapshots").get<uint64_t>();
      } catch (const json::exception& e) {
        return corrupt(kv.key, e.what());
      }
      out.push_back(std::move(q));
    }
    return out;
  }

  // ---- revocations
  Status put_revocation(const RevocationRecord& r) override {
    json j = {{"kind", revocation_kind_name(r.kind)}, {"issuer", r.issuer}, {"subject", r.subject},
              {"before", r.before}, {"expires_at", r.expires_at}, {"created_at", r.created_at},
              {"by", r.by}};
    ASSIGN_OR_RETURN(const std::string value, dump(j, "revocation"));
    ASSIGN_OR_RETURN(auto t, txn({}, {put(revocation_key(r), value)}, {}));
    (void)t;
    return Status::ok();
  }

  Status delete_revocation(const RevocationRecord& r) override {
    const std::string key = revocation_key(r);
    ASSIGN_OR_RETURN(auto t, txn({present(key)}, {del(key)}, {}));
    if (!t.succeeded) return not_found("revocation", r.subject);
    return Status::ok();
  }

  Result<std::vector<RevocationRecord>> list_revocations() override {
    ASSIGN_OR_RETURN(auto kvs, list(p_ + "revocations/"));
    std::vector<RevocationRecord> out;
    for (const auto& kv : kvs) {
      RevocationRecord r;
      try {
        json j = json::parse(kv.value);
        const std::string kind = j.at("kind").get<std::string>();
        if (kind != "token" && kind != "user") return corrupt(kv.key, "unknown kind '" + kind + "'");
        r.kind = kind == "user" ? RevocationKind::kUser : RevocationKind::kToken;
        r.issuer = j.at("issuer").get<std::string>();
        r.subject = j.at("subject").get<std::string>();
        r.before = j.at("before").get<int64_t>();
        r.expires_at = j.at("expires_at").get<int64_t>();
        r.created_at = j.at("created_at").get<int64_t>();
        r.by = j.at("by").get<std::string>();
      } catch (const json::exception& e) {
        return corrupt(kv.key, e.what());
      }
      out.push_back(std::move(r));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.created_at < b.created_at; });
    return out;
  }

  // ---- nodes
  Status register_node(const NodeRecord& self) override {
    json j = {{"name", self.name},
              {"grpc_address", self.grpc_address},
              {"rest_address", self.rest_address},
              {"started_at", self.started_at},
              {"version", self.version}};
    ASSIGN_OR_RETURN(const std::string value, dump(j, "node " + self.name));
    ASSIGN_OR_RETURN(auto t, txn({}, {put(p_ + "nodes/" + self.name, value)}, {}));
    (void)t;
    ASSIGN_OR_RETURN(alive_, client_->keep(p_ + "alive/" + self.name, std::to_string(self.started_at),
                                           options_.node_ttl));
    return Status::ok();
  }

  Result<std::vector<NodeRecord>> list_nodes() override {
    ASSIGN_OR_RETURN(auto members, list(p_ + "nodes/"));
    ASSIGN_OR_RETURN(auto alive, list(p_ + "alive/"));
    std::set<std::string> live;
    for (const auto& kv : alive) live.insert(kv.key.substr(p_.size() + 6));
    std::vector<NodeRecord> out;
    for (const auto& kv : members) {
      ASSIGN_OR_RETURN(auto n, decode_node(kv));
      n.alive = live.count(n.name) > 0;
      out.push_back(std::move(n));
    }
    std::lock_guard lock(mu_);
    for (const auto& n : out) nodes_[n.name] = n;
    return out;
  }

  // ---- revisions, watch, freshness
  Result<Revision> current_revision() override {
    ASSIGN_OR_RETURN(Revision r, client_->current_revision());
    note(r);
    return r;
  }

  bool shared() const override { return true; }

  Status watch(Revision from, ChangeHandler on_change) override {
    {
      std::lock_guard lock(mu_);
      on_change_ = std::move(on_change);
      applied_ = from - 1;
      confirmed_at_ = Clock::now();
    }
    etcd::WatchCallbacks cb;
    cb.on_events = [this](const std::vector<etcd::WatchEvent>& events, int64_t revision) {
      for (const auto& e : events) deliver(e);
      confirm(revision);
    };
    cb.on_progress = [this](int64_t revision) { confirm(revision); };
    cb.on_broken = [this](const Status& why) {
      std::lock_guard lock(mu_);
      if (last_error_.empty()) spdlog::warn("etcd watch broken: {} (reconnecting)", why.message());
      last_error_ = why.message();
    };
    cb.on_compacted = [this](int64_t current) {
      // Events this node never saw were compacted away: its catalog can no longer be proven
      // complete. Fail closed until a restart reloads it.
      std::lock_guard lock(mu_);
      compacted_ = true;
      spdlog::error("etcd: watch history compacted (now at revision {}): this node's catalog may have "
                    "missed changes; refusing decisions until it is restarted", current);
    };
    // Progress often enough that a healthy stream is confirmed several times per bound.
    const auto interval = std::max(std::chrono::milliseconds(100), options_.stale_after / 4);
    ASSIGN_OR_RETURN(watch_, client_->watch(p_, from, std::move(cb), interval));
    return Status::ok();
  }

  Status fresh(Revision min, std::chrono::milliseconds wait) const override {
    std::unique_lock lock(mu_);
    if (compacted_) {
      return Status(Code::kUnavailable, "metadata_stale",
                    "this node's catalog missed changes compacted away in etcd; restart the node");
    }
    const auto now = Clock::now();
    if (now - confirmed_at_ > options_.stale_after) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - confirmed_at_).count();
      return Status(Code::kUnavailable, "metadata_stale",
                    "this node's catalog has not been confirmed current by etcd for " + std::to_string(ms) +
                        " ms (bound " + std::to_string(options_.stale_after.count()) + " ms)" +
                        (last_error_.empty() ? "" : ": " + last_error_) +
                        "; refusing to decide on possibly old ownership or roles");
    }
    if (applied_ >= min) return Status::ok();
    if (!advanced_.wait_for(lock, wait, [&] { return applied_ >= min; })) {
      return Status(Code::kUnavailable, "metadata_stale",
                    "this node's catalog is at revision " + std::to_string(applied_) + ", the caller has seen " +
                        std::to_string(min) + "; retry");
    }
    return Status::ok();
  }

  Revision seen_revision() const override {
    std::lock_guard lock(mu_);
    return std::max(applied_, seen_);
  }

 private:
  std::string vol_key(const std::string& id) const { return p_ + "volumes/" + id; }
  std::string snap_key(const std::string& id) const { return p_ + "snapshots/" + id; }
  std::string name_key(const char* kind, const std::string& name) const {
    return p_ + "names/" + kind + "/" + name;
  }
  std::string revocation_key(const RevocationRecord& r) const {
    return p_ + "revocations/" + revocation_kind_name(r.kind) + "/" +
           to_hex(r.issuer + std::string(1, '\0') + r.subject);
  }
  std::string quota_key(QuotaKind kind, const std::string& name) const {
    return p_ + "quotas/" + quota_kind_name(kind) + "/" + name;
  }

  static Status not_found(const std::string& kind, const std::string& id) {
    return Status(Code::kNotFound, "not_found", kind + " '" + id + "' not found");
  }

  // After a guarded write lost: gone, changed by another writer, or (renames) the new name taken.
  // `r.ranges[0]` is the record, `r.ranges[1]` the new name's claim when asked.
  static Status why_not(const std::string& kind, const std::string& id, Revision expected,
                        const etcd::TxnResult& r, const std::string& new_name) {
    if (r.ranges.empty() || r.ranges[0].empty()) return not_found(kind, id);
    if (r.ranges[0][0].mod_revision != expected) {
      return Status(Code::kAborted, "revision_conflict",
                    kind + " '" + id + "' was changed by another request (revision " +
                        std::to_string(r.ranges[0][0].mod_revision) + ", expected " + std::to_string(expected) +
                        "); retry");
    }
    if (!new_name.empty()) {
      return Status(Code::kAlreadyExists, "name_taken", kind + " name '" + new_name + "' is already taken");
    }
    return Status(Code::kAborted, "revision_conflict", kind + " '" + id + "' changed; retry");
  }

  // A write that failed may still have been applied (a timeout or a dropped connection: the
  // client cannot tell, and does not retry a compare-and-swap elsewhere). Settled by reading
  // the key back: our value there → it was applied (its revision); otherwise the error stands.
  Status settle_put(const Status& failed, const std::string& key, const std::string& value, Revision* revision) {
    if (failed.code() != Code::kUnavailable) return failed;
    auto back = client_->range(key, "");
    if (!back || back->empty() || (*back)[0].value != value) return failed;
    note((*back)[0].mod_revision);
    *revision = (*back)[0].mod_revision;
    spdlog::info("etcd: a write to {} reported '{}' but was applied (read back)", key, failed.message());
    return Status::ok();
  }
  Status settle_delete(const Status& failed, const std::string& key) {
    if (failed.code() != Code::kUnavailable) return failed;
    auto back = client_->range(key, "");
    if (!back || !back->empty()) return failed;
    return Status::ok();
  }

  Result<etcd::TxnResult> txn(const std::vector<Compare>& cmp, const std::vector<Op>& success,
                              const std::vector<Op>& failure) {
    ASSIGN_OR_RETURN(auto r, client_->txn(cmp, success, failure));
    note(r.revision);
    return r;
  }

  Result<std::vector<etcd::KeyValue>> list(const std::string& prefix) {
    Revision at = 0;
    ASSIGN_OR_RETURN(auto kvs, client_->range(prefix, etcd::prefix_end(prefix), &at));
    note(at);
    return kvs;
  }

  void note_read(const std::vector<etcd::KeyValue>& kvs) {
    for (const auto& kv : kvs) note(kv.mod_revision);
  }
  void note(Revision r) {
    std::lock_guard lock(mu_);
    seen_ = std::max(seen_, r);
  }

  // The watch thread: every event confirms the view through its revision.
  void confirm(int64_t revision) {
    {
      std::lock_guard lock(mu_);
      applied_ = std::max(applied_, revision);
      confirmed_at_ = Clock::now();
      if (!last_error_.empty()) spdlog::info("etcd watch restored at revision {}", revision);
      last_error_.clear();
    }
    advanced_.notify_all();
  }

  void deliver(const etcd::WatchEvent& e) {
    const std::string& key = e.kv.key;
    if (key.compare(0, p_.size(), p_) != 0) return;
    const std::string rest = key.substr(p_.size());
    auto under = [&](const char* dir, std::string* tail) {
      const std::string d = std::string(dir) + "/";
      if (rest.compare(0, d.size(), d) != 0) return false;
      *tail = rest.substr(d.size());
      return true;
    };
    Change c;
    c.deleted = e.deleted;
    c.revision = e.kv.mod_revision;
    std::string tail;
    if (under("volumes", &tail)) {
      c.kind = Change::Kind::kVolume;
      c.key = tail;
      if (!e.deleted) {
        auto v = decode_volume(e.kv);
        if (!v) return skip(key, v.status());
        c.volume = std::move(*v);
      }
    } else if (under("snapshots", &tail)) {
      c.kind = Change::Kind::kSnapshot;
      c.key = tail;
      if (!e.deleted) {
        auto s = decode_snapshot(e.kv);
        if (!s) return skip(key, s.status());
        c.snapshot = std::move(*s);
      }
    } else if (under("roles", &tail)) {
      c.kind = Change::Kind::kRole;
      c.key = tail;
    } else if (under("quotas", &tail)) {
      c.kind = Change::Kind::kQuota;
      c.key = tail;
    } else if (under("revocations", &tail)) {
      c.kind = Change::Kind::kRevocation;
      c.key = tail;
    } else if (under("nodes", &tail) || under("alive", &tail)) {
      // Membership and liveness are two keys; the service sees one record with both.
      c.kind = Change::Kind::kNode;
      c.key = tail;
      std::lock_guard lock(mu_);
      if (rest.rfind("nodes/", 0) == 0 && e.deleted) {
        nodes_.erase(tail);  // deregistered
      } else {
        NodeRecord& n = nodes_[tail];
        if (rest.rfind("nodes/", 0) == 0) {
          auto decoded = decode_node(e.kv);
          if (!decoded) return skip(key, decoded.status());
          const bool alive = n.alive;
          n = std::move(*decoded);
          n.alive = alive;
        } else {
          n.name = tail;
          n.alive = !e.deleted;
        }
        c.deleted = false;
        c.node = n;
      }
    } else {
      return;  // names/: claimed with their records, nothing to apply
    }
    ChangeHandler handler;
    {
      std::lock_guard lock(mu_);
      handler = on_change_;
    }
    if (handler) handler(c);
  }

  void skip(const std::string& key, const Status& why) {
    spdlog::error("etcd watch: {} not applied: {}", key, why.message());
  }

  const EtcdStoreOptions options_;
  std::unique_ptr<etcd::Client> client_;
  const std::string p_;  // prefix + "/"
  mutable std::mutex mu_;
  mutable std::condition_variable advanced_;
  ChangeHandler on_change_;                 // GUARDED_BY(mu_)
  Revision applied_ = 0;                    // GUARDED_BY(mu_): every event through it delivered
  Revision seen_ = 0;                       // GUARDED_BY(mu_): the highest revision read or written
  Clock::time_point confirmed_at_ = Clock::now();  // GUARDED_BY(mu_)
  std::string last_error_;                  // GUARDED_BY(mu_)
  bool compacted_ = false;                  // GUARDED_BY(mu_)
  std::map<std::string, NodeRecord> nodes_;  // GUARDED_BY(mu_): membership + liveness
  std::unique_ptr<etcd::LeasedKey> alive_;
  std::unique_ptr<etcd::Watch> watch_;  // last: destroyed first (see the destructor)
};

}  // namespace

Result<std::unique_ptr<MetadataStore>> open_etcd_store(const EtcdStoreOptions& options) {
  etcd::ClientOptions client_options{.endpoints = options.endpoints,
                                     .ca_file = options.ca_file,
                                     .cert_file = options.cert_file,
                                     .key_file = options.key_file,
                                     .username = options.username,
                                     .password = options.password,
                                     .timeout = options.timeout};
  // The key the revision probe reads: under our prefix, which an etcd user for volguard may read.
  client_options.revision_key = options.prefix + "/";
  ASSIGN_OR_RETURN(auto client, etcd::Client::open(client_options));
  auto store = std::make_unique<EtcdStore>(options, std::move(client));
  // Reachable with a quorum now, or the node does not start: a cluster node with no truth to
  // follow must not serve.
  RETURN_IF_ERROR(store->current_revision().status());
  return std::unique_ptr<MetadataStore>(std::move(store));
}

}  // namespace volguard::store
