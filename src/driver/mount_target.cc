#include "driver/mount_target.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

namespace volguard::driver {

namespace {

namespace stdfs = std::filesystem;

// glibc 2.36 has no openat2 wrapper.
int openat2_beneath(int dirfd, const std::string& rel, uint64_t flags) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  for (;;) {
    long fd = ::syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how);
    if (fd >= 0 || errno != EAGAIN) return static_cast<int>(fd);
    // EAGAIN: a rename raced the lookup (RESOLVE_BENEATH is strict about it); try again.
  }
}

// A directory beneath `dirfd`, as an O_PATH fd, or -1 with errno. Opened without O_DIRECTORY so
// that a symlink as the last component is handed back as itself (O_PATH | O_NOFOLLOW) and then
// classified from that fd: ELOOP for a link, ENOTDIR for anything else that is not a directory
// (with O_DIRECTORY the kernel says ENOTDIR for both, and a link must be named as one).
int open_dir_beneath(int dirfd, const std::string& rel) {
  UniqueFd fd(openat2_beneath(dirfd, rel, O_PATH | O_NOFOLLOW));
  if (!fd) return -1;
  struct statx stx {};
  if (::statx(fd.get(), "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx) != 0) {
    const int err = errno;
    fd.reset();
    errno = err;
    return -1;
  }
  if (!S_ISDIR(stx.stx_mode)) {
    fd.reset();
    errno = S_ISLNK(stx.stx_mode) ? ELOOP : ENOTDIR;
    return -1;
  }
  return fd.release();
}

Status invalid_path(const std::string& path, const std::string& why) {
  return Status(Code::kInvalidArgument, "invalid_path", "path: '" + path + "' " + why);
}

// The one refusal for anything outside the roots: same code, reason and text for a missing
// path, a file, a directory or an unreadable one — the caller learns nothing of the host.
Status forbidden(const std::string& path, const std::vector<std::string>& roots) {
  std::string list;
  for (const auto& r : roots) list += (list.empty() ? "" : ", ") + r;
  return Status(Code::kPermissionDenied, "mount_path_forbidden",
                "path: '" + path + "' is not under a mount root (" + list + ")");
}

Status beneath_error(const std::string& path, int err) {
  switch (err) {
    case ENOENT:
      return Status(Code::kNotFound, "mount_path_not_found", "path: '" + path + "' does not exist");
    case ELOOP:
      return Status(Code::kInvalidArgument, "mount_path_symlink",
                    "path: '" + path + "' passes through a symbolic link; give the real path");
    case ENOTDIR:
      return Status(Code::kInvalidArgument, "mount_path_not_directory",
                    "path: '" + path + "' is not a directory");
    case EXDEV:
      return Status(Code::kInvalidArgument, "mount_path_symlink",
                    "path: '" + path + "' escapes its mount root");
    default:
      return errno_status(Code::kInternal, "io_error", "resolve " + path, err);
  }
}

bool directory_is_empty(int opath_fd, Status* error) {
  UniqueFd fd(::openat(opath_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    *error = errno_status(Code::kInternal, "io_error", "open directory", errno);
    return false;
  }
  DIR* dir = ::fdopendir(fd.get());
  if (dir == nullptr) {
    *error = errno_status(Code::kInternal, "io_error", "read directory", errno);
    return false;
  }
  (void)fd.release();  // closedir closes it
  bool empty = true;
  while (dirent* e = ::readdir(dir)) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") {
      empty = false;
      break;
    }
  }
  ::closedir(dir);
  return empty;
}

}  // namespace

void remove_created(const MountTarget& target) {
  if (!target.created || !target.parent) return;
  UniqueFd parent_dir(::openat(target.parent.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (parent_dir) (void)::unlinkat(parent_dir.get(), target.leaf.c_str(), AT_REMOVEDIR);  // only if empty
}

std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

Status unmount_at(int parent_fd, const std::string& leaf, const std::string& what) {
  const std::string via = fd_path(parent_fd) + "/" + leaf;
  if (::umount2(via.c_str(), UMOUNT_NOFOLLOW) != 0) {
    const int err = errno;
    return errno_status(err == EBUSY ? Code::kFailedPrecondition : Code::kInternal,
                        err == EBUSY ? "volume_busy" : "unmount_failed", "unmount " + what, err);
  }
  return Status::ok();
}

Result<std::string> path_of_fd(int fd) {
  char buf[4096];
  ssize_t n = ::readlink(fd_path(fd).c_str(), buf, sizeof buf - 1);
  if (n < 0) return errno_status(Code::kInternal, "io_error", "readlink " + fd_path(fd), errno);
  return std::string(buf, static_cast<size_t>(n));
}

Result<MountTarget> resolve_mount_target(const std::vector<std::string>& roots,
                                         const std::string& path, const ResolveOptions& options) {
  // 1. Text only: absolute, normalised, strictly beneath a root.
  if (path.empty() || path[0] != '/') return invalid_path(path, "must be absolute");
  std::string norm = stdfs::path(path).lexically_normal().string();
  while (norm.size() > 1 && norm.back() == '/') norm.pop_back();
  std::string given = path;
  while (given.size() > 1 && given.back() == '/') given.pop_back();
  if (norm != given) return invalid_path(path, "must be normalised (no '.', '..' or '//')");
  std::string best_root;
  for (const auto& r : roots) {
    std::string root = stdfs::path(r).lexically_normal().string();
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    if (norm.size() > root.size() && norm.compare(0, root.size(), root) == 0 &&
        (norm[root.size()] == '/' || root == "/") && root.size() > best_root.size()) {
      best_root = root;
    }
  }
  if (best_root.empty()) return forbidden(path, roots);

  // 2. The root itself is the administrator's (its own path may hold symlinks, e.g. /var/run);
  //    everything beneath it is resolved from its fd with no symlinks at all.
  UniqueFd root_fd(::open(best_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd) return forbidden(path, roots);  // a root that is not there admits nothing
  std::string rel = norm.substr(best_root == "/" ? 1 : best_root.size() + 1);

  MountTarget target;
  target.root = best_root;
  target.path = norm;
  // Parent first, then the leaf from the parent's fd: the pair is what unmounts use later.
  const auto slash = rel.rfind('/');
  const std::string parent_rel = slash == std::string::npos ? "" : rel.substr(0, slash);
  target.leaf = slash == std::string::npos ? rel : rel.substr(slash + 1);
  target.parent = UniqueFd(parent_rel.empty() ? ::fcntl(root_fd.get(), F_DUPFD_CLOEXEC, 0)
                                              : open_dir_beneath(root_fd.get(), parent_rel));
  if (!target.parent) return beneath_error(path, errno);
  if (options.check_parent) {
    struct statx pstx {};
    if (::statx(target.parent.get(), "", AT_EMPTY_PATH, STATX_TYPE, &pstx) != 0) {
      return errno_status(Code::kInternal, "io_error", "stat parent of " + path, errno);
    }
    if (Status s = options.check_parent(makedev(pstx.stx_dev_major, pstx.stx_dev_minor)); !s.is_ok()) {
      return s;
    }
  }
  int fd = open_dir_beneath(target.parent.get(), target.leaf);
  if (fd < 0 && errno == ENOENT && options.create_last) {
    // Only the last component is made, in its parent resolved the same way.
    UniqueFd parent_dir(::openat(target.parent.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!parent_dir) return beneath_error(path, errno);
    if (::mkdirat(parent_dir.get(), target.leaf.c_str(), 0750) == 0) {
      target.created = true;
    } else if (errno != EEXIST) {
      return errno_status(Code::kInternal, "io_error", "mkdir " + path, errno);
    }
    fd = open_dir_beneath(target.parent.get(), target.leaf);
  }
  if (fd < 0) return beneath_error(path, errno);
  target.dir = UniqueFd(fd);

  struct statx stx {};
  if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_INO, &stx) != 0) {
    return errno_status(Code::kInternal, "io_error", "stat " + path, errno);
  }
  if (!S_ISDIR(stx.stx_mode)) return beneath_error(path, ENOTDIR);
  target.dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  target.mount_root = (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0 &&
                      (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  // A mount root is left to the driver: this volume already there is an idempotent retry,
  // anything else is refused as in use.
  if (options.require_empty && !target.mount_root) {
    Status error;
    bool empty = directory_is_empty(fd, &error);
    if (!error.is_ok()) return error;
    if (!empty) {
      return Status(Code::kFailedPrecondition, "mount_path_not_empty",
                    "path: '" + path + "' is not empty; a mount would hide its files");
    }
  }
  return target;
}

}  // namespace volguard::driver
