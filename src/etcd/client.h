// A small client of etcd's v3 gRPC API (KV, Watch, Lease, Auth), over the gRPC library volguard
// already links. The messages are the subset declared in proto/etcd_rpc.proto (package
// etcdserverpb) and proto/etcd_kv.proto (package mvccpb) with etcd's own package and field
// numbers. The store (store/etcd_store.cc) is its one user.
//
// Endpoints: one channel per endpoint; a call that fails with UNAVAILABLE or DEADLINE_EXCEEDED
// moves on to the next endpoint (a member that lost its quorum answers nothing within the
// deadline; a killed member refuses the connection). Every call carries a deadline (`timeout`
// per attempt, so at worst one timeout per endpoint) and etcd's require-leader metadata (a member
// without a leader refuses at once). A write (a txn with a put or delete) moves on only when the
// failed attempt certainly did nothing (refused for want of a leader, or never sent); otherwise
// it fails with "may or may not have been applied": retrying a compare-and-swap elsewhere could
// apply it twice or report a lost compare for a write that succeeded. The caller re-reads.
//
// Errors: member(s) unreachable or without quorum → UNAVAILABLE, reason `store_unavailable`,
// the message naming each endpoint tried and etcd's (or gRPC's) error text. Any other refusal by
// etcd → etcd's gRPC code, reason `store_error`; credentials refused → UNAUTHENTICATED,
// `store_auth_failed`; bad options → INVALID_ARGUMENT, `invalid_store_config`. Messages carry
// the operation, endpoint names and etcd's text, never a value (nor a key).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace volguard::etcd {

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;  // for a delete event: the revision of the delete
  int64_t version = 0;
  int64_t lease = 0;
};

// One comparison of a transaction (etcd's Compare): `key`'s `target` compared with a number
// (version, create or mod revision) or a value.
struct Compare {
  enum class Target { kVersion, kCreate, kMod, kValue };
  enum class Result { kEqual, kGreater, kLess, kNotEqual };
  std::string key;
  Target target = Target::kMod;
  Result result = Result::kEqual;
  int64_t number = 0;
  std::string value;
};

// One operation of a transaction branch.
struct Op {
  enum class Type { kGet, kPut, kDelete };
  Type type = Type::kGet;
  std::string key;
  std::string range_end;  // kGet/kDelete: a range [key, range_end) when not empty
  std::string value;      // kPut
  int64_t lease = 0;      // kPut
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;  // the store's revision after the transaction (header.revision)
  // The kvs of each kGet of the branch that ran, in order.
  std::vector<std::vector<KeyValue>> ranges;
};

struct ClientOptions {
  std::vector<std::string> endpoints;  // "127.0.0.1:2379" (http) — TLS when ca_file is set
  std::string ca_file;                 // TLS: the CA that signed the members' certificates
  std::string cert_file;               // TLS client certificate (etcd --client-cert-auth)
  std::string key_file;
  std::string username;  // etcd auth (Auth.Authenticate → token metadata), empty = none
  std::string password;
  std::chrono::milliseconds timeout{2000};  // deadline of each call
  // The key current_revision() reads (it need not exist). With etcd auth on, one the user may
  // read. Default: the smallest key, "\0".
  std::string revision_key = std::string(1, '\0');
};

// The end of the range of every key starting with `prefix` (etcd's prefix convention).
std::string prefix_end(const std::string& prefix);

struct WatchEvent {
  bool deleted = false;
  KeyValue kv;  // for a delete: key and mod_revision (the revision of the delete) only
};

// What a watch reports, always from the watch's own thread, one call at a time, in order.
struct WatchCallbacks {
  // Events in revision order; every event through `revision` has been delivered after this call.
  std::function<void(const std::vector<WatchEvent>& events, int64_t revision)> on_events;
  // Nothing happened under the prefix through `revision` (a progress notification): the
  // caller's view is complete through it. Arrives at least once per progress interval while
  // the stream is healthy.
  std::function<void(int64_t revision)> on_progress;
  // The stream broke (member down, leader lost, network): the watch reconnects by itself (next
  // endpoint, from the revision after the last one delivered) and keeps calling on_progress.
  // Called once per outage: when a working stream breaks, or when the first stream cannot be
  // had; not again for each failed reconnection until a stream has worked again.
  std::function<void(const Status& why)> on_broken;
  // The start revision was compacted away: events were lost; the caller must reload. The watch
  // restarts from `current_revision` + 1 after this returns.
  std::function<void(int64_t current_revision)> on_compacted;
};

// Only on_events is required. on_progress is only called after a linearizable read confirmed
// it (etcd before 3.4.25 may send a progress response ahead of queued events, etcd issue 15220),
// so progress stops as soon as the cluster loses its quorum; events already delivered may be
// followed by an on_progress for the same revision.
class Watch {
 public:
  // Stops the thread; no callback runs after it returns. Not to be called from a callback.
  virtual ~Watch() = default;
};

// Keeps `key` = `value` under a lease of `ttl` for as long as it lives, renewing every ttl/3;
// after a lapse (etcd unreachable past the ttl) a new lease is granted and the key put again.
// Destroyed: the lease is revoked (the key disappears at once), best effort within one timeout.
// A lapse is etcd answering a renewal with TTL 0; while etcd has no leader, leases do not expire
// (a new leader extends them), so a short outage keeps the lease and the key as they were.
class LeasedKey {
 public:
  virtual ~LeasedKey() = default;
  virtual bool alive() const = 0;  // the last renewal succeeded
};

// Thread-safe. A Watch or LeasedKey may outlive the Client that made it.
class Client {
 public:
  static Result<std::unique_ptr<Client>> open(const ClientOptions& options);
  virtual ~Client() = default;

  // Linearizable read of [key, range_end) (just `key` when range_end is empty). `revision`, when
  // not null, receives the store's revision at the read (header.revision).
  virtual Result<std::vector<KeyValue>> range(const std::string& key, const std::string& range_end,
                                              int64_t* revision = nullptr) = 0;
  virtual Result<TxnResult> txn(const std::vector<Compare>& compares,
                                const std::vector<Op>& success, const std::vector<Op>& failure) = 0;
  // The store's current revision (a linearizable read of options.revision_key: fails without a
  // quorum).
  virtual Result<int64_t> current_revision() = 0;

  // Watches every key under `prefix` (every key when empty) from `start_revision` (inclusive,
  // >= 1; typically the revision of the caller's last read + 1) on its own thread, with
  // etcd's require-leader metadata (a member that loses its leader ends the stream, so no view
  // goes quietly stale) and a progress request every `progress_interval`.
  virtual Result<std::unique_ptr<Watch>> watch(const std::string& prefix, int64_t start_revision,
                                               WatchCallbacks callbacks,
                                               std::chrono::milliseconds progress_interval) = 0;

  // Grants the lease and puts the key before returning (an error when that fails).
  virtual Result<std::unique_ptr<LeasedKey>> keep(const std::string& key, const std::string& value,
                                                  std::chrono::seconds ttl) = 0;
};

}  // namespace volguard::etcd
