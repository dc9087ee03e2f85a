// OpenSSL objects owned by std::unique_ptr, one type per OpenSSL type for every layer, and the
// few one-shot primitives more than one layer needs.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>

#include <memory>
#include <string>
#include <string_view>

namespace volguard {

// Frees with the OpenSSL function `Free` (a null pointer is never passed: unique_ptr skips it).
template <auto Free>
struct OpensslFree {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};

using PkeyPtr = std::unique_ptr<EVP_PKEY, OpensslFree<EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, OpensslFree<EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpensslFree<EVP_MD_CTX_free>>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, OpensslFree<EVP_CIPHER_CTX_free>>;
using MacPtr = std::unique_ptr<EVP_MAC, OpensslFree<EVP_MAC_free>>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, OpensslFree<EVP_MAC_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, OpensslFree<BIO_free>>;
using BnPtr = std::unique_ptr<BIGNUM, OpensslFree<BN_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, OpensslFree<ECDSA_SIG_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, OpensslFree<OSSL_PARAM_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, OpensslFree<OSSL_PARAM_BLD_free>>;

// The oldest error on this thread's OpenSSL error queue as text ("unknown OpenSSL error" when
// there is none); the queue is cleared so that a later call does not report a stale error.
std::string openssl_error();

// SHA-256 of `data`: the 32 raw bytes (hex them with to_hex for text); empty only if OpenSSL
// itself fails.
std::string sha256(std::string_view data);

// HMAC-SHA-256 of `data` under `key`: the 32 raw bytes; empty only if OpenSSL itself fails.
std::string hmac_sha256(std::string_view key, std::string_view data);

}  // namespace volguard
