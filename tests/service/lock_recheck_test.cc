// The check between decide and the act: a call that passed the pipeline's decision and then
// waited for the volume's lock must not act if its access went away meanwhile. Driven through
// the real Pipeline and VolumeService over a real SQLite store; the driver is a fake that can
// hold an operation open, so the interleaving is exact, not timed.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <set>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "service/access.h"
#include "service/fakes.h"
#include "service/volume_service.h"
#include "store/store.h"

namespace volguard::service {
namespace {

// A latch: wait() until open().
class Gate {
 public:
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Every driver call succeeds at once, except detach, which announces itself and then waits.
class HoldingDriver : public driver::VolumeDriver {
 public:
  Gate detach_entered, detach_release;
  std::atomic<int> mounts{0};

  Status create(const std::string&, uint64_t, driver::FsType, driver::Encryption) override { return Status::ok(); }
  Status remove(const std::string&) override { return Status::ok(); }
  Status snapshot(const std::string&, const std::string&) override { return Status::ok(); }
  Status remove_snapshot(const std::string&) override { return Status::ok(); }
  Status clone_volume(const std::string&, const std::string&) override { return Status::ok(); }
  Status clone_snapshot(const std::string&, const std::string&) override { return Status::ok(); }
  Status restore(const std::string&, const std::string&) override { return Status::ok(); }
  Status resize(const std::string&, uint64_t, driver::FsType) override { return Status::ok(); }
  Result<std::string> attach(const std::string&) override { return std::string("/dev/loop-fake"); }
  Status detach(const std::string&) override {
    detach_entered.open();
    detach_release.wait();
    return Status::ok();
  }
  Result<std::string> mount(const std::string&, const driver::MountTarget& target, driver::FsType,
                            const crypto::SecureBytes*) override {
    ++mounts;
    return target.path;
  }
  Result<std::string> bind(const std::string&, const driver::MountTarget&, const driver::MountTarget& target,
                           bool) override {
    return target.path;
  }
  Status unbind(const std::string&, driver::MountTarget) override { return Status::ok(); }
  std::optional<std::string> volume_on_device(dev_t) override { return std::nullopt; }
  Status unmount(const std::string&, driver::Encryption) override { return Status::ok(); }
  Result<driver::VolumeStatus> status(const std::string&) override {
    return driver::VolumeStatus{.exists = true};
  }
  Result<std::vector<std::string>> volume_ids() override { return std::vector<std::string>{}; }
  Result<std::vector<std::string>> snapshot_ids() override { return std::vector<std::string>{}; }
  bool snapshot_exists(const std::string&) override { return false; }
  Result<Capacity> capacity() override { return Capacity{}; }
};

// Thread-safe: two calls run at once. Signals when an intent for `watch` is written (the call
// has passed decide and is about to take the lock).
class SignallingRecorder : public DecisionRecorder {
 public:
  explicit SignallingRecorder(std::string watch) : watch_(std::move(watch)) {}
  Gate intent_seen;
  void record(const DecisionRecord&) override {}
  Status audit_ready() override { return Status::ok(); }
  Status intent(const DecisionRecord& r) override {
    if (r.method == watch_) intent_seen.open();
    return Status::ok();
  }
  Status audit(const DecisionRecord&) override { return Status::ok(); }

 private:
  std::string watch_;
};

// Verifies a fixed set of tokens; read-only after setup, so safe from two threads.
class TableVerifier : public identity::TokenVerifier {
 public:
  explicit TableVerifier(std::map<std::string, identity::Identity> ids) : ids_(std::move(ids)) {}
  Result<identity::Identity> verify(std::string_view token) const override {
    auto it = ids_.find(std::string(token));
    if (it == ids_.end()) return Status(Code::kUnauthenticated, "signature_invalid", "unknown token");
    return it->second;
  }
  void forget(std::string_view) const override {}  // remembers nothing

 private:
  std::map<std::string, identity::Identity> ids_;
};

TEST(LockRecheckTest, NodeWhoseVolumeIsDetachedWhileItWaitsDoesNotMount) {
  const std::string dir = std::filesystem::temp_directory_path() / ("volguard-recheck-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/mnt");
  config::Config config;
  config.nodes = {"node-1"};
  config.mount_roots = {dir};
  config.security.issuers.push_back({});
  config.security.issuers[0].issuer = testing::kIssuer;
  config.security.issuers[0].group_domain = testing::kGroupDomain;
  auto store = store::open_sqlite_store(dir + "/volguard.db");
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  auto owned_driver = std::make_unique<HoldingDriver>();
  HoldingDriver* driver = owned_driver.get();
  RoleRegistry roles;
  RevocationRegistry revocations;
  DataKeys keys(config.encryption);
  VolumeService volumes(config, std::move(store).value(), std::move(owned_driver), keys, roles, revocations);
  MethodTable table;
  volumes.register_methods(&table);
  ASSERT_TRUE(volumes.recover().is_ok());
  SignallingRecorder recorder("mountattach.mount");
  auto verifier = std::make_shared<TableVerifier>(std::map<std::string, identity::Identity>{
      {"alice", testing::person("alice", {"system.user"})},
      {"node-1", testing::person("node-1", {"system.node"})}});
  Pipeline pipeline(config.security, verifier, nullptr, table, volumes, roles, revocations, recorder, volumes);
  auto as = [](const char* token) { return RequestMeta{.authorization = std::string("Bearer ") + token}; };

  v1::CreateVolumeRequest create;
  create.set_name("shared");
  create.set_size("16M");
  v1::VolumeResponse made;
  ASSERT_TRUE(pipeline.invoke("volume.create", as("alice"), create, &made).is_ok());
  v1::AttachRequest attach;
  attach.set_volume("shared");
  attach.set_node("node-1");
  v1::AttachResponse attached;
  ASSERT_TRUE(pipeline.invoke("mountattach.attach", as("alice"), attach, &attached).is_ok());

  // The tenant detaches; the driver holds the detach (and so the volume's lock) open.
  Status detached;
  std::thread tenant([&] {
    v1::Empty e;
    detached = pipeline.invoke("mountattach.detach", as("alice"), attach, &e);
  });
  driver->detach_entered.wait();
  // The node asks to mount: it passes decide (still attached for node-1), writes its intent,
  // and waits for the lock.
  Status mounted;
  std::thread node([&] {
    v1::MountRequest mount;
    mount.set_volume("shared");
    mount.set_path(dir + "/mnt");
    v1::Empty e;
    mounted = pipeline.invoke("mountattach.mount", as("node-1"), mount, &e);
  });
  recorder.intent_seen.wait();
  driver->detach_release.open();
  tenant.join();
  node.join();
  EXPECT_TRUE(detached.is_ok()) << detached.to_string();
  // Detached meanwhile: the node's access is gone, and it is refused as if the volume did not
  // exist — the driver never mounted.
  EXPECT_EQ(mounted.code(), Code::kNotFound) << mounted.to_string();
  EXPECT_EQ(mounted.reason(), "volume_not_found");
  EXPECT_EQ(driver->mounts.load(), 0);
  std::filesystem::remove_all(dir);
}


// Enumerate looks only at the volumes the access index names for the caller: the answer must be
// exactly what the one access rule (volume_access) gives over every volume, for owners, group
// members (and a same-named group of another domain), collaborators, "*" grants, public and
// unowned volumes, admins, the CSI controller and guests.
TEST(EnumerateIndexTest, IndexedEnumerateEqualsTheFullRuleForEveryCaller) {
  const std::string dir = std::filesystem::temp_directory_path() / ("volguard-enumidx-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  config::Config config;
  config.security.issuers.push_back({});
  config.security.issuers[0].issuer = testing::kIssuer;
  config.security.issuers[0].group_domain = testing::kGroupDomain;
  auto store = store::open_sqlite_store(dir + "/volguard.db");
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  std::vector<store::VolumeRecord> all;
  std::mt19937 rng(7);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const std::string dom = testing::kGroupDomain;
  for (int i = 0; i < 400; ++i) {
    store::VolumeRecord v;
    v.id = "vol-" + std::to_string(1000 + i);
    v.name = "v" + std::to_string(i);
    v.size_bytes = 1 << 20;
    v.state = store::RecordState::kReady;
    if (pick(10) != 0) v.ownership.owner = std::string(testing::kIssuer) + "/u" + std::to_string(pick(8));
    if (pick(4) == 0) v.ownership.groups[dom + "/g" + std::to_string(pick(4))] = Access::kRead;
    if (pick(20) == 0) v.ownership.groups["*"] = Access::kRead;
    if (pick(20) == 0) v.ownership.groups["otherdomain/g1"] = Access::kWrite;
    if (pick(5) == 0) v.ownership.collaborators[std::string(testing::kIssuer) + "/u" + std::to_string(pick(8))] = Access::kWrite;
    if (pick(25) == 0) v.ownership.collaborators["*"] = Access::kRead;
    if (pick(12) == 0) v.ownership.public_access = Access::kRead;
    ASSERT_TRUE((*store)->create_volume(v).is_ok());
    all.push_back(v);
  }
  auto driver = std::make_unique<HoldingDriver>();
  RoleRegistry roles;
  RevocationRegistry revocations;
  DataKeys keys(config.encryption);
  VolumeService volumes(config, std::move(store).value(), std::move(driver), keys, roles, revocations);
  MethodTable table;
  volumes.register_methods(&table);
  ASSERT_TRUE(volumes.recover().is_ok());
  std::map<std::string, identity::Identity> ids = {
      {"admin", testing::person("admin", {"system.admin"})},
      {"controller", testing::person("csi-controller", {"system.csi-controller"})},
      {"nobody", testing::person("nobody", {"system.user"})},
      {"star", testing::person("star", {"system.user"}, {"*"})}};
  for (int u = 0; u < 8; ++u) {
    ids["u" + std::to_string(u)] = testing::person("u" + std::to_string(u), {"system.user"},
                                                   {"g" + std::to_string(u % 5), "g" + std::to_string((u + 2) % 5)});
  }
  SignallingRecorder recorder("none");
  Pipeline pipeline(config.security, std::make_shared<TableVerifier>(ids), nullptr, table, volumes, roles, revocations, recorder, volumes);
  ids["guest"] = identity::guest_identity();
  const ownership::AdminPolicy admins{config.security.admin_groups};
  for (const auto& [token, who] : ids) {
    std::set<std::string> expected;
    for (const auto& v : all) {
      if (volume_access(who, v, admins).access >= Access::kRead) expected.insert(v.id);
    }
    for (const std::string& owner : {std::string(), std::string(testing::kIssuer) + "/u3"}) {
      v1::EnumerateRequest req;
      req.set_owner(owner);
      v1::EnumerateResponse resp;
      const RequestMeta meta{.authorization = token == "guest" ? "" : "Bearer " + token};
      ASSERT_TRUE(pipeline.invoke("volume.enumerate", meta, req, &resp).is_ok()) << token;
      std::set<std::string> got;
      for (const auto& v : resp.volumes()) got.insert(v.id());
      std::set<std::string> want;
      for (const auto& id : expected) {
        const auto& rec = *std::find_if(all.begin(), all.end(), [&](const auto& v) { return v.id == id; });
        if (owner.empty() || rec.ownership.owner == owner) want.insert(id);
      }
      EXPECT_EQ(got, want) << token << " owner=" << owner;
      EXPECT_EQ(resp.volumes_size(), static_cast<int>(got.size())) << "no volume twice";
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace volguard::service
