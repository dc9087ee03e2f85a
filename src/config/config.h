// The server's one YAML file, parsed once into typed structs. Every refusal names the file,
// the key and the reason; unknown keys are refused so that a typo never weakens security.
#pragma once

#include <chrono>
#include <cstdint>
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
  // Issuers with the same group_domain share groups: a grant to "<domain>/eng" matches the
  // group claim "eng" from any of them, and from no other issuer. Default: the issuer itself.
  std::string group_domain;
};

// Client certificates as identities (api.tls.client_ca): who a verified certificate is, and
// which roles and groups it has. A bearer token, when the call also carries one, decides.
struct X509Mapping {
  std::string match;   // the principal exactly ("spiffe://cluster.local/ns/a/sa/b", a CN), or
  std::string prefix;  // its beginning ("spiffe://cluster.local/ns/a/"); one of the two
  std::vector<std::string> roles;
  std::vector<std::string> groups;
};
enum class X509Principal { kSanUri, kCommonName };
struct X509Config {
  bool enabled = false;           // security.x509 is present
  std::string issuer = "x509";    // the identity's issuer: principals are "<issuer>/<name>"
  X509Principal principal = X509Principal::kSanUri;  // san_uri (SPIFFE ID) | cn
  std::vector<X509Mapping> mappings;  // every matching mapping adds its roles and groups
};

struct SecurityConfig {
  bool enabled = true;
  bool guest_access = true;
  UsernameClaim username_claim = UsernameClaim::kSub;
  std::chrono::seconds clock_skew{30};
  std::chrono::seconds token_lifetime{24 * 3600};
  std::chrono::seconds max_token_lifetime{0};  // 0 = no limit
  // Ownership admins by group, each qualified "<group_domain>/<group>" (stored canonical, the
  // group escaped). Empty by default: a token that merely claims a group must not be an admin
  // unless the config names that issuer's group.
  std::vector<std::string> admin_groups;
  std::vector<IssuerConfig> issuers;
  X509Config x509;
};

struct TlsConfig {
  std::string cert_file;
  std::string key_file;
  // Require a client certificate signed by this CA on gRPC and REST (mTLS); also the CA that
  // the node certificates of a cluster come from (forwards between nodes present and verify them).
  std::string client_ca;
  std::string client_crl;  // PEM CRL(s) of client_ca: certificates listed are refused
};

struct ApiConfig {
  std::string grpc = "127.0.0.1:9020";
  std::string rest = "127.0.0.1:9021";
  TlsConfig tls;
  // A REST request (TLS handshake, headers and body) must arrive whole within this, counted from
  // the connection's accept or its previous response: a client trickling bytes is cut off.
  std::chrono::seconds rest_read_timeout{10};
  // Open REST connections in all (each holds a worker thread) and per peer address; the per-peer
  // cap is below the total so that one address can never hold every worker.
  size_t rest_max_connections = 64;
  size_t rest_max_connections_per_peer = 16;
};

struct AuditConfig {
  std::string dir;                 // default <data_dir>/log/security
  std::string format = "logfmt";   // logfmt | json
  uint64_t max_bytes = 100ull << 20;
  int keep = 10;
  bool fail_closed = true;         // refuse state changes when the audit log cannot be written
  std::string key_file;            // HMAC chain key; default <data_dir>/audit.key (made if absent)
};

// Capacity per quota subject; 0 = unlimited.
struct QuotaLimits {
  uint64_t max_bytes = 0;      // total provisioned bytes of the subject's volumes
  uint64_t max_volumes = 0;
  uint64_t max_snapshots = 0;
  bool operator==(const QuotaLimits&) const = default;
};

// Bounds that hold for everyone, admins included: a single request must not be able to ask
// the node for more than it could ever provide.
struct LimitsConfig {
  uint64_t max_volume_size = uint64_t{16} << 40;  // 16 TiB
};

struct QuotasConfig {
  // A guest has no token, so every guest shares this one quota (small by default: the node
  // must survive anyone who can reach the port). A quota stored with `quota set --guest`
  // replaces it.
  QuotaLimits guest{.max_bytes = uint64_t{1} << 30, .max_volumes = 10, .max_snapshots = 10};
};

// The metadata store: SQLite in data_dir (one node, the default) or etcd (a cluster).
struct EtcdConfig {
  std::vector<std::string> endpoints;  // host:port of the members
  std::string prefix = "/volguard";    // every key under it
  std::string ca_file;                 // TLS to etcd: the members' CA (https when set)
  std::string cert_file;               // client certificate, for etcd --client-cert-auth
  std::string key_file;
  std::string username;                // etcd auth; the password from a file, never inline
  std::string password_file;
  std::chrono::seconds timeout{2};      // per etcd call
  std::chrono::seconds stale_after{3};  // past this without a confirmed-complete catalog,
                                        // decisions are refused (metadata_stale)
  std::chrono::seconds node_ttl{5};     // this node's liveness lease
};

struct StoreConfig {
  bool etcd_enabled = false;
  EtcdConfig etcd;
};

// This node in a cluster: its name (what other nodes and `node list` call it, and a volume's
// home) and where other nodes reach its gRPC API to forward requests for its volumes.
struct NodeConfig {
  std::string name;       // default: the host name
  std::string advertise;  // default: api.grpc
};

// A key-encryption key (crypto/kek.h): exactly one of file, env or kms_socket.
struct KekConfig {
  std::string name;            // the key's name in encryption.keys (volume create --secret-key)
  std::string file;            // 32 raw bytes or 64 hex digits, mode 0600
  std::string env;             // a variable (a Kubernetes Secret), read once at start and unset
  std::string kms_socket;      // a Kubernetes KMS v2 plugin's unix socket
  std::chrono::milliseconds kms_timeout{2000};
  // Earlier local KEKs of this name, kept only to unwrap while `volguard key rotate` re-wraps
  // what they wrapped; remove them once it reports nothing left under them. (A KMS keeps its
  // own earlier key versions: the wrapped key names its key_id.)
  std::vector<std::string> retired_files;
  // A tenant's KEK: only callers in one of these groups ("<group_domain>/<group>", as
  // admin_groups) — and ownership admins — may name it, and it is the default for their
  // encrypted volumes (the first such key in the file). Empty: anyone may name it.
  std::vector<std::string> groups;
};

struct EncryptionConfig {
  std::vector<KekConfig> keys;
  std::string default_key;  // the key of `--secure` without --secret-key; default: the first
};

struct Config {
  std::string file;  // where it came from, for messages
  std::string data_dir = "./data";
  // Mount paths must lie under one of these: a caller must not mount over /etc.
  std::vector<std::string> mount_roots{"/mnt", "/media", "/tmp", "/var/lib/kubelet", "/run/volguard"};
  // The CSI node ids (what each node plugin's NodeGetInfo answers, the Kubernetes node names)
  // this server serves. ControllerPublishVolume to any other node is NOT_FOUND `node_not_found`.
  std::vector<std::string> nodes;
  ApiConfig api;
  SecurityConfig security;
  AuditConfig audit;
  bool metrics_require_token = true;  // /metrics needs a token whose roles allow metrics.inspect
  LimitsConfig limits;
  QuotasConfig quotas;
  StoreConfig store;
  NodeConfig node;
  EncryptionConfig encryption;
};

// Parses YAML text; `file` names it in errors.
Result<Config> parse_config(const std::string& yaml_text, const std::string& file);
Result<Config> load_config(const std::string& path);

}  // namespace volguard::config
