// Integration: a real volguard server and the CSI plugin, both in-process, driven over the
// plugin's unix socket with the generated CSI stubs exactly as the sidecars and kubelet would.
#include <errno.h>
#include <gtest/gtest.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <yaml-cpp/yaml.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <fstream>
#include <thread>
#include <utility>
#include <vector>

#include "audit/audit.h"
#include "csi.grpc.pb.h"
#include "csi/plugin.h"
#include "support/test_server.h"
#include "volguard.pb.h"

namespace volguard {
namespace {

namespace stdfs = std::filesystem;
namespace vg = volguard::v1;
using ::csi::v1::CapacityRange;
using ::csi::v1::VolumeCapability;
using testing::TestServer;
using Mode = VolumeCapability::AccessMode;

constexpr int64_t kMiB = int64_t{1} << 20;

VolumeCapability mount_cap(Mode::Mode mode = Mode::SINGLE_NODE_WRITER, const std::string& fs = "") {
  VolumeCapability cap;
  cap.mutable_mount()->set_fs_type(fs);
  cap.mutable_access_mode()->set_mode(mode);
  return cap;
}

class CsiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The server is volguard node node-1 (its volumes' home) and serves two CSI nodes; this
    // plugin is node-1, with its own credential and the controller's read-only one, as the
    // shipped manifests mount them from Secrets.
    srv_ = std::make_unique<TestServer>("", true, "nodes: [node-1, node-2]\nnode:\n  name: node-1\n");
    char tmpl[] = "/tmp/volguard-csi-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    node1_ = srv_->token("node-1", {"system.node"});
    node2_ = srv_->token("node-2", {"system.node"});
    controller_token_ = srv_->token("csi-controller", {"system.csi-controller"});
    ASSERT_TRUE(write_file(dir_ + "/node.token", node1_ + "\n", 0600).is_ok());
    ASSERT_TRUE(write_file(dir_ + "/controller.token", controller_token_ + "\n", 0600).is_ok());
    options_ = csi::PluginOptions{.endpoint = "unix://" + dir_ + "/csi.sock",
                                  .node_id = "node-1",
                                  .server = "127.0.0.1:" + std::to_string(srv_->grpc_port()),
                                  .node_token_file = dir_ + "/node.token",
                                  .controller_token_file = dir_ + "/controller.token"};
    auto plugin = csi::Plugin::start(options_);
    ASSERT_TRUE(plugin.is_ok()) << plugin.status().to_string();
    plugin_ = std::move(plugin).value();
    auto channel = grpc::CreateChannel(options_.endpoint, grpc::InsecureChannelCredentials());
    identity_ = ::csi::v1::Identity::NewStub(channel);
    controller_ = ::csi::v1::Controller::NewStub(channel);
    node_ = ::csi::v1::Node::NewStub(channel);
    alice_ = srv_->token("alice", {"system.user"}, {"alice-team"});
    bob_ = srv_->token("bob", {"system.user"}, {"bob-team"});
    viewer_ = srv_->token("vera", {"system.view"}, {"viewers"});
    forged_ = srv_->token("mallory", {"system.admin"}, {"*"}, "an-attacker-guessed-secret-0123456789");
    admin_ = srv_->client(srv_->token("root", {"system.admin"}, {"*"}));
  }

  void TearDown() override {
    // Bind mounts and staging mounts live under dir_: newest (deepest) first, before the server
    // detaches its loop devices.
    std::system(("for m in $(awk '{print $2}' /proc/mounts | grep '^" + dir_ +
                 "' | sort -r); do umount -l $m; done")
                    .c_str());
    plugin_.reset();
    srv_.reset();
    std::error_code ec;
    stdfs::remove_all(dir_, ec);
  }

  // Every refusal the plugin sends is checked here: the code, and that no token leaks into it.
  void expect_code(const grpc::Status& s, grpc::StatusCode code, const std::string& what) {
    EXPECT_EQ(s.error_code(), code) << what << ": " << s.error_message();
    for (const auto* t : {&alice_, &bob_, &viewer_, &forged_, &node1_, &node2_, &controller_token_}) {
      EXPECT_EQ(s.error_message().find(*t), std::string::npos) << what << " leaks a token";
      // Any recognisable piece of a JWT (its signature part) must not appear either.
      EXPECT_EQ(s.error_message().find(t->substr(t->rfind('.') + 1)), std::string::npos) << what;
    }
  }

  // Asked of the server as an admin, not through the plugin.
  bool server_volume_exists(const std::string& id) {
    volguard::v1::VolumeRef ref;
    ref.set_volume(id);
    volguard::v1::VolumeResponse out;
    Status s = admin_.call("/volguard.v1.VolguardVolume/Inspect", ref, &out);
    EXPECT_TRUE(s.is_ok() || s.code() == Code::kNotFound) << s.to_string();
    return s.is_ok();
  }

  // Stops this test's plugin and starts one with `options` on the same socket.
  void restart_plugin(const csi::PluginOptions& options) {
    plugin_.reset();
    options_ = options;
    auto plugin = csi::Plugin::start(options_);
    ASSERT_TRUE(plugin.is_ok()) << plugin.status().to_string();
    plugin_ = std::move(plugin).value();
    auto channel = grpc::CreateChannel(options_.endpoint, grpc::InsecureChannelCredentials());
    identity_ = ::csi::v1::Identity::NewStub(channel);
    controller_ = ::csi::v1::Controller::NewStub(channel);
    node_ = ::csi::v1::Node::NewStub(channel);
  }

  template <typename Req>
  static void with_token(Req* req, const std::string& token) {
    if (!token.empty()) (*req->mutable_secrets())[csi::kTokenSecret] = token;
  }

  grpc::Status create(const std::string& name, const std::string& token, int64_t required,
                      ::csi::v1::CreateVolumeResponse* out,
                      std::map<std::string, std::string> params = {}, int64_t limit = 0) {
    ::csi::v1::CreateVolumeRequest req;
    req.set_name(name);
    *req.add_volume_capabilities() = mount_cap();
    req.mutable_capacity_range()->set_required_bytes(required);
    req.mutable_capacity_range()->set_limit_bytes(limit);
    for (auto& [k, v] : params) (*req.mutable_parameters())[k] = v;
    with_token(&req, token);
    grpc::ClientContext ctx;
    return controller_->CreateVolume(&ctx, req, out);
  }

  vg::Volume inspect_as_admin(const std::string& id) {
    vg::VolumeRef ref;
    ref.set_volume(id);
    vg::VolumeResponse resp;
    Status s = admin_.call("/volguard.v1.VolguardVolume/Inspect", ref, &resp);
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return resp.volume();
  }

  // ControllerPublishVolume, as the external-attacher sends it (the controller-publish secret).
  grpc::Status attach(const std::string& id, const std::string& node, const std::string& token,
                      ::csi::v1::ControllerPublishVolumeResponse* out = nullptr) {
    ::csi::v1::ControllerPublishVolumeRequest req;
    req.set_volume_id(id);
    req.set_node_id(node);
    *req.mutable_volume_capability() = mount_cap();
    with_token(&req, token);
    ::csi::v1::ControllerPublishVolumeResponse resp;
    grpc::ClientContext ctx;
    return controller_->ControllerPublishVolume(&ctx, req, out ? out : &resp);
  }
  grpc::Status detach(const std::string& id, const std::string& node, const std::string& token) {
    ::csi::v1::ControllerUnpublishVolumeRequest req;
    req.set_volume_id(id);
    req.set_node_id(node);
    with_token(&req, token);
    ::csi::v1::ControllerUnpublishVolumeResponse resp;
    grpc::ClientContext ctx;
    return controller_->ControllerUnpublishVolume(&ctx, req, &resp);
  }

  // As kubelet's flow does it: the volume is attached for this node (ControllerPublishVolume,
  // with the tenant's controller-publish secret) before NodeStageVolume. The token is kept, as
  // Kubernetes keeps the secret's name in the PV, for the ControllerUnpublish after unstage.
  grpc::Status stage(const std::string& id, const std::string& path, const std::string& token) {
    if (!token.empty()) {
      if (grpc::Status a = attach(id, "node-1", token); !a.ok()) return a;
      attached_by_[id] = token;
    }
    stdfs::create_directories(path);
    ::csi::v1::NodeStageVolumeRequest req;
    req.set_volume_id(id);
    req.set_staging_target_path(path);
    *req.mutable_volume_capability() = mount_cap();
    with_token(&req, token);
    ::csi::v1::NodeStageVolumeResponse resp;
    grpc::ClientContext ctx;
    return node_->NodeStageVolume(&ctx, req, &resp);
  }

  // NodeUnstageVolume (no secrets: the node's own credential), then ControllerUnpublishVolume
  // as the tenant who attached it.
  grpc::Status unstage(const std::string& id, const std::string& path) {
    ::csi::v1::NodeUnstageVolumeRequest req;
    req.set_volume_id(id);
    req.set_staging_target_path(path);
    ::csi::v1::NodeUnstageVolumeResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = node_->NodeUnstageVolume(&ctx, req, &resp);
    if (!s.ok()) return s;
    if (auto it = attached_by_.find(id); it != attached_by_.end()) return detach(id, "node-1", it->second);
    return s;
  }

  grpc::Status publish(const std::string& id, const std::string& staging, const std::string& target,
                       bool readonly, const std::string& token) {
    ::csi::v1::NodePublishVolumeRequest req;
    req.set_volume_id(id);
    req.set_staging_target_path(staging);
    req.set_target_path(target);
    req.set_readonly(readonly);
    *req.mutable_volume_capability() = mount_cap(readonly ? Mode::SINGLE_NODE_READER_ONLY
                                                          : Mode::SINGLE_NODE_WRITER);
    with_token(&req, token);
    ::csi::v1::NodePublishVolumeResponse resp;
    grpc::ClientContext ctx;
    return node_->NodePublishVolume(&ctx, req, &resp);
  }

  grpc::Status unpublish(const std::string& id, const std::string& target) {
    ::csi::v1::NodeUnpublishVolumeRequest req;
    req.set_volume_id(id);
    req.set_target_path(target);
    ::csi::v1::NodeUnpublishVolumeResponse resp;
    grpc::ClientContext ctx;
    return node_->NodeUnpublishVolume(&ctx, req, &resp);
  }

  grpc::Status stats(const std::string& id, const std::string& path,
                     ::csi::v1::NodeGetVolumeStatsResponse* resp) {
    ::csi::v1::NodeGetVolumeStatsRequest req;
    req.set_volume_id(id);
    req.set_volume_path(path);
    grpc::ClientContext ctx;
    return node_->NodeGetVolumeStats(&ctx, req, resp);
  }

  grpc::Status delete_volume(const std::string& id, const std::string& token) {
    ::csi::v1::DeleteVolumeRequest req;
    req.set_volume_id(id);
    with_token(&req, token);
    ::csi::v1::DeleteVolumeResponse resp;
    grpc::ClientContext ctx;
    return controller_->DeleteVolume(&ctx, req, &resp);
  }

  static bool is_mounted(const std::string& path) {
    std::ifstream in("/proc/self/mounts");
    std::string dev, point, rest;
    while (in >> dev >> point && std::getline(in, rest)) {
      if (point == path) return true;
    }
    return false;
  }

  std::unique_ptr<TestServer> srv_;
  std::string dir_;
  std::unique_ptr<csi::Plugin> plugin_;
  std::unique_ptr<::csi::v1::Identity::Stub> identity_;
  std::unique_ptr<::csi::v1::Controller::Stub> controller_;
  std::unique_ptr<::csi::v1::Node::Stub> node_;
  std::string alice_, bob_, viewer_, forged_, node1_, node2_, controller_token_;
  csi::PluginOptions options_;
  std::map<std::string, std::string> attached_by_;  // volume id -> the token that attached it
  api::Client admin_ = api::Client::connect("127.0.0.1:1", "", "").value();
};

TEST_F(CsiTest, IdentityAndNodeInfo) {
  {
    grpc::ClientContext ctx;
    ::csi::v1::GetPluginInfoResponse info;
    ASSERT_TRUE(identity_->GetPluginInfo(&ctx, {}, &info).ok());
    EXPECT_EQ(info.name(), "csi.volguard.io");
    EXPECT_FALSE(info.vendor_version().empty());
  }
  {
    grpc::ClientContext ctx;
    ::csi::v1::ProbeResponse probe;
    EXPECT_TRUE(identity_->Probe(&ctx, {}, &probe).ok());
  }
  {
    grpc::ClientContext ctx;
    ::csi::v1::GetPluginCapabilitiesResponse caps;
    ASSERT_TRUE(identity_->GetPluginCapabilities(&ctx, {}, &caps).ok());
    ASSERT_GE(caps.capabilities_size(), 1);
    EXPECT_EQ(caps.capabilities(0).service().type(),
              ::csi::v1::PluginCapability::Service::CONTROLLER_SERVICE);
  }
  {
    grpc::ClientContext ctx;
    ::csi::v1::NodeGetInfoResponse info;
    ASSERT_TRUE(node_->NodeGetInfo(&ctx, {}, &info).ok());
    EXPECT_EQ(info.node_id(), "node-1");
  }
  {
    grpc::ClientContext ctx;
    ::csi::v1::NodeGetCapabilitiesResponse caps;
    ASSERT_TRUE(node_->NodeGetCapabilities(&ctx, {}, &caps).ok());
    std::set<int> types;
    for (const auto& c : caps.capabilities()) types.insert(c.rpc().type());
    EXPECT_EQ(types, (std::set<int>{1, 2, 3}));  // STAGE_UNSTAGE, GET_VOLUME_STATS, EXPAND
  }
  {
    grpc::ClientContext ctx;
    ::csi::v1::ControllerGetCapabilitiesResponse caps;
    ASSERT_TRUE(controller_->ControllerGetCapabilities(&ctx, {}, &caps).ok());
    EXPECT_GE(caps.capabilities_size(), 8);
  }
}

TEST_F(CsiTest, CreateVolumeOwnershipIdempotencyAndRefusals) {
  const std::map<std::string, std::string> params = {
      {"csi.storage.k8s.io/pvc/name", "data"},
      {"csi.storage.k8s.io/pvc/namespace", "shop"},
      {"labels", "app=db,tier=backend"},
      {"group", "alice-team:r"}};
  ::csi::v1::CreateVolumeResponse made;
  ASSERT_TRUE(create("pvc-0001", alice_, 32 * kMiB, &made, params).ok());
  EXPECT_EQ(made.volume().capacity_bytes(), 32 * kMiB);
  const std::string id = made.volume().volume_id();
  vg::Volume v = inspect_as_admin(id);
  EXPECT_EQ(v.name(), "pvc-0001");
  EXPECT_EQ(v.ownership().owner(), "test.local/alice");
  EXPECT_EQ(v.labels().at("pvc"), "data");
  EXPECT_EQ(v.labels().at("namespace"), "shop");
  EXPECT_EQ(v.labels().at("app"), "db");
  EXPECT_EQ(v.ownership().groups().at("test.local/alice-team"), "r");
  EXPECT_EQ(v.fs(), "ext4");

  // Retried with the same name and parameters: the same volume.
  ::csi::v1::CreateVolumeResponse again;
  ASSERT_TRUE(create("pvc-0001", alice_, 32 * kMiB, &again, params).ok());
  EXPECT_EQ(again.volume().volume_id(), id);
  // Same name, a size the volume does not satisfy: ALREADY_EXISTS.
  expect_code(create("pvc-0001", alice_, 64 * kMiB, &again, params),
              grpc::StatusCode::ALREADY_EXISTS, "other size");
  // Same name, other parameters.
  expect_code(create("pvc-0001", alice_, 32 * kMiB, &again, {{"fs", "xfs"}}),
              grpc::StatusCode::ALREADY_EXISTS, "other fs");
  // Same name, another tenant: refused by the server (it may not even read it).
  expect_code(create("pvc-0001", bob_, 32 * kMiB, &again, params),
              grpc::StatusCode::ALREADY_EXISTS, "other tenant same name");

  // A CO name volguard would refuse is mapped to a stable, safe name.
  ::csi::v1::CreateVolumeResponse odd, odd2;
  ASSERT_TRUE(create("pvc with spaces/and:colons", alice_, 16 * kMiB, &odd).ok());
  ASSERT_TRUE(create("pvc with spaces/and:colons", alice_, 16 * kMiB, &odd2).ok());
  EXPECT_EQ(odd.volume().volume_id(), odd2.volume().volume_id());
  const std::string safe = inspect_as_admin(odd.volume().volume_id()).name();
  EXPECT_EQ(safe.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"),
            std::string::npos)
      << safe;

  // Roles, tokens, guests.
  expect_code(create("pvc-view", viewer_, 16 * kMiB, &made), grpc::StatusCode::PERMISSION_DENIED,
              "system.view");
  expect_code(create("pvc-forged", forged_, 16 * kMiB, &made), grpc::StatusCode::UNAUTHENTICATED,
              "forged token");
  ::csi::v1::CreateVolumeResponse guest;
  ASSERT_TRUE(create("pvc-guest", "", 16 * kMiB, &guest).ok());
  EXPECT_EQ(inspect_as_admin(guest.volume().volume_id()).ownership().owner(), "");

  // Arguments.
  expect_code(create("pvc-param", alice_, 16 * kMiB, &made, {{"fstype", "ext4"}}),
              grpc::StatusCode::INVALID_ARGUMENT, "unknown parameter");
  // Encryption (StorageClass `secure`, `secret_key`) reaches the server: this one has no KEK,
  // and says so rather than make a plain volume.
  expect_code(create("pvc-enc", alice_, 16 * kMiB, &made, {{"secure", "true"}}),
              grpc::StatusCode::FAILED_PRECONDITION, "secure without a KEK");
  expect_code(create("pvc-enc", alice_, 16 * kMiB, &made, {{"secret_key", "tenant-a"}}),
              grpc::StatusCode::FAILED_PRECONDITION, "secret_key implies secure");
  expect_code(create("pvc-enc", alice_, 16 * kMiB, &made, {{"secure", "yes"}}),
              grpc::StatusCode::INVALID_ARGUMENT, "secure is true or false");
  expect_code(create("pvc-enc", alice_, 16 * kMiB, &made, {{"secure", "false"}, {"secret_key", "k"}}),
              grpc::StatusCode::INVALID_ARGUMENT, "secret_key with secure false");
  expect_code(create("pvc-range", alice_, 64 * kMiB, &made, {}, 32 * kMiB),
              grpc::StatusCode::OUT_OF_RANGE, "required > limit");
  expect_code(create("pvc-tiny", alice_, 0, &made, {}, 1 * kMiB), grpc::StatusCode::OUT_OF_RANGE,
              "limit under the ext4 minimum");
  ::csi::v1::CreateVolumeRequest no_caps;
  no_caps.set_name("pvc-nocaps");
  with_token(&no_caps, alice_);
  {
    grpc::ClientContext ctx;
    expect_code(controller_->CreateVolume(&ctx, no_caps, &made), grpc::StatusCode::INVALID_ARGUMENT,
                "missing capabilities");
  }
  ::csi::v1::CreateVolumeRequest block = no_caps;
  block.add_volume_capabilities()->mutable_block();
  block.mutable_volume_capabilities(0)->mutable_access_mode()->set_mode(Mode::SINGLE_NODE_WRITER);
  {
    grpc::ClientContext ctx;
    grpc::Status s = controller_->CreateVolume(&ctx, block, &made);
    expect_code(s, grpc::StatusCode::INVALID_ARGUMENT, "block");
    EXPECT_NE(s.error_message().find("block volumes not supported"), std::string::npos);
  }

  // ControllerGetVolume carries no secrets: it sees what a guest may see, no more.
  {
    ::csi::v1::ControllerGetVolumeRequest req;
    req.set_volume_id(id);
    ::csi::v1::ControllerGetVolumeResponse resp;
    grpc::ClientContext ctx;
    // The controller's read-only credential: every volume, a tenant's owned one included.
    ASSERT_TRUE(controller_->ControllerGetVolume(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.volume().volume_id(), id);
    req.set_volume_id(guest.volume().volume_id());
    grpc::ClientContext ctx2;
    ASSERT_TRUE(controller_->ControllerGetVolume(&ctx2, req, &resp).ok());
    EXPECT_EQ(resp.volume().volume_id(), guest.volume().volume_id());
  }
  // ValidateVolumeCapabilities.
  {
    ::csi::v1::ValidateVolumeCapabilitiesRequest req;
    req.set_volume_id(id);
    with_token(&req, alice_);
    ::csi::v1::ValidateVolumeCapabilitiesResponse resp;
    grpc::ClientContext c1;
    expect_code(controller_->ValidateVolumeCapabilities(&c1, req, &resp),
                grpc::StatusCode::INVALID_ARGUMENT, "validate without capabilities");
    *req.add_volume_capabilities() = mount_cap();
    grpc::ClientContext c2;
    ASSERT_TRUE(controller_->ValidateVolumeCapabilities(&c2, req, &resp).ok());
    EXPECT_TRUE(resp.has_confirmed());
    *req.mutable_volume_capabilities(0) = mount_cap(Mode::MULTI_NODE_MULTI_WRITER);
    resp.Clear();
    grpc::ClientContext c3;
    ASSERT_TRUE(controller_->ValidateVolumeCapabilities(&c3, req, &resp).ok());
    EXPECT_FALSE(resp.has_confirmed());
    EXPECT_FALSE(resp.message().empty());
    with_token(&req, bob_);
    grpc::ClientContext c4;
    expect_code(controller_->ValidateVolumeCapabilities(&c4, req, &resp),
                grpc::StatusCode::NOT_FOUND, "validate another tenant's volume");
  }
  // ListVolumes (no secrets in CSI): the controller credential lists every volume.
  {
    ::csi::v1::ListVolumesResponse list;
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->ListVolumes(&ctx, {}, &list).ok());
    std::set<std::string> listed;
    for (const auto& e : list.entries()) listed.insert(e.volume().volume_id());
    EXPECT_TRUE(listed.count(id)) << "the tenant's own volume";
    EXPECT_TRUE(listed.count(guest.volume().volume_id()));
  }
}

TEST_F(CsiTest, DeleteVolumeByOwnerOnlyAndIdempotent) {
  ::csi::v1::CreateVolumeResponse made;
  ASSERT_TRUE(create("pvc-del", alice_, 16 * kMiB, &made).ok());
  const std::string id = made.volume().volume_id();
  // To a tenant who may not see it the volume does not exist, and deleting what does not exist
  // is success in CSI: bob learns nothing, and nothing is deleted (the server's access log
  // records the refused attempt with the real volume).
  expect_code(delete_volume(id, bob_), grpc::StatusCode::OK, "delete by bob");
  expect_code(delete_volume(id, ""), grpc::StatusCode::OK, "delete by guest");
  expect_code(delete_volume(id, forged_), grpc::StatusCode::UNAUTHENTICATED, "delete forged");
  EXPECT_TRUE(server_volume_exists(id)) << "a refused delete deleted the volume";
  ASSERT_TRUE(delete_volume(id, alice_).ok());
  EXPECT_FALSE(server_volume_exists(id));
  EXPECT_TRUE(delete_volume(id, alice_).ok()) << "a second delete is success";
}

TEST_F(CsiTest, StagePublishWriteUnpublishUnstage) {
  ::csi::v1::CreateVolumeResponse made, bobs;
  ASSERT_TRUE(create("pvc-node", alice_, 32 * kMiB, &made).ok());
  ASSERT_TRUE(create("pvc-bob", bob_, 16 * kMiB, &bobs).ok());
  const std::string id = made.volume().volume_id(), bob_id = bobs.volume().volume_id();

  {
    ::csi::v1::ControllerPublishVolumeRequest req;
    req.set_volume_id(id);
    req.set_node_id("node-1");
    *req.mutable_volume_capability() = mount_cap();
    ::csi::v1::ControllerPublishVolumeResponse resp;
    with_token(&req, bob_);
    grpc::ClientContext c0;
    expect_code(controller_->ControllerPublishVolume(&c0, req, &resp),
                grpc::StatusCode::NOT_FOUND, "attach by bob");
    with_token(&req, alice_);
    grpc::ClientContext c1;
    ASSERT_TRUE(controller_->ControllerPublishVolume(&c1, req, &resp).ok());
    EXPECT_EQ(resp.publish_context().at("device").rfind("/dev/loop", 0), 0u);
  }

  const std::string staging = dir_ + "/staging", rw = dir_ + "/pods/rw", ro = dir_ + "/pods/ro";
  expect_code(stage(id, staging, bob_), grpc::StatusCode::NOT_FOUND, "stage by bob");
  ASSERT_TRUE(stage(id, staging, alice_).ok());
  ASSERT_TRUE(stage(id, staging, alice_).ok()) << "stage is idempotent";

  // CSI: the CO makes the target's parent; the plugin makes the target itself.
  stdfs::create_directories(dir_ + "/pods");
  {
    grpc::Status p = publish(id, staging, rw, false, alice_);
    ASSERT_TRUE(p.ok()) << p.error_message();
  }
  ASSERT_TRUE(publish(id, staging, rw, false, alice_).ok()) << "publish is idempotent";
  ASSERT_TRUE(publish(id, staging, ro, true, alice_).ok());
  EXPECT_TRUE(is_mounted(rw));
  EXPECT_TRUE(is_mounted(ro));
  {
    std::ofstream out(rw + "/hello.txt");
    out << "through the pod's path";
  }
  {
    std::ifstream in(staging + "/hello.txt");
    std::string text;
    std::getline(in, text);
    EXPECT_EQ(text, "through the pod's path");
  }
  {
    std::ifstream in(ro + "/hello.txt");
    std::string text;
    std::getline(in, text);
    EXPECT_EQ(text, "through the pod's path");
    errno = 0;
    std::ofstream denied(ro + "/nope.txt");
    EXPECT_FALSE(denied.is_open()) << "read-only publish accepted a write";
  }
  ::csi::v1::NodeGetVolumeStatsResponse st;
  ASSERT_TRUE(stats(id, rw, &st).ok());
  ASSERT_EQ(st.usage_size(), 1);
  EXPECT_GT(st.usage(0).total(), 0);
  EXPECT_GT(st.usage(0).used(), 0);

  // Another tenant: refused publish, no bind left behind.
  const std::string bob_target = dir_ + "/pods/bob";
  expect_code(publish(id, staging, bob_target, true, bob_), grpc::StatusCode::NOT_FOUND,
              "publish by bob");
  EXPECT_FALSE(is_mounted(bob_target));
  // Bob's own volume cannot borrow alice's staging directory.
  const std::string bob_staging = dir_ + "/bob-staging";
  ASSERT_TRUE(stage(bob_id, bob_staging, bob_).ok());
  expect_code(publish(bob_id, staging, bob_target, false, bob_),
              grpc::StatusCode::FAILED_PRECONDITION, "publish with another volume's staging");
  EXPECT_FALSE(is_mounted(bob_target));
  ASSERT_TRUE(publish(bob_id, bob_staging, bob_target, false, bob_).ok());
  // Unpublish and stats carry no secrets and act as the node: naming alice's volume for the
  // path where bob's is published is refused — the server sees another volume mounted there,
  // and stats will not report alice's volume for a path that is not hers.
  expect_code(unpublish(id, bob_target), grpc::StatusCode::FAILED_PRECONDITION,
              "unpublish alice's volume at bob's path");
  EXPECT_TRUE(is_mounted(bob_target));
  expect_code(stats(id, bob_target, &st), grpc::StatusCode::NOT_FOUND,
              "stats of alice's volume at bob's path");
  ASSERT_TRUE(stats(bob_id, bob_target, &st).ok());
  ASSERT_TRUE(unpublish(bob_id, bob_target).ok());
  ASSERT_TRUE(unstage(bob_id, bob_staging).ok());

  // Teardown as the kubelet does it.
  ASSERT_TRUE(unpublish(id, rw).ok());
  ASSERT_TRUE(unpublish(id, ro).ok());
  EXPECT_FALSE(is_mounted(rw));
  EXPECT_FALSE(stdfs::exists(rw));
  ASSERT_TRUE(unpublish(id, ro).ok()) << "unpublish is idempotent";
  ASSERT_TRUE(unstage(id, staging).ok());
  EXPECT_FALSE(is_mounted(staging));
  EXPECT_TRUE(inspect_as_admin(id).device().empty());
  ASSERT_TRUE(unstage(id, staging).ok()) << "unstage is idempotent";
  {
    ::csi::v1::ControllerUnpublishVolumeRequest req;
    req.set_volume_id(id);
    req.set_node_id("node-1");
    with_token(&req, alice_);
    ::csi::v1::ControllerUnpublishVolumeResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->ControllerUnpublishVolume(&ctx, req, &resp).ok());
  }
  ASSERT_TRUE(delete_volume(id, alice_).ok());
}

TEST_F(CsiTest, SnapshotRestoreAndExpand) {
  ::csi::v1::CreateVolumeResponse made;
  ASSERT_TRUE(create("pvc-src", alice_, 32 * kMiB, &made).ok());
  const std::string id = made.volume().volume_id();
  const std::string staging = dir_ + "/src";
  ASSERT_TRUE(stage(id, staging, alice_).ok());
  {
    std::ofstream out(staging + "/data.txt");
    out << "before snapshot";
  }
  ASSERT_TRUE(unstage(id, staging).ok());

  ::csi::v1::CreateSnapshotRequest snap_req;
  snap_req.set_source_volume_id(id);
  snap_req.set_name("snapshot-1");
  with_token(&snap_req, bob_);
  ::csi::v1::CreateSnapshotResponse snap;
  {
    grpc::ClientContext ctx;
    expect_code(controller_->CreateSnapshot(&ctx, snap_req, &snap),
                grpc::StatusCode::NOT_FOUND, "snapshot by bob");
  }
  with_token(&snap_req, alice_);
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->CreateSnapshot(&ctx, snap_req, &snap).ok());
  }
  EXPECT_TRUE(snap.snapshot().ready_to_use());
  EXPECT_EQ(snap.snapshot().source_volume_id(), id);
  EXPECT_GT(snap.snapshot().creation_time().seconds(), 0);
  const std::string snap_id = snap.snapshot().snapshot_id();
  {
    ::csi::v1::CreateSnapshotResponse again;
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->CreateSnapshot(&ctx, snap_req, &again).ok());
    EXPECT_EQ(again.snapshot().snapshot_id(), snap_id);
  }
  for (const auto& [by_id, by_volume] :
       std::vector<std::pair<std::string, std::string>>{{snap_id, ""}, {"", id}}) {
    ::csi::v1::ListSnapshotsRequest req;
    req.set_snapshot_id(by_id);
    req.set_source_volume_id(by_volume);
    with_token(&req, alice_);
    ::csi::v1::ListSnapshotsResponse list;
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->ListSnapshots(&ctx, req, &list).ok());
    ASSERT_EQ(list.entries_size(), 1);
    EXPECT_EQ(list.entries(0).snapshot().snapshot_id(), snap_id);
  }

  // A new, bigger volume from the snapshot holds the snapshot's data.
  ::csi::v1::CreateVolumeRequest restore;
  restore.set_name("pvc-restored");
  *restore.add_volume_capabilities() = mount_cap();
  restore.mutable_capacity_range()->set_required_bytes(48 * kMiB);
  restore.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(snap_id);
  with_token(&restore, alice_);
  ::csi::v1::CreateVolumeResponse restored;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->CreateVolume(&ctx, restore, &restored).ok());
  }
  EXPECT_EQ(restored.volume().capacity_bytes(), 48 * kMiB);
  EXPECT_EQ(restored.volume().content_source().snapshot().snapshot_id(), snap_id);
  const std::string rid = restored.volume().volume_id();
  EXPECT_EQ(inspect_as_admin(rid).source_snapshot(), snap_id);
  EXPECT_EQ(inspect_as_admin(rid).ownership().owner(), "test.local/alice");
  const std::string rstaging = dir_ + "/restored";
  ASSERT_TRUE(stage(rid, rstaging, alice_).ok());
  {
    std::ifstream in(rstaging + "/data.txt");
    std::string text;
    std::getline(in, text);
    EXPECT_EQ(text, "before snapshot");
  }

  ASSERT_TRUE(unstage(rid, rstaging).ok());

  // Expansion (offline, as advertised), idempotent when already big enough, refused to others.
  ::csi::v1::ControllerExpandVolumeRequest grow;
  grow.set_volume_id(rid);
  grow.mutable_capacity_range()->set_required_bytes(64 * kMiB);
  with_token(&grow, bob_);
  ::csi::v1::ControllerExpandVolumeResponse grown;
  {
    grpc::ClientContext ctx;
    expect_code(controller_->ControllerExpandVolume(&ctx, grow, &grown),
                grpc::StatusCode::NOT_FOUND, "expand by bob");
  }
  with_token(&grow, alice_);
  {
    grpc::ClientContext ctx;
    grpc::Status s = controller_->ControllerExpandVolume(&ctx, grow, &grown);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(grown.capacity_bytes(), 64 * kMiB);
  EXPECT_EQ(inspect_as_admin(rid).size_bytes(), static_cast<uint64_t>(64 * kMiB));
  grow.mutable_capacity_range()->set_required_bytes(32 * kMiB);
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->ControllerExpandVolume(&ctx, grow, &grown).ok());
  }
  EXPECT_EQ(grown.capacity_bytes(), 64 * kMiB);
  grow.mutable_capacity_range()->set_required_bytes(96 * kMiB);
  grow.mutable_capacity_range()->set_limit_bytes(80 * kMiB);
  {
    grpc::ClientContext ctx;
    expect_code(controller_->ControllerExpandVolume(&ctx, grow, &grown),
                grpc::StatusCode::OUT_OF_RANGE, "expand past the limit");
  }
  // The grown filesystem mounts and still holds the data.
  ASSERT_TRUE(stage(rid, rstaging, alice_).ok());
  {
    std::ifstream in(rstaging + "/data.txt");
    std::string text;
    std::getline(in, text);
    EXPECT_EQ(text, "before snapshot");
  }
  ::csi::v1::NodeGetVolumeStatsResponse st;
  ASSERT_TRUE(stats(rid, rstaging, &st).ok());
  EXPECT_GT(st.usage(0).total(), 48 * kMiB);
  ASSERT_TRUE(unstage(rid, rstaging).ok());

  ::csi::v1::DeleteSnapshotRequest del;
  del.set_snapshot_id(snap_id);
  with_token(&del, bob_);
  ::csi::v1::DeleteSnapshotResponse deleted;
  {
    grpc::ClientContext ctx;
    expect_code(controller_->DeleteSnapshot(&ctx, del, &deleted),
                grpc::StatusCode::OK, "delete snapshot by bob (to bob it does not exist)");
  }
  with_token(&del, alice_);
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->DeleteSnapshot(&ctx, del, &deleted).ok()) << "delete #" << i;
  }
}

// The seeds' walkthrough through the plugin: three namespaces, each PVC created with its
// namespace's token (or none), and the access-log line the refused one leaves.
TEST_F(CsiTest, SeedsWalkthroughThreeTenants) {
  const std::string user_ns = srv_->token("system-user-ns", {"system.user"}, {"system-user"});
  const std::string view_ns = srv_->token("system-view-ns", {"system.view"}, {"system-view"});
  auto pvc = [](const std::string& ns) {
    return std::map<std::string, std::string>{{"csi.storage.k8s.io/pvc/name", "mysql-data"},
                                              {"csi.storage.k8s.io/pvc/namespace", ns}};
  };
  ::csi::v1::CreateVolumeResponse made;
  ASSERT_TRUE(create("pvc-seed-user", user_ns, 32 * kMiB, &made, pvc("system-user-ns")).ok());
  vg::Volume v = inspect_as_admin(made.volume().volume_id());
  EXPECT_EQ(v.ownership().owner(), "test.local/system-user-ns");
  EXPECT_EQ(v.labels().at("namespace"), "system-user-ns");
  expect_code(create("pvc-seed-view", view_ns, 32 * kMiB, &made, pvc("system-view-ns")),
              grpc::StatusCode::PERMISSION_DENIED, "system.view tenant");
  ASSERT_TRUE(create("pvc-seed-guest", "", 32 * kMiB, &made, pvc("guest-user-ns")).ok());
  v = inspect_as_admin(made.volume().volume_id());
  EXPECT_EQ(v.ownership().owner(), "") << "a guest's volume is public";
  // The refusal is in the access log (written behind the request: give it a moment).
  bool logged = false;
  for (int i = 0; i < 50 && !logged; ++i) {
    auto records = audit::read_all(srv_->audit_dir() + "/volguard-access.log");
    for (const auto& r : records.is_ok() ? *records : std::vector<audit::Record>{}) {
      if (r.get("msg") && *r.get("msg") == "Access denied" && r.get("username") &&
          *r.get("username") == "system-view-ns" && *r.get("method") == "volume.create" &&
          *r.get("reason") == "rbac_denied") {
        logged = true;
      }
    }
    if (!logged) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(logged) << "no 'Access denied' access-log line for the system.view tenant";
  // NOT_FOUND for a volume that does not exist.
  expect_code(stage("no-such-volume", dir_ + "/stage-missing", user_ns), grpc::StatusCode::NOT_FOUND,
              "stage of a missing volume");
}

// The secrets Kubernetes sends with each call for a StorageClass: the tenant's token where the
// class names `csi.storage.k8s.io/<kind>-secret-name`, nothing otherwise (and never for unstage,
// unpublish, stats: CSI gives them none).
std::map<std::string, bool> shipped_secret_kinds(const std::string& class_name) {
  std::map<std::string, bool> named;
  for (const auto& doc : YAML::LoadAllFromFile(std::string(VOLGUARD_SOURCE_DIR) +
                                               "/deploy/kubernetes/50-storageclass.yaml")) {
    if (!doc["kind"] || doc["kind"].as<std::string>() != "StorageClass" ||
        doc["metadata"]["name"].as<std::string>() != class_name) {
      continue;
    }
    for (const char* kind : {"provisioner", "controller-publish", "node-stage", "node-publish",
                             "controller-expand"}) {
      named[kind] = static_cast<bool>(doc["parameters"][std::string("csi.storage.k8s.io/") + kind + "-secret-name"]);
    }
  }
  return named;
}

// The whole path of a tenant PVC with exactly the secrets Kubernetes sends with the shipped
// StorageClass (read from deploy/): each call carries the tenant's token only where the class
// names that secret; the calls without secrets act with the node's own credential, which
// reaches only volumes attached to its node.
TEST_F(CsiTest, TenantPvcLifecycleWithOnlyTheSecretsKubernetesSends) {
  const auto named = shipped_secret_kinds("volguard-secure");
  ASSERT_EQ(named.size(), 5u) << "the shipped StorageClass volguard-secure was not found";
  auto secret_for = [&](const char* kind) { return named.at(kind) ? alice_ : std::string(); };
  ::csi::v1::CreateVolumeResponse made;
  ASSERT_TRUE(create("pvc-life", secret_for("provisioner"), 32 * kMiB, &made).ok());
  const std::string id = made.volume().volume_id();
  EXPECT_EQ(inspect_as_admin(id).ownership().owner(), named.at("provisioner") ? "test.local/alice" : "");
  // Before ControllerPublish the node may not touch it.
  const std::string staging = dir_ + "/life/staging", target = dir_ + "/life/pod";
  stdfs::create_directories(staging);
  expect_code(stage(id, staging, ""), grpc::StatusCode::NOT_FOUND, "stage before attach");
  ::csi::v1::ControllerPublishVolumeResponse pub;
  ASSERT_TRUE(attach(id, "node-1", secret_for("controller-publish"), &pub).ok());
  EXPECT_EQ(pub.publish_context().at("device").rfind("/dev/loop", 0), 0u);
  EXPECT_EQ(inspect_as_admin(id).attached_node(), "node-1");
  ASSERT_TRUE(attach(id, "node-1", secret_for("controller-publish")).ok()) << "ControllerPublish is idempotent";
  expect_code(attach(id, "node-2", alice_), grpc::StatusCode::FAILED_PRECONDITION,
              "attached to another node already");
  {
    // NodeStage as kubelet sends it (stage() would attach again: call the node directly).
    ::csi::v1::NodeStageVolumeRequest req;
    req.set_volume_id(id);
    req.set_staging_target_path(staging);
    *req.mutable_volume_capability() = mount_cap();
    with_token(&req, secret_for("node-stage"));
    ::csi::v1::NodeStageVolumeResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = node_->NodeStageVolume(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ASSERT_TRUE(publish(id, staging, target, false, secret_for("node-publish")).ok());
  {
    std::ofstream out(target + "/data.txt");
    out << "written by the pod";
  }
  ::csi::v1::NodeGetVolumeStatsResponse st;
  ASSERT_TRUE(stats(id, target, &st).ok());
  ASSERT_TRUE(unpublish(id, target).ok());
  EXPECT_FALSE(is_mounted(target));
  ASSERT_TRUE(unstage(id, staging).ok());
  EXPECT_FALSE(is_mounted(staging));
  ASSERT_TRUE(detach(id, "node-1", secret_for("controller-publish")).ok());
  EXPECT_TRUE(inspect_as_admin(id).device().empty());
  EXPECT_EQ(inspect_as_admin(id).attached_node(), "");
  ASSERT_TRUE(delete_volume(id, secret_for("provisioner")).ok());
  EXPECT_FALSE(server_volume_exists(id));
  // Deleted volumes are gone from ListVolumes and GetVolume.
  ::csi::v1::ListVolumesResponse list;
  grpc::ClientContext ctx;
  ASSERT_TRUE(controller_->ListVolumes(&ctx, {}, &list).ok());
  for (const auto& e : list.entries()) EXPECT_NE(e.volume().volume_id(), id);
  ::csi::v1::ControllerGetVolumeRequest get;
  get.set_volume_id(id);
  ::csi::v1::ControllerGetVolumeResponse got;
  grpc::ClientContext ctx2;
  expect_code(controller_->ControllerGetVolume(&ctx2, get, &got), grpc::StatusCode::NOT_FOUND,
              "get a deleted volume");
}

// ControllerPublish names a node the server must know (CSI: NOT_FOUND otherwise); nothing is
// attached for an unknown node.
TEST_F(CsiTest, ControllerPublishToAnUnknownNodeIsNotFound) {
  ::csi::v1::CreateVolumeResponse made;
  ASSERT_TRUE(create("pvc-nowhere", alice_, 16 * kMiB, &made).ok());
  const std::string id = made.volume().volume_id();
  expect_code(attach(id, "node-9", alice_), grpc::StatusCode::NOT_FOUND, "unknown node");
  EXPECT_TRUE(inspect_as_admin(id).device().empty()) << "no loop device for an unknown node";
  EXPECT_EQ(inspect_as_admin(id).attached_node(), "");
  // Unpublish from a node the volume is not attached for: nothing to do, OK (idempotent).
  ASSERT_TRUE(attach(id, "node-1", alice_).ok());
  ASSERT_TRUE(detach(id, "node-2", alice_).ok());
  EXPECT_EQ(inspect_as_admin(id).attached_node(), "node-1");
  EXPECT_FALSE(inspect_as_admin(id).device().empty());
  ASSERT_TRUE(detach(id, "node-1", alice_).ok());
  // A tenant who cannot see the volume cannot detach it, and is not told it is done: the
  // attacher would forget an attachment the node still has.
  ASSERT_TRUE(attach(id, "node-1", alice_).ok());
  expect_code(detach(id, "node-1", bob_), grpc::StatusCode::NOT_FOUND, "detach by bob");
  EXPECT_EQ(inspect_as_admin(id).attached_node(), "node-1");
  ASSERT_TRUE(detach(id, "node-1", alice_).ok());
  // A volume that is gone: nothing to detach, OK.
  EXPECT_TRUE(detach("0123456789abcdef", "node-1", alice_).ok());
}

// NodeRestriction, asked of the server directly with each node's credential: a node acts on
// the volumes attached to it and on nothing else, and never provisions or changes access.
TEST_F(CsiTest, NodeCredentialReachesOnlyItsAttachedVolumes) {
  ::csi::v1::CreateVolumeResponse a, b;
  ASSERT_TRUE(create("pvc-on-1", alice_, 16 * kMiB, &a).ok());
  ASSERT_TRUE(create("pvc-on-2", alice_, 16 * kMiB, &b).ok());
  const std::string on1 = a.volume().volume_id(), on2 = b.volume().volume_id();
  ASSERT_TRUE(attach(on1, "node-1", alice_).ok());
  ASSERT_TRUE(attach(on2, "node-2", alice_).ok());
  auto node1 = srv_->client(node1_);
  auto inspect = [](api::Client& c, const std::string& id) {
    vg::VolumeRef ref;
    ref.set_volume(id);
    vg::VolumeResponse out;
    return c.call("/volguard.v1.VolguardVolume/Inspect", ref, &out);
  };
  EXPECT_TRUE(inspect(node1, on1).is_ok());
  Status other = inspect(node1, on2);
  EXPECT_EQ(other.code(), Code::kNotFound) << other.to_string();
  // Mount another node's volume: as if it did not exist.
  vg::MountRequest m;
  m.set_volume(on2);
  m.set_path(dir_ + "/steal");
  stdfs::create_directories(dir_ + "/steal");
  vg::Empty e;
  EXPECT_EQ(node1.call("/volguard.v1.VolguardMountAttach/Mount", m, &e).code(), Code::kNotFound);
  // Provisioning, attaching, deleting, changing access: refused by role.
  vg::CreateVolumeRequest cr;
  cr.set_name("by-node");
  cr.set_size("16M");
  vg::VolumeResponse vr;
  Status created = node1.call("/volguard.v1.VolguardVolume/Create", cr, &vr);
  EXPECT_EQ(created.reason(), "rbac_denied") << created.to_string();
  vg::VolumeRef ref;
  ref.set_volume(on1);
  EXPECT_EQ(node1.call("/volguard.v1.VolguardVolume/Delete", ref, &e).reason(), "rbac_denied");
  vg::AttachRequest at;
  at.set_volume(on1);
  at.set_node("node-1");
  vg::AttachResponse ar;
  EXPECT_EQ(node1.call("/volguard.v1.VolguardMountAttach/Attach", at, &ar).reason(), "rbac_denied");
  vg::UpdateVolumeRequest up;
  up.set_volume(on1);
  (*up.mutable_add_collaborators())["mallory"] = "a";
  EXPECT_EQ(node1.call("/volguard.v1.VolguardVolume/Update", up, &vr).reason(), "rbac_denied");
  vg::EnumerateRequest all;
  vg::EnumerateResponse listed;
  EXPECT_EQ(node1.call("/volguard.v1.VolguardVolume/Enumerate", all, &listed).reason(), "rbac_denied");
  // A node credential does not borrow grants: even a public volume is not its to mount.
  vg::UpdateVolumeRequest pub;
  pub.set_volume(on2);
  pub.set_set_public("w");
  ASSERT_TRUE(srv_->client(alice_).call("/volguard.v1.VolguardVolume/Update", pub, &vr).is_ok());
  EXPECT_EQ(inspect(node1, on2).code(), Code::kNotFound);
  // The controller credential reads everything and changes nothing.
  auto ctrl = srv_->client(controller_token_);
  EXPECT_TRUE(inspect(ctrl, on1).is_ok());
  EXPECT_TRUE(inspect(ctrl, on2).is_ok());
  EXPECT_EQ(ctrl.call("/volguard.v1.VolguardVolume/Delete", ref, &e).reason(), "rbac_denied");
  EXPECT_EQ(ctrl.call("/volguard.v1.VolguardMountAttach/Mount", m, &e).reason(), "rbac_denied");
  // Read-everything belongs to a token that is the controller and nothing else: with a second
  // role (which could clone or publish) it is an ordinary caller.
  auto mixed = srv_->client(srv_->token("csi-controller", {"system.csi-controller", "system.user"}));
  EXPECT_EQ(inspect(mixed, on1).code(), Code::kNotFound);
  ASSERT_TRUE(detach(on1, "node-1", alice_).ok());
  ASSERT_TRUE(detach(on2, "node-2", alice_).ok());
  // Detached: node-1's access ends with it.
  EXPECT_EQ(inspect(node1, on1).code(), Code::kNotFound);
}

// A plugin restarted between publish and unpublish (an upgrade, a crash): the new instance
// tears the pod's mounts down with the node credential — nothing depended on the old one's
// memory — and the old instance's exit does not remove the new instance's socket.
TEST_F(CsiTest, PluginRestartMidPublishDoesNotStrandTheVolume) {
  ::csi::v1::CreateVolumeResponse made;
  ASSERT_TRUE(create("pvc-restart", alice_, 16 * kMiB, &made).ok());
  const std::string id = made.volume().volume_id();
  const std::string staging = dir_ + "/restart/staging", target = dir_ + "/restart/pod";
  ASSERT_TRUE(stage(id, staging, alice_).ok());
  ASSERT_TRUE(publish(id, staging, target, false, alice_).ok());
  // The new instance starts while the old one still runs (a rolling update), then the old one
  // exits.
  auto replacement = csi::Plugin::start(options_);
  ASSERT_TRUE(replacement.is_ok()) << replacement.status().to_string();
  plugin_->shutdown();
  plugin_ = std::move(replacement).value();
  const std::string socket = options_.endpoint.substr(std::string("unix://").size());
  ASSERT_TRUE(stdfs::is_socket(socket)) << "the old instance removed the new one's socket";
  struct stat sock {};
  ASSERT_EQ(::lstat(socket.c_str(), &sock), 0);
  EXPECT_EQ(sock.st_mode & 0777, 0600u) << "whoever can connect acts with the node credential";
  auto channel = grpc::CreateChannel(options_.endpoint, grpc::InsecureChannelCredentials());
  node_ = ::csi::v1::Node::NewStub(channel);
  controller_ = ::csi::v1::Controller::NewStub(channel);
  ::csi::v1::NodeGetVolumeStatsResponse st;
  ASSERT_TRUE(stats(id, target, &st).ok());
  ASSERT_TRUE(unpublish(id, target).ok());
  EXPECT_FALSE(is_mounted(target));
  ASSERT_TRUE(unstage(id, staging).ok());
  EXPECT_FALSE(is_mounted(staging));
  EXPECT_TRUE(inspect_as_admin(id).device().empty());
  ASSERT_TRUE(delete_volume(id, alice_).ok());
}

// Expansion that tells the truth: an xfs volume (which grows only mounted) is grown where it is
// mounted — ControllerExpandVolume asks for the node's side, and NodeExpandVolume, with the
// node's own credential, grows volume and filesystem online; the pod sees the new size.
TEST_F(CsiTest, XfsExpandsOnlineThroughTheNode) {
  ::csi::v1::CreateVolumeResponse made;
  ASSERT_TRUE(create("pvc-xfs", alice_, 320 * kMiB, &made, {{"fs", "xfs"}}).ok());
  const std::string id = made.volume().volume_id();
  const std::string staging = dir_ + "/xfs/staging", target = dir_ + "/xfs/pod";
  ASSERT_TRUE(stage(id, staging, alice_).ok());
  ASSERT_TRUE(publish(id, staging, target, false, alice_).ok());
  struct statvfs before {};
  ASSERT_EQ(::statvfs(target.c_str(), &before), 0);
  ::csi::v1::ControllerExpandVolumeRequest grow;
  grow.set_volume_id(id);
  grow.mutable_capacity_range()->set_required_bytes(640 * kMiB);
  with_token(&grow, alice_);
  ::csi::v1::ControllerExpandVolumeResponse grown;
  {
    grpc::ClientContext ctx;
    grpc::Status s = controller_->ControllerExpandVolume(&ctx, grow, &grown);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_TRUE(grown.node_expansion_required());
  EXPECT_EQ(inspect_as_admin(id).size_bytes(), static_cast<uint64_t>(320 * kMiB)) << "not yet";
  ::csi::v1::NodeExpandVolumeRequest node_grow;
  node_grow.set_volume_id(id);
  node_grow.set_volume_path(target);
  node_grow.mutable_capacity_range()->set_required_bytes(640 * kMiB);
  ::csi::v1::NodeExpandVolumeResponse node_grown;
  {
    grpc::ClientContext ctx;
    grpc::Status s = node_->NodeExpandVolume(&ctx, node_grow, &node_grown);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(node_grown.capacity_bytes(), 640 * kMiB);
  EXPECT_EQ(inspect_as_admin(id).size_bytes(), static_cast<uint64_t>(640 * kMiB));
  struct statvfs after {};
  ASSERT_EQ(::statvfs(target.c_str(), &after), 0);
  EXPECT_GT(after.f_blocks * after.f_frsize, before.f_blocks * before.f_frsize + 256 * kMiB)
      << "the pod's filesystem did not grow";
  // Another node's credential cannot grow it.
  vg::ExpandRequest steal;
  steal.set_volume(id);
  steal.set_size("1G");
  vg::VolumeResponse out;
  EXPECT_EQ(srv_->client(node2_).call("/volguard.v1.VolguardMountAttach/Expand", steal, &out).code(),
            Code::kNotFound);
  ASSERT_TRUE(unpublish(id, target).ok());
  ASSERT_TRUE(unstage(id, staging).ok());
}

// GetCapacity (no secrets in CSI): the free space of the server's volume directory, asked with
// the controller's credential — not the plugin host's root filesystem.
TEST_F(CsiTest, GetCapacityIsTheServersVolumeDirectory) {
  ::csi::v1::GetCapacityResponse cap;
  grpc::ClientContext ctx;
  ASSERT_TRUE(controller_->GetCapacity(&ctx, {}, &cap).ok());
  struct statvfs sv {};
  ASSERT_EQ(::statvfs((srv_->config().data_dir + "/volumes").c_str(), &sv), 0);
  const int64_t expected = static_cast<int64_t>(sv.f_bavail * sv.f_frsize);
  EXPECT_GT(cap.available_capacity(), 0);
  // Same filesystem, measured a moment apart: within 64 MiB.
  EXPECT_LT(std::llabs(cap.available_capacity() - expected), 64 * kMiB)
      << cap.available_capacity() << " vs " << expected;
}

// ---------------------------------------------------------------------------------------------
// Topology: volumes live on one volguard node (their home), nodes and volumes are placed by the
// segment volguard.io/node.

constexpr const char* kNodeKey = "volguard.io/node";

::csi::v1::Topology node_topology(const std::string& node) {
  ::csi::v1::Topology t;
  (*t.mutable_segments())[kNodeKey] = node;
  return t;
}

::csi::v1::TopologyRequirement requirement(const std::vector<std::string>& requisite,
                                           const std::vector<std::string>& preferred) {
  ::csi::v1::TopologyRequirement r;
  for (const auto& n : requisite) *r.add_requisite() = node_topology(n);
  for (const auto& n : preferred) *r.add_preferred() = node_topology(n);
  return r;
}

// The single node a volume's accessible_topology names; "" when it has none; "?" when it is not
// exactly one {volguard.io/node: X}.
std::string home_of(const ::csi::v1::Volume& v) {
  if (v.accessible_topology_size() == 0) return "";
  if (v.accessible_topology_size() != 1 || v.accessible_topology(0).segments_size() != 1) return "?";
  auto it = v.accessible_topology(0).segments().find(kNodeKey);
  return it == v.accessible_topology(0).segments().end() ? "?" : it->second;
}

TEST_F(CsiTest, NodeGetInfoReportsTheVolguardNodeAndTheCapabilityIsAdvertised) {
  {
    grpc::ClientContext ctx;
    ::csi::v1::GetPluginCapabilitiesResponse caps;
    ASSERT_TRUE(identity_->GetPluginCapabilities(&ctx, {}, &caps).ok());
    std::set<int> services;
    for (const auto& c : caps.capabilities()) {
      if (c.has_service()) services.insert(c.service().type());
    }
    EXPECT_TRUE(services.count(::csi::v1::PluginCapability::Service::VOLUME_ACCESSIBILITY_CONSTRAINTS));
    EXPECT_TRUE(services.count(::csi::v1::PluginCapability::Service::CONTROLLER_SERVICE));
  }
  // Without --volguard-node: the CSI node id.
  {
    grpc::ClientContext ctx;
    ::csi::v1::NodeGetInfoResponse info;
    ASSERT_TRUE(node_->NodeGetInfo(&ctx, {}, &info).ok());
    EXPECT_EQ(info.node_id(), "node-1");
    ASSERT_TRUE(info.has_accessible_topology());
    EXPECT_EQ(info.accessible_topology().segments_size(), 1);
    EXPECT_EQ(info.accessible_topology().segments().at(kNodeKey), "node-1");
  }
  // A name that is no valid topology value (kubelet makes a node label of it) is refused at
  // start, not reported.
  for (const std::string& bad : {std::string("not a name"), std::string(64, 'n'), std::string("-x")}) {
    csi::PluginOptions o = options_;
    o.volguard_node = bad;
    o.endpoint = "unix://" + dir_ + "/other.sock";
    auto refused = csi::Plugin::start(o);
    ASSERT_FALSE(refused.is_ok()) << bad;
    EXPECT_EQ(refused.status().code(), Code::kInvalidArgument);
    EXPECT_NE(refused.status().message().find("volguard node"), std::string::npos)
        << refused.status().message();
  }
  {
    csi::PluginOptions o = options_;
    o.node_id = std::string(70, 'n');  // a node id too long to be a label: a name must be given
    o.endpoint = "unix://" + dir_ + "/other.sock";
    EXPECT_FALSE(csi::Plugin::start(o).is_ok());
  }
  // With --volguard-node: that name; the CSI node id is unchanged.
  csi::PluginOptions o = options_;
  o.volguard_node = "storage-a";
  restart_plugin(o);
  grpc::ClientContext ctx;
  ::csi::v1::NodeGetInfoResponse info;
  ASSERT_TRUE(node_->NodeGetInfo(&ctx, {}, &info).ok());
  EXPECT_EQ(info.node_id(), "node-1");
  EXPECT_EQ(info.accessible_topology().segments().at(kNodeKey), "storage-a");
}

// A proxy in front of the real server: the test sees every request the plugin sent, as the
// server received it. The server answers for itself (volguard node node-1); where a test needs
// what only a cluster or an older server gives, the proxy stands in: it may rewrite the
// home_node of the volumes the server answers with (a volume homed on another cluster node, or
// one made before volumes had homes: "") and refuse a method as a cluster would (a home node
// that is down).
class RecordingProxy final : public grpc::CallbackGenericService {
 public:
  explicit RecordingProxy(int upstream_port)
      : channel_(grpc::CreateChannel("127.0.0.1:" + std::to_string(upstream_port),
                                     grpc::InsecureChannelCredentials())) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterCallbackGenericService(this);
    server_ = builder.BuildAndStart();
  }
  ~RecordingProxy() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // The requests received for a method ("/volguard.v1.VolguardVolume/Create"), oldest first.
  template <typename M>
  std::vector<M> received(const std::string& method) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<M> out;
    auto it = received_.find(method);
    if (it == received_.end()) return out;
    for (const auto& bytes : it->second) {
      M m;
      EXPECT_TRUE(m.ParseFromString(bytes)) << method;
      out.push_back(m);
    }
    return out;
  }
  size_t count(const std::string& method) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = received_.find(method);
    return it == received_.end() ? 0 : it->second.size();
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    received_.clear();
  }
  // Every volume the server answers with (Create, Clone, Inspect, Update, Enumerate) gets this
  // home_node ("": a record made before volumes had homes); nullopt passes the server's own
  // answer through.
  void report_home(std::optional<std::string> node) {
    std::lock_guard<std::mutex> lock(mu_);
    home_ = std::move(node);
  }
  // Calls of `method` are recorded and answered with this refusal and volguard-reason trailer,
  // without reaching the server; an OK status lets them through again.
  void refuse(const std::string& method, const grpc::Status& status, const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu_);
    if (status.ok()) {
      refusals_.erase(method);
    } else {
      refusals_[method] = {status, reason};
    }
  }

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new Call(this, ctx);
  }

 private:
  static std::string bytes_of(const grpc::ByteBuffer& buf) {
    std::vector<grpc::Slice> slices;
    std::string out;
    if (buf.Dump(&slices).ok()) {
      for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    return out;
  }
  static grpc::ByteBuffer buffer_of(const std::string& bytes) {
    grpc::Slice slice(bytes);
    return grpc::ByteBuffer(&slice, 1);
  }

  // Records the request; the refusal to answer it with, if any.
  std::optional<std::pair<grpc::Status, std::string>> record(const std::string& method,
                                                              const grpc::ByteBuffer& request) {
    std::lock_guard<std::mutex> lock(mu_);
    received_[method].push_back(bytes_of(request));
    if (auto it = refusals_.find(method); it != refusals_.end()) return it->second;
    return std::nullopt;
  }

  void rewrite(const std::string& method, grpc::ByteBuffer* response) {
    std::optional<std::string> reported;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reported = home_;
    }
    if (!reported) return;
    const std::string& home = *reported;
    const std::string vol = "/volguard.v1.VolguardVolume/";
    std::string out;
    if (method == vol + "Create" || method == vol + "Clone" || method == vol + "Inspect" ||
        method == vol + "Update") {
      vg::VolumeResponse r;
      ASSERT_TRUE(r.ParseFromString(bytes_of(*response)));
      r.mutable_volume()->set_home_node(home);
      r.SerializeToString(&out);
    } else if (method == vol + "Enumerate") {
      vg::EnumerateResponse r;
      ASSERT_TRUE(r.ParseFromString(bytes_of(*response)));
      for (auto& v : *r.mutable_volumes()) v.set_home_node(home);
      r.SerializeToString(&out);
    } else {
      return;
    }
    *response = buffer_of(out);
  }

  // One unary call, forwarded as is (bytes and bearer token) and answered with the server's
  // reply, or its status and volguard-reason trailer.
  class Call final : public grpc::ServerGenericBidiReactor {
   public:
    Call(RecordingProxy* proxy, grpc::GenericCallbackServerContext* ctx)
        : proxy_(proxy), ctx_(ctx), stub_(proxy->channel_) {
      StartRead(&request_);
    }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request message"));
        return;
      }
      const std::string method = ctx_->method();
      if (auto refusal = proxy_->record(method, request_)) {
        ctx_->AddTrailingMetadata("volguard-reason", refusal->second);
        Finish(refusal->first);
        return;
      }
      const auto& md = ctx_->client_metadata();
      if (auto it = md.find("authorization"); it != md.end()) {
        upstream_.AddMetadata("authorization", std::string(it->second.data(), it->second.size()));
      }
      stub_.UnaryCall(&upstream_, method, grpc::StubOptions(), &request_, &response_,
                      [this, method](grpc::Status s) {
                        if (!s.ok()) {
                          const auto& trailers = upstream_.GetServerTrailingMetadata();
                          if (auto it = trailers.find("volguard-reason"); it != trailers.end()) {
                            ctx_->AddTrailingMetadata("volguard-reason",
                                                      std::string(it->second.data(), it->second.size()));
                          }
                          Finish(s);
                          return;
                        }
                        proxy_->rewrite(method, &response_);
                        StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
                      });
    }
    void OnDone() override { delete this; }

   private:
    RecordingProxy* proxy_;
    grpc::GenericCallbackServerContext* ctx_;
    grpc::GenericStub stub_;
    grpc::ClientContext upstream_;
    grpc::ByteBuffer request_, response_;
  };

  std::shared_ptr<grpc::Channel> channel_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  mutable std::mutex mu_;
  std::map<std::string, std::vector<std::string>> received_;
  std::optional<std::string> home_;
  std::map<std::string, std::pair<grpc::Status, std::string>> refusals_;
};

const std::string kCreatePath = "/volguard.v1.VolguardVolume/Create";
const std::string kClonePath = "/volguard.v1.VolguardVolume/Clone";

// The controller plugin talks to the server through the RecordingProxy.
class CsiTopologyTest : public CsiTest {
 protected:
  void SetUp() override {
    CsiTest::SetUp();
    if (HasFatalFailure()) return;
    proxy_ = std::make_unique<RecordingProxy>(srv_->grpc_port());
    csi::PluginOptions o = options_;
    o.server = proxy_->address();
    restart_plugin(o);
  }
  void TearDown() override {
    plugin_.reset();
    proxy_.reset();
    CsiTest::TearDown();
  }

  grpc::Status create_in(const std::string& name, const ::csi::v1::TopologyRequirement& where,
                         ::csi::v1::CreateVolumeResponse* out,
                         const ::csi::v1::VolumeContentSource* source = nullptr) {
    ::csi::v1::CreateVolumeRequest req;
    req.set_name(name);
    *req.add_volume_capabilities() = mount_cap();
    req.mutable_capacity_range()->set_required_bytes(16 * kMiB);
    *req.mutable_accessibility_requirements() = where;
    if (source) *req.mutable_volume_content_source() = *source;
    with_token(&req, alice_);
    grpc::ClientContext ctx;
    return controller_->CreateVolume(&ctx, req, out);
  }

  std::unique_ptr<RecordingProxy> proxy_;
};

// Refusals first: a requirement without volguard's key never reaches the server.
TEST_F(CsiTopologyTest, CreateVolumeRefusesARequirementWithoutTheVolguardKey) {
  ::csi::v1::CreateVolumeResponse made;
  ::csi::v1::TopologyRequirement zone;
  (*zone.add_requisite()->mutable_segments())["topology.kubernetes.io/zone"] = "z1";
  grpc::Status s = create_in("pvc-zone", zone, &made);
  expect_code(s, grpc::StatusCode::INVALID_ARGUMENT, "requisite without volguard.io/node");
  EXPECT_NE(s.error_message().find("volguard.io/node"), std::string::npos) << s.error_message();
  ::csi::v1::TopologyRequirement host;
  (*host.add_preferred()->mutable_segments())["kubernetes.io/hostname"] = "node-1";
  s = create_in("pvc-host", host, &made);
  expect_code(s, grpc::StatusCode::INVALID_ARGUMENT, "preferred without volguard.io/node");
  EXPECT_NE(s.error_message().find("volguard.io/node"), std::string::npos) << s.error_message();
  EXPECT_EQ(proxy_->count(kCreatePath), 0u) << "a refused requirement reached the server";
  EXPECT_FALSE(server_volume_exists("pvc-zone"));
  EXPECT_FALSE(server_volume_exists("pvc-host"));
}

// The server is volguard node node-1: a volume asked for there is made there, and every answer
// names node-1.
TEST_F(CsiTopologyTest, CreateVolumeAsksTheServerForTheChosenHomeAndReportsIt) {
  // Preferred first: node-1, though node-2 is the first requisite.
  ::csi::v1::CreateVolumeResponse made;
  ASSERT_TRUE(
      create_in("pvc-pref", requirement({"node-2", "node-1"}, {"node-1", "node-2"}), &made).ok());
  auto sent = proxy_->received<vg::CreateVolumeRequest>(kCreatePath);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].home_node(), "node-1");
  EXPECT_EQ(inspect_as_admin(made.volume().volume_id()).home_node(), "node-1");
  EXPECT_EQ(home_of(made.volume()), "node-1");

  // A preferred node outside requisite is passed over for the requisite one.
  proxy_->clear();
  ASSERT_TRUE(create_in("pvc-req", requirement({"node-1"}, {"node-9"}), &made).ok());
  sent = proxy_->received<vg::CreateVolumeRequest>(kCreatePath);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].home_node(), "node-1");
  EXPECT_EQ(home_of(made.volume()), "node-1");

  // A node the server refuses (it is not node-2): the next one the requirement allows is asked,
  // the preferred ones first to last, then the other requisite ones.
  using Asked = std::vector<std::pair<::csi::v1::TopologyRequirement, std::vector<std::string>>>;
  const Asked fallbacks = {
      {requirement({"node-2", "node-1"}, {"node-2"}), {"node-2", "node-1"}},
      {requirement({"node-3", "node-1", "node-2"}, {"node-2", "node-3"}),
       {"node-2", "node-3", "node-1"}},
      {requirement({}, {"node-2", "node-1"}), {"node-2", "node-1"}}};
  for (size_t i = 0; i < fallbacks.size(); ++i) {
    const auto& [where, asked] = fallbacks[i];
    proxy_->clear();
    ASSERT_TRUE(create_in("pvc-next-" + std::to_string(i), where, &made).ok()) << where.DebugString();
    sent = proxy_->received<vg::CreateVolumeRequest>(kCreatePath);
    std::vector<std::string> homes;
    for (const auto& c : sent) homes.push_back(c.home_node());
    EXPECT_EQ(homes, asked) << where.DebugString();
    EXPECT_EQ(home_of(made.volume()), "node-1");
  }

  // No requirement: the server picks ("" sent), itself, and says so; the plugin reports the
  // node it answers, which it never asked for.
  proxy_->clear();
  ASSERT_TRUE(create_in("pvc-any", {}, &made).ok());
  sent = proxy_->received<vg::CreateVolumeRequest>(kCreatePath);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].home_node(), "");
  EXPECT_EQ(inspect_as_admin(made.volume().volume_id()).home_node(), "node-1");
  EXPECT_EQ(home_of(made.volume()), "node-1");

  // ControllerGetVolume and ListVolumes report the home the server answers: node-1, and in a
  // cluster whichever node holds the data (the proxy stands in for one).
  for (const std::optional<std::string>& home :
       {std::optional<std::string>(), std::optional<std::string>("node-7")}) {
    proxy_->report_home(home);
    const std::string want = home.value_or("node-1");
    {
      ::csi::v1::ControllerGetVolumeRequest req;
      req.set_volume_id(made.volume().volume_id());
      ::csi::v1::ControllerGetVolumeResponse resp;
      grpc::ClientContext ctx;
      ASSERT_TRUE(controller_->ControllerGetVolume(&ctx, req, &resp).ok());
      EXPECT_EQ(home_of(resp.volume()), want);
    }
    {
      ::csi::v1::ListVolumesResponse list;
      grpc::ClientContext ctx;
      ASSERT_TRUE(controller_->ListVolumes(&ctx, {}, &list).ok());
      ASSERT_EQ(list.entries_size(), 6);
      for (const auto& e : list.entries()) EXPECT_EQ(home_of(e.volume()), want);
    }
  }
  proxy_->report_home(std::nullopt);
  // GetCapacity takes a topology (the server's free space either way).
  {
    ::csi::v1::GetCapacityRequest req;
    *req.mutable_accessible_topology() = node_topology("node-1");
    ::csi::v1::GetCapacityResponse cap;
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->GetCapacity(&ctx, req, &cap).ok());
    EXPECT_GT(cap.available_capacity(), 0);
  }
}

// A requirement naming only nodes the server cannot put the volume on — ones it does not know
// (a single server knows only itself) or, in a cluster, ones that are down — is CSI's "unable
// to provision in accessible_topology": RESOURCE_EXHAUSTED, naming each node asked, with the
// server's reason and message.
// A pod placed on a node that does not hold the volume's data is refused at NodeStage: the
// server would otherwise forward the mount to the home node, a mount on another machine.
TEST_F(CsiTopologyTest, NodeStageRefusesAVolumeHomedOnAnotherNode) {
  ::csi::v1::CreateVolumeResponse made;
  ASSERT_TRUE(create_in("pvc-away", requirement({"node-1"}, {}), &made).ok());
  const std::string id = made.volume().volume_id();
  const std::string path = dir_ + "/stage-away";
  proxy_->report_home("node-7");  // as a cluster would answer for a volume homed on node-7
  grpc::Status s = stage(id, path, alice_);
  expect_code(s, grpc::StatusCode::FAILED_PRECONDITION, "stage of a volume homed on node-7");
  EXPECT_NE(s.error_message().find("node-7"), std::string::npos) << s.error_message();
  EXPECT_EQ(proxy_->count("/volguard.v1.VolguardMountAttach/Mount"), 0u) << "the mount reached the server";
  EXPECT_FALSE(is_mounted(path));
  // Its own node (and an old record without a home): staged.
  proxy_->report_home(std::nullopt);
  ASSERT_TRUE(stage(id, path, alice_).ok());
  EXPECT_TRUE(is_mounted(path));
  ASSERT_TRUE(unstage(id, path).ok());
  proxy_->report_home("");
  ASSERT_TRUE(stage(id, path, alice_).ok());
  ASSERT_TRUE(unstage(id, path).ok());
}

TEST_F(CsiTopologyTest, CreateVolumeOnANodeTheServerIsNotIsResourceExhausted) {
  ::csi::v1::CreateVolumeResponse made;
  using Asked = std::vector<std::pair<::csi::v1::TopologyRequirement, std::vector<std::string>>>;
  const Asked elsewhere = {
      {requirement({"node-2"}, {}), {"node-2"}},
      {requirement({"node-2", "node-3"}, {"node-3"}), {"node-3", "node-2"}},
      {requirement({}, {"node-2"}), {"node-2"}}};
  for (const auto& [where, asked] : elsewhere) {
    proxy_->clear();
    grpc::Status s = create_in("pvc-elsewhere", where, &made);
    expect_code(s, grpc::StatusCode::RESOURCE_EXHAUSTED, "a create on " + asked[0]);
    auto sent = proxy_->received<vg::CreateVolumeRequest>(kCreatePath);
    std::vector<std::string> homes;
    for (const auto& c : sent) homes.push_back(c.home_node());
    EXPECT_EQ(homes, asked) << where.DebugString();
    EXPECT_NE(s.error_message().find("accessible_topology"), std::string::npos) << s.error_message();
    for (const auto& node : asked) {
      EXPECT_NE(s.error_message().find("volguard node " + node + ": node_unknown"), std::string::npos)
          << s.error_message();
      EXPECT_NE(s.error_message().find("'" + node + "' is not a node"), std::string::npos)
          << "the server's message is kept: " << s.error_message();
    }
  }
  EXPECT_FALSE(server_volume_exists("pvc-elsewhere"));

  // A home node that is down (the proxy answers as a cluster node would): the CO is told to
  // provision elsewhere rather than to wait. A token in the server's message never reaches
  // the CO.
  proxy_->clear();
  proxy_->refuse(kCreatePath,
                 grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "home_node lives on node node-1, which is unavailable (no live "
                              "registration); caller " + alice_),
                 "node_unavailable");
  grpc::Status s = create_in("pvc-down", requirement({"node-1"}, {}), &made);
  expect_code(s, grpc::StatusCode::RESOURCE_EXHAUSTED, "a create on a node that is down");
  EXPECT_NE(s.error_message().find("volguard node node-1"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("node_unavailable"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("which is unavailable"), std::string::npos) << s.error_message();
  EXPECT_EQ(proxy_->count(kCreatePath), 1u);
  // Any other refusal keeps its own code.
  proxy_->refuse(kCreatePath, grpc::Status(grpc::StatusCode::UNAVAILABLE, "store is down"),
                 "store_unavailable");
  expect_code(create_in("pvc-down", requirement({"node-1"}, {}), &made),
              grpc::StatusCode::UNAVAILABLE, "the store unavailable");
  proxy_->refuse(kCreatePath, grpc::Status::OK, "");
  EXPECT_FALSE(server_volume_exists("pvc-down"));
  ASSERT_TRUE(create_in("pvc-down", requirement({"node-1"}, {}), &made).ok());
  EXPECT_EQ(home_of(made.volume()), "node-1");
}

// CSI: a volume of that name that exists but is incompatible with the accessibility
// requirements is ALREADY_EXISTS — also when the retry asks for a node the server refuses (it
// decides where before it looks at the name).
TEST_F(CsiTopologyTest, IdempotentCreateRefusesAnExistingVolumeOutsideRequisite) {
  ::csi::v1::CreateVolumeResponse made, again;
  ASSERT_TRUE(create_in("pvc-home", requirement({"node-1"}, {}), &made).ok());
  const std::string id = made.volume().volume_id();
  ASSERT_EQ(home_of(made.volume()), "node-1");
  grpc::Status s = create_in("pvc-home", requirement({"node-2"}, {}), &again);
  expect_code(s, grpc::StatusCode::ALREADY_EXISTS, "existing volume outside requisite");
  EXPECT_NE(s.error_message().find("home node node-1"), std::string::npos) << s.error_message();
  s = create_in("pvc-home", requirement({"node-2"}, {"node-2"}), &again);
  expect_code(s, grpc::StatusCode::ALREADY_EXISTS, "existing volume outside requisite+preferred");
  // The same requirement, one naming node-1 among others, or none: the same volume.
  for (const auto& where : {requirement({"node-1"}, {}), requirement({"node-2", "node-1"}, {"node-2"}),
                            ::csi::v1::TopologyRequirement()}) {
    again.Clear();
    s = create_in("pvc-home", where, &again);
    ASSERT_TRUE(s.ok()) << s.error_message() << " for " << where.DebugString();
    EXPECT_EQ(again.volume().volume_id(), id);
    EXPECT_EQ(home_of(again.volume()), "node-1");
  }
  // Preferred alone is a wish: a retry preferring node-2 (its pod was rescheduled there) is
  // still the volume on node-1.
  again.Clear();
  ASSERT_TRUE(create_in("pvc-home", requirement({}, {"node-2"}), &again).ok());
  EXPECT_EQ(again.volume().volume_id(), id);
  EXPECT_EQ(home_of(again.volume()), "node-1");

  // In a cluster the volume may be homed on another node (the proxy says node-3): the server
  // accepts a retry asking for node-1 and finds the name taken; the home it reports decides.
  proxy_->report_home("node-3");
  s = create_in("pvc-home", requirement({"node-1"}, {}), &again);
  expect_code(s, grpc::StatusCode::ALREADY_EXISTS, "existing volume homed on another node");
  EXPECT_NE(s.error_message().find("home node node-3"), std::string::npos) << s.error_message();
  again.Clear();
  ASSERT_TRUE(create_in("pvc-home", requirement({"node-1", "node-3"}, {"node-1"}), &again).ok());
  EXPECT_EQ(again.volume().volume_id(), id);
  EXPECT_EQ(home_of(again.volume()), "node-3");

  // A volume made before volumes had homes (home_node "" in its record; its data is on the one
  // server): a retry the server accepted reports the node it asked for, which can only be the
  // server's own; a retry asking for no node, or only for ones the server refused, claims none.
  proxy_->report_home("");
  for (const auto& where :
       {requirement({"node-1"}, {}), requirement({"node-2", "node-1"}, {"node-2"})}) {
    again.Clear();
    ASSERT_TRUE(create_in("pvc-home", where, &again).ok()) << where.DebugString();
    EXPECT_EQ(again.volume().volume_id(), id);
    EXPECT_EQ(home_of(again.volume()), "node-1") << where.DebugString();
  }
  for (const auto& where : {::csi::v1::TopologyRequirement(), requirement({}, {"node-2"})}) {
    again.Clear();
    ASSERT_TRUE(create_in("pvc-home", where, &again).ok()) << where.DebugString();
    EXPECT_EQ(again.volume().volume_id(), id);
    EXPECT_EQ(again.volume().accessible_topology_size(), 0) << where.DebugString();
  }
}

// A clone or a restored snapshot lives where its source's data is: the server decides (no
// home_node is sent) and the plugin reports the home it answers, whatever the CO prefers.
TEST_F(CsiTopologyTest, CloneAndRestoreReportTheHomeTheServerAnswers) {
  ::csi::v1::CreateVolumeResponse src, clone;
  ASSERT_TRUE(create_in("pvc-source", requirement({"node-1"}, {}), &src).ok());
  ::csi::v1::VolumeContentSource from;
  from.mutable_volume()->set_volume_id(src.volume().volume_id());
  proxy_->clear();
  ASSERT_TRUE(create_in("pvc-clone", requirement({}, {"node-2"}), &clone, &from).ok());
  EXPECT_EQ(proxy_->count(kCreatePath), 0u);
  EXPECT_EQ(proxy_->count(kClonePath), 1u);
  EXPECT_EQ(inspect_as_admin(clone.volume().volume_id()).home_node(), "node-1");
  EXPECT_EQ(home_of(clone.volume()), "node-1");
  // From a snapshot, likewise.
  ::csi::v1::CreateSnapshotRequest snap_req;
  snap_req.set_source_volume_id(src.volume().volume_id());
  snap_req.set_name("topo-snap");
  with_token(&snap_req, alice_);
  ::csi::v1::CreateSnapshotResponse snap;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->CreateSnapshot(&ctx, snap_req, &snap).ok());
  }
  ::csi::v1::VolumeContentSource from_snap;
  from_snap.mutable_snapshot()->set_snapshot_id(snap.snapshot().snapshot_id());
  ::csi::v1::CreateVolumeResponse restored;
  ASSERT_TRUE(create_in("pvc-restore", requirement({}, {"node-2"}), &restored, &from_snap).ok());
  EXPECT_EQ(home_of(restored.volume()), "node-1");
  // In a cluster the source may be on another node (the proxy says node-3): the clone is too.
  proxy_->report_home("node-3");
  ::csi::v1::CreateVolumeResponse clone2;
  ASSERT_TRUE(create_in("pvc-clone2", requirement({}, {"node-1"}), &clone2, &from).ok());
  EXPECT_EQ(home_of(clone2.volume()), "node-3");
  proxy_->report_home(std::nullopt);
  // The source's node down: the clone can be made only there, later — UNAVAILABLE (retried),
  // not RESOURCE_EXHAUSTED (provision elsewhere).
  proxy_->refuse(kClonePath,
                 grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "volume pvc-source lives on node node-3, which is unavailable (no live "
                              "registration)"),
                 "node_unavailable");
  ::csi::v1::CreateVolumeResponse clone3;
  expect_code(create_in("pvc-clone3", requirement({}, {"node-1"}), &clone3, &from),
              grpc::StatusCode::UNAVAILABLE, "a clone whose source's node is down");
  EXPECT_FALSE(server_volume_exists("pvc-clone3"));
}

}  // namespace
}  // namespace volguard
