#include "common/openssl.h"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include "common/hex.h"
#include "common/text.h"

namespace volguard {
namespace {

TEST(OpensslTest, Sha256AndHmacMatchKnownAnswers) {
  // FIPS 180-2 "abc" and RFC 4231 test case 2.
  EXPECT_EQ(to_hex(sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(to_hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // A log fingerprint is the first 6 bytes of the digest.
  EXPECT_EQ(fingerprint("secret"), "2bb80d537b1d");
}

TEST(OpensslTest, PointersFreeWhatTheyOwn) {
  // Run under ASan: a leak or a double free here fails the test binary.
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "ED25519", nullptr));
  ASSERT_TRUE(ctx);
  ASSERT_EQ(EVP_PKEY_keygen_init(ctx.get()), 1);
  EVP_PKEY* raw = nullptr;
  ASSERT_EQ(EVP_PKEY_generate(ctx.get(), &raw), 1);
  PkeyPtr key(raw);
  MdCtxPtr md(EVP_MD_CTX_new());
  ASSERT_TRUE(md);
  BnPtr bn(BN_new());
  ASSERT_TRUE(bn);
  BioPtr bio(BIO_new_mem_buf("x", 1));
  ASSERT_TRUE(bio);
  MacPtr mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  ASSERT_TRUE(mac);
  MacCtxPtr mac_ctx(EVP_MAC_CTX_new(mac.get()));
  ASSERT_TRUE(mac_ctx);
  EcdsaSigPtr sig(ECDSA_SIG_new());
  ASSERT_TRUE(sig);
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  ASSERT_TRUE(bld);
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  ASSERT_TRUE(params);
}

TEST(OpensslTest, ErrorTextClearsTheQueue) {
  ERR_clear_error();
  EXPECT_EQ(openssl_error(), "unknown OpenSSL error");
  MacPtr none(EVP_MAC_fetch(nullptr, "NO-SUCH-MAC", nullptr));
  EXPECT_FALSE(none);
  EXPECT_NE(openssl_error(), "unknown OpenSSL error");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

}  // namespace
}  // namespace volguard
