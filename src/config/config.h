// The server's one YAML file, parsed once into typed structs. Every refusal names the file,
// the key and the reason; unknown keys are refused so that a typo never weakens security.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace volguard::config {

enum class UsernameClaim { kSub, kEmail, kName };
const char* username_claim_name(UsernameClaim claim);

// An OpenID Connect provider: keys come from its discovery document's jwks_uri.
struct OidcConfig {
  bool enabled = false;
  std::string client_id;              // aud must contain it, unless skip_client_id_check
  bool skip_client_id_check = false;
  std::string claims_namespace;       // roles/groups may come as <namespace>roles, <namespace>groups
  std::string roles_claim = "roles";  // dotted paths allowed (Keycloak: realm_access.roles)
  std::string groups_claim = "groups";
  std::chrono::seconds jwks_refresh{3600};
  std::chrono::seconds fetch_timeout{5};
  std::chrono::seconds min_refetch_interval{10};  // bound on unknown-kid refetches
  std::string ca_file;                // private CA for the provider; HTTPS is always verified
};

struct IssuerConfig {
  std::string where;  // "volguard.yaml: security.issuers[0]" — prefix for later errors
  std::string issuer;
  std::string shared_secret_file;
  std::string shared_secret_env;
  std::string public_key_file;
  std::vector<std::string> audiences;
  OidcConfig oidc;
};

struct SecurityConfig {
  bool enabled = true;
  bool guest_access = true;
  UsernameClaim username_claim = UsernameClaim::kSub;
  std::chrono::seconds clock_skew{30};
  std::chrono::seconds token_lifetime{24 * 3600};
  std::chrono::seconds max_token_lifetime{0};  // 0 = no limit
  std::vector<std::string> admin_groups{"*"};
  std::vector<IssuerConfig> issuers;
};

struct TlsConfig {
  std::string cert_file;
  std::string key_file;
};

struct ApiConfig {
  std::string grpc = "127.0.0.1:9020";
  std::string rest = "127.0.0.1:9021";
  TlsConfig tls;
};

struct AuditConfig {
  std::string dir;                 // default <data_dir>/log/security
  std::string format = "logfmt";   // logfmt | json
  uint64_t max_bytes = 100ull << 20;
  int keep = 10;
  bool fail_closed = true;         // refuse state changes when the audit log cannot be written
  std::string key_file;            // HMAC chain key; default <data_dir>/audit.key (made if absent)
};

struct Config {
  std::string file;  // where it came from, for messages
  std::string data_dir = "./data";
  // Mount paths must lie under one of these: a caller must not mount over /etc.
  std::vector<std::string> mount_roots{"/mnt", "/media", "/tmp", "/var/lib/kubelet", "/run/volguard"};
  ApiConfig api;
  SecurityConfig security;
  AuditConfig audit;
  bool metrics_require_token = true;  // /metrics needs a token whose roles allow metrics.inspect
};

// Parses YAML text; `file` names it in errors.
Result<Config> parse_config(const std::string& yaml_text, const std::string& file);
Result<Config> load_config(const std::string& path);

}  // namespace volguard::config
