// Storage drivers: real volumes. The driver knows nothing of identity or policy; the service
// calls it only after every check has passed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/size.h"
#include "common/status.h"
#include "driver/mount_target.h"

namespace volguard::crypto {
class SecureBytes;
}

namespace volguard::driver {

enum class FsType { kExt4, kXfs };

// How a volume's data is kept on its disk. fscrypt (crypto/fscrypt.h) is the scheme this kernel
// allows: it has no device-mapper, so no dm-crypt/LUKS2. A LUKS2 scheme would be another value
// here and another branch of create (luksFormat), mount (open with the key) and unmount (close),
// behind the same calls: the service only ever hands the driver a data key.
//
// kFscrypt: the image is made with `mkfs.ext4 -O encrypt` (ext4 only). The filesystem's root is
// never shown: mount() adds the volume's 64-byte key to the filesystem's keyring, encrypts (on
// first mount) or checks the directory `data` with a v2 policy for that key, and mounts only
// that directory at the target, so everything a tenant writes is encrypted (the root itself
// cannot be: e2fsck needs lost+found in clear). unmount() removes the key from the keyring
// (every user's claim) once the last mount is gone, so while unmounted the data is ciphertext
// even to root on the node.
enum class Encryption { kNone, kFscrypt };
const char* encryption_name(Encryption e);  // "none" | "fscrypt"
// A record's scheme ("" plain, "fscrypt"): any other non-empty value counts as encrypted, so
// that a name this build does not know is never handled as plain.
inline Encryption record_encryption(const std::string& scheme) {
  return scheme.empty() ? Encryption::kNone : Encryption::kFscrypt;
}
const char* fs_name(FsType fs);                 // "ext4" | "xfs"
Result<FsType> parse_fs(const std::string& s);  // INVALID_ARGUMENT names the value
// The smallest volume mkfs makes of `fs` (xfs needs 300M): the driver refuses less, the CSI
// controller provisions at least this.
uint64_t min_volume_size(FsType fs);

// The one size syntax ("1G", "512M", "10GiB", "1073741824": powers of 1024), defined in
// common/size.h and used by the driver's callers as driver::parse_size / driver::format_size.
using volguard::format_size;
using volguard::parse_size;

// What the host says about a volume right now (derived from the system, not remembered).
struct VolumeStatus {
  bool exists = false;
  uint64_t size_bytes = 0;       // apparent file size
  uint64_t allocated_bytes = 0;  // blocks actually used by the sparse file
  std::string device;            // "/dev/loopN" when attached, else ""
  std::string mount_path;        // where it is mounted, else ""
  uint64_t fs_used_bytes = 0;    // from statvfs when mounted
  uint64_t fs_total_bytes = 0;
};

class VolumeDriver {
 public:
  virtual ~VolumeDriver() = default;

  // Sparse file of size_bytes, formatted with the real mkfs. ALREADY_EXISTS if the id exists;
  // INVALID_ARGUMENT `encryption_unsupported` for an encrypted xfs volume.
  virtual Status create(const std::string& id, uint64_t size_bytes, FsType fs, Encryption encryption) = 0;
  // FAILED_PRECONDITION while attached or mounted. NOT_FOUND if absent.
  virtual Status remove(const std::string& id) = 0;
  // Point-in-time copy of a volume (fsfreeze while mounted; reflink where possible, else a
  // sparse-aware copy).
  virtual Status snapshot(const std::string& volume_id, const std::string& snapshot_id) = 0;
  virtual Status remove_snapshot(const std::string& snapshot_id) = 0;
  // New volume `new_id` from a volume (frozen while copied if mounted) or from a snapshot.
  virtual Status clone_volume(const std::string& source_volume_id, const std::string& new_id) = 0;
  virtual Status clone_snapshot(const std::string& snapshot_id, const std::string& new_id) = 0;
  // Volume contents back to the snapshot; FAILED_PRECONDITION while attached or mounted.
  virtual Status restore(const std::string& volume_id, const std::string& snapshot_id) = 0;
  // Grow only (OUT_OF_RANGE if smaller); the filesystem is then grown to fill the file — also
  // when the file already had the size (a grow that stopped between file and filesystem is
  // finished by asking again).
  virtual Status resize(const std::string& id, uint64_t new_size_bytes, FsType fs) = 0;
  // Loop device for the volume; idempotent (returns the existing one).
  virtual Result<std::string> attach(const std::string& id) = 0;
  // FAILED_PRECONDITION while mounted; OK if not attached.
  virtual Status detach(const std::string& id) = 0;
  // Attaches if needed, then mounts the volume on `target` — the directory fd resolved once by
  // resolve_mount_target, never its name — and returns the path it was actually mounted at.
  // ALREADY_EXISTS if mounted elsewhere; OK if already mounted at `target`; FAILED_PRECONDITION
  // `volume_busy` if its filesystem is alive with no mount here (kept by another namespace);
  // FAILED_PRECONDITION
  // `mount_path_in_use` if something is mounted there already, `mount_path_changed` (and no
  // mount is left) if the directory moved away from target.path before the mount was made.
  // `data_key`: null for a plain volume; an encrypted volume's 64-byte fscrypt key, used for
  // this call only (see Encryption). A key that does not fit the volume's data directory
  // (another key's policy, or a directory left unencrypted) is FAILED_PRECONDITION
  // `key_mismatch`, and nothing stays mounted or in the keyring.
  virtual Result<std::string> mount(const std::string& id, const MountTarget& target, FsType fs,
                                    const crypto::SecureBytes* data_key) = 0;
  // A second view of the mounted volume at `target` (CSI publish): `staging` must be the root
  // of this volume's mount. Read-only binds are made read-only before they become visible.
  virtual Result<std::string> bind(const std::string& id, const MountTarget& staging,
                                   const MountTarget& target, bool read_only) = 0;
  // Removes a bind made by bind(); OK if nothing is mounted at `target`, FAILED_PRECONDITION
  // `mount_not_this_volume` when what is mounted there is not this volume.
  virtual Status unbind(const std::string& id, MountTarget target) = 0;
  // The volume whose filesystem is the device `dev` (st_dev of a file on it), if any.
  virtual std::optional<std::string> volume_on_device(dev_t dev) = 0;
  // OK if not mounted. Leaves the device attached. For an encrypted volume the key leaves the
  // keyring with the last mount (no key is needed to unmount: the policy names it).
  // `encryption`: the volume's scheme (its record's), so that the key is removed even when no
  // mount of it is left in this namespace to say which it is.
  virtual Status unmount(const std::string& id, Encryption encryption) = 0;
  virtual Result<VolumeStatus> status(const std::string& id) = 0;
  // Ids present on disk (for crash recovery).
  virtual Result<std::vector<std::string>> volume_ids() = 0;
  // Free and total bytes of the filesystem that holds the volumes.
  struct Capacity {
    uint64_t available_bytes = 0;
    uint64_t total_bytes = 0;
  };
  virtual Result<Capacity> capacity() = 0;
  virtual Result<std::vector<std::string>> snapshot_ids() = 0;
  virtual bool snapshot_exists(const std::string& snapshot_id) = 0;
};

// Volumes as sparse files under `root`/volumes, snapshots under `root`/snapshots.
Result<std::unique_ptr<VolumeDriver>> open_local_driver(const std::string& root);

}  // namespace volguard::driver
