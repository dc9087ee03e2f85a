#include "identity/oidc.h"

#include <curl/curl.h>

#include <nlohmann/json.hpp>

namespace volguard::identity {

namespace {

size_t collect(char* data, size_t size, size_t n, void* out) {
  auto* body = static_cast<std::string*>(out);
  if (body->size() + size * n > (1u << 20)) return 0;  // cap: abort the transfer
  body->append(data, size * n);
  return size * n;
}

Status unavailable(const std::string& why) {
  return Status(Code::kUnauthenticated, reason::kKeysUnavailable, why);
}

}  // namespace

Fetcher make_http_fetcher(const std::string& ca_file, std::chrono::seconds timeout) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  return [ca_file, timeout](const std::string& url) -> Result<std::string> {
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) return Status(Code::kUnavailable, "fetch_failed", "curl init failed");
    std::string body;
    char err[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, static_cast<long>(timeout.count()));
    curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, static_cast<long>(timeout.count()));
    curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl.get(), CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    if (!ca_file.empty()) curl_easy_setopt(curl.get(), CURLOPT_CAINFO, ca_file.c_str());
    CURLcode rc = curl_easy_perform(curl.get());
    if (rc != CURLE_OK) {
      return Status(Code::kUnavailable, "fetch_failed",
                    url + ": " + (err[0] ? std::string(err) : curl_easy_strerror(rc)));
    }
    long status = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
      return Status(Code::kUnavailable, "fetch_failed", url + ": HTTP " + std::to_string(status));
    }
    return body;
  };
}

OidcKeySource::OidcKeySource(std::string issuer, config::OidcConfig config, Fetcher fetch)
    : issuer_(std::move(issuer)), config_(std::move(config)), fetch_(std::move(fetch)) {
  last_error_ = "keys not fetched yet";
}

OidcKeySource::~OidcKeySource() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void OidcKeySource::start() { thread_ = std::thread([this] { loop(); }); }

void OidcKeySource::loop() {
  std::chrono::seconds backoff(1);
  while (true) {
    Status s = refresh();
    std::chrono::seconds wait = config_.jwks_refresh;
    if (!s.is_ok()) {
      wait = backoff;
      backoff = std::min(backoff * 2, std::chrono::seconds(60));
    } else {
      backoff = std::chrono::seconds(1);
    }
    std::unique_lock lock(stop_mu_);
    if (stop_cv_.wait_for(lock, wait, [&] { return stopping_; })) return;
  }
}

void OidcKeySource::set_error(std::string e) const {
  std::lock_guard lock(state_mu_);
  last_error_ = std::move(e);
}

Status OidcKeySource::refresh() const {
  std::lock_guard lock(fetch_mu_);
  return refresh_locked();
}

Status OidcKeySource::refresh_locked() const {
  fetches_++;
  std::string base = issuer_;
  if (!base.empty() && base.back() == '/') base.pop_back();
  auto discovery = fetch_(base + "/.well-known/openid-configuration");
  if (!discovery) {
    set_error(discovery.status().message());
    return discovery.status();
  }
  auto doc = nlohmann::json::parse(*discovery, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("issuer") || !doc["issuer"].is_string() ||
      !doc.contains("jwks_uri") || !doc["jwks_uri"].is_string()) {
    const std::string why = "discovery document of " + issuer_ + " lacks issuer or jwks_uri";
    set_error(why);
    return Status(Code::kUnavailable, "discovery_invalid", why);
  }
  // A discovery document naming another issuer is an impostor (or a misconfiguration).
  if (doc["issuer"].get<std::string>() != issuer_) {
    const std::string why = "discovery document names issuer '" + doc["issuer"].get<std::string>() +
                  "', not '" + issuer_ + "'";
    set_error(why);
    return Status(Code::kUnavailable, "discovery_invalid", why);
  }
  auto jwks = fetch_(doc["jwks_uri"].get<std::string>());
  if (!jwks) {
    set_error(jwks.status().message());
    return jwks.status();
  }
  auto set = parse_jwks(*jwks);
  if (!set) {
    set_error(set.status().message());
    return set.status();
  }
  auto map = std::make_shared<KeyMap>();
  for (auto& k : set->keys) (*map)[k.kid] = std::move(k);
  keys_.store(std::move(map));
  {
    std::lock_guard lock(state_mu_);
    last_error_.clear();
    last_success_ = std::chrono::steady_clock::now();
  }
  return Status::ok();
}

std::optional<KeyFetchState> OidcKeySource::fetch_state() const {
  std::lock_guard lock(state_mu_);
  return KeyFetchState{.last_success = last_success_};
}

Result<std::shared_ptr<const VerificationKey>> OidcKeySource::key_for(std::string_view kid,
                                                                        Alg alg) const {
  auto keys = keys_.load();
  if (!keys) {
    std::lock_guard lock(state_mu_);
    return unavailable("keys unavailable for issuer " + issuer_ + " (" + last_error_ + ")");
  }
  auto lookup = [&](const KeyMap& m) -> const Jwk* {
    if (kid.empty()) return m.size() == 1 ? &m.begin()->second : nullptr;
    auto it = m.find(kid);
    return it == m.end() ? nullptr : &it->second;
  };
  const Jwk* jwk = lookup(*keys);
  if (jwk == nullptr && !kid.empty()) {
    // Perhaps the provider rotated: refetch once, but at most once per interval, so that a
    // flood of made-up kids cannot hammer the provider.
    bool refetch = false;
    {
      std::lock_guard lock(state_mu_);
      auto now = std::chrono::steady_clock::now();
      if (now - last_refetch_ >= config_.min_refetch_interval) {
        last_refetch_ = now;
        refetch = true;
      }
    }
    if (refetch) {
      // If a fetch is already under way, do not queue behind it: it brings the new keys, and
      // this request must not wait on the provider.
      std::unique_lock fetching(fetch_mu_, std::try_to_lock);
      if (fetching.owns_lock() && refresh_locked().is_ok()) {
        keys = keys_.load();
        jwk = lookup(*keys);
      }
    }
  }
  if (jwk == nullptr) {
    return Status(Code::kUnauthenticated, reason::kKidUnknown,
                  kid.empty() ? "token has no kid and issuer " + issuer_ + " publishes several keys"
                              : "issuer " + issuer_ + " publishes no key with this kid");
  }
  if (jwk->alg && *jwk->alg != alg) {
    return Status(Code::kUnauthenticated, reason::kAlgKeyMismatch,
                  std::string("the key with this kid is for ") + alg_name(*jwk->alg) + ", not " +
                      alg_name(alg));
  }
  return jwk->key;
}

}  // namespace volguard::identity
