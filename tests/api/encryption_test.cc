// Encrypted volumes end to end against the real server (gRPC on loopback, SQLite, real images,
// loop devices, mounts and the kernel's fscrypt), with KEKs from key files and from a KMS v2
// plugin (a real gRPC server on a unix socket, crypto/fake_kms_server.h): what is written
// through the mount is ciphertext in every image, a wrong or missing KEK refuses exactly the
// encrypted volumes, rotation re-wraps without touching data, and delete destroys the key.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/hex.h"
#include "common/text.h"
#include "crypto/fake_kms_server.h"
#include "support/test_server.h"
#include "volguard.pb.h"

namespace volguard {
namespace {

using testing::TestServer;
namespace v1 = volguard::v1;
namespace stdfs = std::filesystem;

const std::string& kVol = testing::kVolumeSvc;
const std::string& kMnt = testing::kMountSvc;
const std::string kKey = "/volguard.v1.VolguardKey/";
const std::string kMarker = "VOLGUARD-E2E-PLAINTEXT-51c0ffee-";
const std::string kSecretName = "tenant-ledger-secret-file-name.dat";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string known_plaintext() {
  std::string s;
  while (s.size() < 128 * 1024) s += kMarker;
  return s;
}

#define ASSERT_OK(expr)                                             \
  do {                                                              \
    const Status _s = (expr);                                       \
    ASSERT_TRUE(_s.is_ok()) << #expr << ": " << _s.to_string();     \
  } while (0)

class EncryptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/volguard-keks-XXXXXX";
    keys_dir_ = ::mkdtemp(tmpl);
    kek1_ = write_kek("kek1");
    kek2_ = write_kek("kek2");
    kms_ = std::make_unique<crypto::testing::FakeKmsPlugin>(keys_dir_ + "/kms.sock");
    ASSERT_TRUE(kms_->start());
    server_ = std::make_unique<TestServer>(
        "", true,
        "encryption:\n  default_key: main\n  keys:\n    main:\n      file: " + kek1_ +
            "\n    tenant-kms:\n      kms:\n        socket: " + keys_dir_ + "/kms.sock\n        timeout: 1s\n" +
            "    team-a:\n      file: " + kek2_ + "\n      groups: [test.local/team-a]\n");
    admin_ = server_->token("admin", {"system.admin"});
    alice_ = server_->token("alice", {"system.user"});
  }
  void TearDown() override {
    server_.reset();
    kms_.reset();
    stdfs::remove_all(keys_dir_);
  }

  std::string write_kek(const std::string& name) {
    const std::string path = keys_dir_ + "/" + name;
    EXPECT_TRUE(write_file(path, random_hex(32) + "\n", 0600).is_ok());
    return path;
  }

  // Stops the server, lets `change` edit its config, starts it again.
  template <typename F>
  void restart_with(F change) {
    server_->stop();
    change(server_->mutable_config().encryption.keys.front());
    server_->start();
  }

  Result<v1::Volume> create(const std::string& name, bool secure, const std::string& key = "",
                            const std::string& token = "") {
    v1::CreateVolumeRequest req;
    req.set_name(name);
    req.set_size("32M");
    req.set_secure(secure);
    req.set_secret_key(key);
    v1::VolumeResponse resp;
    RETURN_IF_ERROR(server_->client(token.empty() ? alice_ : token).call(kVol + "Create", req, &resp));
    return resp.volume();
  }
  Result<v1::Volume> clone(const std::string& source, const std::string& name, bool from_snapshot,
                           std::optional<bool> secure = std::nullopt) {
    v1::CloneVolumeRequest req;
    if (from_snapshot) {
      req.set_source_snapshot(source);
    } else {
      req.set_source(source);
    }
    req.set_name(name);
    if (secure) req.set_secure(*secure);
    v1::VolumeResponse resp;
    RETURN_IF_ERROR(server_->client(alice_).call(kVol + "Clone", req, &resp));
    return resp.volume();
  }
  Result<v1::Snapshot> snapshot(const std::string& volume, const std::string& name) {
    v1::SnapshotCreateRequest req;
    req.set_volume(volume);
    req.set_name(name);
    v1::SnapshotResponse resp;
    RETURN_IF_ERROR(server_->client(alice_).call(kVol + "SnapshotCreate", req, &resp));
    return resp.snapshot();
  }
  v1::Volume inspect(const std::string& volume) {
    v1::VolumeRef req;
    req.set_volume(volume);
    v1::VolumeResponse resp;
    const Status s = server_->client(alice_).call(kVol + "Inspect", req, &resp);
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return resp.volume();
  }
  std::string mount_dir(const std::string& volume) {
    const std::string p = server_->dir() + "/mnt-" + volume;
    stdfs::create_directories(p);
    return p;
  }
  Status mount(const std::string& volume) {
    v1::MountRequest req;
    req.set_volume(volume);
    req.set_path(mount_dir(volume));
    v1::Empty resp;
    return server_->client(alice_).call(kMnt + "Mount", req, &resp);
  }
  Status unmount(const std::string& volume) {
    v1::VolumeRef req;
    req.set_volume(volume);
    v1::Empty resp;
    return server_->client(alice_).call(kMnt + "Unmount", req, &resp);
  }
  Status remove(const std::string& volume) {
    v1::VolumeRef req;
    req.set_volume(volume);
    v1::Empty resp;
    RETURN_IF_ERROR(server_->client(alice_).call(kMnt + "Detach", req, &resp));
    return server_->client(alice_).call(kVol + "Delete", req, &resp);
  }
  Result<v1::KeyRotateResponse> rotate(const std::string& token, const std::string& key = "") {
    v1::KeyRotateRequest req;
    req.set_secret_key(key);
    v1::KeyRotateResponse resp;
    RETURN_IF_ERROR(server_->client(token).call(kKey + "Rotate", req, &resp));
    return resp;
  }
  // Mounts, writes the known plaintext under the secret name, unmounts.
  void write_secret(const std::string& volume) {
    ASSERT_OK(mount(volume));
    ASSERT_OK(write_file(mount_dir(volume) + "/" + kSecretName, known_plaintext(), 0600));
    ASSERT_OK(unmount(volume));
  }
  // Mounts and reads the secret back, then unmounts.
  std::string read_secret(const std::string& volume) {
    if (Status s = mount(volume); !s.is_ok()) return "mount: " + s.to_string();
    std::string got = slurp(mount_dir(volume) + "/" + kSecretName);
    EXPECT_TRUE(unmount(volume).is_ok());
    return got;
  }
  std::string image(const std::string& kind, const std::string& id) {
    return slurp(server_->dir() + "/data/" + kind + "/" + id + ".img");
  }
  // The wrapped key stored for a volume id, as hex ("" when there is no such row).
  std::string stored_wrapped_key(const std::string& id) {
    sqlite3* db = nullptr;
    std::string out;
    if (sqlite3_open_v2((server_->dir() + "/data/volguard.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(db, "SELECT wrapped_key FROM volumes WHERE id = ?1", -1, &st, nullptr);
      sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_step(st) == SQLITE_ROW) out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
      sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return out;
  }

  std::string keys_dir_, kek1_, kek2_;
  std::unique_ptr<crypto::testing::FakeKmsPlugin> kms_;
  std::unique_ptr<TestServer> server_;
  std::string admin_, alice_;
};

TEST_F(EncryptionTest, PlaintextReachesNoImageOfTheVolumeItsSnapshotsOrClones) {
  auto enc = create("enc", true);
  ASSERT_TRUE(enc.is_ok()) << enc.status().to_string();
  auto plain = create("plain", false);
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  EXPECT_TRUE(enc->encrypted());
  EXPECT_EQ(enc->secret_key(), "main");
  EXPECT_EQ(enc->kek_id().rfind("local:", 0), 0u) << enc->kek_id();
  EXPECT_FALSE(plain->encrypted());
  EXPECT_TRUE(inspect("enc").encrypted());

  write_secret("enc");
  write_secret("plain");
  auto snap = snapshot("enc", "enc-snap");
  ASSERT_TRUE(snap.is_ok()) << snap.status().to_string();
  EXPECT_TRUE(snap->encrypted());
  auto c1 = clone("enc", "enc-clone", false);
  ASSERT_TRUE(c1.is_ok()) << c1.status().to_string();
  auto c2 = clone("enc-snap", "enc-snap-clone", true, true);
  ASSERT_TRUE(c2.is_ok()) << c2.status().to_string();
  EXPECT_TRUE(c1->encrypted());
  EXPECT_TRUE(c2->encrypted());

  // The control: the same search finds the plaintext and the name in the plain image.
  const std::string plain_img = image("volumes", plain->id());
  ASSERT_NE(plain_img.find(kMarker), std::string::npos);
  ASSERT_NE(plain_img.find(kSecretName), std::string::npos);
  for (const auto& [kind, id] : std::vector<std::pair<std::string, std::string>>{
           {"volumes", enc->id()}, {"snapshots", snap->id()}, {"volumes", c1->id()}, {"volumes", c2->id()}}) {
    const std::string img = image(kind, id);
    ASSERT_GT(img.size(), 16u << 20) << kind << "/" << id;
    EXPECT_EQ(img.find(kMarker.substr(0, 20)), std::string::npos) << "plaintext in " << kind << "/" << id;
    EXPECT_EQ(img.find(kSecretName.substr(0, 20)), std::string::npos) << "file name in " << kind << "/" << id;
  }
  // The clones open (their keys are the source's data key, wrapped for them).
  EXPECT_EQ(read_secret("enc-clone"), known_plaintext());
  EXPECT_EQ(read_secret("enc-snap-clone"), known_plaintext());

  // A plain clone of an encrypted volume, or an encrypted one of a plain volume: refused, nothing made.
  EXPECT_REFUSED(clone("enc", "leak", false, false).status(), Code::kFailedPrecondition, "encryption_mismatch");
  EXPECT_REFUSED(clone("enc-snap", "leak", true, false).status(), Code::kFailedPrecondition, "encryption_mismatch");
  EXPECT_REFUSED(clone("plain", "leak", false, true).status(), Code::kFailedPrecondition, "encryption_mismatch");
  EXPECT_TRUE(clone("plain", "leak", false).is_ok()) << "the refusals held no name";
  // Encryption needs ext4; an unknown KEK name is named.
  v1::CreateVolumeRequest xfs;
  xfs.set_name("x");
  xfs.set_size("300M");
  xfs.set_fs("xfs");
  xfs.set_secure(true);
  v1::VolumeResponse resp;
  EXPECT_REFUSED(server_->client(alice_).call(kVol + "Create", xfs, &resp), Code::kInvalidArgument,
                 "encryption_unsupported");
  EXPECT_REFUSED(create("x", true, "nope").status(), Code::kInvalidArgument, "secret_key_unknown");
}

// A tenant's KEK (encryption.keys.<name>.groups): its group's volumes are wrapped by it by
// default, and no one else may name it (admins may).
TEST_F(EncryptionTest, TenantKeysAreTheirGroupsDefaultAndNoOneElses) {
  const std::string bob = server_->token("bob", {"system.user"}, {"team-a"});
  auto b = create("bob-vol", true, "", bob);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_EQ(b->secret_key(), "team-a");
  auto a = create("alice-vol", true);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->secret_key(), "main");
  // Refused exactly as an unknown name is: a tenant key's existence is not everyone's to learn.
  const Status stolen = create("alice-steal", true, "team-a").status();
  const Status unknown = create("alice-steal", true, "team-b").status();
  EXPECT_REFUSED(stolen, Code::kInvalidArgument, "secret_key_unknown");
  std::string same = stolen.message();
  same.replace(same.find("team-a"), 6, "team-b");
  EXPECT_EQ(same, unknown.message()) << "the two refusals differ beyond the name asked for";
  // A group of the same name from another issuer is not the tenant's.
  const std::string forged_group = server_->token("mallory", {"system.user"}, {"test.local/team-a"});
  EXPECT_REFUSED(create("m-vol", true, "team-a", forged_group).status(), Code::kInvalidArgument,
                 "secret_key_unknown");
  auto adm = create("admin-vol", true, "team-a", admin_);
  ASSERT_TRUE(adm.is_ok()) << adm.status().to_string();
  EXPECT_EQ(adm->secret_key(), "team-a");
  EXPECT_TRUE(create("bob-main", true, "main", bob).is_ok()) << "an unrestricted key stays open to all";
}

TEST_F(EncryptionTest, WrongKekRefusesTheMountAndLeavesPlainVolumesAlone) {
  ASSERT_TRUE(create("enc", true).is_ok());
  ASSERT_TRUE(create("plain", false).is_ok());
  write_secret("enc");
  restart_with([&](config::KekConfig& k) { k.file = kek2_; });
  EXPECT_REFUSED(mount("enc"), Code::kFailedPrecondition, "key_unwrap_failed");
  EXPECT_EQ(inspect("enc").mount_path(), "");
  EXPECT_TRUE(mount("plain").is_ok());
  EXPECT_TRUE(unmount("plain").is_ok());
  // A missing KEK file: unavailable, not "wrong".
  restart_with([&](config::KekConfig& k) { k.file = keys_dir_ + "/absent"; });
  EXPECT_REFUSED(mount("enc"), Code::kUnavailable, "kms_unavailable");
  EXPECT_REFUSED(create("enc2", true).status(), Code::kUnavailable, "kms_unavailable");
  EXPECT_TRUE(create("plain2", false).is_ok());
  restart_with([&](config::KekConfig& k) { k.file = kek1_; });
  EXPECT_EQ(read_secret("enc"), known_plaintext());
}

TEST_F(EncryptionTest, KmsDownRefusesEncryptedVolumesOnly) {
  auto kv = create("kms-vol", true, "tenant-kms");
  ASSERT_TRUE(kv.is_ok()) << kv.status().to_string();
  EXPECT_EQ(kv->kek_id(), "kms:" + kms_->current_key_id());
  write_secret("kms-vol");
  kms_->stop();
  EXPECT_REFUSED(create("kms-vol-2", true, "tenant-kms").status(), Code::kUnavailable, "kms_unavailable");
  EXPECT_REFUSED(mount("kms-vol"), Code::kUnavailable, "kms_unavailable");
  EXPECT_TRUE(create("plain", false).is_ok());
  EXPECT_TRUE(mount("plain").is_ok());
  EXPECT_TRUE(unmount("plain").is_ok());
  EXPECT_TRUE(create("file-kek-vol", true).is_ok()) << "another KEK is not affected";
  ASSERT_TRUE(kms_->start());
  EXPECT_EQ(read_secret("kms-vol"), known_plaintext());
  EXPECT_TRUE(create("kms-vol-2", true, "tenant-kms").is_ok()) << "the refused create held no name";
}

TEST_F(EncryptionTest, RotationRewrapsEveryKeyAndTheOldKekNoLongerOpens) {
  auto enc = create("enc", true);
  ASSERT_TRUE(enc.is_ok());
  write_secret("enc");
  ASSERT_TRUE(snapshot("enc", "enc-snap").is_ok());
  const std::string old_id = enc->kek_id();
  restart_with([&](config::KekConfig& k) {
    k.file = kek2_;
    k.retired_files = {kek1_};
  });
  EXPECT_EQ(inspect("enc").kek_id(), old_id) << "nothing changes until the rotation";
  EXPECT_EQ(read_secret("enc"), known_plaintext()) << "a retired KEK still unwraps";
  EXPECT_REFUSED(rotate(alice_).status(), Code::kPermissionDenied, "rbac_denied");
  auto r = rotate(admin_);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->rewrapped(), 2u);  // the volume and its snapshot
  EXPECT_EQ(r->failed(), 0u);
  const std::string new_id = inspect("enc").kek_id();
  EXPECT_NE(new_id, old_id);
  r = rotate(admin_);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->rewrapped(), 0u);
  EXPECT_EQ(r->current(), 2u);

  // The old KEK retired for good: everything opens with the new one alone...
  restart_with([&](config::KekConfig& k) { k.retired_files.clear(); });
  EXPECT_EQ(read_secret("enc"), known_plaintext());
  auto c = clone("enc-snap", "from-snap", true);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(read_secret("from-snap"), known_plaintext());
  // ...and the old KEK alone no longer unwraps anything.
  restart_with([&](config::KekConfig& k) { k.file = kek1_; });
  EXPECT_REFUSED(mount("enc"), Code::kFailedPrecondition, "key_unwrap_failed");

  // A KMS rotation: the plugin's new key becomes current; rotate re-wraps, then the old KMS key
  // can be destroyed.
  restart_with([&](config::KekConfig& k) { k.file = kek2_; });
  ASSERT_TRUE(create("kms-vol", true, "tenant-kms").is_ok());
  write_secret("kms-vol");
  const std::string old_kms = kms_->current_key_id();
  kms_->rotate();
  r = rotate(admin_, "tenant-kms");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->rewrapped(), 1u);
  kms_->retire(old_kms);
  EXPECT_EQ(read_secret("kms-vol"), known_plaintext());
}

TEST_F(EncryptionTest, DeleteDestroysTheWrappedKey) {
  auto enc = create("enc", true);
  ASSERT_TRUE(enc.is_ok());
  write_secret("enc");
  const std::string wrapped = stored_wrapped_key(enc->id());
  ASSERT_GT(wrapped.size(), 64u) << "the wrapped key is stored";
  ASSERT_OK(remove("enc"));
  EXPECT_EQ(stored_wrapped_key(enc->id()), "");
  server_->stop();
  for (const char* f : {"/data/volguard.db", "/data/volguard.db-wal"}) {
    const std::string bytes = slurp(server_->dir() + f);
    EXPECT_EQ(bytes.find(wrapped), std::string::npos) << "the wrapped key lingers in " << f;
    EXPECT_EQ(bytes.find(wrapped.substr(0, 32)), std::string::npos) << "part of the wrapped key lingers in " << f;
  }
  // The audit trail says so.
  bool said = false;
  for (const auto& e : stdfs::directory_iterator(server_->audit_dir())) {
    said = said || slurp(e.path()).find("data key was destroyed") != std::string::npos;
  }
  EXPECT_TRUE(said);
  server_->start();
}

}  // namespace
}  // namespace volguard
