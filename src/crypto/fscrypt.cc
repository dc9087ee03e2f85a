#include "crypto/fscrypt.h"

#include <linux/fscrypt.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "common/hex.h"

namespace volguard::crypto::fscrypt {

namespace {

static_assert(sizeof(KeyIdentifier::bytes) == FSCRYPT_KEY_IDENTIFIER_SIZE);
static_assert(kKeySize <= FSCRYPT_MAX_KEY_SIZE);

// The path behind `fd`, for messages (best effort: "fd N" when /proc cannot say).
std::string describe_fd(int fd) {
  char buf[4096];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof buf) return "fd " + std::to_string(fd);
  return std::string(buf, static_cast<size_t>(n));
}

// "<IOCTL> on <path>: <strerror> (<ENAME>)" with the code and reason the errno stands for.
Status ioctl_error(const char* ioctl_name, int fd, int err) {
  Code code = Code::kInternal;
  const char* reason = "fscrypt_ioctl_failed";
  std::string hint;
  switch (err) {
    case EOPNOTSUPP:
    case ENOTTY:
      code = Code::kFailedPrecondition;
      reason = "fscrypt_unsupported";
      hint =
          " — the filesystem has no encryption support (ext4 needs `mkfs.ext4 -O encrypt` or "
          "`tune2fs -O encrypt`)";
      break;
    case ENOTEMPTY:
      code = Code::kFailedPrecondition;
      reason = "fscrypt_not_empty";
      hint = " — a policy is set only on an empty directory";
      break;
    case EEXIST:
      code = Code::kFailedPrecondition;
      reason = "fscrypt_policy_conflict";
      hint = " — the directory already has another encryption policy";
      break;
    case ENOKEY:
      code = Code::kFailedPrecondition;
      reason = "fscrypt_key_absent";
      hint = " — the key is not in the filesystem's keyring";
      break;
    case EACCES:
    case EPERM:
      code = Code::kFailedPrecondition;
      reason = "fscrypt_not_permitted";
      break;
    case EINVAL:
    case ENOTDIR:
    case EBADF:
    case EFAULT:
      code = Code::kInvalidArgument;
      reason = "fscrypt_invalid";
      break;
    default:
      break;
  }
  const char* name = strerrorname_np(err);
  return Status(code, reason,
                std::string(ioctl_name) + " on " + describe_fd(fd) + ": " + std::strerror(err) +
                    " (" + (name != nullptr ? name : std::to_string(err)) + ")" + hint);
}

fscrypt_key_specifier key_spec_of(const KeyIdentifier& key) {
  fscrypt_key_specifier spec{};
  spec.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER;
  std::memcpy(spec.u.identifier, key.bytes.data(), key.bytes.size());
  return spec;
}

// ioctl(2), retried on EINTR (key removal can wait on inode eviction).
int ioctl_retry(int fd, unsigned long request, void* arg) {
  int rc;
  do {
    rc = ::ioctl(fd, request, arg);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

}  // namespace

std::string KeyIdentifier::hex() const { return to_hex(bytes); }

Policy Policy::volguard(const KeyIdentifier& key) {
  return Policy{.contents_mode = FSCRYPT_MODE_AES_256_XTS,
                .filenames_mode = FSCRYPT_MODE_AES_256_CTS,
                .flags = FSCRYPT_POLICY_FLAGS_PAD_32,
                .key = key};
}

Result<KeyIdentifier> add_key(int fs_root_fd, const SecureBytes& raw) {
  if (raw.size() != kKeySize) {
    return Status(Code::kInvalidArgument, "fscrypt_invalid",
                  "an fscrypt key has " + std::to_string(kKeySize) + " bytes, not " +
                      std::to_string(raw.size()));
  }
  // The argument ends with the raw key (a flexible array): it is built in locked memory too.
  SecureBytes buf(sizeof(fscrypt_add_key_arg) + raw.size());
  // SecureBytes memory is page-aligned and zeroed: a valid home for the struct.
  auto* arg = new (buf.data()) fscrypt_add_key_arg{};
  arg->key_spec.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER;
  arg->raw_size = static_cast<__u32>(raw.size());
  std::memcpy(buf.data() + sizeof(fscrypt_add_key_arg), raw.data(), raw.size());
  if (ioctl_retry(fs_root_fd, FS_IOC_ADD_ENCRYPTION_KEY, arg) != 0) {
    return ioctl_error("FS_IOC_ADD_ENCRYPTION_KEY", fs_root_fd, errno);
  }
  KeyIdentifier id;
  std::memcpy(id.bytes.data(), arg->key_spec.u.identifier, id.bytes.size());
  return id;
}

Status set_policy(int empty_dir_fd, const KeyIdentifier& key) {
  const Policy want = Policy::volguard(key);
  fscrypt_policy_v2 policy{};
  policy.version = FSCRYPT_POLICY_V2;
  policy.contents_encryption_mode = want.contents_mode;
  policy.filenames_encryption_mode = want.filenames_mode;
  policy.flags = want.flags;
  std::memcpy(policy.master_key_identifier, key.bytes.data(), key.bytes.size());
  if (ioctl_retry(empty_dir_fd, FS_IOC_SET_ENCRYPTION_POLICY, &policy) != 0) {
    return ioctl_error("FS_IOC_SET_ENCRYPTION_POLICY", empty_dir_fd, errno);
  }
  return Status::ok();
}

Result<std::optional<Policy>> get_policy(int fd) {
  fscrypt_get_policy_ex_arg arg{};
  arg.policy_size = sizeof(arg.policy);
  if (ioctl_retry(fd, FS_IOC_GET_ENCRYPTION_POLICY_EX, &arg) != 0) {
    if (errno == ENODATA) return std::optional<Policy>();  // not encrypted
    return ioctl_error("FS_IOC_GET_ENCRYPTION_POLICY_EX", fd, errno);
  }
  if (arg.policy.version != FSCRYPT_POLICY_V2) {
    return Status(Code::kFailedPrecondition, "fscrypt_unsupported",
                  describe_fd(fd) + " has an fscrypt policy of version " +
                      std::to_string(arg.policy.version) + " (volguard uses only v2)");
  }
  Policy p;
  p.contents_mode = arg.policy.v2.contents_encryption_mode;
  p.filenames_mode = arg.policy.v2.filenames_encryption_mode;
  p.flags = arg.policy.v2.flags;
  std::memcpy(p.key.bytes.data(), arg.policy.v2.master_key_identifier, p.key.bytes.size());
  return std::optional<Policy>(p);
}

Result<KeyStatus> key_status(int fs_root_fd, const KeyIdentifier& key) {
  fscrypt_get_key_status_arg arg{};
  arg.key_spec = key_spec_of(key);
  if (ioctl_retry(fs_root_fd, FS_IOC_GET_ENCRYPTION_KEY_STATUS, &arg) != 0) {
    return ioctl_error("FS_IOC_GET_ENCRYPTION_KEY_STATUS", fs_root_fd, errno);
  }
  KeyStatus out;
  switch (arg.status) {
    case FSCRYPT_KEY_STATUS_ABSENT:
      out.state = KeyState::kAbsent;
      break;
    case FSCRYPT_KEY_STATUS_PRESENT:
      out.state = KeyState::kPresent;
      break;
    case FSCRYPT_KEY_STATUS_INCOMPLETELY_REMOVED:
      out.state = KeyState::kIncompletelyRemoved;
      break;
    default:
      return Status(Code::kInternal, "fscrypt_ioctl_failed",
                    "FS_IOC_GET_ENCRYPTION_KEY_STATUS on " + describe_fd(fs_root_fd) +
                        ": unknown key status " + std::to_string(arg.status));
  }
  out.added_by_self = (arg.status_flags & FSCRYPT_KEY_STATUS_FLAG_ADDED_BY_SELF) != 0;
  out.user_count = arg.user_count;
  return out;
}

Result<RemoveOutcome> remove_key(int fs_root_fd, const KeyIdentifier& key, RemoveScope scope) {
  fscrypt_remove_key_arg arg{};
  arg.key_spec = key_spec_of(key);
  const bool all = scope == RemoveScope::kAllUsers;
  const unsigned long request =
      all ? FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS : FS_IOC_REMOVE_ENCRYPTION_KEY;
  if (ioctl_retry(fs_root_fd, request, &arg) != 0) {
    return ioctl_error(
        all ? "FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS" : "FS_IOC_REMOVE_ENCRYPTION_KEY", fs_root_fd,
        errno);
  }
  return RemoveOutcome{
      .files_busy = (arg.removal_status_flags & FSCRYPT_KEY_REMOVAL_STATUS_FLAG_FILES_BUSY) != 0,
      .other_users = (arg.removal_status_flags & FSCRYPT_KEY_REMOVAL_STATUS_FLAG_OTHER_USERS) != 0};
}

}  // namespace volguard::crypto::fscrypt
