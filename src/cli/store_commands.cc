// `volguard store migrate`: a single node grows into a cluster. Offline (the node's server is
// stopped, so nothing changes underneath): every role, quota, volume and snapshot of its SQLite
// store is created in etcd, volumes and snapshots homed on that node (its disk has their data).
// Re-running is safe: a record already there with the same id is left as it is and counted.
#include <iostream>

#include "cli/client_commands.h"
#include "cli/commands.h"
#include "common/text.h"
#include "config/config.h"
#include "service/core.h"
#include "store/store.h"

namespace volguard::cli {

namespace {

int fail(const std::string& what, const Status& s) {
  return report_failure(Status(s.code(), s.reason(), what + ": " + s.message()),
                        s.code() == Code::kInvalidArgument ? kExitUsage : kExitRefused);
}

}  // namespace

int store_migrate(const MigrateArgs& a) {
  auto config = config::load_config(a.to_config);
  if (!config) return fail("--to", config.status());
  if (!config->store.etcd_enabled) {
    return fail("--to", Status(Code::kInvalidArgument, "bad_config", a.to_config + ": store.etcd is not configured"));
  }
  const std::string node = a.node.empty() ? config->node.name : a.node;
  if (!is_valid_name(node)) return fail("--node", Status(Code::kInvalidArgument, "bad_name", "'" + node + "' is not a node name"));
  // Refuse a path that is not a database rather than let SQLite create an empty one.
  if (auto text = read_file(a.from); !text) return fail("--from", text.status());
  auto from = store::open_sqlite_store(a.from);
  if (!from) return fail("--from", from.status());
  const config::EtcdConfig& e = config->store.etcd;
  auto to = service::open_store(*config);
  if (!to) return fail("--to", to.status());

  struct Count {
    size_t copied = 0, present = 0;
  };
  Count roles, quotas, revocations, volumes, snapshots;
  auto already = [](const Status& s) { return s.code() == Code::kAlreadyExists; };

  auto role_list = (*from)->list_roles();
  if (!role_list) return fail("reading roles", role_list.status());
  for (const auto& r : *role_list) {
    Status s = (*to)->put_role(r, store::PutMode::kCreate);
    if (already(s)) { ++roles.present; continue; }
    if (!s.is_ok()) return fail("role " + r.name, s);
    ++roles.copied;
  }
  auto quota_list = (*from)->list_quotas();
  if (!quota_list) return fail("reading quotas", quota_list.status());
  for (const auto& q : *quota_list) {
    if (Status s = (*to)->put_quota(q); !s.is_ok()) return fail("quota " + q.name, s);
    ++quotas.copied;
  }
  // Revoked tokens stay revoked in the cluster (an upsert: a second migrate changes nothing).
  auto revocation_list = (*from)->list_revocations();
  if (!revocation_list) return fail("reading revocations", revocation_list.status());
  for (const auto& r : *revocation_list) {
    if (Status s = (*to)->put_revocation(r); !s.is_ok()) return fail("revocation of " + r.subject, s);
    ++revocations.copied;
  }
  // Only finished records: a create or delete a crash interrupted is the node's own recovery's
  // to undo, at its next start on SQLite — migrate after that.
  auto vol_list = (*from)->list_volumes();
  if (!vol_list) return fail("reading volumes", vol_list.status());
  size_t skipped = 0;
  for (auto v : *vol_list) {
    if (v.state != store::RecordState::kReady) { ++skipped; continue; }
    v.home_node = node;
    v.revision = 0;
    Status s = (*to)->create_volume(v);
    if (already(s)) { ++volumes.present; continue; }
    if (!s.is_ok()) return fail("volume " + v.name, s);
    ++volumes.copied;
  }
  auto snap_list = (*from)->list_snapshots();
  if (!snap_list) return fail("reading snapshots", snap_list.status());
  for (auto sn : *snap_list) {
    if (sn.state != store::RecordState::kReady) { ++skipped; continue; }
    sn.home_node = node;
    sn.revision = 0;
    Status s = (*to)->create_snapshot(sn);
    if (already(s)) { ++snapshots.present; continue; }
    if (!s.is_ok()) return fail("snapshot " + sn.name, s);
    ++snapshots.copied;
  }
  std::cout << "Migrated to etcd (" << e.prefix << "), homed on node " << node << ":\n"
            << "  roles     : " << roles.copied << " copied, " << roles.present << " already there\n"
            << "  quotas    : " << quotas.copied << " copied\n"
            << "  revocations: " << revocations.copied << " copied\n"
            << "  volumes   : " << volumes.copied << " copied, " << volumes.present << " already there\n"
            << "  snapshots : " << snapshots.copied << " copied, " << snapshots.present << " already there\n";
  if (skipped > 0) std::cout << "  skipped   : " << skipped << " unfinished record(s) (start the node once on SQLite to recover them)\n";
  return kExitOk;
}

}  // namespace volguard::cli
