// The kernel's filesystem encryption (fscrypt, <linux/fscrypt.h>) as volguard uses it for
// encrypted volumes: a policy v2 directory (AES-256-XTS contents, AES-256-CTS names, names
// padded to 32 bytes) whose 64-byte master key is in the filesystem's keyring only while the
// volume is mounted. The filesystem must have been made with the encrypt feature
// (`mkfs.ext4 -O encrypt`).
//
// What fscrypt leaves visible to anyone with the image or root on the node while the key is
// absent: file sizes, the number of files and directories and the tree's shape, timestamps,
// permissions, ownership, extended attributes (names and values), the filesystem's free space,
// and the lengths of names and symlink targets in steps of 32 bytes. What it hides: file
// contents, file and directory names, symlink targets.
//
// Each call takes an fd the caller opened (the mount's root, the directory to encrypt), so that
// the check of what was opened and the ioctl act on the same object. Errors name the ioctl, the
// fd's path and the errno (name and text); their reasons:
//   fscrypt_unsupported       EOPNOTSUPP/ENOTTY: no encrypt feature, or not a filesystem with
//                             fscrypt (FAILED_PRECONDITION)
//   fscrypt_not_empty         ENOTEMPTY: set_policy on a non-empty directory (FAILED_PRECONDITION)
//   fscrypt_policy_conflict   EEXIST: the directory has another policy (FAILED_PRECONDITION)
//   fscrypt_key_absent        ENOKEY: the key is not in the keyring (FAILED_PRECONDITION)
//   fscrypt_not_permitted     EACCES/EPERM: the process lacks the right (FAILED_PRECONDITION)
//   fscrypt_invalid           EINVAL/ENOTDIR and the like (INVALID_ARGUMENT)
//   fscrypt_ioctl_failed      anything else (INTERNAL)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"
#include "crypto/secure_bytes.h"

namespace volguard::crypto::fscrypt {

// AES-256-XTS takes a 512-bit key, and a v2 policy's master key must be at least that long.
inline constexpr size_t kKeySize = 64;

// The kernel's name for a master key (16 bytes, a hash of the key derived by HKDF): not
// secret, fine in logs and in the store.
struct KeyIdentifier {
  std::array<unsigned char, 16> bytes{};

  std::string hex() const;
  friend bool operator==(const KeyIdentifier&, const KeyIdentifier&) = default;
};

// A directory's v2 policy (the FSCRYPT_MODE_* and FSCRYPT_POLICY_FLAGS_* numbers).
struct Policy {
  uint8_t contents_mode = 0;
  uint8_t filenames_mode = 0;
  uint8_t flags = 0;
  KeyIdentifier key;

  // The policy set_policy sets: AES-256-XTS, AES-256-CTS, FSCRYPT_POLICY_FLAGS_PAD_32.
  static Policy volguard(const KeyIdentifier& key);
  friend bool operator==(const Policy&, const Policy&) = default;
};

// FS_IOC_ADD_ENCRYPTION_KEY (key spec type IDENTIFIER) on the filesystem's root: adds `raw`
// (kKeySize bytes; INVALID_ARGUMENT `fscrypt_invalid` otherwise) to the filesystem's keyring
// for this user and returns the identifier the kernel computed. Adding a key that is already
// there succeeds (and adds this user's claim to it).
Result<KeyIdentifier> add_key(int fs_root_fd, const SecureBytes& raw);

// FS_IOC_SET_ENCRYPTION_POLICY with Policy::volguard(key) on an empty directory. The key must
// have been added (or the caller must have CAP_FOWNER). Setting the same policy again is OK.
Status set_policy(int empty_dir_fd, const KeyIdentifier& key);

// FS_IOC_GET_ENCRYPTION_POLICY_EX: the v2 policy of the file or directory, nullopt when it is
// not encrypted. A v1 policy (never set by volguard) is FAILED_PRECONDITION `fscrypt_unsupported`.
Result<std::optional<Policy>> get_policy(int fd);

enum class KeyState {
  kAbsent,               // not in the keyring
  kPresent,              // usable
  kIncompletelyRemoved,  // removed, but files still open with it keep it in use
};

struct KeyStatus {
  KeyState state = KeyState::kAbsent;
  bool added_by_self = false;  // this user holds a claim to it
  uint32_t user_count = 0;     // users holding claims
};

// FS_IOC_GET_ENCRYPTION_KEY_STATUS on the filesystem's root.
Result<KeyStatus> key_status(int fs_root_fd, const KeyIdentifier& key);

enum class RemoveScope {
  kThisUser,  // FS_IOC_REMOVE_ENCRYPTION_KEY: drops this user's claim
  kAllUsers,  // FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS: drops every claim (CAP_SYS_ADMIN)
};

// The kernel's report of a removal that succeeded only in part.
struct RemoveOutcome {
  // Files or directories protected by the key are still open (an fd on the encrypted
  // directory itself counts): the key stays usable for them (state kIncompletelyRemoved);
  // remove again once they are closed to finish.
  bool files_busy = false;
  // Other users still hold claims: only this user's claim was dropped, the key stays.
  bool other_users = false;

  bool complete() const { return !files_busy && !other_users; }
};

// Removes the key from the filesystem's keyring and evicts the inodes that used it (their
// cached plaintext pages are dropped). A key that is not there (already removed, e.g. by a
// run that crashed after removing it) is FAILED_PRECONDITION `fscrypt_key_absent`, which an
// idempotent caller treats as done.
Result<RemoveOutcome> remove_key(int fs_root_fd, const KeyIdentifier& key,
                                 RemoveScope scope = RemoveScope::kThisUser);

}  // namespace volguard::crypto::fscrypt
