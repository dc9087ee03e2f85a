// fscrypt on a real ext4 filesystem: a sparse image made with `mkfs.ext4 -O encrypt`, attached
// to a loop device and mounted. Needs root (loop devices, mount, the ioctls); skipped otherwise.
#include "crypto/fscrypt.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fscrypt.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "common/fd.h"

extern char** environ;

namespace volguard::crypto::fscrypt {
namespace {

// Distinctive enough never to be in an image by chance.
const std::string kFileName = "volguard-canary-ledger-4f9d2a.txt";
const std::string kLineMarker = "VOLGUARD-FSCRYPT-CANARY-LINE ";

// 64 KiB of numbered lines, each carrying kLineMarker.
std::string canary_text() {
  std::string out;
  for (int i = 0; out.size() < 64 * 1024; ++i) {
    out += kLineMarker + std::to_string(i) + " the quick brown fox\n";
  }
  out.resize(64 * 1024);
  return out;
}

// Runs argv (no shell); its stdout, or the failure. `ok` tells which.
struct Run {
  bool ok = false;
  std::string out;
};
// stderr is the test's (a tool's complaint shows in the log) unless `quiet`.
Run run(const std::vector<std::string>& argv, bool quiet = false) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return {};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
  if (quiet) posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipefd[1]);
  Run result;
  if (rc == 0) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0)
      result.out.append(buf, static_cast<size_t>(n));
    int status = 0;
    ::waitpid(pid, &status, 0);
    result.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  ::close(pipefd[0]);
  while (!result.out.empty() && result.out.back() == '\n') result.out.pop_back();
  return result;
}

// A scratch ext4 filesystem in a sparse image: made, attached and mounted by the test, and
// unmounted, detached and deleted on every path by the destructor (a failed assertion too).
class ScratchFs {
 public:
  ScratchFs() {
    char tmpl[] = "/tmp/volguard-fscrypt-XXXXXX";
    if (::mkdtemp(tmpl) != nullptr) dir_ = tmpl;
    image_ = dir_ + "/image.ext4";
    mnt_ = dir_ + "/mnt";
  }
  ~ScratchFs() {
    bool clean = unmount().empty();
    if (!detach().empty()) clean = false;
    // Never delete through a mount that is still there.
    if (clean && !dir_.empty()) std::filesystem::remove_all(dir_);
  }
  ScratchFs(const ScratchFs&) = delete;
  ScratchFs& operator=(const ScratchFs&) = delete;

  // A 64 MiB sparse image; `encrypt` adds the feature fscrypt needs. "" or what failed.
  std::string make(bool encrypt) {
    if (dir_.empty()) return "mkdtemp failed";
    const int fd = ::open(image_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ::ftruncate(fd, 64 << 20) != 0) return "cannot create " + image_;
    ::close(fd);
    std::vector<std::string> mkfs = {"mkfs.ext4", "-q", "-F", "-b", "4096"};
    if (encrypt) mkfs.insert(mkfs.end(), {"-O", "encrypt"});
    mkfs.push_back(image_);
    if (!run(mkfs).ok) return "mkfs.ext4 failed";
    if (::mkdir(mnt_.c_str(), 0700) != 0) return "cannot mkdir " + mnt_;
    return "";
  }

  std::string attach_and_mount() {
    Run loop = run({"losetup", "--find", "--show", image_});
    if (!loop.ok || loop.out.rfind("/dev/loop", 0) != 0) return "losetup failed: " + loop.out;
    loop_ = loop.out;
    if (::mount(loop_.c_str(), mnt_.c_str(), "ext4", 0, nullptr) != 0) {
      return "mount " + loop_ + ": " + std::strerror(errno);
    }
    mounted_ = true;
    return "";
  }

  std::string unmount() {
    if (!mounted_) return "";
    if (::umount2(mnt_.c_str(), 0) != 0 && ::umount2(mnt_.c_str(), MNT_DETACH) != 0) {
      return std::string("umount: ") + std::strerror(errno);
    }
    mounted_ = false;
    return "";
  }

  std::string detach() {
    if (loop_.empty()) return "";
    if (!run({"losetup", "-d", loop_}).ok) return "losetup -d " + loop_ + " failed";
    loop_.clear();
    return "";
  }

  // Unmounted and detached, so that everything written is in the image file.
  std::string close() {
    std::string err = unmount();
    if (err.empty()) err = detach();
    return err;
  }

  UniqueFd open_root() const {
    return UniqueFd(::open(mnt_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  }
  const std::string& mnt() const { return mnt_; }

  // Whether the image file holds `needle` anywhere.
  bool image_contains(const std::string& needle) const {
    const int fd = ::open(image_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::string data;
    data.resize(64 << 20);
    size_t got = 0;
    ssize_t n;
    while (got < data.size() && (n = ::read(fd, data.data() + got, data.size() - got)) > 0)
      got += static_cast<size_t>(n);
    ::close(fd);
    data.resize(got);
    return std::search(data.begin(), data.end(),
                       std::boyer_moore_searcher(needle.begin(), needle.end())) != data.end();
  }

 private:
  std::string dir_, image_, mnt_, loop_;
  bool mounted_ = false;
};

bool write_file(const std::string& path, const std::string& content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const bool ok =
      ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
      ::fsync(fd) == 0;
  return ::close(fd) == 0 && ok;
}

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  return names;
}

class FscryptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (loop devices, mount)";
    if (!run({"mkfs.ext4", "-V"}, /*quiet=*/true).ok) GTEST_SKIP() << "no mkfs.ext4";
  }
};

TEST_F(FscryptTest, EncryptedDirectoryLeavesNoPlaintextOrNameInTheImage) {
  const std::string text = canary_text();
  ScratchFs fs;
  ASSERT_EQ(fs.make(/*encrypt=*/true), "");
  ASSERT_EQ(fs.attach_and_mount(), "");
  const std::string vault = fs.mnt() + "/vault";
  SecureBytes key = SecureBytes::random(kKeySize).value();
  KeyIdentifier id;
  {
    UniqueFd root = fs.open_root();
    ASSERT_TRUE(root);
    auto added = add_key(root.get(), key);
    ASSERT_TRUE(added.is_ok()) << added.status().to_string();
    id = *added;
    auto st = key_status(root.get(), id);
    ASSERT_TRUE(st.is_ok()) << st.status().to_string();
    EXPECT_EQ(st->state, KeyState::kPresent);
    EXPECT_TRUE(st->added_by_self);
    EXPECT_EQ(st->user_count, 1u);

    ASSERT_EQ(::mkdir(vault.c_str(), 0700), 0);
    UniqueFd dir(::open(vault.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir);
    auto before = get_policy(dir.get());
    ASSERT_TRUE(before.is_ok()) << before.status().to_string();
    EXPECT_FALSE(before->has_value()) << "a new directory is not encrypted";
    Status set = set_policy(dir.get(), id);
    ASSERT_TRUE(set.is_ok()) << set.to_string();
    auto after = get_policy(dir.get());
    ASSERT_TRUE(after.is_ok()) << after.status().to_string();
    ASSERT_TRUE(after->has_value());
    EXPECT_EQ(**after, Policy::volguard(id));
    EXPECT_EQ((*after)->contents_mode, FSCRYPT_MODE_AES_256_XTS);
    EXPECT_EQ((*after)->filenames_mode, FSCRYPT_MODE_AES_256_CTS);
    EXPECT_EQ((*after)->flags, FSCRYPT_POLICY_FLAGS_PAD_32);
    EXPECT_TRUE(set_policy(dir.get(), id).is_ok()) << "the same policy again is fine";

    ASSERT_TRUE(write_file(vault + "/" + kFileName, text));
    UniqueFd file(::open((vault + "/" + kFileName).c_str(), O_RDONLY | O_CLOEXEC));
    auto inherited = get_policy(file.get());
    ASSERT_TRUE(inherited.is_ok() && inherited->has_value()) << "files inherit the policy";
    EXPECT_EQ((*inherited)->key, id);
    // An open fd on the directory counts as a file in use as much as one on the file.
    file.reset();
    dir.reset();
    ASSERT_EQ(::syncfs(root.get()), 0);

    auto removed = remove_key(root.get(), id);
    ASSERT_TRUE(removed.is_ok()) << removed.status().to_string();
    EXPECT_TRUE(removed->complete())
        << "busy=" << removed->files_busy << " others=" << removed->other_users;
    EXPECT_EQ(key_status(root.get(), id)->state, KeyState::kAbsent);
  }
  ASSERT_EQ(fs.close(), "");
  EXPECT_FALSE(fs.image_contains(kLineMarker)) << "plaintext found in the image";
  EXPECT_FALSE(fs.image_contains(text.substr(0, 4096)));
  EXPECT_FALSE(fs.image_contains(kFileName)) << "file name found in the image";
  EXPECT_FALSE(fs.image_contains(std::string(reinterpret_cast<const char*>(key.data()), 32)))
      << "the key itself is in the image";

  // Mounted again without the key: names are ciphertext and the file cannot be opened.
  ASSERT_EQ(fs.attach_and_mount(), "");
  const std::vector<std::string> names = list_dir(vault);
  ASSERT_EQ(names.size(), 1u);
  EXPECT_NE(names[0], kFileName);
  EXPECT_EQ(names[0].find("canary"), std::string::npos) << names[0];
  errno = 0;
  EXPECT_LT(::open((vault + "/" + names[0]).c_str(), O_RDONLY | O_CLOEXEC), 0);
  EXPECT_EQ(errno, ENOKEY) << std::strerror(errno);
  errno = 0;
  EXPECT_LT(::open((vault + "/" + kFileName).c_str(), O_RDONLY | O_CLOEXEC), 0);
  EXPECT_EQ(errno, ENOENT) << "the plaintext name does not exist without the key";
  // Nothing new can be created in it either.
  EXPECT_LT(::open((vault + "/new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600), 0);

  // The key added back: the same identifier, the name and the data as written.
  UniqueFd root = fs.open_root();
  auto readded = add_key(root.get(), key);
  ASSERT_TRUE(readded.is_ok()) << readded.status().to_string();
  EXPECT_EQ(*readded, id) << "the identifier is a function of the key";
  EXPECT_EQ(list_dir(vault), std::vector<std::string>{kFileName});
  EXPECT_EQ(read_file(vault + "/" + kFileName), text);
  ASSERT_TRUE(remove_key(root.get(), id).is_ok());
}

// The control: the same filesystem and writes without a policy leave both in the image, so the
// search above would have found them.
TEST_F(FscryptTest, ControlWithoutPolicyLeavesPlaintextAndNameInTheImage) {
  const std::string text = canary_text();
  ScratchFs fs;
  ASSERT_EQ(fs.make(/*encrypt=*/true), "");
  ASSERT_EQ(fs.attach_and_mount(), "");
  const std::string plain = fs.mnt() + "/plain";
  ASSERT_EQ(::mkdir(plain.c_str(), 0700), 0);
  ASSERT_TRUE(write_file(plain + "/" + kFileName, text));
  {
    UniqueFd root = fs.open_root();
    ASSERT_EQ(::syncfs(root.get()), 0);
  }
  ASSERT_EQ(fs.close(), "");
  EXPECT_TRUE(fs.image_contains(kLineMarker));
  EXPECT_TRUE(fs.image_contains(text.substr(0, 4096)));
  EXPECT_TRUE(fs.image_contains(kFileName));
}

TEST_F(FscryptTest, RemovalWithOpenFilesIsReportedAndFinishedLater) {
  ScratchFs fs;
  ASSERT_EQ(fs.make(true), "");
  ASSERT_EQ(fs.attach_and_mount(), "");
  UniqueFd root = fs.open_root();
  SecureBytes key = SecureBytes::random(kKeySize).value();
  const KeyIdentifier id = add_key(root.get(), key).value();
  const std::string vault = fs.mnt() + "/vault";
  ASSERT_EQ(::mkdir(vault.c_str(), 0700), 0);
  {
    UniqueFd dir(::open(vault.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(set_policy(dir.get(), id).is_ok());
  }
  ASSERT_TRUE(write_file(vault + "/open-file", "still in use"));
  UniqueFd open_file(::open((vault + "/open-file").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(open_file);

  auto busy = remove_key(root.get(), id);
  ASSERT_TRUE(busy.is_ok()) << busy.status().to_string();
  EXPECT_TRUE(busy->files_busy);
  EXPECT_FALSE(busy->other_users);
  EXPECT_FALSE(busy->complete());
  EXPECT_EQ(key_status(root.get(), id)->state, KeyState::kIncompletelyRemoved);

  open_file.reset();
  auto done = remove_key(root.get(), id);
  ASSERT_TRUE(done.is_ok()) << done.status().to_string();
  EXPECT_TRUE(done->complete());
  EXPECT_EQ(key_status(root.get(), id)->state, KeyState::kAbsent);

  // Gone: removing again names the ioctl and the errno.
  auto absent = remove_key(root.get(), id);
  ASSERT_FALSE(absent.is_ok());
  EXPECT_EQ(absent.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(absent.status().reason(), "fscrypt_key_absent");
  EXPECT_NE(absent.status().message().find("FS_IOC_REMOVE_ENCRYPTION_KEY"), std::string::npos)
      << absent.status().to_string();
  EXPECT_NE(absent.status().message().find("ENOKEY"), std::string::npos)
      << absent.status().to_string();
  EXPECT_NE(absent.status().message().find(fs.mnt()), std::string::npos)
      << absent.status().to_string();
}

TEST_F(FscryptTest, PolicyRefusals) {
  ScratchFs fs;
  ASSERT_EQ(fs.make(true), "");
  ASSERT_EQ(fs.attach_and_mount(), "");
  UniqueFd root = fs.open_root();
  SecureBytes key_a = SecureBytes::random(kKeySize).value();
  SecureBytes key_b = SecureBytes::random(kKeySize).value();
  const KeyIdentifier a = add_key(root.get(), key_a).value();
  const KeyIdentifier b = add_key(root.get(), key_b).value();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.hex().size(), 32u);

  // The root is not empty (lost+found).
  Status on_root = set_policy(root.get(), a);
  EXPECT_EQ(on_root.code(), Code::kFailedPrecondition) << on_root.to_string();
  EXPECT_EQ(on_root.reason(), "fscrypt_not_empty") << on_root.to_string();
  EXPECT_NE(on_root.message().find("FS_IOC_SET_ENCRYPTION_POLICY"), std::string::npos);
  EXPECT_NE(on_root.message().find("ENOTEMPTY"), std::string::npos) << on_root.to_string();

  const std::string dir_path = fs.mnt() + "/vault";
  ASSERT_EQ(::mkdir(dir_path.c_str(), 0700), 0);
  UniqueFd dir(::open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(set_policy(dir.get(), a).is_ok());
  Status other_key = set_policy(dir.get(), b);
  EXPECT_EQ(other_key.reason(), "fscrypt_policy_conflict") << other_key.to_string();
  EXPECT_NE(other_key.message().find("EEXIST"), std::string::npos) << other_key.to_string();

  auto short_key = add_key(root.get(), SecureBytes::random(32).value());
  ASSERT_FALSE(short_key.is_ok());
  EXPECT_EQ(short_key.status().reason(), "fscrypt_invalid");

  // A key never added: nothing to remove, no status.
  KeyIdentifier never;
  never.bytes.fill(0x42);
  EXPECT_EQ(key_status(root.get(), never)->state, KeyState::kAbsent);
  EXPECT_EQ(remove_key(root.get(), never).status().reason(), "fscrypt_key_absent");

  ASSERT_TRUE(remove_key(root.get(), a).is_ok());
  ASSERT_TRUE(remove_key(root.get(), b, RemoveScope::kAllUsers).is_ok());
}

TEST_F(FscryptTest, FilesystemWithoutTheEncryptFeatureIsRefused) {
  ScratchFs fs;
  ASSERT_EQ(fs.make(/*encrypt=*/false), "");
  ASSERT_EQ(fs.attach_and_mount(), "");
  const std::string dir_path = fs.mnt() + "/vault";
  ASSERT_EQ(::mkdir(dir_path.c_str(), 0700), 0);
  UniqueFd dir(::open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  KeyIdentifier id;
  id.bytes.fill(0x17);
  Status s = set_policy(dir.get(), id);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.to_string();
  EXPECT_EQ(s.reason(), "fscrypt_unsupported") << s.to_string();
  EXPECT_NE(s.message().find("EOPNOTSUPP"), std::string::npos) << s.to_string();
  EXPECT_NE(s.message().find(dir_path), std::string::npos) << s.to_string();
  UniqueFd root = fs.open_root();
  auto added = add_key(root.get(), SecureBytes::random(kKeySize).value());
  ASSERT_FALSE(added.is_ok());
  EXPECT_EQ(added.status().reason(), "fscrypt_unsupported") << added.status().to_string();
}

}  // namespace
}  // namespace volguard::crypto::fscrypt
