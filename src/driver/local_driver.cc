// Local driver: each volume is a sparse image file, attached through a loop device and mounted
// with mount(2). Nothing about attach/mount state is remembered in memory: it is read back from
// /sys/block/loop* and /proc/self/mountinfo on every call, so the driver stays correct across
// server restarts and never disagrees with the host.
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/mountinfo.h"
#include "crypto/fscrypt.h"
#include "crypto/secure_bytes.h"
#include "common/text.h"
#include "driver/driver.h"
#include "driver/sys.h"
#include <spdlog/spdlog.h>

namespace volguard::driver {
namespace {

namespace stdfs = std::filesystem;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kBlock = 4096;  // image sizes are rounded up to whole 4 KiB blocks
constexpr const char* kImgSuffix = ".img";
// Ids may not start with '.', so temp names can never collide with a real image.
constexpr const char* kTmpPrefix = ".tmp-";

Status validate_id(const std::string& id, const char* what) {
  if (is_valid_name(id)) return Status::ok();
  return Status(Code::kInvalidArgument, "invalid_id",
                std::string("invalid ") + what + " id \"" + id + "\": use 1-" +
                    std::to_string(kMaxNameLength) +
                    " of [A-Za-z0-9._-], not starting with '.' or '-'");
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// A sysfs value such as "7:3\n", without its line end.
std::optional<std::string> read_small_file(const std::string& path) {
  auto text = read_file(path);
  if (!text) return std::nullopt;
  return std::string(trim_trailing_whitespace(*text));
}

Status fsync_dir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0) {
    return errno_status(Code::kInternal, "io_error", "fsync " + dir, errno);
  }
  return Status::ok();
}

// Where the host says a loop device is attached, derived fresh each time.
struct LoopDevice {
  std::string path;    // "/dev/loop3"
  std::string devnum;  // "7:3"
};

// The loop device backed by `file` (a canonical path), if any. The sysfs backing_file gives the
// path; LOOP_GET_STATUS64 confirms the inode so a replaced file is not mistaken for the old one.
std::optional<LoopDevice> find_loop(const std::string& file) {
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) return std::nullopt;
  std::error_code ec;
  for (const auto& entry : stdfs::directory_iterator("/sys/block", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("loop", 0) != 0) continue;
    auto backing = read_small_file(entry.path().string() + "/loop/backing_file");
    if (!backing || *backing != file) continue;
    LoopDevice dev{"/dev/" + name, read_small_file(entry.path().string() + "/dev").value_or("")};
    UniqueFd fd(::open(dev.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd) {
      loop_info64 info{};
      if (::ioctl(fd.get(), LOOP_GET_STATUS64, &info) == 0 && info.lo_inode != st.st_ino) {
        continue;
      }
    }
    return dev;
  }
  return std::nullopt;
}

std::vector<std::string> mount_points_of(const LoopDevice& dev) {
  std::vector<std::string> points;
  for (const auto& m : read_mountinfo()) {
    if ((!dev.devnum.empty() && m.devnum == dev.devnum) || m.source == dev.path) {
      points.push_back(m.mount_point);
    }
  }
  return points;
}

// The root of `dev`'s mount at `point` (a path read from mountinfo), opened without following
// any symlink and verified to be that device's mount root. mountinfo is only a hint: a tenant can
// swap a component of the path after it was read, and an ioctl or statvfs on whatever the path
// names then would act on another filesystem (FIFREEZE on "/" freezes the host).
Result<UniqueFd> open_mount_of(const LoopDevice& dev, const std::string& point) {
  open_how how{};
  how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd = -1;
  do {
    fd = ::syscall(SYS_openat2, AT_FDCWD, point.c_str(), &how, sizeof how);
  } while (fd < 0 && errno == EAGAIN);
  if (fd < 0) {
    return errno_status(Code::kFailedPrecondition, "mount_path_changed", "open mount " + point, errno);
  }
  UniqueFd out(static_cast<int>(fd));
  struct statx stx {};
  if (::statx(out.get(), "", AT_EMPTY_PATH, STATX_TYPE, &stx) != 0) {
    return errno_status(Code::kInternal, "io_error", "stat " + point, errno);
  }
  const bool root = (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0 &&
                    (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  const std::string devnum = std::to_string(stx.stx_dev_major) + ":" + std::to_string(stx.stx_dev_minor);
  if (!root || devnum != dev.devnum) {
    return Status(Code::kFailedPrecondition, "mount_path_changed",
                  point + " is no longer the mount of " + dev.path + "; try again");
  }
  return out;
}

// FIFREEZE on construction, FITHAW on destruction: a snapshot can never leave a volume frozen.
class FreezeGuard {
 public:
  // `fd`: the verified mount root (open_mount_of), never a path looked up again.
  static Result<std::unique_ptr<FreezeGuard>> freeze(UniqueFd fd, const std::string& mount_path) {
    if (::ioctl(fd.get(), FIFREEZE, 0) != 0) {
      const int err = errno;
      return errno_status(err == EBUSY ? Code::kFailedPrecondition : Code::kInternal,
                          err == EBUSY ? "volume_busy" : "freeze_failed",
                          "freeze filesystem at " + mount_path, err);
    }
    return std::unique_ptr<FreezeGuard>(new FreezeGuard(std::move(fd)));
  }
  ~FreezeGuard() { ::ioctl(fd_.get(), FITHAW, 0); }
  FreezeGuard(const FreezeGuard&) = delete;
  FreezeGuard& operator=(const FreezeGuard&) = delete;

 private:
  explicit FreezeGuard(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// A temp file that is unlinked unless it was renamed into place.
class TempFile {
 public:
  static Result<TempFile> create(const std::string& dir, const std::string& id) {
    std::string templ = dir + "/" + kTmpPrefix + id + ".XXXXXX";
    const int fd = ::mkostemp(templ.data(), O_CLOEXEC);
    if (fd < 0) return errno_status(Code::kInternal, "io_error", "create temp in " + dir, errno);
    return TempFile(std::move(templ), UniqueFd(fd));
  }
  TempFile(TempFile&& o) noexcept
      : path_(std::move(o.path_)), fd_(std::move(o.fd_)), keep_(std::exchange(o.keep_, true)) {}
  TempFile& operator=(TempFile&&) = delete;
  ~TempFile() {
    fd_.reset();
    if (!keep_) ::unlink(path_.c_str());
  }

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  Status close() {
    if (const int err = fd_.close_checked(); err != 0) {
      return errno_status(Code::kInternal, "io_error", "close " + path_, err);
    }
    return Status::ok();
  }
  // rename(2) into place; with no_replace an existing target yields ALREADY_EXISTS.
  Status commit(const std::string& target, bool no_replace, const std::string& exists_reason) {
    if (no_replace) {
      if (::renameat2(AT_FDCWD, path_.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) != 0) {
        const int err = errno;
        if (err == EEXIST) {
          return Status(Code::kAlreadyExists, exists_reason, target + " already exists");
        }
        return errno_status(Code::kInternal, "io_error", "rename to " + target, err);
      }
    } else if (::rename(path_.c_str(), target.c_str()) != 0) {
      return errno_status(Code::kInternal, "io_error", "rename to " + target, errno);
    }
    keep_ = true;
    return Status::ok();
  }

 private:
  TempFile(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  UniqueFd fd_;
  bool keep_ = false;
};

Status write_all_range(int src, int dst, off_t off, off_t end) {
  // copy_file_range first (in-kernel, may share extents); plain pread/pwrite when the
  // filesystems cannot do it.
  bool use_cfr = true;
  std::vector<char> buf;
  while (off < end) {
    const size_t want = static_cast<size_t>(std::min<off_t>(end - off, 8 * kMiB));
    if (use_cfr) {
      loff_t in = off, out = off;
      const ssize_t n = ::copy_file_range(src, &in, dst, &out, want, 0);
      if (n > 0) {
        off += n;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) break;  // source shrank under us: stop at its end
      if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
        return errno_status(Code::kInternal, "io_error", "copy_file_range", errno);
      }
      use_cfr = false;
      buf.resize(kMiB);
    }
    const ssize_t n = ::pread(src, buf.data(), std::min(want, buf.size()), off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status(Code::kInternal, "io_error", "read", errno);
    }
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::pwrite(dst, buf.data() + done, static_cast<size_t>(n - done), off + done);
      if (w < 0) {
        if (errno == EINTR) continue;
        return errno_status(Code::kInternal, "io_error", "write", errno);
      }
      done += w;
    }
    off += n;
  }
  return Status::ok();
}

// Reflink when the filesystem shares extents (btrfs, xfs with reflink); otherwise copies only
// the data extents so that the copy stays as sparse as the source.
Status clone_or_sparse_copy(int src, int dst, uint64_t size) {
  if (::ioctl(dst, FICLONE, src) == 0) return Status::ok();
  off_t off = 0;
  const off_t end = static_cast<off_t>(size);
  while (off < end) {
    off_t data = ::lseek(src, off, SEEK_DATA);
    off_t hole;
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      if (errno != EINVAL && errno != EOPNOTSUPP) {
        return errno_status(Code::kInternal, "io_error", "lseek SEEK_DATA", errno);
      }
      data = off;  // no SEEK_DATA support: copy everything
      hole = end;
    } else {
      hole = ::lseek(src, data, SEEK_HOLE);
      if (hole < 0) hole = end;
    }
    if (data >= end) break;
    hole = std::min(hole, end);
    RETURN_IF_ERROR(write_all_range(src, dst, data, hole));
    off = hole;
  }
  if (::ftruncate(dst, end) != 0) {
    return errno_status(Code::kInternal, "io_error", "ftruncate copy", errno);
  }
  return Status::ok();
}

Status set_loop_capacity(const std::string& device) {
  UniqueFd fd(::open(device.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd || ::ioctl(fd.get(), LOOP_SET_CAPACITY, 0) != 0) {
    return errno_status(Code::kInternal, "resize_failed", "set capacity of " + device, errno);
  }
  return Status::ok();
}

// Whether tools we spawn as root get `cap`: after exec, root's capabilities are its bounding set.
// Online ext4 growth needs CAP_SYS_RESOURCE, which containers often drop.
bool children_have_capability(int cap) {
  std::ifstream in("/proc/thread-self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("CapBnd:", 0) != 0) continue;
    std::string hex = line.substr(7);
    hex.erase(0, hex.find_first_not_of(" \t"));
    uint64_t mask = 0;
    auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), mask, 16);
    if (ec != std::errc() || end == hex.data()) return true;  // cannot tell: let the tool report
    return (mask >> cap) & 1;
  }
  return true;  // cannot tell: let the tool report
}

// "major:minor" as sysfs and mountinfo write it.
std::string devnum_of(dev_t dev) { return std::to_string(major(dev)) + ":" + std::to_string(minor(dev)); }

Status mount_path_in_use(const MountTarget& target) {
  return Status(Code::kFailedPrecondition, "mount_path_in_use",
                "mount path \"" + target.path + "\" already has a filesystem mounted on it");
}

// An absolute path opened O_PATH with no symlink or magic link anywhere on the way.
int open_no_symlinks(const std::string& path) {
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof how));
}

// Moves a detached mount (fsmount or open_tree) onto the target's directory fd, then reads back
// where it landed: if the directory was moved since it was resolved, the mount is taken down
// at once through its own fd and the request refused.
// Serialises "is anything mounted here yet?" with the move_mount that answers it: two requests
// (other volumes, other tenants) resolving the same empty directory must not both mount there,
// the second stacked on the first.
std::mutex g_place_mu;

Result<std::string> place(const UniqueFd& mnt, const MountTarget& target) {
  std::lock_guard lock(g_place_mu);
  // Looked up through the parent, so a mount made on the directory since it was resolved shows
  // as a mount root; the inode must still be the directory resolved.
  struct statx now {}, resolved {};
  if (::statx(target.parent.get(), target.leaf.c_str(), AT_SYMLINK_NOFOLLOW, STATX_INO, &now) != 0 ||
      ::statx(target.dir.get(), "", AT_EMPTY_PATH, STATX_INO, &resolved) != 0) {
    return errno_status(Code::kFailedPrecondition, "mount_path_changed", "stat " + target.path, errno);
  }
  if ((now.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0 &&
      (now.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0) {
    return mount_path_in_use(target);
  }
  if (now.stx_ino != resolved.stx_ino || now.stx_dev_major != resolved.stx_dev_major ||
      now.stx_dev_minor != resolved.stx_dev_minor) {
    return Status(Code::kFailedPrecondition, "mount_path_changed",
                  "mount path \"" + target.path + "\" was replaced while it was being mounted; "
                  "nothing was mounted");
  }
  if (::move_mount(mnt.get(), "", target.dir.get(), "",
                   MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
    return errno_status(Code::kFailedPrecondition, "mount_failed", "mount at " + target.path, errno);
  }
  auto where = path_of_fd(mnt.get());
  if (!where || *where != target.path) {
    ::umount2(fd_path(mnt.get()).c_str(), MNT_DETACH);
    return Status(Code::kFailedPrecondition, "mount_path_changed",
                  "mount path \"" + target.path + "\" moved while it was being mounted; nothing "
                  "was mounted");
  }
  return *where;
}

// The directory of an encrypted volume's filesystem that is mounted at the target (see
// Encryption): the root cannot carry a policy.
constexpr const char* kEncryptedDir = "data";

Status key_mismatch(const std::string& id, const std::string& why) {
  return Status(Code::kFailedPrecondition, "key_mismatch",
                "volume \"" + id + "\": " + why + "; nothing was mounted");
}

// On the root of a filesystem mounted nowhere yet (fsmount's fd, reachable by no one else):
// adds `key` to its keyring, encrypts `data` with it on first use or checks that `data` is
// encrypted with exactly it, and returns a detached mount of `data` alone. On failure the key
// is taken out again.
Result<UniqueFd> open_encrypted_tree(const UniqueFd& fs_mount, const crypto::SecureBytes& key,
                                     const std::string& id) {
  namespace fscrypt = crypto::fscrypt;
  // fsmount's fd is a path handle, which takes no ioctl: the root directory opened through it.
  UniqueFd fs_root(::openat(fs_mount.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fs_root) return errno_status(Code::kInternal, "mount_failed", "open the root of volume " + id, errno);
  ASSIGN_OR_RETURN(fscrypt::KeyIdentifier ident, fscrypt::add_key(fs_root.get(), key));
  auto checked = [&]() -> Status {
    UniqueFd dir(::openat(fs_root.get(), kEncryptedDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir && errno == ENOENT) {
      // First mount: made here, where no tenant can reach it before its policy is set.
      if (::mkdirat(fs_root.get(), kEncryptedDir, 0755) != 0) {
        return errno_status(Code::kInternal, "io_error", "mkdir data on volume " + id, errno);
      }
      dir.reset(::openat(fs_root.get(), kEncryptedDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!dir) return errno_status(Code::kInternal, "io_error", "open data on volume " + id, errno);
      return fscrypt::set_policy(dir.get(), ident);
    }
    if (!dir) return key_mismatch(id, std::string("its data directory cannot be opened (") + std::strerror(errno) + ")");
    ASSIGN_OR_RETURN(std::optional<fscrypt::Policy> policy, fscrypt::get_policy(dir.get()));
    if (!policy) {
      // Made by a first mount that stopped before the policy was set: the kernel sets one only
      // on an empty directory, so a directory holding anything stays refused.
      Status set = fscrypt::set_policy(dir.get(), ident);
      if (set.reason() == "fscrypt_not_empty") return key_mismatch(id, "its data directory is not encrypted");
      return set;
    }
    if (*policy != fscrypt::Policy::volguard(ident)) {
      return key_mismatch(id, "its data directory is encrypted with key " + policy->key.hex() +
                                  ", not with the volume's key " + ident.hex());
    }
    return Status::ok();
  }();
  UniqueFd tree;
  if (checked.is_ok()) {
    tree.reset(static_cast<int>(::open_tree(fs_mount.get(), kEncryptedDir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)));
    if (!tree) checked = errno_status(Code::kInternal, "mount_failed", "clone data mount of volume " + id, errno);
  }
  if (!checked.is_ok()) {
    (void)fscrypt::remove_key(fs_root.get(), ident, fscrypt::RemoveScope::kAllUsers);
    return checked;
  }
  return tree;
}

class LocalDriver final : public VolumeDriver {
 public:
  explicit LocalDriver(std::string root)
      : root_(std::move(root)), vol_dir_(root_ + "/volumes"), snap_dir_(root_ + "/snapshots") {}

  Status init() {
    if (::mkdir(root_.c_str(), 0700) != 0 && errno != EEXIST) {
      return errno_status(Code::kInternal, "io_error", "mkdir " + root_, errno);
    }
    for (const auto& dir : {vol_dir_, snap_dir_}) {
      if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        return errno_status(Code::kInternal, "io_error", "mkdir " + dir, errno);
      }
      // Images hold other users' data: only root may look into these folders.
      if (::chmod(dir.c_str(), 0700) != 0) {
        return errno_status(Code::kInternal, "io_error", "chmod " + dir, errno);
      }
      // Crash recovery: a temp file is by construction never a finished image.
      std::error_code ec;
      for (const auto& e : stdfs::directory_iterator(dir, ec)) {
        if (e.path().filename().string().rfind(kTmpPrefix, 0) == 0) stdfs::remove(e.path(), ec);
      }
    }
    return Status::ok();
  }

  Status create(const std::string& id, uint64_t size_bytes, FsType fs, Encryption encryption) override {
    RETURN_IF_ERROR(validate_id(id, "volume"));
    if (encryption == Encryption::kFscrypt && fs != FsType::kExt4) {
      return Status(Code::kInvalidArgument, "encryption_unsupported",
                    std::string("encrypted volumes are ext4 (fscrypt); ") + fs_name(fs) + " was asked for");
    }
    if (size_bytes < min_volume_size(fs)) {
      return Status(Code::kOutOfRange, "size_too_small",
                    "volume size " + format_size(size_bytes) + " is below the " +
                        format_size(min_volume_size(fs)) + " minimum for " + fs_name(fs));
    }
    if (size_bytes > UINT64_MAX - kBlock) {
      return Status(Code::kOutOfRange, "size_too_large", "volume size is too large");
    }
    const uint64_t size = (size_bytes + kBlock - 1) / kBlock * kBlock;
    const std::string path = vol_path(id);
    if (file_exists(path)) return volume_exists(id);

    auto tmp = TempFile::create(vol_dir_, id);
    if (!tmp) return tmp.status();
    if (::ftruncate(tmp->fd(), static_cast<off_t>(size)) != 0) {
      const int err = errno;
      return errno_status(err == EFBIG ? Code::kOutOfRange : Code::kInternal,
                          err == EFBIG ? "size_too_large" : "io_error",
                          "size volume file to " + format_size(size), err);
    }
    std::vector<std::string> argv =
        fs == FsType::kXfs ? std::vector<std::string>{"mkfs.xfs", "-q", "-f", tmp->path()}
                           : std::vector<std::string>{"mkfs.ext4", "-q", "-F", tmp->path()};
    if (encryption == Encryption::kFscrypt) argv.insert(argv.end() - 1, {"-O", "encrypt"});
    if (auto r = run_command(argv); !r) return r.status();
    // mkfs wrote through its own fd; make the result durable before it gets its final name.
    if (::fsync(tmp->fd()) != 0) {
      return errno_status(Code::kInternal, "io_error", "fsync " + tmp->path(), errno);
    }
    RETURN_IF_ERROR(tmp->close());
    RETURN_IF_ERROR(tmp->commit(path, true, "volume_exists"));
    return fsync_dir(vol_dir_);
  }

  Status remove(const std::string& id) override {
    RETURN_IF_ERROR(validate_id(id, "volume"));
    const std::string path = vol_path(id);
    if (!file_exists(path)) return volume_not_found(id);
    RETURN_IF_ERROR(require_detached(id, path));
    if (::unlink(path.c_str()) != 0) {
      return errno_status(Code::kInternal, "io_error", "remove " + path, errno);
    }
    return fsync_dir(vol_dir_);
  }

  Status snapshot(const std::string& volume_id, const std::string& snapshot_id) override {
    RETURN_IF_ERROR(validate_id(volume_id, "volume"));
    RETURN_IF_ERROR(validate_id(snapshot_id, "snapshot"));
    if (!file_exists(vol_path(volume_id))) return volume_not_found(volume_id);
    if (file_exists(snap_path(snapshot_id))) {
      return Status(Code::kAlreadyExists, "snapshot_exists",
                    "snapshot \"" + snapshot_id + "\" already exists");
    }
    return copy_image(vol_path(volume_id), true, snap_dir_, snapshot_id, "snapshot_exists");
  }

  Status remove_snapshot(const std::string& snapshot_id) override {
    RETURN_IF_ERROR(validate_id(snapshot_id, "snapshot"));
    const std::string path = snap_path(snapshot_id);
    if (!file_exists(path)) return snapshot_not_found(snapshot_id);
    if (::unlink(path.c_str()) != 0) {
      return errno_status(Code::kInternal, "io_error", "remove " + path, errno);
    }
    return fsync_dir(snap_dir_);
  }

  Status clone_volume(const std::string& source_volume_id, const std::string& new_id) override {
    RETURN_IF_ERROR(validate_id(source_volume_id, "volume"));
    RETURN_IF_ERROR(validate_id(new_id, "volume"));
    if (!file_exists(vol_path(source_volume_id))) return volume_not_found(source_volume_id);
    if (file_exists(vol_path(new_id))) return volume_exists(new_id);
    return copy_image(vol_path(source_volume_id), true, vol_dir_, new_id, "volume_exists");
  }

  Status clone_snapshot(const std::string& snapshot_id, const std::string& new_id) override {
    RETURN_IF_ERROR(validate_id(snapshot_id, "snapshot"));
    RETURN_IF_ERROR(validate_id(new_id, "volume"));
    if (!file_exists(snap_path(snapshot_id))) return snapshot_not_found(snapshot_id);
    if (file_exists(vol_path(new_id))) return volume_exists(new_id);
    return copy_image(snap_path(snapshot_id), false, vol_dir_, new_id, "volume_exists");
  }

  Status restore(const std::string& volume_id, const std::string& snapshot_id) override {
    RETURN_IF_ERROR(validate_id(volume_id, "volume"));
    RETURN_IF_ERROR(validate_id(snapshot_id, "snapshot"));
    const std::string path = vol_path(volume_id);
    if (!file_exists(path)) return volume_not_found(volume_id);
    if (!file_exists(snap_path(snapshot_id))) return snapshot_not_found(snapshot_id);
    RETURN_IF_ERROR(require_detached(volume_id, path));
    // Copy beside the volume and rename over it: a crash leaves either the old or the
    // restored contents, never a mix.
    auto tmp = copy_to_temp(snap_path(snapshot_id), false, vol_dir_, volume_id);
    if (!tmp) return tmp.status();
    RETURN_IF_ERROR(tmp->commit(path, false, ""));
    return fsync_dir(vol_dir_);
  }

  Status resize(const std::string& id, uint64_t new_size_bytes, FsType fs) override {
    RETURN_IF_ERROR(validate_id(id, "volume"));
    const std::string path = vol_path(id);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return volume_not_found(id);
    const uint64_t current = static_cast<uint64_t>(st.st_size);
    if (new_size_bytes > UINT64_MAX - kBlock) {
      return Status(Code::kOutOfRange, "size_too_large", "volume size is too large");
    }
    const uint64_t size = (new_size_bytes + kBlock - 1) / kBlock * kBlock;
    if (size < current) {
      return Status(Code::kOutOfRange, "shrink_refused",
                    "volume \"" + id + "\" is " + format_size(current) + "; shrinking to " +
                        format_size(new_size_bytes) + " is not supported");
    }
    const auto dev = find_loop(path);
    const auto points = dev ? mount_points_of(*dev) : std::vector<std::string>{};
    // Asked for the size it has: the filesystem is grown to fill it where that can be done now;
    // where it cannot (xfs unmounted, mounted ext4 without the capability) there is nothing to
    // refuse — every grow that changed the file also grew, or was refused before, the file.
    const bool file_grows = size > current;
    if (fs == FsType::kXfs && points.empty()) {
      if (!file_grows) return Status::ok();
      return Status(Code::kFailedPrecondition, "volume_not_mounted",
                    "xfs can only grow while mounted: mount volume \"" + id + "\" first");
    }
    // Checked before the file grows, so that a refusal changes nothing.
    if (fs == FsType::kExt4 && !points.empty() && !children_have_capability(CAP_SYS_RESOURCE)) {
      if (!file_grows) return Status::ok();
      return Status(Code::kFailedPrecondition, "online_resize_unavailable",
                    "growing a mounted ext4 volume needs CAP_SYS_RESOURCE, which this server "
                    "lacks: unmount volume \"" +
                        id + "\" to resize it offline");
    }

    if (file_grows) {
      UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
      if (!fd) return errno_status(Code::kInternal, "io_error", "open " + path, errno);
      if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
        const int err = errno;
        return errno_status(err == EFBIG ? Code::kOutOfRange : Code::kInternal,
                            err == EFBIG ? "size_too_large" : "io_error",
                            "grow " + path + " to " + format_size(size), err);
      }
      if (::fsync(fd.get()) != 0) {
        return errno_status(Code::kInternal, "io_error", "fsync " + path, errno);
      }
    }
    if (dev) {
      RETURN_IF_ERROR(set_loop_capacity(dev->path));
    }

    Status grown;
    if (fs == FsType::kXfs) {
      // xfs_growfs takes a path: it is checked to be this volume's mount root first.
      auto root = open_mount_of(*dev, points.front());
      grown = root ? run_command({"xfs_growfs", "-d", points.front()}).status() : root.status();
    } else if (!points.empty()) {
      grown = run_command({"resize2fs", dev->path}).status();  // online grow
    } else {
      // Offline resize2fs insists on a fresh full check.
      const std::string target = dev ? dev->path : path;
      auto fsck = run_process({"e2fsck", "-f", "-y", target});
      if (!fsck) return fsck.status();
      if (fsck->exit_code > 1) {
        const std::string said = fsck->out + fsck->err;
        grown = Status(Code::kInternal, "fsck_failed",
                       "e2fsck -f -y " + target + " failed (exit " +
                           std::to_string(fsck->exit_code) +
                           "): " + std::string(trim_trailing_whitespace(said)));
      } else {
        grown = run_command({"resize2fs", target}).status();
      }
    }
    if (!grown.is_ok()) {
      return Status(grown.code(), grown.reason(),
                    "file of volume \"" + id + "\" grew to " + format_size(size) +
                        " but the filesystem did not: " + grown.message());
    }
    return Status::ok();
  }

  Result<std::string> attach(const std::string& id) override {
    RETURN_IF_ERROR(validate_id(id, "volume"));
    const std::string path = vol_path(id);
    if (!file_exists(path)) return volume_not_found(id);
    // Serializes check-then-attach so two concurrent calls cannot attach twice.
    std::lock_guard lock(attach_mu_);
    if (auto dev = find_loop(path)) return dev->path;
    auto out = run_command({"losetup", "--find", "--show", path});
    if (!out) return out.status();
    const std::string device(trim_trailing_whitespace(*out));
    if (device.rfind("/dev/loop", 0) != 0) {
      return Status(Code::kInternal, "attach_failed", "losetup printed \"" + device + "\"");
    }
    return device;
  }

  Status detach(const std::string& id) override {
    RETURN_IF_ERROR(validate_id(id, "volume"));
    const std::string path = vol_path(id);
    if (!file_exists(path)) return volume_not_found(id);
    std::lock_guard lock(attach_mu_);
    const auto dev = find_loop(path);
    if (!dev) return Status::ok();
    if (const auto points = mount_points_of(*dev); !points.empty()) {
      return Status(Code::kFailedPrecondition, "volume_mounted",
                    "volume \"" + id + "\" is mounted at " + points.front() + "; unmount first");
    }
    return run_command({"losetup", "-d", dev->path}).status();
  }

  Result<std::string> mount(const std::string& id, const MountTarget& target, FsType fs,
                            const crypto::SecureBytes* data_key) override {
    RETURN_IF_ERROR(validate_id(id, "volume"));
    if (data_key != nullptr && fs != FsType::kExt4) {
      return Status(Code::kInvalidArgument, "encryption_unsupported", "encrypted volumes are ext4 (fscrypt)");
    }
    const std::string file = vol_path(id);
    if (!file_exists(file)) return volume_not_found(id);
    if (auto dev = find_loop(file)) {
      const auto points = mount_points_of(*dev);
      if (!points.empty()) {
        // Already mounted on this very directory: the idempotent retry.
        if (target.mount_root && devnum_of(target.dev) == dev->devnum) return target.path;
        return Status(Code::kAlreadyExists, "volume_mounted",
                      "volume \"" + id + "\" is already mounted at " + points.front());
      }
    }
    // Stacking over another mount would hide it and confuse the mount-path lookup.
    if (target.mount_root) return mount_path_in_use(target);

    const bool was_attached = find_loop(file).has_value();
    auto dev = attach(id);
    if (!dev) return dev.status();
    auto undo = [&] {
      if (!was_attached) (void)detach(id);  // leave the host as we found it
    };
    // No mount of it here, yet its filesystem is alive: a copy of an earlier mount kept in
    // another mount namespace (an unprivileged user namespace can make one). Mounting now would
    // reuse that filesystem (and put an encrypted volume's key back into its keyring), showing
    // the data to whoever holds the copy.
    if (device_in_use(*dev)) {
      undo();
      return Status(Code::kFailedPrecondition, "volume_busy",
                    "volume \"" + id + "\" is still in use outside this server's mounts (a mount kept "
                    "in another mount namespace, or files open after an unmount); it is not mounted "
                    "again until that ends");
    }
    // The new mount API: the filesystem is made as a detached mount, then moved onto the
    // directory fd — there is no path for anyone to swap.
    UniqueFd fsfd(::fsopen(fs_name(fs), FSOPEN_CLOEXEC));
    if (!fsfd) {
      const int err = errno;
      undo();
      return errno_status(Code::kInternal, "mount_failed", std::string("fsopen ") + fs_name(fs), err);
    }
    bool ok = ::fsconfig(fsfd.get(), FSCONFIG_SET_STRING, "source", dev->c_str(), 0) == 0;
    // xfs refuses a second mount of the same UUID, which every clone and snapshot shares.
    if (ok && fs == FsType::kXfs) ok = ::fsconfig(fsfd.get(), FSCONFIG_SET_FLAG, "nouuid", nullptr, 0) == 0;
    if (ok) ok = ::fsconfig(fsfd.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) == 0;
    if (!ok) {
      const int err = errno;
      undo();
      return errno_status(Code::kFailedPrecondition, "mount_failed",
                          "mount " + *dev + " (" + fs_name(fs) + ")", err);
    }
    UniqueFd mnt(::fsmount(fsfd.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
    if (!mnt) {
      const int err = errno;
      undo();
      return errno_status(Code::kFailedPrecondition, "mount_failed", "fsmount " + *dev, err);
    }
    if (data_key != nullptr) {
      // The filesystem is mounted nowhere but here (checked above), so once `mnt` closes its
      // keyring goes with it: a failure below leaves no key behind.
      auto tree = open_encrypted_tree(mnt, *data_key, id);
      if (!tree) {
        undo();
        return tree.status();
      }
      mnt = std::move(*tree);
    }
    auto placed = place(mnt, target);
    if (!placed) undo();
    return placed;
  }

  Result<std::string> bind(const std::string& id, const MountTarget& staging,
                           const MountTarget& target, bool read_only) override {
    RETURN_IF_ERROR(validate_id(id, "volume"));
    const std::string file = vol_path(id);
    if (!file_exists(file)) return volume_not_found(id);
    const auto dev = find_loop(file);
    // The staging directory must be the root of this volume's own mount: else a caller could
    // publish another tenant's staged volume while naming its own.
    if (!dev || !staging.mount_root || devnum_of(staging.dev) != dev->devnum) {
      return Status(Code::kFailedPrecondition, "volume_not_staged",
                    "volume \"" + id + "\" is not mounted at " + staging.path);
    }
    if (target.mount_root) {
      if (devnum_of(target.dev) == dev->devnum) return target.path;  // idempotent retry
      return mount_path_in_use(target);
    }
    UniqueFd tree(static_cast<int>(::open_tree(staging.dir.get(), "",
                                                OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH)));
    if (!tree) return errno_status(Code::kInternal, "mount_failed", "clone mount " + staging.path, errno);
    if (read_only) {
      mount_attr attr{};
      attr.attr_set = MOUNT_ATTR_RDONLY;
      if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) {
        return errno_status(Code::kInternal, "mount_failed", "make read-only", errno);
      }
    }
    return place(tree, target);
  }

  Status unbind(const std::string& id, MountTarget target) override {
    RETURN_IF_ERROR(validate_id(id, "volume"));
    const std::string file = vol_path(id);
    if (!file_exists(file)) return volume_not_found(id);
    if (!target.mount_root) return Status::ok();  // nothing mounted: the retry after success
    const auto dev = find_loop(file);
    if (!dev || devnum_of(target.dev) != dev->devnum) {
      return Status(Code::kFailedPrecondition, "mount_not_this_volume",
                    "what is mounted at " + target.path + " is not volume \"" + id + "\"");
    }
    // Our own O_PATH fd on the mount's root would make it busy; the parent's fd names it.
    target.dir.reset();
    return unmount_at(target.parent.get(), target.leaf, target.path);
  }

  std::optional<std::string> volume_on_device(dev_t device) override {
    const std::string want = devnum_of(device);
    std::error_code ec;
    for (const auto& entry : stdfs::directory_iterator("/sys/block", ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("loop", 0) != 0) continue;
      if (read_small_file(entry.path().string() + "/dev").value_or("") != want) continue;
      auto backing = read_small_file(entry.path().string() + "/loop/backing_file");
      const std::string prefix = vol_dir_ + "/";
      if (!backing || backing->rfind(prefix, 0) != 0) return std::nullopt;
      std::string base = backing->substr(prefix.size());
      const std::string suffix = kImgSuffix;
      if (base.size() <= suffix.size() || base.compare(base.size() - suffix.size(), suffix.size(), suffix) != 0) {
        return std::nullopt;
      }
      return base.substr(0, base.size() - suffix.size());
    }
    return std::nullopt;
  }

  Status unmount(const std::string& id, Encryption encryption) override {
    RETURN_IF_ERROR(validate_id(id, "volume"));
    const std::string file = vol_path(id);
    if (!file_exists(file)) return volume_not_found(id);
    const auto dev = find_loop(file);
    if (!dev) return Status::ok();
    // An encrypted volume: the filesystem's root is held (a mount of our own, detached) across
    // the unmounts so that the key can be removed once no mount shows the data; if this process
    // dies first, the kernel closes that mount and the keyring goes with the filesystem. The
    // key is the one the root's data directory names. The filesystem may be alive with no mount
    // in this namespace (a copy in another mount namespace, or files still open after an
    // earlier unmount reported volume_busy): its key is removed then too.
    std::optional<crypto::fscrypt::KeyIdentifier> key;
    UniqueFd fs_mount, fs_root;
    if (encryption == Encryption::kFscrypt && (!mount_points_of(*dev).empty() || device_in_use(dev->path))) {
      ASSIGN_OR_RETURN(fs_mount, open_fs_root(dev->path));
      fs_root.reset(::openat(fs_mount.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!fs_root) return errno_status(Code::kInternal, "mount_failed", "open the root of volume " + id, errno);
      // Closed before the key is removed: an open fd on the directory would keep the key busy.
      UniqueFd data(::openat(fs_root.get(), kEncryptedDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (data) {
        ASSIGN_OR_RETURN(std::optional<crypto::fscrypt::Policy> policy, crypto::fscrypt::get_policy(data.get()));
        if (policy) key = policy->key;
      } else if (errno != ENOENT) {
        return errno_status(Code::kInternal, "io_error", "open the data directory of volume " + id, errno);
      }
    }
    // Newest first, in case the same device is mounted more than once. Each point is opened
    // without following symlinks and checked to be this volume's mount before it is unmounted
    // through the fd: a path swapped since mountinfo was read unmounts nothing else. A point
    // renamed meanwhile is looked up afresh (a few times, then the caller is told).
    Status last;
    for (int attempt = 0; attempt < 5; ++attempt) {
      last = Status::ok();
      auto points = mount_points_of(*dev);
      for (auto it = points.rbegin(); it != points.rend() && last.is_ok(); ++it) {
        const auto slash = it->rfind('/');
        const std::string parent = slash == 0 ? "/" : it->substr(0, slash);
        const std::string leaf = it->substr(slash + 1);
        UniqueFd pfd(open_no_symlinks(parent));
        struct statx stx {};
        if (!pfd || leaf.empty() ||
            ::statx(pfd.get(), leaf.c_str(), AT_SYMLINK_NOFOLLOW, STATX_INO, &stx) != 0 ||
            devnum_of(makedev(stx.stx_dev_major, stx.stx_dev_minor)) != dev->devnum ||
            (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) == 0) {
          last = Status(Code::kFailedPrecondition, "mount_path_changed",
                        "mount point " + *it + " no longer leads to volume \"" + id + "\"");
          break;
        }
        RETURN_IF_ERROR(unmount_at(pfd.get(), leaf, *it));
      }
      if (last.is_ok()) break;
    }
    if (!last.is_ok() || !key) return last;
    auto removed = crypto::fscrypt::remove_key(fs_root.get(), *key, crypto::fscrypt::RemoveScope::kAllUsers);
    if (!removed && removed.status().reason() == "fscrypt_key_absent") return Status::ok();
    if (!removed) return removed.status();
    if (removed->files_busy) {
      return Status(Code::kFailedPrecondition, "volume_busy",
                    "volume \"" + id + "\" was unmounted but files of it are still open, so its key "
                    "stays usable for them until they are closed; unmount again then");
    }
    return Status::ok();
  }

  // Whether a filesystem (a superblock, in any mount namespace) holds `device`: an exclusive
  // open fails then.
  static bool device_in_use(const std::string& device) {
    UniqueFd fd(::open(device.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
    return !fd && errno == EBUSY;
  }

  // A detached mount of the filesystem on `device` (already mounted: the same superblock).
  static Result<UniqueFd> open_fs_root(const std::string& device) {
    UniqueFd fsfd(::fsopen("ext4", FSOPEN_CLOEXEC));
    if (!fsfd) return errno_status(Code::kInternal, "mount_failed", "fsopen ext4", errno);
    if (::fsconfig(fsfd.get(), FSCONFIG_SET_STRING, "source", device.c_str(), 0) != 0 ||
        ::fsconfig(fsfd.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
      return errno_status(Code::kInternal, "mount_failed", "open the filesystem of " + device, errno);
    }
    UniqueFd mnt(::fsmount(fsfd.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
    if (!mnt) return errno_status(Code::kInternal, "mount_failed", "fsmount " + device, errno);
    return mnt;
  }

  Result<VolumeStatus> status(const std::string& id) override {
    RETURN_IF_ERROR(validate_id(id, "volume"));
    const std::string file = vol_path(id);
    VolumeStatus vs;
    struct stat st;
    if (::stat(file.c_str(), &st) != 0) {
      if (errno == ENOENT) return vs;
      return errno_status(Code::kInternal, "io_error", "stat " + file, errno);
    }
    vs.exists = true;
    vs.size_bytes = static_cast<uint64_t>(st.st_size);
    vs.allocated_bytes = static_cast<uint64_t>(st.st_blocks) * 512;
    if (auto dev = find_loop(file)) {
      vs.device = dev->path;
      if (auto points = mount_points_of(*dev); !points.empty()) {
        vs.mount_path = points.front();
        struct statvfs sv;
        if (auto root = open_mount_of(*dev, vs.mount_path); root && ::fstatvfs(root->get(), &sv) == 0) {
          vs.fs_total_bytes = static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize;
          vs.fs_used_bytes = static_cast<uint64_t>(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
        }
      }
    }
    return vs;
  }

  Result<std::vector<std::string>> volume_ids() override { return list_ids(vol_dir_); }

  Result<Capacity> capacity() override {
    struct statvfs sv {};
    if (::statvfs(vol_dir_.c_str(), &sv) != 0) {
      return errno_status(Code::kInternal, "io_error", "statvfs " + vol_dir_, errno);
    }
    return Capacity{.available_bytes = static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize,
                    .total_bytes = static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize};
  }
  Result<std::vector<std::string>> snapshot_ids() override { return list_ids(snap_dir_); }

  bool snapshot_exists(const std::string& snapshot_id) override {
    return validate_id(snapshot_id, "snapshot").is_ok() && file_exists(snap_path(snapshot_id));
  }

 private:
  std::string vol_path(const std::string& id) const { return vol_dir_ + "/" + id + kImgSuffix; }
  std::string snap_path(const std::string& id) const { return snap_dir_ + "/" + id + kImgSuffix; }

  static Status volume_not_found(const std::string& id) {
    return Status(Code::kNotFound, "volume_not_found", "volume \"" + id + "\" does not exist");
  }
  static Status snapshot_not_found(const std::string& id) {
    return Status(Code::kNotFound, "snapshot_not_found", "snapshot \"" + id + "\" does not exist");
  }
  static Status volume_exists(const std::string& id) {
    return Status(Code::kAlreadyExists, "volume_exists", "volume \"" + id + "\" already exists");
  }

  Status require_detached(const std::string& id, const std::string& path) {
    const auto dev = find_loop(path);
    if (!dev) return Status::ok();
    const auto points = mount_points_of(*dev);
    return Status(
        Code::kFailedPrecondition, "volume_in_use",
        "volume \"" + id + "\" is " +
            (points.empty() ? "attached to " + dev->path : "mounted at " + points.front()) +
            "; unmount and detach it first");
  }

  // Copies `src` into a fresh temp file in `dir`, fsync'd and closed. For a live volume the
  // copy is made consistent first: a mounted filesystem is frozen for the duration, an attached
  // device has its buffers flushed into the backing file.
  Result<TempFile> copy_to_temp(const std::string& src, bool live_volume, const std::string& dir,
                                const std::string& id) {
    auto tmp = TempFile::create(dir, id);
    if (!tmp) return tmp.status();
    std::unique_ptr<FreezeGuard> frozen;
    if (live_volume) {
      if (auto dev = find_loop(src)) {
        if (auto points = mount_points_of(*dev); !points.empty()) {
          auto root = open_mount_of(*dev, points.front());
          if (!root) return root.status();
          auto guard = FreezeGuard::freeze(std::move(*root), points.front());
          if (!guard) return guard.status();
          frozen = std::move(*guard);
        } else {
          UniqueFd dfd(::open(dev->path.c_str(), O_RDONLY | O_CLOEXEC));
          if (!dfd || ::fsync(dfd.get()) != 0) {
            return errno_status(Code::kInternal, "io_error", "flush " + dev->path, errno);
          }
        }
      }
    }
    UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return errno_status(Code::kInternal, "io_error", "open " + src, errno);
    struct stat st;
    if (::fstat(in.get(), &st) != 0) {
      return errno_status(Code::kInternal, "io_error", "stat " + src, errno);
    }
    if (Status s = clone_or_sparse_copy(in.get(), tmp->fd(), static_cast<uint64_t>(st.st_size));
        !s.is_ok()) {
      return Status(s.code(), s.reason(), "copy " + src + ": " + s.message());
    }
    frozen.reset();  // the copy is complete in our page cache; thaw before the slow fsync
    if (::fsync(tmp->fd()) != 0) {
      return errno_status(Code::kInternal, "io_error", "fsync " + tmp->path(), errno);
    }
    RETURN_IF_ERROR(tmp->close());
    return std::move(*tmp);
  }

  Status copy_image(const std::string& src, bool live_volume, const std::string& dir,
                    const std::string& id, const std::string& exists_reason) {
    auto tmp = copy_to_temp(src, live_volume, dir, id);
    if (!tmp) return tmp.status();
    if (Status s = tmp->commit(dir + "/" + id + kImgSuffix, true, exists_reason); !s.is_ok()) {
      return s;
    }
    return fsync_dir(dir);
  }

  static Result<std::vector<std::string>> list_ids(const std::string& dir) {
    std::vector<std::string> ids;
    std::error_code ec;
    for (const auto& e : stdfs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      const size_t n = std::char_traits<char>::length(kImgSuffix);
      if (name.size() <= n || name.compare(name.size() - n, n, kImgSuffix) != 0) continue;
      std::string id = name.substr(0, name.size() - n);
      if (validate_id(id, "volume").is_ok()) ids.push_back(std::move(id));
    }
    if (ec) return Status(Code::kInternal, "io_error", "list " + dir + ": " + ec.message());
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  const std::string root_;
  const std::string vol_dir_;
  const std::string snap_dir_;
  std::mutex attach_mu_;
};

}  // namespace

Result<std::unique_ptr<VolumeDriver>> open_local_driver(const std::string& root) {
  if (root.empty() || root[0] != '/') {
    return Status(Code::kInvalidArgument, "bad_config",
                  "driver root \"" + root + "\" must be an absolute path");
  }
  if (::mkdir(root.c_str(), 0700) != 0 && errno != EEXIST) {
    return errno_status(Code::kInternal, "io_error", "mkdir " + root, errno);
  }
  // Canonical, because the kernel reports loop backing files by their resolved path.
  std::error_code ec;
  const stdfs::path canon = stdfs::canonical(root, ec);
  if (ec) return Status(Code::kInternal, "io_error", "resolve " + root + ": " + ec.message());
  const HostCheck host = check_host();
  RETURN_IF_ERROR(host.required);
  for (const auto& tool : host.optional_missing) {
    spdlog::warn("{} not found: XFS volumes cannot be created or grown (install xfsprogs)", tool);
  }
  auto driver = std::make_unique<LocalDriver>(canon.string());
  RETURN_IF_ERROR(driver->init());
  return std::unique_ptr<VolumeDriver>(std::move(driver));
}

}  // namespace volguard::driver
