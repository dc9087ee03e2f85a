// Token revocations in force (volguard token revoke), compiled into hash tables and swapped in
// whole, like the role set: the pipeline checks every authenticated caller against them with
// O(1) lookups and no lock; the token methods and the store's watch replace them. Revocations
// that no longer cover any token that could still verify (expires_at passed) are left out.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "identity/identity.h"
#include "store/store.h"

namespace volguard::service {

// The reason a revoked token is refused with.
inline constexpr char kTokenRevoked[] = "token_revoked";

class RevocationRegistry {
 public:
  RevocationRegistry();
  RevocationRegistry(const RevocationRegistry&) = delete;
  RevocationRegistry& operator=(const RevocationRegistry&) = delete;

  // Compiles `records` (as the store lists them) at `now` and swaps them in.
  void replace(const std::vector<store::RevocationRecord>& records, int64_t now);
  // UNAUTHENTICATED `token_revoked` when a revocation covers this verified caller. Which one
  // is said (jti, or principal and date); nothing of the token itself.
  [[nodiscard]] Status check(const identity::Identity& who) const;
  size_t size() const;

 private:
  struct Compiled {
    // "<issuer>\0<jti>", and "\0<jti>" for a jti revoked whatever its issuer.
    std::unordered_map<std::string, int64_t> tokens;  // → expires_at (0: kept)
    std::unordered_map<std::string, int64_t> users;   // principal → before
  };
  std::atomic<std::shared_ptr<const Compiled>> current_;
};

}  // namespace volguard::service
