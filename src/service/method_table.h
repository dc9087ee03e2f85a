// The one method table: every API method — gRPC, REST, CSI through the client — is one entry,
// declared with named fields, and reaches its handler only through Pipeline::invoke.
#pragma once

#include <google/protobuf/message.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "identity/identity.h"
#include "ownership/ownership.h"
#include "store/store.h"

namespace volguard::service {

using google::protobuf::Message;
using ownership::Access;

class Pipeline;

// What a method needs on one resource.
struct Need {
  Access access = Access::kNone;
  bool ownership_admin = false;  // only role system.admin / admin_groups may (transfer)
};

enum class ResourceKind { kVolume, kSnapshot };
// Whether a request must name the resource (an empty ref is INVALID_ARGUMENT) or may leave it
// out (clone from a volume OR a snapshot; snapshot enumerate of one volume or all).
enum class Presence { kRequired, kOptional };

// A resource named by the request, resolved and checked by the pipeline before the handler.
// The handler reads it back by the same name: call.volume("source").
struct ResourceCheck {
  std::string name;  // "volume", "source", "snapshot", "source_snapshot"
  ResourceKind kind = ResourceKind::kVolume;
  std::function<std::string(const Message&)> ref;  // id or name taken from the request
  std::function<Need(const Message&)> need;
  Presence presence = Presence::kRequired;
};

// A volume (or snapshot) named by the string field `field` of Req, needing `access`.
template <typename Req>
ResourceCheck volume_field(std::string name, const std::string& (Req::*field)() const, Access access,
                           Presence presence = Presence::kRequired) {
  return {.name = std::move(name),
          .kind = ResourceKind::kVolume,
          .ref = [field](const Message& m) { return (static_cast<const Req&>(m).*field)(); },
          .need = [access](const Message&) { return Need{.access = access}; },
          .presence = presence};
}
template <typename Req>
ResourceCheck snapshot_field(std::string name, const std::string& (Req::*field)() const, Access access,
                             Presence presence = Presence::kRequired) {
  ResourceCheck check = volume_field<Req>(std::move(name), field, access, presence);
  check.kind = ResourceKind::kSnapshot;
  return check;
}

// Whether a method changes state: a change is audited write-ahead (intent, then outcome) and is
// refused when the audit trail cannot take it.
enum class Effect { kReadOnly, kMutates };
// Where a method runs: on the transport's event threads (catalog lookups only), or on the worker
// pool because it does driver or disk I/O.
enum class Work { kInline, kDriverIo };

// One caller's view of one call, handed to the handler after every check passed.
struct Call {
  const identity::Identity* who = nullptr;
  std::string method;      // "volume.create"
  std::string request_id;  // the server's own
  std::string remote;
  bool security_enabled = true;
  // The pipeline that decided this call: for handlers that must ask the same decision about
  // another method (auth can-i, quota.show) instead of reading the roles a second time.
  const Pipeline* pipeline = nullptr;
  // Whether the caller holds `need` on a volume (for enumerate filtering, a mount target on
  // another volume); provided by the pipeline so that the rule (volume_access) lives in one
  // place.
  std::function<bool(const store::VolumeRecord&, Access)> may;
  std::string resource_for_log;  // "volume/<id>", set by the pipeline / handler
  std::string audit_message;     // "Volume <id> created"; a default is derived when empty

  // The resources the method declared, by their declared name; null when optional and absent.
  // Asking for a name the method did not declare is a bug in the handler: it aborts, loudly,
  // rather than act on nothing.
  const std::shared_ptr<const store::VolumeRecord>& volume(std::string_view name = "volume") const;
  const std::shared_ptr<const store::SnapshotRecord>& snapshot(std::string_view name = "snapshot") const;
  void add_volume(std::string name, std::shared_ptr<const store::VolumeRecord> v) {
    volumes_.emplace_back(std::move(name), std::move(v));
  }
  void add_snapshot(std::string name, std::shared_ptr<const store::SnapshotRecord> s) {
    snapshots_.emplace_back(std::move(name), std::move(s));
  }
  // The access the pipeline decided `name` needs (kNone when security is off or it was absent):
  // what a handler re-checks on the record it re-reads under the volume's lock.
  Access need(std::string_view name) const {
    for (const auto& [n, a] : needs_) {
      if (n == name) return a;
    }
    return Access::kNone;
  }
  void add_need(std::string name, Access access) { needs_.emplace_back(std::move(name), access); }

 private:
  std::vector<std::pair<std::string, std::shared_ptr<const store::VolumeRecord>>> volumes_;
  std::vector<std::pair<std::string, std::shared_ptr<const store::SnapshotRecord>>> snapshots_;
  std::vector<std::pair<std::string, Access>> needs_;
};

using Handler = std::function<Status(Call& call, const Message& request, Message* response)>;

// What a method is, as written where it is registered (designated initializers):
//   {.service = "volume", .api = "create", .grpc_path = "...", .effect = Effect::kMutates, ...}
struct MethodInfo {
  std::string service;    // rule service: "volume"
  std::string api;        // rule api: "snapshotcreate"
  std::string grpc_path;  // "/volguard.v1.VolguardVolume/SnapshotCreate"
  std::vector<ResourceCheck> resources;
  Effect effect = Effect::kReadOnly;
  Work work = Work::kInline;
};

struct MethodSpec : MethodInfo {
  const Message* request_prototype = nullptr;
  const Message* response_prototype = nullptr;
  Handler handler;
  std::string key() const { return service + "." + api; }
  bool mutates() const { return effect == Effect::kMutates; }
  bool driver_io() const { return work == Work::kDriverIo; }
};

class MethodTable {
 public:
  // A method whose handler is a member function: Req/Resp are deduced from its signature.
  template <typename Obj, typename Req, typename Resp>
  void add(MethodInfo info, Obj* obj, Status (Obj::*fn)(Call&, const Req&, Resp*)) {
    add<Req, Resp>(std::move(info), [obj, fn](Call& call, const Req& req, Resp* resp) {
      return (obj->*fn)(call, req, resp);
    });
  }
  // A method whose handler is a function object; Req/Resp are the generated protobuf types.
  template <typename Req, typename Resp>
  void add(MethodInfo info, std::function<Status(Call&, const Req&, Resp*)> handler) {
    MethodSpec spec;
    static_cast<MethodInfo&>(spec) = std::move(info);
    spec.request_prototype = &Req::default_instance();
    spec.response_prototype = &Resp::default_instance();
    spec.handler = [h = std::move(handler)](Call& call, const Message& req, Message* resp) {
      return h(call, static_cast<const Req&>(req), static_cast<Resp*>(resp));
    };
    insert(std::move(spec));
  }
  // A spec built elsewhere (a copy of another table's entry, e.g. with its handler swapped by a
  // test); refused like any other duplicate.
  void add_spec(MethodSpec spec) { insert(std::move(spec)); }
  const MethodSpec* find(const std::string& key) const;
  const MethodSpec* find_grpc(const std::string& path) const;
  // Read-only views: whoever holds the table (a handler through call.pipeline) cannot swap
  // another method's handler or resources.
  std::vector<const MethodSpec*> methods() const;

 private:
  void insert(MethodSpec spec);
  std::vector<std::unique_ptr<const MethodSpec>> methods_;
  std::map<std::string, const MethodSpec*> by_key_;
  std::map<std::string, const MethodSpec*> by_grpc_;
};

}  // namespace volguard::service
