// Encrypted volumes (driver::Encryption::kFscrypt) on real images, loop devices and mounts: what
// is written through the mount must never reach the image in clear, in the volume, its
// snapshots or its clones, while a plain volume's image shows it (the control that proves the
// search would find it).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/mountinfo.h"
#include "crypto/fscrypt.h"
#include "crypto/secure_bytes.h"
#include "driver/driver.h"
#include "driver/driver_fixture.h"
#include "driver/sys.h"

namespace volguard::driver {
namespace {

namespace stdfs = std::filesystem;
using testing::kMiB;
using testing::slurp;
using testing::spew;

// A marker that occurs nowhere in a fresh image; repeated so that it spans many blocks.
const std::string kMarker = "VOLGUARD-KNOWN-PLAINTEXT-7f3a91c2-";
const std::string kSecretName = "quarterly-payroll-secret-name.csv";
std::string known_plaintext() {
  std::string s;
  while (s.size() < 256 * 1024) s += kMarker;
  return s;
}

crypto::SecureBytes new_key() {
  auto k = crypto::SecureBytes::random(crypto::fscrypt::kKeySize);
  EXPECT_TRUE(k.is_ok());
  return std::move(*k);
}

class EncryptedVolumeTest : public testing::DriverTest {
 protected:
  Status mount_at(const std::string& id, const std::string& path, const crypto::SecureBytes* key) {
    auto target = resolve_mount_target({dir_}, path, {});
    if (!target) return target.status();
    return driver_->mount(id, *target, FsType::kExt4, key).status();
  }

  // Writes the known plaintext under the secret name through a mount at `path`.
  void write_secret(const std::string& path) {
    spew(path + "/" + kSecretName, known_plaintext());
    ::sync();
  }

};

TEST_F(EncryptedVolumeTest, ImagesOfVolumeSnapshotsAndClonesHoldNoPlaintext) {
  const crypto::SecureBytes key = new_key();
  ASSERT_OK(driver_->create("enc", 32 * kMiB, FsType::kExt4, Encryption::kFscrypt));
  ASSERT_OK(driver_->create("plain", 32 * kMiB, FsType::kExt4, Encryption::kNone));

  const std::string e = mnt("e"), p = mnt("p");
  ASSERT_OK(mount_at("enc", e, &key));
  ASSERT_OK(mount_at("plain", p, nullptr));
  // The encrypted mount shows only the data directory: no lost+found, nothing written in clear.
  EXPECT_FALSE(stdfs::exists(e + "/lost+found"));
  EXPECT_TRUE(stdfs::exists(p + "/lost+found"));
  write_secret(e);
  write_secret(p);
  auto policy = [&] {
    UniqueFd fd(::open(e.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return crypto::fscrypt::get_policy(fd.get());
  }();
  ASSERT_TRUE(policy.is_ok()) << policy.status().to_string();
  ASSERT_TRUE(policy->has_value()) << "the mounted directory carries an fscrypt policy";
  EXPECT_EQ((*policy)->contents_mode, 1) << "AES-256-XTS";   // FSCRYPT_MODE_AES_256_XTS
  EXPECT_EQ((*policy)->filenames_mode, 4) << "AES-256-CTS";  // FSCRYPT_MODE_AES_256_CTS

  // A snapshot while mounted (frozen), then unmount everything.
  ASSERT_OK(driver_->snapshot("enc", "snap-live"));
  ASSERT_OK(driver_->unmount("enc", Encryption::kFscrypt));
  ASSERT_OK(driver_->unmount("plain", Encryption::kNone));
  ASSERT_OK(driver_->detach("enc"));
  ASSERT_OK(driver_->detach("plain"));
  ASSERT_OK(driver_->snapshot("enc", "snap-cold"));
  ASSERT_OK(driver_->clone_volume("enc", "clone-v"));
  ASSERT_OK(driver_->clone_snapshot("snap-live", "clone-s"));

  // The control: the search finds the plaintext and the name in a plain image.
  const std::string plain_image = slurp(vol_file("plain"));
  ASSERT_NE(plain_image.find(kMarker), std::string::npos);
  ASSERT_NE(plain_image.find(kSecretName), std::string::npos);
  for (const std::string& f : {vol_file("enc"), snap_file("snap-live"), snap_file("snap-cold"),
                               vol_file("clone-v"), vol_file("clone-s")}) {
    const std::string image = slurp(f);
    ASSERT_GT(image.size(), 16 * kMiB) << f;
    EXPECT_EQ(image.find(kMarker.substr(0, 16)), std::string::npos) << "plaintext in " << f;
    EXPECT_EQ(image.find(kSecretName.substr(0, 16)), std::string::npos) << "file name in " << f;
  }

  // The clones open with the same key and hold the data.
  const std::string c = mnt("c"), s = mnt("s");
  ASSERT_OK(mount_at("clone-v", c, &key));
  ASSERT_OK(mount_at("clone-s", s, &key));
  EXPECT_EQ(slurp(c + "/" + kSecretName), known_plaintext());
  EXPECT_EQ(slurp(s + "/" + kSecretName), known_plaintext());
  ASSERT_OK(driver_->unmount("clone-v", Encryption::kFscrypt));
  ASSERT_OK(driver_->unmount("clone-s", Encryption::kFscrypt));
}

TEST_F(EncryptedVolumeTest, AnotherKeyIsRefusedAndLeavesNothingMounted) {
  const crypto::SecureBytes key = new_key(), other = new_key();
  ASSERT_OK(driver_->create("enc", 32 * kMiB, FsType::kExt4, Encryption::kFscrypt));
  const std::string a = mnt("a");
  ASSERT_OK(mount_at("enc", a, &key));
  write_secret(a);
  ASSERT_OK(driver_->unmount("enc", Encryption::kFscrypt));

  const Status wrong = mount_at("enc", a, &other);
  EXPECT_EQ(wrong.code(), Code::kFailedPrecondition) << wrong.to_string();
  EXPECT_EQ(wrong.reason(), "key_mismatch") << wrong.to_string();
  EXPECT_EQ(driver_->status("enc")->mount_path, "");
  EXPECT_FALSE(stdfs::exists(a + "/" + kSecretName));

  // The right key still opens it: the refusal changed nothing.
  ASSERT_OK(mount_at("enc", a, &key));
  EXPECT_EQ(slurp(a + "/" + kSecretName), known_plaintext());
  ASSERT_OK(driver_->unmount("enc", Encryption::kFscrypt));
}

// After unmount the key is out of the keyring: the filesystem mounted raw (as root on the node
// could) shows only encrypted names, and a file's contents cannot be read.
TEST_F(EncryptedVolumeTest, UnmountRemovesTheKey) {
  const crypto::SecureBytes key = new_key();
  ASSERT_OK(driver_->create("enc", 32 * kMiB, FsType::kExt4, Encryption::kFscrypt));
  const std::string a = mnt("a"), raw = mnt("raw");
  ASSERT_OK(mount_at("enc", a, &key));
  write_secret(a);
  ASSERT_OK(driver_->unmount("enc", Encryption::kFscrypt));
  EXPECT_EQ(driver_->status("enc")->mount_path, "");

  auto dev = driver_->attach("enc");
  ASSERT_TRUE(dev.is_ok()) << dev.status().to_string();
  ASSERT_EQ(::mount(dev->c_str(), raw.c_str(), "ext4", 0, nullptr), 0) << std::strerror(errno);
  std::vector<std::string> names;
  for (const auto& entry : stdfs::directory_iterator(raw + "/data")) {
    names.push_back(entry.path().filename().string());
  }
  ASSERT_EQ(names.size(), 1u);
  EXPECT_NE(names[0], kSecretName) << "the name must be ciphertext without the key";
  const int fd = ::open((raw + "/data/" + names[0]).c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_EQ(fd, -1) << "contents must not open without the key";
  if (fd >= 0) ::close(fd);
  EXPECT_EQ(errno, ENOKEY);
  ASSERT_EQ(::umount2(raw.c_str(), 0), 0);
}

// The attack: a process on the node keeps a copy of the mount in a mount namespace of its own
// (an unprivileged user can, with `unshare -Urm`). The unmount removes the key all the same, so
// the copy shows no plaintext any more; a new mount is refused while the copy lives (it would
// reuse that filesystem and put the key back into its keyring); once the copy is gone, the
// volume mounts again.
TEST_F(EncryptedVolumeTest, AMountKeptInAnotherNamespaceSeesNoPlaintextAfterUnmount) {
  const crypto::SecureBytes key = new_key();
  ASSERT_OK(driver_->create("enc", 32 * kMiB, FsType::kExt4, Encryption::kFscrypt));
  const std::string a = mnt("a");
  ASSERT_OK(mount_at("enc", a, &key));
  write_secret(a);
  const std::string pidfile = dir_ + "/holder.pid";
  ASSERT_EQ(std::system(("unshare --mount --propagation private sleep 60 > /dev/null 2>&1 & echo $! > " +
                         pidfile).c_str()), 0);
  std::string pid;
  for (int i = 0; i < 50 && pid.empty(); ++i) {
    ::usleep(20'000);
    pid = slurp(pidfile);
    while (!pid.empty() && (pid.back() == '\n')) pid.pop_back();
  }
  ASSERT_FALSE(pid.empty());
  const std::string in_copy = "nsenter -t " + pid + " -m ";
  // Wait until the holder's namespace exists and shows the plaintext (the test's own check).
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    seen = std::system((in_copy + "grep -q " + kMarker + " " + a + "/" + kSecretName + " 2>/dev/null").c_str()) == 0;
    if (!seen) ::usleep(20'000);
  }
  ASSERT_TRUE(seen) << "the copy of the mount did not show the file while the volume was mounted";

  // Unmounted here; the copy's root (the encrypted directory) keeps the key in use, which the
  // caller is told — and the key no longer opens anything new.
  const Status unmounted = driver_->unmount("enc", Encryption::kFscrypt);
  EXPECT_EQ(unmounted.reason(), "volume_busy") << unmounted.to_string();
  EXPECT_EQ(driver_->status("enc")->mount_path, "");
  EXPECT_NE(std::system((in_copy + "cat " + a + "/" + kSecretName + " > /dev/null 2>&1").c_str()), 0)
      << "the copy still reads plaintext after the unmount";
  const Status again = mount_at("enc", a, &key);
  EXPECT_EQ(again.code(), Code::kFailedPrecondition) << again.to_string();
  EXPECT_EQ(again.reason(), "volume_busy") << again.to_string();
  EXPECT_NE(std::system((in_copy + "cat " + a + "/" + kSecretName + " > /dev/null 2>&1").c_str()), 0)
      << "the refused mount gave the copy its key back";

  ASSERT_EQ(std::system(("kill -9 " + pid).c_str()), 0);
  for (int i = 0; i < 100 && !driver_->unmount("enc", Encryption::kFscrypt).is_ok(); ++i) ::usleep(20'000);
  ASSERT_OK(driver_->unmount("enc", Encryption::kFscrypt));
  for (int i = 0; i < 100; ++i) {
    if (mount_at("enc", a, &key).is_ok()) break;
    ::usleep(20'000);
  }
  EXPECT_EQ(slurp(a + "/" + kSecretName), known_plaintext());
  ASSERT_OK(driver_->unmount("enc", Encryption::kFscrypt));
}

// A first mount that stopped between making the data directory and encrypting it: the empty
// directory is encrypted by the next mount; one that holds anything is refused.
TEST_F(EncryptedVolumeTest, AnEmptyUnencryptedDataDirectoryIsEncryptedOneWithFilesIsRefused) {
  const crypto::SecureBytes key = new_key();
  for (const bool with_file : {false, true}) {
    const std::string id = with_file ? "enc-full" : "enc-empty";
    ASSERT_OK(driver_->create(id, 32 * kMiB, FsType::kExt4, Encryption::kFscrypt));
    auto dev = driver_->attach(id);
    ASSERT_TRUE(dev.is_ok());
    const std::string raw = mnt("raw-" + id);
    ASSERT_EQ(::mount(dev->c_str(), raw.c_str(), "ext4", 0, nullptr), 0) << std::strerror(errno);
    ASSERT_EQ(::mkdir((raw + "/data").c_str(), 0755), 0);
    if (with_file) spew(raw + "/data/planted", "clear");
    ASSERT_EQ(::umount2(raw.c_str(), 0), 0);
    const std::string m = mnt(id);
    const Status s = mount_at(id, m, &key);
    if (with_file) {
      EXPECT_EQ(s.reason(), "key_mismatch") << s.to_string();
      EXPECT_EQ(driver_->status(id)->mount_path, "");
    } else {
      ASSERT_OK(s);
      UniqueFd fd(::open(m.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      auto policy = crypto::fscrypt::get_policy(fd.get());
      ASSERT_TRUE(policy.is_ok() && policy->has_value());
      fd.reset();
      ASSERT_OK(driver_->unmount(id, Encryption::kFscrypt));
    }
  }
}

TEST_F(EncryptedVolumeTest, XfsCannotBeEncrypted) {
  const Status s = driver_->create("x", 300 * kMiB, FsType::kXfs, Encryption::kFscrypt);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.to_string();
  EXPECT_EQ(s.reason(), "encryption_unsupported");
  EXPECT_FALSE(stdfs::exists(vol_file("x")));
}

}  // namespace
}  // namespace volguard::driver
