#include "identity/verifier.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <simdjson.h>

#include "common/openssl.h"
#include "common/text.h"
#include "identity/oidc.h"

namespace volguard::identity {

Identity guest_identity() {
  Identity id;
  id.guest = true;
  id.roles = {"system.guest"};
  return id;
}

namespace {

Status fail(const char* why, std::string message) {
  return Status(Code::kUnauthenticated, why, std::move(message));
}

namespace dom = simdjson::dom;

enum class DateCheck { kOk, kNotNumber, kOutOfRange };

// Reads a NumericDate claim: a number (fractions allowed, RFC 7519 §2) within
// [0, kMaxNumericDate]. Range is checked before any conversion: converting an out-of-range
// double is undefined behaviour, and a date near INT64_MAX would overflow `+ skew`.
DateCheck numeric_date(dom::element value, int64_t* out) {
  switch (value.type()) {
    case dom::element_type::INT64: {
      int64_t v = value.get_int64().value_unsafe();
      if (v < 0 || v > kMaxNumericDate) return DateCheck::kOutOfRange;
      *out = v;
      return DateCheck::kOk;
    }
    case dom::element_type::UINT64: return DateCheck::kOutOfRange;  // > INT64_MAX
    case dom::element_type::DOUBLE: {
      double d = value.get_double().value_unsafe();
      if (!std::isfinite(d)) return DateCheck::kNotNumber;
      if (d < 0 || d > static_cast<double>(kMaxNumericDate)) return DateCheck::kOutOfRange;
      *out = static_cast<int64_t>(std::floor(d));
      return DateCheck::kOk;
    }
    default: return DateCheck::kNotNumber;
  }
}

// The first member name that appears twice in `object`. A repeated member is ambiguous —
// parsers disagree on which one wins (simdjson yields both, nlohmann keeps the last) — so a
// token with one is refused, in the header as in the payload, rather than guessed at.
std::optional<std::string_view> repeated_member(dom::object object) {
  std::vector<std::string_view> keys;
  keys.reserve(object.size());
  for (dom::key_value_pair field : object) keys.push_back(field.key);
  std::sort(keys.begin(), keys.end());
  auto it = std::adjacent_find(keys.begin(), keys.end());
  if (it == keys.end()) return std::nullopt;
  return *it;
}

// The registered and volguard claims read from a payload; everything else is ignored.
enum ClaimIndex { kIss, kSub, kName, kEmail, kJti, kExp, kNbf, kIat, kAud, kRoles, kGroups,
                  kEmailVerified, kClaimCount };
constexpr std::string_view kClaimNames[kClaimCount] = {"iss", "sub", "name", "email", "jti", "exp",
                                                       "nbf", "iat", "aud", "roles", "groups",
                                                       "email_verified"};

struct Claims {
  dom::element value[kClaimCount];
  bool present[kClaimCount] = {};
  bool has(ClaimIndex i) const { return present[i] && value[i].type() != dom::element_type::NULL_VALUE; }
};

Status string_claim(const Claims& claims, ClaimIndex i, std::string* out) {
  if (!claims.has(i)) return Status::ok();
  if (claims.value[i].type() != dom::element_type::STRING) {
    return fail(reason::kClaimBadType, "claim '" + std::string(kClaimNames[i]) + "' must be a string");
  }
  *out = claims.value[i].get_string().value_unsafe();
  return Status::ok();
}

Status string_list_of(dom::element value, const std::string& name, std::vector<std::string>* out) {
  if (value.type() == dom::element_type::NULL_VALUE) return Status::ok();
  auto bad = [&] {
    return fail(reason::kClaimBadType, "claim '" + name + "' must be an array of strings");
  };
  if (value.type() != dom::element_type::ARRAY) return bad();
  dom::array list;
  if (value.get_array().get(list) != simdjson::SUCCESS) return bad();
  out->reserve(list.size());
  for (dom::element v : list) {
    if (v.type() != dom::element_type::STRING) return bad();
    out->emplace_back(v.get_string().value_unsafe());
  }
  return Status::ok();
}

Status string_list_claim(const Claims& claims, ClaimIndex i, std::vector<std::string>* out) {
  if (!claims.has(i)) return Status::ok();
  return string_list_of(claims.value[i], std::string(kClaimNames[i]), out);
}

// roles/groups from where this issuer keeps them: "<namespace>roles", a JSON pointer
// ("/realm_access/roles"), or the plain top-level claim.
Status mapped_list(const Claims& claims, dom::object payload, dom::element doc,
                   const std::string& ns, const std::string& pointer, ClaimIndex plain,
                   std::vector<std::string>* out) {
  if (!ns.empty()) {
    std::string key = ns + std::string(kClaimNames[plain]);
    dom::element value;
    if (payload.at_key(key).get(value) == simdjson::SUCCESS) return string_list_of(value, key, out);
  }
  if (!pointer.empty()) {
    dom::element value;
    if (doc.at_pointer(pointer).get(value) == simdjson::SUCCESS) return string_list_of(value, pointer, out);
    return Status::ok();  // absent: no roles/groups
  }
  return string_list_claim(claims, plain, out);
}

// "realm_access.roles" → "/realm_access/roles" (RFC 6901 escaping).
std::string dotted_to_pointer(const std::string& dotted) {
  std::string out;
  for (const auto& part : split(dotted, '.')) {
    out += "/";
    for (char c : part) {
      if (c == '~') out += "~0";
      else if (c == '/') out += "~1";
      else out += c;
    }
  }
  return out;
}

// Quotes an untrusted value for a message: bounded and printable, so a claim cannot flood or
// forge log text.
std::string printable(std::string_view value) {
  std::string out = "'";
  size_t n = 0;
  for (char c : value) {
    if (++n > 80) {
      out += "...";
      break;
    }
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out + "'";
}

struct ParsedHeader {
  Alg alg;
  std::string alg_text;
  std::string kid;
};

Result<ParsedHeader> parse_header_uncached(std::string_view header_b64) {
  auto header_raw = base64url_decode(header_b64);
  if (!header_raw) return fail(reason::kHeaderBadBase64, "token header is not base64url");
  // Its own parser: the payload's parser must not invalidate what is read here.
  thread_local dom::parser parser;
  dom::element doc;
  dom::object header;
  if (parser.parse(*header_raw).get(doc) != simdjson::SUCCESS ||
      doc.get_object().get(header) != simdjson::SUCCESS) {
    return fail(reason::kHeaderBadJson, "token header is not a JSON object");
  }
  // {"alg":"none","alg":"HS256"}: which alg did the signer mean? Refuse before reading any.
  if (auto repeated = repeated_member(header)) {
    return fail(reason::kHeaderMemberRepeated,
                "token header member " + printable(*repeated) + " appears more than once");
  }
  std::string_view alg_view;
  if (header.at_key("alg").get(alg_view) != simdjson::SUCCESS) {
    return fail(reason::kAlgMissing, "token header has no 'alg' string");
  }
  std::string alg_text(alg_view);
  if (to_lower(alg_text) == "none") {
    return fail(reason::kAlgNone, "unsigned tokens (alg 'none') are never accepted");
  }
  auto alg = alg_from_name(alg_text);
  if (!alg) {
    return fail(reason::kAlgUnsupported, "algorithm " + printable(alg_text) + " is not supported");
  }
  // We implement no JWS extension, so any critical one must be refused (RFC 7515 §4.1.11).
  dom::element crit;
  if (header.at_key("crit").get(crit) == simdjson::SUCCESS) {
    return fail(reason::kCritUnsupported,
                "token header 'crit' names extensions this server does not understand");
  }
  ParsedHeader out{*alg, alg_text, {}};
  std::string_view kid;
  if (header.at_key("kid").get(kid) == simdjson::SUCCESS) out.kid = kid;
  // jku, jwk, x5u and x5c are never read: a token must not choose the key that verifies it.
  return out;
}

// Tokens from one issuer share their header byte for byte, so each thread remembers the last
// few accepted headers: parsing is deterministic, and this halves the JSON work per request.
Result<ParsedHeader> parse_header(std::string_view header_b64) {
  struct Entry {
    std::string b64;
    ParsedHeader parsed;
  };
  thread_local std::vector<Entry> cache;
  for (const auto& e : cache) {
    if (e.b64 == header_b64) return e.parsed;
  }
  auto parsed = parse_header_uncached(header_b64);
  if (parsed && header_b64.size() <= 512) {
    if (cache.size() >= 16) cache.erase(cache.begin());
    cache.push_back({std::string(header_b64), *parsed});
  }
  return parsed;
}

}  // namespace

std::optional<VerifiedTokenCache::Entry> VerifiedTokenCache::get(const std::string& digest) {
  std::lock_guard lock(mu_);
  auto it = index_.find(digest);
  if (it == index_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void VerifiedTokenCache::put(const std::string& digest, Entry entry) {
  if (capacity_ == 0) return;
  std::lock_guard lock(mu_);
  if (auto it = index_.find(digest); it != index_.end()) {
    it->second->second = std::move(entry);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.emplace_front(digest, std::move(entry));
  index_[digest] = lru_.begin();
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

void VerifiedTokenCache::erase(const std::string& digest) {
  std::lock_guard lock(mu_);
  if (auto it = index_.find(digest); it != index_.end()) {
    lru_.erase(it->second);
    index_.erase(it);
  }
}

size_t VerifiedTokenCache::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

Verifier::Verifier(VerifierOptions options, std::vector<TrustedIssuer> issuers)
    : options_(options),
      cache_(options.token_cache_entries),
      refused_(options.token_cache_entries / 4) {
  for (auto& issuer : issuers) {
    std::string key = issuer.issuer;
    issuers_.emplace(std::move(key), std::move(issuer));
  }
}

Result<std::string> load_secret(const config::IssuerConfig& issuer) {
  std::string secret;
  if (!issuer.shared_secret_env.empty()) {
    const char* value = std::getenv(issuer.shared_secret_env.c_str());
    if (value == nullptr || *value == '\0') {
      return Status(Code::kInvalidArgument, "bad_config",
                    issuer.where + ".shared_secret_env: environment variable " +
                        issuer.shared_secret_env + " is not set or empty");
    }
    secret = value;
  } else {
    auto text = read_private_file(issuer.shared_secret_file);
    if (!text) {
      // An exposed secret keeps its own reason: the fix is chmod, not an edit of the config.
      const Status& s = text.status();
      bool exposed = s.reason() == "secret_file_exposed";
      return Status(exposed ? s.code() : Code::kInvalidArgument,
                    exposed ? s.reason() : "bad_config",
                    issuer.where + ".shared_secret_file: " + s.message());
    }
    // Editors and `echo` add a newline; it is not part of the secret (`volguard token
    // generate` reads the same file the same way).
    secret = trim_trailing_newlines(*text);
  }
  return secret;
}

Result<std::shared_ptr<const Verifier>> Verifier::from_config(const config::SecurityConfig& cfg,
                                                             bool fetch_keys_now) {
  std::vector<TrustedIssuer> issuers;
  for (const auto& ic : cfg.issuers) {
    if (ic.oidc.enabled) {
      auto source = std::make_shared<OidcKeySource>(
          ic.issuer, ic.oidc, make_http_fetcher(ic.oidc.ca_file, ic.oidc.fetch_timeout));
      if (fetch_keys_now) (void)source->refresh();  // a failure shows as keys_unavailable
      source->start();  // fetches in the background: a provider that is down blocks nothing
      TrustedIssuer t{ic.issuer, source, ic.audiences};
      if (!ic.oidc.skip_client_id_check) t.audiences.push_back(ic.oidc.client_id);
      t.claims_namespace = ic.oidc.claims_namespace;
      if (ic.oidc.roles_claim != "roles") t.roles_pointer = dotted_to_pointer(ic.oidc.roles_claim);
      if (ic.oidc.groups_claim != "groups") t.groups_pointer = dotted_to_pointer(ic.oidc.groups_claim);
      t.group_domain = ic.group_domain;
      issuers.push_back(std::move(t));
      continue;
    }
    std::shared_ptr<const VerificationKey> key;
    if (!ic.public_key_file.empty()) {
      auto pem = read_file(ic.public_key_file);
      if (!pem) {
        return Status(Code::kInvalidArgument, "bad_config",
                      ic.where + ".public_key_file: " + pem.status().message());
      }
      auto parsed = VerificationKey::from_public_pem(*pem);
      if (!parsed) {
        return Status(Code::kInvalidArgument, "bad_config",
                      ic.where + ".public_key_file: " + ic.public_key_file + ": " +
                          parsed.status().message());
      }
      key = *parsed;
    } else {
      auto secret = load_secret(ic);
      if (!secret) return secret.status();
      auto parsed = VerificationKey::from_secret(std::move(secret).value());
      if (!parsed) {
        std::string key_name = ic.shared_secret_env.empty() ? ".shared_secret_file: " +
                                                                  ic.shared_secret_file
                                                            : ".shared_secret_env: " +
                                                                  ic.shared_secret_env;
        return Status(Code::kInvalidArgument, "bad_config",
                      ic.where + key_name + ": " + parsed.status().message());
      }
      key = *parsed;
    }
    TrustedIssuer t{ic.issuer, std::make_shared<StaticKeySource>(key), ic.audiences};
    t.group_domain = ic.group_domain;
    issuers.push_back(std::move(t));
  }
  VerifierOptions options;
  options.username_claim = cfg.username_claim;
  options.clock_skew_seconds = cfg.clock_skew.count();
  options.max_token_lifetime_seconds = cfg.max_token_lifetime.count();
  return std::shared_ptr<const Verifier>(std::make_shared<Verifier>(options, std::move(issuers)));
}

std::map<std::string, KeyFetchState> Verifier::key_fetch_states() const {
  std::map<std::string, KeyFetchState> out;
  for (const auto& [name, issuer] : issuers_) {
    if (auto state = issuer.keys->fetch_state()) out.emplace(name, *state);
  }
  return out;
}

Result<Identity> Verifier::verify(std::string_view token) const {
  return verify_at(token, static_cast<int64_t>(std::time(nullptr)));
}

Status Verifier::check_not_expired(int64_t exp, int64_t now) const {
  if (now > exp + options_.clock_skew_seconds) {
    return fail(reason::kTokenExpired, "token expired at " + rfc3339(exp));
  }
  return Status::ok();
}

Status Verifier::check_not_before(int64_t nbf, int64_t now) const {
  if (nbf > now + options_.clock_skew_seconds) {
    return fail(reason::kTokenNotYetValid, "token is not valid before " + rfc3339(nbf));
  }
  return Status::ok();
}

Status Verifier::check_issued_at(int64_t iat, int64_t now) const {
  if (iat > now + options_.clock_skew_seconds) {
    return fail(reason::kIatInFuture, "token claims to be issued in the future (" + rfc3339(iat) + ")");
  }
  return Status::ok();
}

Result<Identity> Verifier::verify_at(std::string_view token, int64_t now) const {
  // Size first: nothing of an oversized token is parsed (or hashed).
  if (token.size() > kMaxTokenBytes) {
    return fail(reason::kTokenTooLarge, "token is " + std::to_string(token.size()) +
                                            " bytes; the limit is 16384");
  }
  if (options_.token_cache_entries == 0) return verify_uncached(token, now, nullptr);
  const std::string digest = sha256(token);
  // An entry counts only while the key it was checked with is still the one its issuer serves
  // for it: a JWKS rotation or a changed key drops it and the token is verified afresh.
  auto same_key = [](const VerifiedTokenCache::Entry& e) {
    auto key = e.issuer->keys->key_for(e.kid, e.alg);
    return key.is_ok() && key->get() == e.key.get();
  };
  if (auto hit = cache_.get(digest)) {
    if (same_key(*hit)) {
      const Identity& id = hit->identity;
      Status timely = check_not_expired(id.expires_at, now);
      if (timely.is_ok() && hit->has_not_before) timely = check_not_before(hit->not_before, now);
      if (timely.is_ok() && id.issued_at != 0) timely = check_issued_at(id.issued_at, now);
      if (timely.is_ok()) return id;
    }
    cache_.erase(digest);  // verified afresh below: the refusal (or success) is a full one's
  } else if (auto refused = refused_.get(digest)) {
    if (same_key(*refused)) return refused->refusal;
    refused_.erase(digest);
  }
  VerifiedTokenCache::Entry entry;
  auto verified = verify_uncached(token, now, &entry);
  if (verified.is_ok()) {
    entry.identity = *verified;
    cache_.put(digest, std::move(entry));
  } else if (verified.status().reason() == reason::kSignatureInvalid && entry.key) {
    // The signature is the expensive check and its answer, for this key, never changes.
    entry.refusal = verified.status();
    refused_.put(digest, std::move(entry));
  }
  return verified;
}

void Verifier::forget(std::string_view token) const {
  if (options_.token_cache_entries == 0 || token.size() > kMaxTokenBytes) return;
  cache_.erase(sha256(token));
}

Result<Identity> Verifier::verify_uncached(std::string_view token, int64_t now,
                                           VerifiedTokenCache::Entry* entry) const {
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot1 == std::string_view::npos || dot2 == std::string_view::npos ||
      token.find('.', dot2 + 1) != std::string_view::npos || dot1 == 0 || dot2 == dot1 + 1) {
    return fail(reason::kTokenMalformed,
                "token is not a compact JWS (header.payload.signature)");
  }
  std::string_view header_b64 = token.substr(0, dot1);
  std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string_view signature_b64 = token.substr(dot2 + 1);
  std::string_view signing_input = token.substr(0, dot2);

  // Header.
  auto header = parse_header(header_b64);
  if (!header) return header.status();
  const Alg alg = header->alg;
  const std::string& alg_text = header->alg_text;
  const std::string& kid = header->kid;

  // Payload. simdjson, one parser per thread: the claims are the hot part of a verify, and
  // nlohmann's DOM cost more than the HMAC itself.
  auto payload_raw = base64url_decode(payload_b64);
  if (!payload_raw) return fail(reason::kPayloadBadBase64, "token payload is not base64url");
  thread_local dom::parser parser;
  dom::element doc;
  dom::object payload;
  if (parser.parse(*payload_raw).get(doc) != simdjson::SUCCESS ||
      doc.get_object().get(payload) != simdjson::SUCCESS) {
    return fail(reason::kPayloadBadJson, "token payload is not a JSON object");
  }
  if (auto repeated = repeated_member(payload)) {
    return fail(reason::kClaimRepeated, "claim " + printable(*repeated) + " appears more than once");
  }
  Claims claims;
  for (dom::key_value_pair field : payload) {
    for (int i = 0; i < kClaimCount; ++i) {
      if (field.key != kClaimNames[i]) continue;
      claims.present[i] = true;
      claims.value[i] = field.value;
      break;
    }
  }
  if (!claims.has(kIss) || claims.value[kIss].type() != dom::element_type::STRING ||
      claims.value[kIss].get_string().value_unsafe().empty()) {
    return fail(reason::kIssMissing, "claim 'iss' is missing or not a string");
  }
  const std::string_view iss = claims.value[kIss].get_string().value_unsafe();
  auto issuer_it = issuers_.find(iss);
  if (issuer_it == issuers_.end()) {
    return fail(reason::kIssuerUnknown, "issuer " + printable(iss) + " is not trusted");
  }
  const TrustedIssuer& issuer = issuer_it->second;

  // Signature.
  auto key = issuer.keys->key_for(kid, alg);
  if (!key) return key.status();
  if (!(*key)->allows(alg)) {
    return fail(reason::kAlgKeyMismatch, "algorithm " + alg_text + " is not allowed for issuer " +
                                             printable(iss) + " (its " +
                                             key_kind_name((*key)->kind()) + " key allows " +
                                             (*key)->allowed_algs() + ")");
  }
  auto signature = base64url_decode(signature_b64);
  if (!signature) return fail(reason::kSignatureBadBase64, "token signature is not base64url");
  switch ((*key)->verify(alg, signing_input, *signature)) {
    case SignatureCheck::kValid: break;
    case SignatureCheck::kBadLength:
      return fail(reason::kSignatureBadLength,
                  "signature has the wrong length for " + alg_text);
    case SignatureCheck::kInvalid:
      if (entry != nullptr) {
        entry->key = *key;
        entry->kid = kid;
        entry->alg = alg;
        entry->issuer = &issuer;
      }
      return fail(reason::kSignatureInvalid,
                  "signature does not verify with issuer " + printable(iss) + "'s key");
  }

  // Time.
  Identity id;
  if (!claims.has(kExp)) return fail(reason::kExpMissing, "claim 'exp' is required");
  // One refusal per claim and failure: "<claim>_not_number" / "<claim>_out_of_range".
  auto read_date = [&](ClaimIndex i, const char* not_number, const char* out_of_range,
                       int64_t* out) -> Status {
    const std::string name(kClaimNames[i]);
    switch (numeric_date(claims.value[i], out)) {
      case DateCheck::kOk: return Status::ok();
      case DateCheck::kNotNumber:
        return fail(not_number, "claim '" + name + "' must be a number (NumericDate)");
      case DateCheck::kOutOfRange:
        return fail(out_of_range, "claim '" + name + "' must be between 0 and " +
                                      std::to_string(kMaxNumericDate) + " (9999-12-31)");
    }
    return Status::ok();
  };
  if (auto s = read_date(kExp, reason::kExpNotNumber, reason::kExpOutOfRange, &id.expires_at);
      !s.is_ok()) {
    return s;
  }
  RETURN_IF_ERROR(check_not_expired(id.expires_at, now));
  int64_t nbf = 0;
  if (claims.has(kNbf)) {
    if (auto s = read_date(kNbf, reason::kNbfNotNumber, reason::kNbfOutOfRange, &nbf); !s.is_ok()) {
      return s;
    }
    RETURN_IF_ERROR(check_not_before(nbf, now));
  }
  if (claims.has(kIat)) {
    if (auto s = read_date(kIat, reason::kIatNotNumber, reason::kIatOutOfRange, &id.issued_at);
        !s.is_ok()) {
      return s;
    }
    RETURN_IF_ERROR(check_issued_at(id.issued_at, now));
  }
  if (options_.max_token_lifetime_seconds > 0) {
    if (!claims.has(kIat)) {
      return fail(reason::kIatMissing,
                  "claim 'iat' is required when security.max_token_lifetime is set");
    }
    if (id.expires_at - id.issued_at > options_.max_token_lifetime_seconds) {
      return fail(reason::kLifetimeTooLong,
                  "token lifetime (exp - iat) of " + std::to_string(id.expires_at - id.issued_at) +
                      "s exceeds security.max_token_lifetime of " +
                      std::to_string(options_.max_token_lifetime_seconds) + "s");
    }
  }

  // Audience.
  if (!issuer.audiences.empty()) {
    if (!claims.has(kAud)) {
      return fail(reason::kAudMissing, "claim 'aud' is required by issuer " + printable(iss));
    }
    auto accepted = [&](dom::element v) {
      if (v.type() != dom::element_type::STRING) return false;
      std::string_view aud = v.get_string().value_unsafe();
      for (const auto& a : issuer.audiences) {
        if (aud == a) return true;
      }
      return false;
    };
    bool matched = false;
    dom::element aud = claims.value[kAud];
    if (aud.type() == dom::element_type::STRING) {
      matched = accepted(aud);
    } else if (aud.type() == dom::element_type::ARRAY) {
      dom::array list;
      if (aud.get_array().get(list) != simdjson::SUCCESS) return fail(reason::kClaimBadType, "claim 'aud' is unreadable");
      for (dom::element v : list) matched = matched || accepted(v);
    } else {
      return fail(reason::kClaimBadType, "claim 'aud' must be a string or an array of strings");
    }
    if (!matched) {
      return fail(reason::kAudMismatch,
                  "claim 'aud' does not name an audience accepted by issuer " + printable(iss));
    }
  }

  // Identity claims.
  id.issuer = iss;
  id.group_domain = issuer.group_domain.empty() ? id.issuer : issuer.group_domain;
  for (const auto& [index, field] : {std::pair{kSub, &id.subject}, std::pair{kName, &id.name},
                                     std::pair{kEmail, &id.email}, std::pair{kJti, &id.token_id}}) {
    RETURN_IF_ERROR(string_claim(claims, index, field));
  }
  if (auto s = mapped_list(claims, payload, doc, issuer.claims_namespace, issuer.roles_pointer,
                           kRoles, &id.roles);
      !s.is_ok()) {
    return s;
  }
  if (auto s = mapped_list(claims, payload, doc, issuer.claims_namespace, issuer.groups_pointer,
                           kGroups, &id.groups);
      !s.is_ok()) {
    return s;
  }
  switch (options_.username_claim) {
    case config::UsernameClaim::kSub: id.username = id.subject; break;
    case config::UsernameClaim::kEmail: id.username = id.email; break;
    case config::UsernameClaim::kName: id.username = id.name; break;
  }
  // An unverified email must not name anyone (OpenStorage ignores email_verified).
  if (options_.username_claim == config::UsernameClaim::kEmail && claims.has(kEmailVerified)) {
    dom::element v = claims.value[kEmailVerified];
    bool verified = v.type() == dom::element_type::BOOL ? v.get_bool().value_unsafe()
                    : v.type() == dom::element_type::STRING
                        ? v.get_string().value_unsafe() == "true"
                        : false;
    if (!verified) {
      return fail(reason::kEmailUnverified,
                  "claim 'email_verified' is false, and the username comes from 'email'");
    }
  }
  if (id.username.empty()) {
    return fail(reason::kUsernameMissing,
                std::string("claim '") + config::username_claim_name(options_.username_claim) +
                    "' (security.username_claim) is missing or empty");
  }
  // The username names a principal in grants, audit records and messages: a newline in it
  // could forge a log line or a second principal.
  if (has_control_chars(id.username)) {
    return fail(reason::kUsernameInvalid,
                std::string("claim '") + config::username_claim_name(options_.username_claim) +
                    "' (security.username_claim) contains control characters");
  }
  if (entry != nullptr) {
    entry->not_before = nbf;
    entry->has_not_before = claims.has(kNbf);
    entry->key = *key;
    entry->kid = kid;
    entry->alg = alg;
    entry->issuer = &issuer;
  }
  return id;
}

}  // namespace volguard::identity
