#include "crypto/kek.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/hex.h"
#include "common/openssl.h"

namespace volguard::crypto {
namespace {

const std::string kVolume = "vol-3f9c2a71";
const std::string kOtherVolume = "vol-88d0e412";

std::string str(const SecureBytes& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

std::unique_ptr<LocalKek> random_kek() {
  auto key = SecureBytes::random(LocalKek::kKeySize);
  EXPECT_TRUE(key.is_ok());
  auto kek = LocalKek::from_bytes(std::move(key).value());
  EXPECT_TRUE(kek.is_ok()) << kek.status().to_string();
  return std::move(kek).value();
}

void expect_unwrap_failed(const Result<SecureBytes>& r, const std::string& what) {
  ASSERT_FALSE(r.is_ok()) << what << ": unwrapped";
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition) << what << ": " << r.status().to_string();
  EXPECT_EQ(r.status().reason(), kReasonKeyUnwrapFailed) << what << ": " << r.status().to_string();
}

// No message may carry key material, raw or as hex.
void expect_no_key_in(const Status& s, const SecureBytes& key) {
  const std::string raw = str(key);
  EXPECT_EQ(s.message().find(raw), std::string::npos) << "raw key in: " << s.to_string();
  EXPECT_EQ(s.message().find(to_hex(raw)), std::string::npos) << "hex key in: " << s.to_string();
  EXPECT_EQ(s.message().find(to_hex(raw).substr(0, 16)), std::string::npos) << s.to_string();
}

TEST(LocalKekTest, RoundTripBindsVolumeAndNamesTheKek) {
  auto kek_bytes = SecureBytes::random(32).value();
  const std::string expected_id = "local:" + to_hex(sha256(str(kek_bytes))).substr(0, 16);
  auto kek = LocalKek::from_bytes(SecureBytes::copy_of(kek_bytes.span())).value();
  EXPECT_EQ(kek->id(), expected_id);
  EXPECT_TRUE(kek->status().is_ok());

  auto data_key = generate_data_key(64).value();
  auto wrapped = kek->wrap(data_key, kVolume);
  ASSERT_TRUE(wrapped.is_ok()) << wrapped.status().to_string();
  EXPECT_EQ(wrapped->kek_id, expected_id);
  EXPECT_EQ(wrapped->blob.size(), 1u + 12 + 64 + 16);
  EXPECT_EQ(wrapped->blob[0], '\x01');
  EXPECT_EQ(wrapped->blob.find(str(data_key)), std::string::npos);

  auto unwrapped = kek->unwrap(*wrapped, kVolume);
  ASSERT_TRUE(unwrapped.is_ok()) << unwrapped.status().to_string();
  EXPECT_TRUE(unwrapped->equals(data_key.span()));

  // A random nonce per wrap: the same key wrapped twice gives two blobs, both good.
  auto again = kek->wrap(data_key, kVolume).value();
  EXPECT_NE(again.blob, wrapped->blob);
  EXPECT_TRUE(kek->unwrap(again, kVolume)->equals(data_key.span()));
}

TEST(LocalKekTest, AnotherKekNeverUnwraps) {
  auto kek = random_kek();
  auto other = random_kek();
  ASSERT_NE(kek->id(), other->id());
  auto data_key = generate_data_key(64).value();
  WrappedKey wrapped = kek->wrap(data_key, kVolume).value();
  expect_unwrap_failed(other->unwrap(wrapped, kVolume), "other KEK");
  // Even stamped with the other KEK's id, the blob does not authenticate under it.
  WrappedKey restamped = wrapped;
  restamped.kek_id = other->id();
  auto r = other->unwrap(restamped, kVolume);
  expect_unwrap_failed(r, "other KEK, restamped");
  expect_no_key_in(r.status(), data_key);
  // Unknown kek_id on the right KEK.
  WrappedKey unknown = wrapped;
  unknown.kek_id = "local:0000000000000000";
  expect_unwrap_failed(kek->unwrap(unknown, kVolume), "unknown kek_id");
  unknown.kek_id = "kms:fake-key-1";
  expect_unwrap_failed(kek->unwrap(unknown, kVolume), "kms kek_id");
}

TEST(LocalKekTest, AnotherVolumesIdNeverUnwraps) {
  auto kek = random_kek();
  auto data_key = generate_data_key(64).value();
  WrappedKey wrapped = kek->wrap(data_key, kVolume).value();
  expect_unwrap_failed(kek->unwrap(wrapped, kOtherVolume), "other volume");
  expect_unwrap_failed(kek->unwrap(wrapped, ""), "no volume");
  expect_unwrap_failed(kek->unwrap(wrapped, kVolume + "x"), "longer id");
  expect_unwrap_failed(kek->unwrap(wrapped, kVolume.substr(1)), "shorter id");
}

TEST(LocalKekTest, EveryFlippedBitIsRefused) {
  auto kek = random_kek();
  auto data_key = generate_data_key(64).value();
  const WrappedKey wrapped = kek->wrap(data_key, kVolume).value();
  // Version byte, every nonce byte, every ciphertext byte, every tag byte; two bits each.
  for (size_t i = 0; i < wrapped.blob.size(); ++i) {
    for (unsigned char bit : {0x01, 0x80}) {
      WrappedKey bad = wrapped;
      bad.blob[i] = static_cast<char>(bad.blob[i] ^ bit);
      const std::string where = i == 0         ? "version"
                                : i <= 12      ? "nonce"
                                : i <= 12 + 64 ? "ciphertext"
                                               : "tag";
      auto r = kek->unwrap(bad, kVolume);
      expect_unwrap_failed(r, where + " byte " + std::to_string(i));
      expect_no_key_in(r.status(), data_key);
    }
  }
}

TEST(LocalKekTest, TruncatedExtendedOrUnknownVersionBlobsAreRefused) {
  auto kek = random_kek();
  auto data_key = generate_data_key(64).value();
  const WrappedKey wrapped = kek->wrap(data_key, kVolume).value();
  for (size_t n = 0; n < wrapped.blob.size(); ++n) {
    WrappedKey bad = wrapped;
    bad.blob.resize(n);
    expect_unwrap_failed(kek->unwrap(bad, kVolume), "truncated to " + std::to_string(n));
  }
  WrappedKey longer = wrapped;
  longer.blob += '\0';
  expect_unwrap_failed(kek->unwrap(longer, kVolume), "one byte appended");
  WrappedKey v2 = wrapped;
  v2.blob[0] = '\x02';
  auto r = kek->unwrap(v2, kVolume);
  expect_unwrap_failed(r, "version 2");
  EXPECT_NE(r.status().message().find("version 2"), std::string::npos) << r.status().to_string();
  WrappedKey huge = wrapped;
  huge.blob.append(4096, 'x');
  expect_unwrap_failed(kek->unwrap(huge, kVolume), "oversized");
}

TEST(LocalKekTest, WrapRefusesWhatIsNotADataKeyForAVolume) {
  auto kek = random_kek();
  auto data_key = generate_data_key(64).value();
  auto no_aad = kek->wrap(data_key, "");
  ASSERT_FALSE(no_aad.is_ok());
  EXPECT_EQ(no_aad.status().reason(), "aad_required");
  auto empty = kek->wrap(SecureBytes(), kVolume);
  ASSERT_FALSE(empty.is_ok());
  EXPECT_EQ(empty.status().reason(), "data_key_invalid");
  auto huge = kek->wrap(SecureBytes(kMaxDataKeySize + 1), kVolume);
  ASSERT_FALSE(huge.is_ok());
  EXPECT_EQ(huge.status().reason(), "data_key_invalid");
  EXPECT_FALSE(generate_data_key(0).is_ok());
  EXPECT_FALSE(generate_data_key(kMaxDataKeySize + 1).is_ok());
  auto short_kek = LocalKek::from_bytes(SecureBytes(16));
  ASSERT_FALSE(short_kek.is_ok());
  EXPECT_EQ(short_kek.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(short_kek.status().reason(), kReasonKekInvalid);
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/volguard-kek-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    kek_ = SecureBytes::random(32).value();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes `content` with exactly `mode` (whatever the umask).
  std::string write(const std::string& name, const std::string& content, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    EXPECT_EQ(::fchmod(fd, mode), 0);
    ::close(fd);
    return path;
  }

  std::string expected_id() const { return "local:" + to_hex(sha256(str(kek_))).substr(0, 16); }

  std::string dir_;
  SecureBytes kek_;
};

TEST_F(KeyFileTest, ExposedKeyFileIsRefused) {
  for (mode_t mode : {0644, 0640, 0604, 0620, 0602, 0660, 0666}) {
    const std::string path = write("exposed.key", to_hex(str(kek_)), mode);
    auto kek = LocalKek::from_file(path);
    ASSERT_FALSE(kek.is_ok()) << std::oct << mode;
    EXPECT_EQ(kek.status().code(), Code::kFailedPrecondition) << kek.status().to_string();
    EXPECT_EQ(kek.status().reason(), "secret_file_exposed") << kek.status().to_string();
    EXPECT_NE(kek.status().message().find(path), std::string::npos);
    expect_no_key_in(kek.status(), kek_);
  }
  // 0400 and 0600 are private.
  EXPECT_TRUE(LocalKek::from_file(write("ro.key", to_hex(str(kek_)), 0400)).is_ok());
}

TEST_F(KeyFileTest, RawAndHexFilesGiveTheSameKek) {
  auto raw = LocalKek::from_file(write("raw.key", str(kek_), 0600));
  ASSERT_TRUE(raw.is_ok()) << raw.status().to_string();
  EXPECT_EQ((*raw)->id(), expected_id());
  auto hex = LocalKek::from_file(write("hex.key", to_hex(str(kek_)) + "\n", 0600));
  ASSERT_TRUE(hex.is_ok()) << hex.status().to_string();
  EXPECT_EQ((*hex)->id(), expected_id());
  std::string upper = to_hex(str(kek_));
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto up = LocalKek::from_file(write("upper.key", upper + "\r\n", 0600));
  ASSERT_TRUE(up.is_ok()) << up.status().to_string();
  EXPECT_EQ((*up)->id(), expected_id());
  // What one wraps, the other unwraps: they are the same key.
  auto data_key = generate_data_key(64).value();
  auto wrapped = (*raw)->wrap(data_key, kVolume).value();
  EXPECT_TRUE((*hex)->unwrap(wrapped, kVolume)->equals(data_key.span()));
}

TEST_F(KeyFileTest, MalformedOrMissingKeyFiles) {
  const std::string hex = to_hex(str(kek_));
  struct Case {
    std::string name, content;
  };
  for (const Case& c :
       {Case{"short", str(kek_).substr(0, 31)}, Case{"raw+newline", str(kek_) + "\n"},
        Case{"hex63", hex.substr(1)}, Case{"hex65", hex + "0"}, Case{"nonhex", "g" + hex.substr(1)},
        Case{"spaces", hex + " "}, Case{"empty", ""},
        Case{"text32", "correct horse battery staple 123"},
        Case{"hex32", to_hex(str(kek_).substr(0, 16))}, Case{"huge", std::string(100000, 'a')},
        Case{"base64", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}) {
    auto kek = LocalKek::from_file(write(c.name, c.content, 0600));
    ASSERT_FALSE(kek.is_ok()) << c.name;
    EXPECT_EQ(kek.status().code(), Code::kInvalidArgument)
        << c.name << ": " << kek.status().to_string();
    EXPECT_EQ(kek.status().reason(), kReasonKekInvalid) << c.name;
    expect_no_key_in(kek.status(), kek_);
  }
  auto missing = LocalKek::from_file(dir_ + "/none.key");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), Code::kUnavailable) << missing.status().to_string();
  EXPECT_EQ(missing.status().reason(), kReasonKmsUnavailable);
  auto directory = LocalKek::from_file(dir_);
  ASSERT_FALSE(directory.is_ok());
  EXPECT_EQ(directory.status().reason(), kReasonKmsUnavailable) << directory.status().to_string();
}

// The standard base64 of `bytes` (what `openssl rand -base64 32` prints), independently of the
// code under test: OpenSSL's encoder.
std::string base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

class KeyEnvTest : public KeyFileTest {};

TEST_F(KeyEnvTest, HexAndBase64AreReadOnceAndRemoved) {
  const char* name = "VOLGUARD_TEST_KEK";
  ASSERT_EQ(::setenv(name, (to_hex(str(kek_)) + "\n").c_str(), 1), 0);
  auto hex = LocalKek::from_env(name);
  ASSERT_TRUE(hex.is_ok()) << hex.status().to_string();
  EXPECT_EQ((*hex)->id(), expected_id());
  EXPECT_EQ(::getenv(name), nullptr) << "the variable must be gone after reading";
  auto again = LocalKek::from_env(name);
  ASSERT_FALSE(again.is_ok());
  EXPECT_EQ(again.status().code(), Code::kUnavailable);
  EXPECT_EQ(again.status().reason(), kReasonKmsUnavailable);

  const std::string b64 = base64(str(kek_));
  ASSERT_EQ(b64.size(), 44u);
  ASSERT_EQ(::setenv(name, b64.c_str(), 1), 0);
  auto padded = LocalKek::from_env(name);
  ASSERT_TRUE(padded.is_ok()) << padded.status().to_string();
  EXPECT_EQ((*padded)->id(), expected_id());
  ASSERT_EQ(::setenv(name, b64.substr(0, 43).c_str(), 1), 0);
  auto unpadded = LocalKek::from_env(name);
  ASSERT_TRUE(unpadded.is_ok()) << unpadded.status().to_string();
  EXPECT_EQ((*unpadded)->id(), expected_id());
  EXPECT_EQ(::getenv(name), nullptr);
}

TEST_F(KeyEnvTest, MalformedValueIsRefusedAndStillRemoved) {
  const char* name = "VOLGUARD_TEST_KEK_BAD";
  const std::string b64 = base64(str(kek_));
  // The last character of 43 carries 2 bits beyond the key: a non-zero one is another spelling.
  std::string noncanonical = b64.substr(0, 43);
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  noncanonical[42] = alphabet[alphabet.find(noncanonical[42]) | 1];
  for (const std::string& value :
       {to_hex(str(kek_)).substr(2), b64 + "=", "-" + b64.substr(1), noncanonical,
        base64(str(kek_).substr(0, 24)), std::string("not a key")}) {
    ASSERT_EQ(::setenv(name, value.c_str(), 1), 0);
    auto kek = LocalKek::from_env(name);
    ASSERT_FALSE(kek.is_ok()) << value;
    EXPECT_EQ(kek.status().code(), Code::kInvalidArgument) << kek.status().to_string();
    EXPECT_EQ(kek.status().reason(), kReasonKekInvalid);
    EXPECT_EQ(kek.status().message().find(value), std::string::npos) << kek.status().to_string();
    EXPECT_EQ(::getenv(name), nullptr) << value;
  }
  ::unsetenv(name);
  auto unset = LocalKek::from_env(name);
  ASSERT_FALSE(unset.is_ok());
  EXPECT_EQ(unset.status().reason(), kReasonKmsUnavailable);
  ASSERT_EQ(::setenv(name, "", 1), 0);
  auto empty = LocalKek::from_env(name);
  ASSERT_FALSE(empty.is_ok());
  EXPECT_EQ(empty.status().reason(), kReasonKmsUnavailable);
}

}  // namespace
}  // namespace volguard::crypto
