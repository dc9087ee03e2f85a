// Keys that follow an OpenID Connect provider: discovery, JWKS cached and refreshed in the
// background, one rate-limited refetch for an unknown kid, and "keys unavailable" (never an
// acceptance) while the provider cannot be reached.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "config/config.h"
#include "identity/jwk.h"
#include "identity/verifier.h"

namespace volguard::identity {

// GETs a URL and returns its body; errors name the URL and the cause.
using Fetcher = std::function<Result<std::string>(const std::string& url)>;

// libcurl: HTTPS verified (optionally against ca_file), timeout, 1 MiB cap, no redirects.
Fetcher make_http_fetcher(const std::string& ca_file, std::chrono::seconds timeout);

class OidcKeySource : public KeySource {
 public:
  OidcKeySource(std::string issuer, config::OidcConfig config, Fetcher fetch);
  ~OidcKeySource() override;

  // Starts the background fetch/refresh thread (first fetch at once, retried with backoff).
  void start();
  Result<std::shared_ptr<const VerificationKey>> key_for(std::string_view kid,
                                                           Alg alg) const override;

  uint64_t fetch_count() const { return fetches_.load(); }
  bool has_keys() const { return keys_.load() != nullptr; }
  std::optional<KeyFetchState> fetch_state() const override;
  // Fetches discovery + JWKS now and swaps the key set in (used by the thread and by refetch).
  Status refresh() const;

 private:
  using KeyMap = std::map<std::string, Jwk, std::less<>>;
  void loop();

  std::string issuer_;
  config::OidcConfig config_;
  Fetcher fetch_;
  mutable std::atomic<std::shared_ptr<const KeyMap>> keys_;
  // One fetch at a time. Held across HTTP I/O, so the request path never takes it: requests
  // read the key snapshot (atomic) and the small state below (state_mu_) only.
  mutable std::mutex fetch_mu_;
  mutable std::mutex state_mu_;
  mutable std::chrono::steady_clock::time_point last_refetch_{};
  mutable std::string last_error_;
  mutable std::optional<std::chrono::steady_clock::time_point> last_success_;  // state_mu_
  void set_error(std::string e) const;
  Status refresh_locked() const;  // fetch_mu_ held
  mutable std::atomic<uint64_t> fetches_{0};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace volguard::identity
