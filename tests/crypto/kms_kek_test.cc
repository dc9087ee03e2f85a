#include "crypto/kms_kek.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "common/hex.h"
#include "crypto/fake_kms_server.h"

namespace volguard::crypto {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

const std::string kVolume = "vol-3f9c2a71";
const std::string kOtherVolume = "vol-88d0e412";
constexpr milliseconds kTimeout{500};
// Sanitizer builds on a small machine: what "within the timeout" may take beyond it.
constexpr milliseconds kSlack{1500};

std::string str(const SecureBytes& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

class KmsV2KekTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/volguard-kms-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    plugin_ = std::make_unique<testing::FakeKmsPlugin>(dir_ + "/kms.sock");
    ASSERT_TRUE(plugin_->start());
    kek_ = std::make_unique<KmsV2Kek>(plugin_->socket_path(), kTimeout);
    data_key_ = generate_data_key(64).value();
  }
  void TearDown() override {
    kek_.reset();
    plugin_.reset();
    std::filesystem::remove_all(dir_);
  }

  void expect_unwrap_failed(const Result<SecureBytes>& r, const std::string& what) {
    ASSERT_FALSE(r.is_ok()) << what << ": unwrapped";
    EXPECT_EQ(r.status().code(), Code::kFailedPrecondition)
        << what << ": " << r.status().to_string();
    EXPECT_EQ(r.status().reason(), kReasonKeyUnwrapFailed)
        << what << ": " << r.status().to_string();
    expect_no_key_in(r.status());
  }

  void expect_unavailable(const Status& s, Clock::duration took, const std::string& what) {
    EXPECT_EQ(s.code(), Code::kUnavailable) << what << ": " << s.to_string();
    EXPECT_EQ(s.reason(), kReasonKmsUnavailable) << what << ": " << s.to_string();
    EXPECT_LT(took, kTimeout + kSlack) << what << " took too long";
    expect_no_key_in(s);
  }

  void expect_no_key_in(const Status& s) {
    const std::string raw = str(data_key_);
    EXPECT_EQ(s.message().find(raw), std::string::npos) << s.to_string();
    EXPECT_EQ(s.message().find(to_hex(raw).substr(0, 16)), std::string::npos) << s.to_string();
  }

  std::string dir_;
  std::unique_ptr<testing::FakeKmsPlugin> plugin_;
  std::unique_ptr<KmsV2Kek> kek_;
  SecureBytes data_key_;
};

TEST_F(KmsV2KekTest, RoundTripThroughThePlugin) {
  EXPECT_EQ(kek_->id(), "kms:");  // not asked yet: nothing is dialled at construction
  ASSERT_TRUE(kek_->status().is_ok()) << kek_->status().to_string();
  EXPECT_EQ(kek_->id(), "kms:fake-key-1");
  auto wrapped = kek_->wrap(data_key_, kVolume);
  ASSERT_TRUE(wrapped.is_ok()) << wrapped.status().to_string();
  EXPECT_EQ(wrapped->kek_id, "kms:fake-key-1");
  EXPECT_EQ(wrapped->blob[0], '\x01');
  EXPECT_EQ(wrapped->blob.find(str(data_key_)), std::string::npos);
  // The annotations are kept in the blob (the fake plugin refuses a Decrypt without them).
  EXPECT_NE(wrapped->blob.find(testing::FakeKmsPlugin::kAnnotationName), std::string::npos);
  auto unwrapped = kek_->unwrap(*wrapped, kVolume);
  ASSERT_TRUE(unwrapped.is_ok()) << unwrapped.status().to_string();
  EXPECT_TRUE(unwrapped->equals(data_key_.span()));
}

TEST_F(KmsV2KekTest, AnotherVolumesIdOrADamagedBlobIsRefused) {
  const WrappedKey wrapped = kek_->wrap(data_key_, kVolume).value();
  expect_unwrap_failed(kek_->unwrap(wrapped, kOtherVolume), "other volume");
  expect_unwrap_failed(kek_->unwrap(wrapped, ""), "no volume");

  // Every byte of the blob flipped: our framing, the plugin's ciphertext, its key_id, the
  // annotations. Each is refused as key_unwrap_failed (never as an outage).
  for (size_t i = 0; i < wrapped.blob.size(); ++i) {
    WrappedKey bad = wrapped;
    bad.blob[i] = static_cast<char>(bad.blob[i] ^ 0x01);
    expect_unwrap_failed(kek_->unwrap(bad, kVolume), "byte " + std::to_string(i) + " flipped");
  }
  for (size_t n :
       {size_t{0}, size_t{1}, size_t{5}, wrapped.blob.size() / 2, wrapped.blob.size() - 1}) {
    WrappedKey bad = wrapped;
    bad.blob.resize(n);
    expect_unwrap_failed(kek_->unwrap(bad, kVolume), "truncated to " + std::to_string(n));
  }
  WrappedKey longer = wrapped;
  longer.blob += '\0';
  expect_unwrap_failed(kek_->unwrap(longer, kVolume), "byte appended");
  WrappedKey v2 = wrapped;
  v2.blob[0] = '\x02';
  expect_unwrap_failed(kek_->unwrap(v2, kVolume), "unknown version");
  WrappedKey restamped = wrapped;
  restamped.kek_id = "kms:fake-key-2";
  expect_unwrap_failed(kek_->unwrap(restamped, kVolume), "stamp and blob disagree");
  WrappedKey local = wrapped;
  local.kek_id = "local:0123456789abcdef";
  expect_unwrap_failed(kek_->unwrap(local, kVolume), "local kek_id");
  // A local KEK's blob is not a KMS blob.
  auto local_kek = LocalKek::from_bytes(SecureBytes::random(32).value()).value();
  WrappedKey foreign = local_kek->wrap(data_key_, kVolume).value();
  foreign.kek_id = wrapped.kek_id;
  expect_unwrap_failed(kek_->unwrap(foreign, kVolume), "local blob");
}

TEST_F(KmsV2KekTest, RotationKeepsOldBlobsUntilTheOldKeyIsRetired) {
  const WrappedKey old_wrap = kek_->wrap(data_key_, kVolume).value();
  ASSERT_EQ(old_wrap.kek_id, "kms:fake-key-1");
  ASSERT_EQ(plugin_->rotate(), "fake-key-2");
  ASSERT_TRUE(kek_->status().is_ok());
  EXPECT_EQ(kek_->id(), "kms:fake-key-2");
  auto other_key = generate_data_key(64).value();
  const WrappedKey new_wrap = kek_->wrap(other_key, kOtherVolume).value();
  EXPECT_EQ(new_wrap.kek_id, "kms:fake-key-2");
  // During the rotation both unwrap.
  EXPECT_TRUE(kek_->unwrap(old_wrap, kVolume)->equals(data_key_.span()));
  EXPECT_TRUE(kek_->unwrap(new_wrap, kOtherVolume)->equals(other_key.span()));
  // Re-wrapping the old volume's key moves it to the new KMS key.
  const WrappedKey rewrapped = kek_->wrap(kek_->unwrap(old_wrap, kVolume).value(), kVolume).value();
  EXPECT_EQ(rewrapped.kek_id, "kms:fake-key-2");
  plugin_->retire("fake-key-1");
  auto r = kek_->unwrap(old_wrap, kVolume);
  expect_unwrap_failed(r, "retired key");
  EXPECT_NE(r.status().message().find("fake-key-1"), std::string::npos) << r.status().to_string();
  EXPECT_TRUE(kek_->unwrap(new_wrap, kOtherVolume)->equals(other_key.span()));
  EXPECT_TRUE(kek_->unwrap(rewrapped, kVolume)->equals(data_key_.span()));
}

TEST_F(KmsV2KekTest, PluginDownIsUnavailableWithinTheTimeoutAndRecovers) {
  const WrappedKey wrapped = kek_->wrap(data_key_, kVolume).value();
  plugin_->stop();

  auto t0 = Clock::now();
  Status status = kek_->status();
  expect_unavailable(status, Clock::now() - t0, "status");
  t0 = Clock::now();
  auto w = kek_->wrap(data_key_, kVolume);
  ASSERT_FALSE(w.is_ok());
  expect_unavailable(w.status(), Clock::now() - t0, "wrap");
  t0 = Clock::now();
  auto u = kek_->unwrap(wrapped, kVolume);
  ASSERT_FALSE(u.is_ok());
  expect_unavailable(u.status(), Clock::now() - t0, "unwrap");
  EXPECT_NE(u.status().message().find(plugin_->socket_path()), std::string::npos)
      << u.status().to_string();

  // Back up: the same KEK object reconnects by itself.
  ASSERT_TRUE(plugin_->start());
  EXPECT_TRUE(kek_->status().is_ok()) << kek_->status().to_string();
  auto again = kek_->unwrap(wrapped, kVolume);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_TRUE(again->equals(data_key_.span()));
  EXPECT_TRUE(kek_->wrap(data_key_, kVolume).is_ok());
}

TEST_F(KmsV2KekTest, NoPluginAtAllIsUnavailable) {
  KmsV2Kek nowhere(dir_ + "/absent.sock", kTimeout);
  const auto t0 = Clock::now();
  Status s = nowhere.status();
  expect_unavailable(s, Clock::now() - t0, "absent socket");
  EXPECT_EQ(nowhere.id(), "kms:");
}

TEST_F(KmsV2KekTest, HungPluginIsUnavailableWithinTheTimeout) {
  const WrappedKey wrapped = kek_->wrap(data_key_, kVolume).value();
  plugin_->set_delay(kTimeout * 4);
  auto t0 = Clock::now();
  auto u = kek_->unwrap(wrapped, kVolume);
  ASSERT_FALSE(u.is_ok());
  expect_unavailable(u.status(), Clock::now() - t0, "hung unwrap");
  t0 = Clock::now();
  auto w = kek_->wrap(data_key_, kVolume);
  ASSERT_FALSE(w.is_ok());
  expect_unavailable(w.status(), Clock::now() - t0, "hung wrap");
  plugin_->set_delay(milliseconds(0));
}

TEST_F(KmsV2KekTest, UnhealthyPluginIsUnavailableNotAnUnwrapFailure) {
  const WrappedKey wrapped = kek_->wrap(data_key_, kVolume).value();
  plugin_->set_healthz("vault is sealed");
  Status s = kek_->status();
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_EQ(s.reason(), kReasonKmsUnavailable);
  EXPECT_NE(s.message().find("vault is sealed"), std::string::npos) << s.to_string();
  // Decrypt fails with INTERNAL; the plugin's Status says it is down: an outage, not a bad blob.
  auto u = kek_->unwrap(wrapped, kVolume);
  ASSERT_FALSE(u.is_ok());
  EXPECT_EQ(u.status().reason(), kReasonKmsUnavailable) << u.status().to_string();
  auto w = kek_->wrap(data_key_, kVolume);
  ASSERT_FALSE(w.is_ok());
  EXPECT_EQ(w.status().reason(), kReasonKmsUnavailable) << w.status().to_string();
  plugin_->set_healthz("ok");
  EXPECT_TRUE(kek_->unwrap(wrapped, kVolume).is_ok());
}

TEST_F(KmsV2KekTest, APluginEchoingTheKeyInItsErrorIsNotRepeated) {
  plugin_->set_encrypt_echo_failure(true);
  auto w = kek_->wrap(data_key_, kVolume);
  ASSERT_FALSE(w.is_ok());
  EXPECT_EQ(w.status().code(), Code::kUnavailable);
  EXPECT_EQ(w.status().reason(), kReasonKmsUnavailable);
  EXPECT_NE(w.status().message().find("INVALID_ARGUMENT"), std::string::npos)
      << w.status().to_string();
  EXPECT_EQ(w.status().message().find("cannot encrypt"), std::string::npos)
      << w.status().to_string();
  expect_no_key_in(w.status());
}

TEST_F(KmsV2KekTest, WrapRefusesWhatIsNotADataKeyForAVolume) {
  auto no_aad = kek_->wrap(data_key_, "");
  ASSERT_FALSE(no_aad.is_ok());
  EXPECT_EQ(no_aad.status().reason(), "aad_required");
  auto empty = kek_->wrap(SecureBytes(), kVolume);
  ASSERT_FALSE(empty.is_ok());
  EXPECT_EQ(empty.status().reason(), "data_key_invalid");
}

}  // namespace
}  // namespace volguard::crypto
