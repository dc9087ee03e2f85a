// Hostile tenants against the real server (root, loopback, real loop-mounted volumes): a tenant
// with a valid token and a shell on the node, swapping symlinks while it asks for mounts,
// planting links inside its own volume, probing for other tenants' volumes and paths.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "audit/audit.h"
#include "service/audit_recorder.h"
#include "support/test_server.h"
#include "volguard.pb.h"

namespace volguard {
namespace {

using testing::TestServer;
namespace v1 = volguard::v1;
namespace stdfs = std::filesystem;

const std::string& kVol = testing::kVolumeSvc;
const std::string& kMount = testing::kMountSvc;
const std::string& kId = testing::kIdentitySvc;


// Every mount point the host shows right now (/proc/self/mountinfo, unescaped enough for the
// plain paths these tests use).
std::vector<std::string> mount_points() {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, devnum, root, point;
    f >> id >> parent >> devnum >> root >> point;
    out.push_back(point);
  }
  return out;
}

bool mounted_under(const std::string& prefix) {
  for (const auto& p : mount_points()) {
    if (p == prefix || p.rfind(prefix + "/", 0) == 0) return true;
  }
  return false;
}

// A directory outside every default mount root (/mnt, /media, /tmp, /var/lib/kubelet, /run/volguard).
struct OutsideDir {
  OutsideDir() {
    char tmpl[] = "/var/tmp/volguard-outside-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~OutsideDir() {
    std::system(("for m in $(awk '{print $2}' /proc/mounts | grep '^" + path +
                 "'); do umount -l $m; done")
                    .c_str());
    stdfs::remove_all(path);
  }
  std::string path;
};

class AttackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    alice_token_ = srv_.token("alice", {"system.user"}, {"tenant-a"});
    bob_token_ = srv_.token("bob", {"system.user"}, {"tenant-b"});
    roots_ = srv_.dir() + "/roots";
    stdfs::create_directories(roots_);
  }

  Status create(const api::Client& c, const std::string& name, std::string* id = nullptr,
                std::map<std::string, std::string> collaborators = {}) {
    v1::CreateVolumeRequest req;
    req.set_name(name);
    req.set_size("16M");
    for (auto& [k, v] : collaborators) (*req.mutable_collaborators())[k] = v;
    v1::VolumeResponse resp;
    Status s = c.call(kVol + "Create", req, &resp);
    if (id) *id = resp.volume().id();
    return s;
  }
  Status mount(const api::Client& c, const std::string& vol, const std::string& path) {
    v1::MountRequest req;
    req.set_volume(vol);
    req.set_path(path);
    v1::Empty e;
    return c.call(kMount + "Mount", req, &e);
  }
  Status unmount(const api::Client& c, const std::string& vol) {
    v1::VolumeRef ref;
    ref.set_volume(vol);
    v1::Empty e;
    return c.call(kMount + "Unmount", ref, &e);
  }
  Status inspect(const api::Client& c, const std::string& vol, v1::VolumeResponse* out = nullptr) {
    v1::VolumeRef ref;
    ref.set_volume(vol);
    v1::VolumeResponse resp;
    return c.call(kVol + "Inspect", ref, out ? out : &resp);
  }
  Status publish(const api::Client& c, const std::string& vol, const std::string& staging,
                 const std::string& target, bool read_only) {
    v1::PublishRequest req;
    req.set_volume(vol);
    req.set_staging_path(staging);
    req.set_path(target);
    req.set_read_only(read_only);
    v1::Empty e;
    return c.call(kMount + "Publish", req, &e);
  }
  Status snapshot(const api::Client& c, const std::string& vol, const std::string& name) {
    v1::SnapshotCreateRequest req;
    req.set_volume(vol);
    req.set_name(name);
    v1::SnapshotResponse resp;
    return c.call(kVol + "SnapshotCreate", req, &resp);
  }
  Status clone_snapshot(const api::Client& c, const std::string& snap, const std::string& name) {
    v1::CloneVolumeRequest req;
    req.set_source_snapshot(snap);
    req.set_name(name);
    v1::VolumeResponse resp;
    return c.call(kVol + "Clone", req, &resp);
  }
  std::vector<std::string> audit_messages() {
    std::vector<std::string> out;
    auto records = audit::read_all(srv_.audit_dir() + "/" + service::kAuditLogName);
    EXPECT_TRUE(records.is_ok()) << records.status().to_string();
    if (!records.is_ok()) return out;
    for (const auto& r : *records) {
      if (const std::string* m = r.get("msg")) out.push_back(*m);
    }
    return out;
  }

  TestServer srv_;
  std::string alice_token_, bob_token_, roots_;
};

// A symlink flipped in a loop in a world-writable root while the tenant asks for hundreds of
// mounts through it: no mount ever lands outside the roots; every attempt either mounts at the
// real directory beneath the root or is refused with a reason.
TEST_F(AttackTest, SymlinkSwapRaceNeverMountsOutsideRoots) {
  auto alice = srv_.client(alice_token_);
  std::string id;
  ASSERT_TRUE(create(alice, "race-vol", &id).is_ok());
  OutsideDir outside;
  ASSERT_EQ(::mkdir((outside.path + "/mnt").c_str(), 0755), 0);
  const std::string race = roots_ + "/race";
  ASSERT_EQ(::mkdir(race.c_str(), 0777), 0);
  ASSERT_EQ(::mkdir((race + "/sw").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((race + "/sw/mnt").c_str(), 0755), 0);
  ASSERT_EQ(::symlink(outside.path.c_str(), (race + "/alt").c_str()), 0);

  std::atomic<bool> stop{false};
  std::atomic<long> flips{0};
  std::thread flipper([&] {
    while (!stop) {
      // Atomically swaps the real directory and the symlink to the outside.
      if (::renameat2(AT_FDCWD, (race + "/sw").c_str(), AT_FDCWD, (race + "/alt").c_str(),
                      RENAME_EXCHANGE) == 0) {
        ++flips;
      }
    }
  });
  int mounted = 0, refused = 0;
  std::map<std::string, int> reasons;
  for (int i = 0; i < 300; ++i) {
    Status s = mount(alice, id, race + "/sw/mnt");
    if (s.is_ok()) {
      ++mounted;
      v1::VolumeResponse seen;
      ASSERT_TRUE(inspect(alice, id, &seen).is_ok());
      // Wherever the real directory is now, it is beneath the root, never outside. inspect
      // reports where the host says the mount is now: the flipper may have renamed the real
      // directory to "alt" since (the mount moves with it; "alt" is then a real directory).
      const std::string& at = seen.volume().mount_path();
      EXPECT_TRUE(at == race + "/sw/mnt" || at == race + "/alt/mnt") << at;
      EXPECT_FALSE(mounted_under(outside.path)) << "attempt " << i;
      Status u;
      for (int tries = 0; tries < 100; ++tries) {
        u = unmount(alice, id);
        if (u.is_ok()) break;
      }
      ASSERT_TRUE(u.is_ok()) << u.to_string();
    } else {
      ++refused;
      ++reasons[s.reason()];
    }
    ASSERT_FALSE(mounted_under(outside.path)) << "attempt " << i;
  }
  stop = true;
  flipper.join();
  for (const auto& [reason, n] : reasons) {
    EXPECT_TRUE(reason == "mount_path_symlink" || reason == "mount_path_changed" ||
                reason == "mount_path_not_found")
        << reason << " x" << n;
  }
  std::printf("symlink race: %d mounts through, %d refused, %ld flips, none outside the roots\n",
              mounted, refused, flips.load());
  EXPECT_GT(flips.load(), 300);
  EXPECT_GT(mounted, 0) << "the race never let a mount through: the test proves nothing";
  EXPECT_GT(refused, 0) << "the symlink was never seen: the test proves nothing";
  EXPECT_FALSE(mounted_under(outside.path));
}

// Links planted inside the tenant's own mounted volume lead nowhere; a directory inside it is
// fine for its owner, and refused to another tenant (no planting inside someone's volume).
TEST_F(AttackTest, LinksInsideOwnVolumeAndOtherTenantsVolumes) {
  auto alice = srv_.client(alice_token_);
  auto bob = srv_.client(bob_token_);
  std::string a, b, c;
  ASSERT_TRUE(create(alice, "a-outer", &a).is_ok());
  ASSERT_TRUE(create(alice, "a-inner", &b).is_ok());
  ASSERT_TRUE(create(bob, "b-vol", &c).is_ok());
  OutsideDir outside;
  ASSERT_EQ(::mkdir((outside.path + "/mnt").c_str(), 0755), 0);
  const std::string outer = roots_ + "/outer";
  ASSERT_EQ(::mkdir(outer.c_str(), 0755), 0);
  ASSERT_TRUE(mount(alice, a, outer).is_ok());
  // The tenant's shell plants links inside its own volume.
  ASSERT_EQ(::symlink(outside.path.c_str(), (outer + "/evil").c_str()), 0);
  ASSERT_EQ(::symlink((outside.path + "/mnt").c_str(), (outer + "/evil-leaf").c_str()), 0);
  ASSERT_EQ(::symlink("/proc/self/root/var/tmp", (outer + "/magic").c_str()), 0);
  EXPECT_REFUSED(mount(alice, b, outer + "/evil/mnt"), Code::kInvalidArgument, "mount_path_symlink");
  EXPECT_REFUSED(mount(alice, b, outer + "/evil-leaf"), Code::kInvalidArgument, "mount_path_symlink");
  EXPECT_REFUSED(mount(alice, b, outer + "/magic"), Code::kInvalidArgument, "mount_path_symlink");
  EXPECT_REFUSED(mount(alice, b, outer + "/../outer/evil"), Code::kInvalidArgument, "invalid_path");
  EXPECT_FALSE(mounted_under(outside.path));

  ASSERT_EQ(::mkdir((outer + "/sub").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((outer + "/bobs").c_str(), 0777), 0);
  // Another tenant may not plant its volume inside alice's, nor pin it busy.
  EXPECT_REFUSED(mount(bob, c, outer + "/bobs"), Code::kPermissionDenied, "mount_path_on_other_volume");
  // Its owner may.
  ASSERT_TRUE(mount(alice, b, outer + "/sub").is_ok());
  // Stacking on a mount point is refused, even on one's own.
  ASSERT_EQ(::mkdir((roots_ + "/free").c_str(), 0755), 0);
  EXPECT_REFUSED(mount(alice, b, roots_ + "/free"), Code::kAlreadyExists, "volume_mounted");
  EXPECT_REFUSED(mount(bob, c, outer + "/sub"), Code::kPermissionDenied, "mount_path_on_other_volume");
  ASSERT_TRUE(unmount(alice, b).is_ok());
  ASSERT_TRUE(unmount(alice, a).is_ok());
}

// A mount never hides files, and a path outside the roots gets one answer whatever is there.
TEST_F(AttackTest, NonEmptyTargetsAndNoOracleOfTheHost) {
  auto alice = srv_.client(alice_token_);
  std::string id;
  ASSERT_TRUE(create(alice, "probe-vol", &id).is_ok());
  const std::string full = roots_ + "/full";
  ASSERT_EQ(::mkdir(full.c_str(), 0755), 0);
  std::ofstream(full + "/precious") << "x";
  EXPECT_REFUSED(mount(alice, id, full), Code::kFailedPrecondition, "mount_path_not_empty");
  EXPECT_REFUSED(mount(alice, id, roots_ + "/missing"), Code::kNotFound, "mount_path_not_found");
  std::ofstream(roots_ + "/file") << "x";
  EXPECT_REFUSED(mount(alice, id, roots_ + "/file"), Code::kInvalidArgument, "mount_path_not_directory");

  OutsideDir outside;
  ASSERT_EQ(::mkdir((outside.path + "/locked").c_str(), 0000), 0);
  std::ofstream(outside.path + "/file") << "x";
  const std::vector<std::string> probes = {
      "/etc", "/etc/passwd", "/no/such/path", "/root", outside.path, outside.path + "/file",
      outside.path + "/locked", outside.path + "/locked/deeper", "/proc/self/root/tmp", "/tmpx/a"};
  std::string first_message;
  for (const auto& p : probes) {
    Status s = mount(alice, id, p);
    EXPECT_EQ(s.code(), Code::kPermissionDenied) << p << ": " << s.to_string();
    EXPECT_EQ(s.reason(), "mount_path_forbidden") << p;
    std::string message = s.message();
    message.replace(message.find(p), p.size(), "<path>");
    if (first_message.empty()) first_message = message;
    EXPECT_EQ(message, first_message) << "the refusal for " << p << " differs";
  }
  EXPECT_FALSE(mounted_under(outside.path));
}

// The audit record names the path actually mounted; publish (CSI) is authorized by the access it
// grants, resolved the same way, and audited.
TEST_F(AttackTest, PublishNeedsTheAccessItGrantsAndIsAudited) {
  auto alice = srv_.client(alice_token_);
  auto bob = srv_.client(bob_token_);
  std::string id, bobs;
  ASSERT_TRUE(create(alice, "shared-vol", &id, {{"bob", "r"}}).is_ok());
  ASSERT_TRUE(create(bob, "bob-own", &bobs).is_ok());
  const std::string stage = roots_ + "/stage", pod = roots_ + "/pod";
  ASSERT_EQ(::mkdir(stage.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(pod.c_str(), 0755), 0);
  ASSERT_TRUE(mount(alice, id, stage).is_ok());
  std::ofstream(stage + "/data") << "alice's";

  // Read access gives a read-only view only.
  EXPECT_REFUSED(publish(bob, id, stage, pod + "/rw", false), Code::kPermissionDenied, "acl_insufficient");
  ASSERT_TRUE(publish(bob, id, stage, pod + "/ro", true).is_ok());
  ASSERT_TRUE(publish(bob, id, stage, pod + "/ro", true).is_ok());  // idempotent retry
  EXPECT_TRUE(stdfs::exists(pod + "/ro/data"));
  EXPECT_EQ(::open((pod + "/ro/new").c_str(), O_CREAT | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, EROFS);
  // Naming one's own volume does not publish someone else's staging directory.
  EXPECT_REFUSED(publish(bob, bobs, stage, pod + "/steal", true), Code::kFailedPrecondition,
                 "volume_not_staged");
  EXPECT_REFUSED(publish(bob, id, stage, "/var/tmp/x", true), Code::kPermissionDenied,
                 "mount_path_forbidden");
  // A stranger learns nothing.
  auto carol = srv_.client(srv_.token("carol", {"system.user"}));
  EXPECT_REFUSED(publish(carol, id, stage, pod + "/c", true), Code::kNotFound, "volume_not_found");

  ASSERT_TRUE(publish(alice, id, stage, pod + "/rw", false).is_ok());
  std::ofstream(pod + "/rw/through-bind") << "ok";
  EXPECT_TRUE(stdfs::exists(stage + "/through-bind"));

  v1::MountRequest un;
  un.set_volume(id);
  un.set_path(pod + "/ro");
  v1::Empty e;
  Status st = bob.call(kMount + "Unpublish", un, &e);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  st = bob.call(kMount + "Unpublish", un, &e);
  ASSERT_TRUE(st.is_ok()) << st.to_string();  // nothing there: OK
  EXPECT_FALSE(mounted_under(pod + "/ro"));
  // Unpublishing where another volume is mounted is refused: on someone else's volume for
  // lack of write access, on one's own because it is not the volume named.
  un.set_path(stage);
  un.set_volume(bobs);
  EXPECT_REFUSED(bob.call(kMount + "Unpublish", un, &e), Code::kFailedPrecondition,
                 "mount_not_this_volume");
  // A reader cannot pull the owner's mounts: not the staging mount (that is unmount, which needs
  // write), not a read-write publish.
  un.set_volume(id);
  EXPECT_REFUSED(bob.call(kMount + "Unpublish", un, &e), Code::kFailedPrecondition, "mount_is_staging");
  un.set_path(pod + "/rw");
  EXPECT_REFUSED(bob.call(kMount + "Unpublish", un, &e), Code::kPermissionDenied, "acl_insufficient");
  EXPECT_TRUE(mounted_under(pod + "/rw"));
  // Nor plant a directory (or a mount) inside the volume it may only read.
  EXPECT_REFUSED(publish(bob, id, stage, stage + "/planted", true), Code::kPermissionDenied,
                 "mount_path_on_other_volume");
  EXPECT_FALSE(stdfs::exists(stage + "/planted"));
  // A refused publish leaves no directory behind.
  EXPECT_FALSE(stdfs::exists(pod + "/steal"));
  ASSERT_EQ(::mkdir((roots_ + "/bobstage").c_str(), 0755), 0);
  ASSERT_TRUE(mount(bob, bobs, roots_ + "/bobstage").is_ok());
  un.set_path(roots_ + "/bobstage");
  un.set_volume(id);
  EXPECT_REFUSED(bob.call(kMount + "Unpublish", un, &e), Code::kFailedPrecondition,
                 "mount_not_this_volume");
  ASSERT_TRUE(unmount(bob, bobs).is_ok());
  un.set_volume(id);
  un.set_path(pod + "/rw");
  ASSERT_TRUE(alice.call(kMount + "Unpublish", un, &e).is_ok());
  ASSERT_TRUE(unmount(alice, id).is_ok());

  const auto msgs = audit_messages();
  auto has = [&](const std::string& m) { return std::find(msgs.begin(), msgs.end(), m) != msgs.end(); };
  EXPECT_TRUE(has("Volume " + id + " mounted at " + stage));
  EXPECT_TRUE(has("Volume " + id + " published at " + pod + "/ro (read-only)"));
  EXPECT_TRUE(has("Volume " + id + " published at " + pod + "/rw (read-write)"));
  EXPECT_TRUE(has("Volume " + id + " unpublished from " + pod + "/ro"));
}

// A caller without read access gets exactly what a missing volume or snapshot gets.
TEST_F(AttackTest, ExistenceDoesNotLeak) {
  auto alice = srv_.client(alice_token_);
  auto bob = srv_.client(bob_token_);
  std::string id;
  ASSERT_TRUE(create(alice, "secret-vol", &id).is_ok());
  ASSERT_TRUE(snapshot(alice, id, "secret-snap").is_ok());

  auto expect_missing = [](const Status& s, const std::string& kind, const std::string& ref) {
    EXPECT_EQ(s.code(), Code::kNotFound) << s.to_string();
    EXPECT_EQ(s.reason(), kind + "_not_found") << s.to_string();
    EXPECT_EQ(s.message(), kind + " '" + ref + "' not found") << s.to_string();
  };
  for (const std::string& ref : {std::string("secret-vol"), id, std::string("no-such-vol")}) {
    expect_missing(inspect(bob, ref), "volume", ref);
    v1::VolumeRef r;
    r.set_volume(ref);
    v1::Empty e;
    expect_missing(bob.call(kVol + "Delete", r, &e), "volume", ref);
    v1::UpdateVolumeRequest u;
    u.set_volume(ref);
    u.set_owner("bob");  // needs an ownership admin — still only "not found"
    v1::VolumeResponse vr;
    expect_missing(bob.call(kVol + "Update", u, &vr), "volume", ref);
    v1::CapabilitiesRequest can;
    can.set_method("volume.delete");
    can.set_volume(ref);
    v1::CapabilitiesResponse cr;
    expect_missing(bob.call(kId + "Capabilities", can, &cr), "volume", ref);
  }
  v1::SnapshotRef sr;
  sr.set_snapshot("secret-snap");
  v1::Empty e;
  expect_missing(bob.call(kVol + "SnapshotDelete", sr, &e), "snapshot", "secret-snap");
  expect_missing(clone_snapshot(bob, "secret-snap", "stolen"), "snapshot", "secret-snap");

  // With read access the volume is known, so a refusal may say why.
  v1::UpdateVolumeRequest grant;
  grant.set_volume(id);
  (*grant.mutable_add_collaborators())["bob"] = "r";
  v1::VolumeResponse vr;
  ASSERT_TRUE(alice.call(kVol + "Update", grant, &vr).is_ok());
  v1::VolumeRef r;
  r.set_volume("secret-vol");
  EXPECT_REFUSED(bob.call(kVol + "Delete", r, &e), Code::kPermissionDenied, "acl_insufficient");

  // Ids and names are separate namespaces: no name may look like an id.
  EXPECT_REFUSED(create(bob, id), Code::kInvalidArgument, "name_looks_like_id");
  EXPECT_REFUSED(create(bob, "0123456789abcdef"), Code::kInvalidArgument, "name_looks_like_id");
  EXPECT_REFUSED(snapshot(alice, id, id), Code::kInvalidArgument, "name_looks_like_id");
}

// Revocation races the revoked tenant: four threads of bob read the volume, list and clone its
// snapshot while alice revokes him. Every call that starts after the revoke has returned must be
// refused as "not found" — no cached grant, no snapshot ACL left behind — and nothing bob cloned
// after it exists.
TEST_F(AttackTest, RevokeRacesTheRevokedTenant) {
  auto alice = srv_.client(alice_token_);
  std::string id;
  ASSERT_TRUE(create(alice, "contested", &id, {{"bob", "r"}}).is_ok());
  ASSERT_TRUE(snapshot(alice, id, "contested-snap").is_ok());
  std::atomic<bool> revoked{false};
  std::atomic<int> after{0}, leaked{0}, clones_after{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto bob = srv_.client(bob_token_);
      for (int i = 0; after.load() < 400 && i < 5000; ++i) {
        const bool started_after = revoked.load();
        Status s;
        switch (i % 3) {
          case 0: s = inspect(bob, "contested"); break;
          case 1: s = clone_snapshot(bob, "contested-snap", "bc-" + std::to_string(t) + "-" + std::to_string(i)); break;
          default: {
            v1::SnapshotEnumerateRequest req;
            req.set_volume(id);
            v1::SnapshotEnumerateResponse resp;
            s = bob.call(kVol + "SnapshotEnumerate", req, &resp);
            if (s.is_ok() && resp.snapshots_size() == 0) s = Status(Code::kNotFound, "empty", "");
          }
        }
        if (!started_after) continue;
        ++after;
        if (s.is_ok()) {
          ++leaked;
          if (i % 3 == 1) ++clones_after;
        } else if (i % 3 != 2) {
          EXPECT_EQ(s.code(), Code::kNotFound) << s.to_string();
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // bob is in full swing
  v1::UpdateVolumeRequest revoke;
  revoke.set_volume(id);
  revoke.add_remove_collaborators("bob");
  v1::VolumeResponse vr;
  ASSERT_TRUE(alice.call(kVol + "Update", revoke, &vr).is_ok());
  revoked = true;
  for (auto& th : threads) th.join();
  EXPECT_GE(after.load(), 400);
  EXPECT_EQ(leaked.load(), 0);
  EXPECT_EQ(clones_after.load(), 0);
}

// A snapshot's access is its volume's, evaluated now: revoke, transfer and delete all reach it.
TEST_F(AttackTest, SnapshotsFollowTheirVolume) {
  auto alice = srv_.client(alice_token_);
  auto bob = srv_.client(bob_token_);
  auto admin = srv_.client(srv_.token("root", {"system.admin"}));
  auto carol = srv_.client(srv_.token("carol", {"system.user"}));
  std::string id;
  ASSERT_TRUE(create(alice, "parent", &id, {{"bob", "w"}}).is_ok());
  ASSERT_TRUE(snapshot(alice, id, "parent-snap").is_ok());
  ASSERT_TRUE(clone_snapshot(bob, "parent-snap", "bob-clone-1").is_ok());
  v1::SnapshotRestoreRequest restore;
  restore.set_volume(id);
  restore.set_snapshot("parent-snap");
  v1::VolumeResponse vr;
  ASSERT_TRUE(bob.call(kVol + "SnapshotRestore", restore, &vr).is_ok());
  auto listed = [&](const api::Client& c) {
    v1::SnapshotEnumerateRequest req;
    v1::SnapshotEnumerateResponse resp;
    EXPECT_TRUE(c.call(kVol + "SnapshotEnumerate", req, &resp).is_ok());
    for (const auto& s : resp.snapshots()) {
      if (s.name() == "parent-snap") return true;
    }
    return false;
  };
  EXPECT_TRUE(listed(bob));

  // Revoke bob on the volume: the snapshot follows at once.
  v1::UpdateVolumeRequest revoke;
  revoke.set_volume(id);
  revoke.add_remove_collaborators("bob");
  ASSERT_TRUE(alice.call(kVol + "Update", revoke, &vr).is_ok());
  EXPECT_REFUSED(clone_snapshot(bob, "parent-snap", "bob-clone-2"), Code::kNotFound, "snapshot_not_found");
  EXPECT_REFUSED(bob.call(kVol + "SnapshotRestore", restore, &vr), Code::kNotFound, "volume_not_found");
  EXPECT_FALSE(listed(bob));

  // Transfer to carol: alice (the old owner) loses the snapshot with the volume.
  v1::UpdateVolumeRequest transfer;
  transfer.set_volume(id);
  transfer.set_owner("carol");
  ASSERT_TRUE(admin.call(kVol + "Update", transfer, &vr).is_ok());
  EXPECT_REFUSED(clone_snapshot(alice, "parent-snap", "alice-clone"), Code::kNotFound, "snapshot_not_found");
  EXPECT_FALSE(listed(alice));
  EXPECT_TRUE(listed(carol));
  ASSERT_TRUE(clone_snapshot(carol, "parent-snap", "carol-clone").is_ok());

  // Deleting a volume with snapshots is refused: they would have no ACL left to follow.
  v1::VolumeRef ref;
  ref.set_volume(id);
  v1::Empty e;
  EXPECT_REFUSED(carol.call(kVol + "Delete", ref, &e), Code::kFailedPrecondition, "volume_has_snapshots");
  v1::SnapshotRef sr;
  sr.set_snapshot("parent-snap");
  EXPECT_REFUSED(alice.call(kVol + "SnapshotDelete", sr, &e), Code::kNotFound, "snapshot_not_found");
  ASSERT_TRUE(carol.call(kVol + "SnapshotDelete", sr, &e).is_ok());
  ASSERT_TRUE(carol.call(kVol + "Delete", ref, &e).is_ok());
}

}  // namespace
}  // namespace volguard
