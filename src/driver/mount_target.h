// Mount targets resolved exactly once. A path is checked against the allowed roots lexically,
// then opened beneath the root's fd with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS); every later step (mount, bind, unmount) acts on the O_PATH fd, never
// on the name again, so swapping a symlink or renaming a directory after the check cannot move
// the mount outside the roots.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "driver/sys.h"

namespace volguard::driver {

struct MountTarget {
  UniqueFd dir;       // O_PATH | O_DIRECTORY of the resolved directory
  // Its parent (O_PATH) and its name in it: an unmount goes through "<parent fd>/<leaf>", since
  // an fd inside the mount itself would keep it busy.
  UniqueFd parent;
  std::string leaf;
  std::string path;   // the path as resolved (normalised, beneath `root`)
  std::string root;   // the mount root it lies under
  dev_t dev = 0;      // st_dev of the directory: the filesystem it lies on
  bool mount_root = false;  // the directory is the root of a mount (something is mounted here)
  bool created = false;     // the resolver made the last component (remove it if the act fails)
};

struct ResolveOptions {
  bool create_last = false;  // mkdir the last component (beneath the root) when it is missing
  bool require_empty = false;  // refuse a directory with entries (a mount must not hide files)
  // Decides on the filesystem the target lies in (the parent's st_dev) before the leaf is opened
  // or made: a caller who may not act there gets its refusal without a directory being created
  // or an fd pinning someone else's mount.
  std::function<Status(dev_t parent_dev)> check_parent;
};

// Removes the directory the resolver made for `target` (created == true), if it is still empty.
void remove_created(const MountTarget& target);

// INVALID_ARGUMENT `invalid_path` for a relative or unnormalised path; PERMISSION_DENIED
// `mount_path_forbidden` for any path not strictly beneath a root — decided on the text alone,
// so the answer is the same whether the path exists, is a file or is unreadable. Beneath a
// root: NOT_FOUND `mount_path_not_found`, INVALID_ARGUMENT `mount_path_symlink` (a symlink or
// magic link on the way), `mount_path_not_directory`, FAILED_PRECONDITION `mount_path_not_empty`.
[[nodiscard]] Result<MountTarget> resolve_mount_target(const std::vector<std::string>& roots,
                                                       const std::string& path,
                                                       const ResolveOptions& options);

// Where an fd's file is right now ("/proc/self/fd/N" read back): the path actually used.
[[nodiscard]] Result<std::string> path_of_fd(int fd);

// "/proc/self/fd/N": hands an fd to a syscall that only takes paths (umount2).
std::string fd_path(int fd);

// Unmounts what is mounted on `leaf` in the directory `parent_fd`, never following a symlink:
// the mount checked through that same parent is the one taken down.
[[nodiscard]] Status unmount_at(int parent_fd, const std::string& leaf, const std::string& what);

}  // namespace volguard::driver
