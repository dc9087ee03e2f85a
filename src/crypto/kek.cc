#include "crypto/kek.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/hex.h"
#include "common/openssl.h"
#include "common/private_file.h"
#include "crypto/aes_gcm.h"

namespace volguard::crypto {

namespace {

constexpr unsigned char kLocalBlobVersion = 0x01;
// A key file larger than this is not a key (64 hex digits and a few line ends): refused
// without reading it.
constexpr size_t kMaxKeyTextSize = 128;

Status invalid(const std::string& where, const std::string& why) {
  return Status(Code::kInvalidArgument, kReasonKekInvalid, where + ": " + why);
}

Status unwrap_failed(const std::string& why) {
  return Status(Code::kFailedPrecondition, kReasonKeyUnwrapFailed, why);
}

int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// `text` without trailing '\n' and '\r'.
std::span<const unsigned char> trim_line_ends(std::span<const unsigned char> text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
    text = text.first(text.size() - 1);
  return text;
}

// 64 hex digits → the 32 bytes of `out`, decoded straight into locked memory (no std::string
// on the way, unlike common/text.h's decoders). false when malformed.
bool decode_hex_key(std::span<const unsigned char> text, SecureBytes& out) {
  if (text.size() != 2 * LocalKek::kKeySize) return false;
  for (size_t i = 0; i < LocalKek::kKeySize; ++i) {
    const int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.data()[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

// Standard base64 (RFC 4648 §4) of exactly 32 bytes (43 characters and an optional '=') → the
// 32 bytes of `out`; false when malformed. The two bits left over in the last character must be
// zero, so that one key has one spelling.
bool decode_base64_key(std::span<const unsigned char> text, SecureBytes& out) {
  if (text.size() == 44 && text.back() == '=') text = text.first(43);
  if (text.size() != 43) return false;
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  for (unsigned char c : text) {
    const int v = base64_value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.data()[n++] = static_cast<unsigned char>(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  // 43 characters carry 258 bits: the 2 beyond the key must be zero.
  return n == LocalKek::kKeySize && bits == 2 && acc == 0;
}

}  // namespace

Result<SecureBytes> generate_data_key(size_t size) {
  if (size == 0 || size > kMaxDataKeySize) {
    return Status(Code::kInvalidArgument, "data_key_invalid",
                  "a data key has 1 to " + std::to_string(kMaxDataKeySize) + " bytes");
  }
  return SecureBytes::random(size);
}

LocalKek::LocalKek(SecureBytes key)
    : key_(std::move(key)),
      id_("local:" +
          to_hex(sha256(std::string_view(reinterpret_cast<const char*>(key_.data()), key_.size())))
              .substr(0, 16)) {}

Result<std::unique_ptr<LocalKek>> LocalKek::from_bytes(SecureBytes key) {
  if (key.size() != kKeySize) {
    return invalid("key-encryption key", "must be " + std::to_string(kKeySize) + " bytes, not " +
                                             std::to_string(key.size()));
  }
  return std::unique_ptr<LocalKek>(new LocalKek(std::move(key)));
}

Result<std::unique_ptr<LocalKek>> LocalKek::from_file(const std::string& path) {
  const std::string where = "key-encryption key file " + path;
  auto fd = open_private_file(path);
  if (!fd.is_ok()) {
    if (fd.status().reason() == "secret_file_exposed") return fd.status();
    return Status(Code::kUnavailable, kReasonKmsUnavailable, fd.status().message());
  }
  // Read into locked memory, one byte more than the largest key text, so that "too large" is
  // seen without reading the rest.
  SecureBytes text(kMaxKeyTextSize + 1);
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd->get(), text.data() + got, text.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status(Code::kUnavailable, kReasonKmsUnavailable,
                    file_error("file_unreadable", "read", path, errno).message());
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > kMaxKeyTextSize) return invalid(where, "is larger than a key");
  text.truncate(got);
  SecureBytes key(kKeySize);
  // Exactly 32 bytes is a raw key even if its last byte happens to be '\n'; anything else must
  // be hex.
  if (got == kKeySize) {
    // 32 bytes that are all printable text are a password or a short hex key (`openssl rand
    // -hex 16`), not 32 random bytes; a random key is all printable with odds of about 1e-14.
    if (std::all_of(text.data(), text.data() + got,
                    [](unsigned char c) { return c >= 0x20 && c < 0x7f; })) {
      return invalid(where,
                     "holds 32 characters of text, not 32 random bytes: write 64 hex "
                     "digits (openssl rand -hex 32) or 32 raw bytes (head -c 32 "
                     "/dev/urandom)");
    }
    std::copy(text.data(), text.data() + kKeySize, key.data());
  } else if (!decode_hex_key(trim_line_ends(text.span()), key)) {
    return invalid(
        where, "must hold 32 raw bytes or 64 hex digits (" + std::to_string(got) + " bytes found)");
  }
  return from_bytes(std::move(key));
}

Result<std::unique_ptr<LocalKek>> LocalKek::from_env(const std::string& name) {
  const std::string where = "key-encryption key variable " + name;
  char* value = std::getenv(name.c_str());
  if (value == nullptr || *value == '\0') {
    if (value != nullptr) ::unsetenv(name.c_str());
    return Status(Code::kUnavailable, kReasonKmsUnavailable, where + " is not set");
  }
  const size_t len = std::strlen(value);
  if (len > kMaxKeyTextSize) {
    OPENSSL_cleanse(value, len);
    ::unsetenv(name.c_str());
    return invalid(where, "is longer than a key");
  }
  SecureBytes text = SecureBytes::copy_of(std::string_view(value, len));
  // Gone from the environment before it is even parsed: see the header for why.
  OPENSSL_cleanse(value, len);
  ::unsetenv(name.c_str());
  const auto trimmed = trim_line_ends(text.span());
  SecureBytes key(kKeySize);
  if (!decode_hex_key(trimmed, key) && !decode_base64_key(trimmed, key)) {
    return invalid(where, "must hold 64 hex digits or the base64 of 32 bytes (" +
                              std::to_string(len) + " characters found)");
  }
  return from_bytes(std::move(key));
}

Status check_wrap_input(const SecureBytes& data_key, std::string_view aad) {
  if (data_key.empty() || data_key.size() > kMaxDataKeySize) {
    return Status(Code::kInvalidArgument, "data_key_invalid",
                  "a data key has 1 to " + std::to_string(kMaxDataKeySize) + " bytes");
  }
  if (aad.empty()) {
    return Status(Code::kInvalidArgument, "aad_required",
                  "a data key is wrapped for a volume: its id is required");
  }
  return Status::ok();
}

Result<WrappedKey> LocalKek::wrap(const SecureBytes& data_key, std::string_view aad) {
  RETURN_IF_ERROR(check_wrap_input(data_key, aad));
  std::string header(1, static_cast<char>(kLocalBlobVersion));
  ASSIGN_OR_RETURN(std::string sealed,
                   gcm_seal(key_.span(), data_key.span(), header + std::string(aad)));
  return WrappedKey{.kek_id = id_, .blob = header + sealed};
}

Result<SecureBytes> LocalKek::unwrap(const WrappedKey& wrapped, std::string_view aad) {
  if (wrapped.kek_id != id_) {
    return unwrap_failed("wrapped by key-encryption key '" + wrapped.kek_id + "', not by '" + id_ +
                         "'");
  }
  const std::string_view blob = wrapped.blob;
  if (blob.size() < 1 + kGcmNonceSize + 1 + kGcmTagSize) {
    return unwrap_failed("wrapped key is truncated");
  }
  if (static_cast<unsigned char>(blob[0]) != kLocalBlobVersion) {
    return unwrap_failed("wrapped key has unknown format version " +
                         std::to_string(static_cast<unsigned char>(blob[0])));
  }
  if (blob.size() > 1 + kGcmNonceSize + kMaxDataKeySize + kGcmTagSize) {
    return unwrap_failed("wrapped key is larger than any data key");
  }
  return gcm_open(key_.span(), blob.substr(1), std::string(blob.substr(0, 1)) + std::string(aad));
}

}  // namespace volguard::crypto
