// Compact JWS parsing and verification: any bytes as a bearer token, against issuers with an
// HMAC, an RSA and an EC key (their keys made once from fixed material). Nothing may crash,
// leak or hang; every refusal is UNAUTHENTICATED with a reason; nothing unsigned is accepted.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "identity/keys.h"
#include "identity/verifier.h"
#include "support/test_keys.h"

using namespace volguard;
using namespace volguard::identity;

namespace {

const Verifier& verifier() {
  static const Verifier* v = [] {
    std::vector<TrustedIssuer> issuers;
    auto add = [&](const char* iss, std::shared_ptr<const VerificationKey> key) {
      issuers.push_back({iss, std::make_shared<StaticKeySource>(std::move(key)), {}});
    };
    // The seeds in corpus/jws are HS256 tokens of issuer "hs" signed with this secret.
    add("hs", VerificationKey::from_secret(std::string(40, 'k')).value());
    add("rs", VerificationKey::from_public_pem(testing::generate_key_pair("RSA", "2048").public_pem).value());
    add("es", VerificationKey::from_public_pem(testing::generate_key_pair("EC", "P-256").public_pem).value());
    return new Verifier(VerifierOptions{.token_cache_entries = 64}, std::move(issuers));
  }();
  return *v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view token(reinterpret_cast<const char*>(data), size);
  auto r = verifier().verify_at(token, 1'900'000'000);
  if (r.is_ok()) {
    // Only a token signed with one of the keys verifies: the fuzzer cannot forge an HMAC.
    if (r->issuer != "hs" && r->issuer != "rs" && r->issuer != "es") std::abort();
  } else if (r.status().code() != Code::kUnauthenticated || r.status().reason().empty()) {
    std::abort();
  }
  // Twice: the second answer may come from the caches and must be the same.
  auto again = verifier().verify_at(token, 1'900'000'000);
  if (again.is_ok() != r.is_ok()) std::abort();
  if (!again.is_ok() && again.status().reason() != r.status().reason()) std::abort();
  return 0;
}
