#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <unistd.h>

#include <cstdint>
#include <set>

#include "common/size.h"
#include "common/text.h"

namespace volguard::config {

namespace {

Status bad(const std::string& file, const std::string& key, const std::string& reason) {
  return Status(Code::kInvalidArgument, "bad_config", file + ": " + key + ": " + reason);
}

// Refuses keys outside `allowed`: a misspelt `guest_acess: false` must not silently keep the
// default.
Status check_keys(const YAML::Node& node, const std::string& file, const std::string& where,
                  const std::set<std::string>& allowed) {
  if (!node.IsMap()) return bad(file, where, "must be a mapping");
  for (const auto& kv : node) {
    std::string key = kv.first.as<std::string>();
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return bad(file, where.empty() ? key : where + "." + key,
                 "unknown key (allowed here: " + list + ")");
    }
  }
  return Status::ok();
}

Result<std::string> get_string(const YAML::Node& node, const std::string& file,
                               const std::string& key) {
  if (!node.IsScalar()) return bad(file, key, "must be a string");
  return node.as<std::string>();
}

Result<bool> get_bool(const YAML::Node& node, const std::string& file, const std::string& key) {
  bool value = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
    return bad(file, key, "must be true or false");
  }
  return value;
}

Result<std::chrono::seconds> get_duration(const YAML::Node& node, const std::string& file,
                                          const std::string& key) {
  if (!node.IsScalar()) return bad(file, key, "must be a duration such as 30s, 24h or 7d");
  auto d = parse_duration(node.as<std::string>());
  if (!d) return bad(file, key, d.status().message());
  return *d;
}

Result<std::vector<std::string>> get_string_list(const YAML::Node& node, const std::string& file,
                                                 const std::string& key) {
  if (!node.IsSequence()) return bad(file, key, "must be a list of strings");
  std::vector<std::string> out;
  for (size_t i = 0; i < node.size(); ++i) {
    if (!node[i].IsScalar()) {
      return bad(file, key + "[" + std::to_string(i) + "]", "must be a string");
    }
    out.push_back(node[i].as<std::string>());
  }
  return out;
}

// A quota limit: a size (bytes) or a count; "0" or "unlimited" means no limit.
Result<uint64_t> parse_limit(const YAML::Node& node, const std::string& file,
                             const std::string& key, bool bytes) {
  if (!node.IsScalar()) return bad(file, key, "must be a number (0 or unlimited: no limit)");
  std::string text = node.as<std::string>();
  if (text == "0" || to_lower(text) == "unlimited") return uint64_t{0};
  if (bytes) {
    auto b = parse_size(text);
    if (!b) return bad(file, key, b.status().message());
    return *b;
  }
  auto n = parse_count(text);
  if (!n) return bad(file, key, "'" + text + "' is not a count (0 or unlimited: no limit)");
  return *n;
}

Result<IssuerConfig> parse_issuer(const YAML::Node& node, const std::string& file,
                                  const std::string& where) {
  RETURN_IF_ERROR(check_keys(node, file, where,
                             {"issuer", "shared_secret_file", "shared_secret_env",
                              "public_key_file", "audiences", "oidc", "group_domain"}));
  IssuerConfig out;
  out.where = file + ": " + where;
  if (!node["issuer"]) return bad(file, where + ".issuer", "is required");
  ASSIGN_OR_RETURN(out.issuer, get_string(node["issuer"], file, where + ".issuer"));
  if (out.issuer.empty()) return bad(file, where + ".issuer", "must not be empty");
  out.group_domain = out.issuer;
  if (node["group_domain"]) {
    ASSIGN_OR_RETURN(out.group_domain,
                     get_string(node["group_domain"], file, where + ".group_domain"));
    if (out.group_domain.empty()) return bad(file, where + ".group_domain", "must not be empty");
  }
  if (has_control_chars(out.group_domain)) {
    return bad(file, where + (node["group_domain"] ? ".group_domain" : ".issuer"),
               "must not contain control characters");
  }
  if (node["shared_secret_file"]) {
    ASSIGN_OR_RETURN(out.shared_secret_file,
                     get_string(node["shared_secret_file"], file, where + ".shared_secret_file"));
  }
  if (node["shared_secret_env"]) {
    ASSIGN_OR_RETURN(out.shared_secret_env,
                     get_string(node["shared_secret_env"], file, where + ".shared_secret_env"));
  }
  if (node["public_key_file"]) {
    ASSIGN_OR_RETURN(out.public_key_file,
                     get_string(node["public_key_file"], file, where + ".public_key_file"));
  }
  if (node["audiences"]) {
    ASSIGN_OR_RETURN(out.audiences, get_string_list(node["audiences"], file, where + ".audiences"));
  }
  if (node["oidc"]) {
    const auto& o = node["oidc"];
    const std::string w = where + ".oidc";
    RETURN_IF_ERROR(
        check_keys(o, file, w,
                   {"client_id", "skip_client_id_check", "namespace", "roles_claim", "groups_claim",
                    "jwks_refresh", "fetch_timeout", "min_refetch_interval", "ca_file"}));
    auto& oc = out.oidc;
    oc.enabled = true;
    if (o["client_id"]) {
      ASSIGN_OR_RETURN(oc.client_id, get_string(o["client_id"], file, w + ".client_id"));
    }
    if (o["skip_client_id_check"]) {
      ASSIGN_OR_RETURN(oc.skip_client_id_check,
                       get_bool(o["skip_client_id_check"], file, w + ".skip_client_id_check"));
    }
    if (o["namespace"]) {
      ASSIGN_OR_RETURN(oc.claims_namespace, get_string(o["namespace"], file, w + ".namespace"));
    }
    if (o["roles_claim"]) {
      ASSIGN_OR_RETURN(oc.roles_claim, get_string(o["roles_claim"], file, w + ".roles_claim"));
    }
    if (o["groups_claim"]) {
      ASSIGN_OR_RETURN(oc.groups_claim, get_string(o["groups_claim"], file, w + ".groups_claim"));
    }
    if (o["jwks_refresh"]) {
      ASSIGN_OR_RETURN(oc.jwks_refresh, get_duration(o["jwks_refresh"], file, w + ".jwks_refresh"));
    }
    if (o["fetch_timeout"]) {
      ASSIGN_OR_RETURN(oc.fetch_timeout,
                       get_duration(o["fetch_timeout"], file, w + ".fetch_timeout"));
    }
    if (o["min_refetch_interval"]) {
      ASSIGN_OR_RETURN(oc.min_refetch_interval,
                       get_duration(o["min_refetch_interval"], file, w + ".min_refetch_interval"));
    }
    if (o["ca_file"]) {
      ASSIGN_OR_RETURN(oc.ca_file, get_string(o["ca_file"], file, w + ".ca_file"));
    }
    if (oc.client_id.empty() && !oc.skip_client_id_check) {
      return bad(file, w + ".client_id", "is required (or set skip_client_id_check: true)");
    }
    if (oc.jwks_refresh.count() < 10) return bad(file, w + ".jwks_refresh", "must be at least 10s");
    if (oc.fetch_timeout.count() < 1) return bad(file, w + ".fetch_timeout", "must be at least 1s");
    bool loopback = out.issuer.rfind("http://127.0.0.1", 0) == 0 ||
                    out.issuer.rfind("http://localhost", 0) == 0 ||
                    out.issuer.rfind("http://[::1]", 0) == 0;
    if (out.issuer.rfind("https://", 0) != 0 && !loopback) {
      return bad(file, where + ".issuer",
                 "an OIDC issuer must be an https:// URL (plain http only on loopback)");
    }
  }
  int sources = !out.shared_secret_file.empty() + !out.shared_secret_env.empty() +
                !out.public_key_file.empty() + out.oidc.enabled;
  if (sources != 1) {
    return bad(file, where,
               "needs exactly one of shared_secret_file, shared_secret_env, public_key_file, oidc "
               "(one key source per issuer: no algorithm can be chosen by the token)");
  }
  return out;
}

// An admin_groups entry in its canonical form. Unqualified entries (and "*", which used to mean
// "anyone whose token claims group *") are refused: any issuer can mint a token with any group,
// so an admin group means something only together with the issuer that vouches for it.
Result<std::string> qualified_admin_group(const std::string& entry,
                                          const std::vector<IssuerConfig>& issuers,
                                          const std::string& file, const std::string& key) {
  auto parts = split_qualified(entry);
  if (!parts) {
    return bad(file, key,
               "'" + entry + "' must be qualified as <group_domain>/<group> (admin groups are "
               "per issuer; a group domain is an issuer's name unless it sets group_domain)");
  }
  bool known = false;
  for (const auto& ic : issuers) known = known || ic.group_domain == parts->first;
  if (!known) {
    return bad(file, key,
               "'" + std::string(parts->first) + "' is not the group_domain of any issuer "
               "(escape '/' in group names as %2F)");
  }
  auto group = unescape_name(parts->second);
  if (!group) return bad(file, key, group.status().message());
  if (*group == "*") {
    return bad(file, key, "a group named '*' never makes an ownership admin");
  }
  return qualify_name(parts->first, *group);
}

Result<X509Config> parse_x509(const YAML::Node& node, const std::vector<IssuerConfig>& issuers,
                              const std::string& file, const std::string& w) {
  RETURN_IF_ERROR(check_keys(node, file, w, {"issuer", "principal", "mappings"}));
  X509Config out;
  out.enabled = true;
  if (node["issuer"]) {
    ASSIGN_OR_RETURN(out.issuer, get_string(node["issuer"], file, w + ".issuer"));
  }
  if (out.issuer.empty() || has_control_chars(out.issuer)) {
    return bad(file, w + ".issuer", "must be a non-empty name without control characters");
  }
  for (const auto& ic : issuers) {
    if (ic.issuer == out.issuer || ic.group_domain == out.issuer) {
      return bad(file, w + ".issuer",
                 "'" + out.issuer + "' is also a token issuer or group domain: certificate identities "
                 "must not be mistaken for token ones");
    }
  }
  if (node["principal"]) {
    std::string p;
    ASSIGN_OR_RETURN(p, get_string(node["principal"], file, w + ".principal"));
    if (p == "san_uri") out.principal = X509Principal::kSanUri;
    else if (p == "cn") out.principal = X509Principal::kCommonName;
    else return bad(file, w + ".principal", "'" + p + "' is not one of san_uri, cn");
  }
  if (node["mappings"]) {
    const auto& list = node["mappings"];
    if (!list.IsSequence()) return bad(file, w + ".mappings", "must be a list");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = w + ".mappings[" + std::to_string(i) + "]";
      RETURN_IF_ERROR(check_keys(list[i], file, where, {"match", "prefix", "roles", "groups"}));
      X509Mapping m;
      if (list[i]["match"]) {
        ASSIGN_OR_RETURN(m.match, get_string(list[i]["match"], file, where + ".match"));
      }
      if (list[i]["prefix"]) {
        ASSIGN_OR_RETURN(m.prefix, get_string(list[i]["prefix"], file, where + ".prefix"));
      }
      if (m.match.empty() == m.prefix.empty()) {
        return bad(file, where, "needs exactly one of match (the whole principal) and prefix");
      }
      if (list[i]["roles"]) {
        ASSIGN_OR_RETURN(m.roles, get_string_list(list[i]["roles"], file, where + ".roles"));
      }
      if (list[i]["groups"]) {
        ASSIGN_OR_RETURN(m.groups, get_string_list(list[i]["groups"], file, where + ".groups"));
      }
      if (m.roles.empty() && m.groups.empty()) return bad(file, where, "gives no roles and no groups");
      out.mappings.push_back(std::move(m));
    }
  }
  return out;
}

Result<SecurityConfig> parse_security(const YAML::Node& node, const std::string& file) {
  const std::string w = "security";
  RETURN_IF_ERROR(check_keys(node, file, w,
                             {"enabled", "guest_access", "username_claim", "clock_skew",
                              "token_lifetime", "max_token_lifetime", "admin_groups", "issuers", "x509"}));
  SecurityConfig out;
  if (node["enabled"]) {
    ASSIGN_OR_RETURN(out.enabled, get_bool(node["enabled"], file, w + ".enabled"));
  }
  if (node["guest_access"]) {
    ASSIGN_OR_RETURN(out.guest_access, get_bool(node["guest_access"], file, w + ".guest_access"));
  }
  if (node["username_claim"]) {
    std::string claim;
    ASSIGN_OR_RETURN(claim, get_string(node["username_claim"], file, w + ".username_claim"));
    if (claim == "sub")
      out.username_claim = UsernameClaim::kSub;
    else if (claim == "email")
      out.username_claim = UsernameClaim::kEmail;
    else if (claim == "name")
      out.username_claim = UsernameClaim::kName;
    else
      return bad(file, w + ".username_claim", "'" + claim + "' is not one of sub, email, name");
  }
  if (node["clock_skew"]) {
    ASSIGN_OR_RETURN(out.clock_skew, get_duration(node["clock_skew"], file, w + ".clock_skew"));
    if (out.clock_skew > std::chrono::seconds(600)) {
      return bad(file, w + ".clock_skew", "must be at most 10m");
    }
  }
  if (node["token_lifetime"]) {
    ASSIGN_OR_RETURN(out.token_lifetime,
                     get_duration(node["token_lifetime"], file, w + ".token_lifetime"));
    if (out.token_lifetime.count() == 0) return bad(file, w + ".token_lifetime", "must be > 0");
  }
  if (node["max_token_lifetime"]) {
    ASSIGN_OR_RETURN(out.max_token_lifetime,
                     get_duration(node["max_token_lifetime"], file, w + ".max_token_lifetime"));
  }
  if (node["admin_groups"]) {
    ASSIGN_OR_RETURN(out.admin_groups,
                     get_string_list(node["admin_groups"], file, w + ".admin_groups"));
  }
  if (node["issuers"]) {
    const auto& list = node["issuers"];
    if (!list.IsSequence()) return bad(file, w + ".issuers", "must be a list");
    std::set<std::string> seen;
    for (size_t i = 0; i < list.size(); ++i) {
      std::string where = w + ".issuers[" + std::to_string(i) + "]";
      IssuerConfig issuer;
      ASSIGN_OR_RETURN(issuer, parse_issuer(list[i], file, where));
      if (!seen.insert(issuer.issuer).second) {
        return bad(file, where + ".issuer",
                   "duplicate issuer '" + issuer.issuer + "' (each iss selects exactly one key)");
      }
      out.issuers.push_back(std::move(issuer));
    }
  }
  if (node["x509"]) {
    ASSIGN_OR_RETURN(out.x509, parse_x509(node["x509"], out.issuers, file, w + ".x509"));
  }
  // Checked once the issuers are known: every entry names one of their group domains.
  std::vector<IssuerConfig> domains = out.issuers;
  if (out.x509.enabled) domains.push_back(IssuerConfig{.issuer = out.x509.issuer, .group_domain = out.x509.issuer});
  for (size_t i = 0; i < out.admin_groups.size(); ++i) {
    ASSIGN_OR_RETURN(out.admin_groups[i],
                     qualified_admin_group(out.admin_groups[i], domains, file,
                                           w + ".admin_groups[" + std::to_string(i) + "]"));
  }
  if (out.enabled && out.issuers.empty() && !out.x509.enabled && !out.guest_access) {
    return bad(file, w + ".issuers",
               "security is enabled with no issuers and no guest access: nobody could call");
  }
  return out;
}

// A whole number in [min, max].
Result<size_t> get_count(const YAML::Node& node, const std::string& file, const std::string& key,
                         size_t min, size_t max) {
  std::string range = "must be a whole number from " + std::to_string(min) + " to " + std::to_string(max);
  if (!node.IsScalar()) return bad(file, key, range);
  const auto n = parse_count(node.as<std::string>());
  if (!n || *n < min || *n > max) return bad(file, key, range);
  return static_cast<size_t>(*n);
}

Result<ApiConfig> parse_api(const YAML::Node& node, const std::string& file) {
  RETURN_IF_ERROR(check_keys(node, file, "api",
                             {"grpc", "rest", "tls", "rest_read_timeout", "rest_max_connections",
                              "rest_max_connections_per_peer"}));
  ApiConfig out;
  if (node["grpc"]) {
    ASSIGN_OR_RETURN(out.grpc, get_string(node["grpc"], file, "api.grpc"));
  }
  if (node["rest"]) {
    ASSIGN_OR_RETURN(out.rest, get_string(node["rest"], file, "api.rest"));
  }
  if (node["rest_read_timeout"]) {
    ASSIGN_OR_RETURN(out.rest_read_timeout,
                     get_duration(node["rest_read_timeout"], file, "api.rest_read_timeout"));
    // 0 would refuse every request; past minutes it no longer protects anything.
    if (out.rest_read_timeout.count() < 1 || out.rest_read_timeout.count() > 300) {
      return bad(file, "api.rest_read_timeout", "must be from 1s to 5m");
    }
  }
  if (node["rest_max_connections"]) {
    ASSIGN_OR_RETURN(out.rest_max_connections, get_count(node["rest_max_connections"], file,
                                                         "api.rest_max_connections", 2, 4096));
  }
  if (node["rest_max_connections_per_peer"]) {
    ASSIGN_OR_RETURN(out.rest_max_connections_per_peer,
                     get_count(node["rest_max_connections_per_peer"], file,
                               "api.rest_max_connections_per_peer", 1, 4095));
  }
  if (out.rest_max_connections_per_peer >= out.rest_max_connections) {
    return bad(file, "api.rest_max_connections_per_peer",
               "must be below api.rest_max_connections (" +
                   std::to_string(out.rest_max_connections) +
                   "), so that one address can never hold every connection");
  }
  if (node["tls"]) {
    const auto& tls = node["tls"];
    RETURN_IF_ERROR(check_keys(tls, file, "api.tls", {"cert_file", "key_file", "client_ca", "client_crl"}));
    if (tls["client_ca"]) {
      ASSIGN_OR_RETURN(out.tls.client_ca, get_string(tls["client_ca"], file, "api.tls.client_ca"));
    }
    if (tls["client_crl"]) {
      ASSIGN_OR_RETURN(out.tls.client_crl, get_string(tls["client_crl"], file, "api.tls.client_crl"));
    }
    if (!out.tls.client_crl.empty() && out.tls.client_ca.empty()) {
      return bad(file, "api.tls.client_crl", "needs api.tls.client_ca (whose certificates it revokes)");
    }
    if (tls["cert_file"]) {
      ASSIGN_OR_RETURN(out.tls.cert_file, get_string(tls["cert_file"], file, "api.tls.cert_file"));
    }
    if (tls["key_file"]) {
      ASSIGN_OR_RETURN(out.tls.key_file, get_string(tls["key_file"], file, "api.tls.key_file"));
    }
    if (out.tls.cert_file.empty() != out.tls.key_file.empty()) {
      return bad(file, "api.tls", "cert_file and key_file go together");
    }
    if (!out.tls.client_ca.empty() && out.tls.cert_file.empty()) {
      return bad(file, "api.tls.client_ca", "needs cert_file and key_file (client certificates need TLS)");
    }
  }
  return out;
}

Result<LimitsConfig> parse_limits(const YAML::Node& node, const std::string& file) {
  RETURN_IF_ERROR(check_keys(node, file, "limits", {"max_volume_size"}));
  LimitsConfig out;
  if (node["max_volume_size"]) {
    const auto& n = node["max_volume_size"];
    if (!n.IsScalar()) return bad(file, "limits.max_volume_size", "must be a size such as 16T");
    auto b = parse_size(n.as<std::string>());
    if (!b) return bad(file, "limits.max_volume_size", b.status().message());
    // Below 1M no filesystem fits: every create would fail in mkfs instead of here.
    if (*b < (uint64_t{1} << 20)) return bad(file, "limits.max_volume_size", "must be at least 1M");
    out.max_volume_size = *b;
  }
  return out;
}

Result<QuotasConfig> parse_quotas(const YAML::Node& node, const std::string& file) {
  RETURN_IF_ERROR(check_keys(node, file, "quotas", {"guest"}));
  QuotasConfig out;
  if (node["guest"]) {
    const auto& g = node["guest"];
    const std::string w = "quotas.guest";
    RETURN_IF_ERROR(check_keys(g, file, w, {"max_bytes", "max_volumes", "max_snapshots"}));
    if (g["max_bytes"]) {
      ASSIGN_OR_RETURN(out.guest.max_bytes,
                       parse_limit(g["max_bytes"], file, w + ".max_bytes", true));
    }
    if (g["max_volumes"]) {
      ASSIGN_OR_RETURN(out.guest.max_volumes,
                       parse_limit(g["max_volumes"], file, w + ".max_volumes", false));
    }
    if (g["max_snapshots"]) {
      ASSIGN_OR_RETURN(out.guest.max_snapshots,
                       parse_limit(g["max_snapshots"], file, w + ".max_snapshots", false));
    }
  }
  return out;
}

Result<StoreConfig> parse_store(const YAML::Node& node, const std::string& file) {
  RETURN_IF_ERROR(check_keys(node, file, "store", {"sqlite", "etcd"}));
  StoreConfig out;
  if (node["sqlite"] && node["etcd"]) return bad(file, "store", "name one of sqlite or etcd, not both");
  if (node["sqlite"]) {
    // The embedded default: the database is data_dir/volguard.db. Nothing to configure yet.
    if (!node["sqlite"].IsNull() && !(node["sqlite"].IsMap() && node["sqlite"].size() == 0)) {
      return bad(file, "store.sqlite", "takes no settings (the database is <data_dir>/volguard.db)");
    }
    return out;
  }
  if (!node["etcd"]) return out;
  const auto& e = node["etcd"];
  const std::string w = "store.etcd";
  RETURN_IF_ERROR(check_keys(e, file, w,
                             {"endpoints", "prefix", "tls", "username", "password_file", "timeout",
                              "stale_after", "node_ttl"}));
  out.etcd_enabled = true;
  if (!e["endpoints"]) return bad(file, w + ".endpoints", "is required (host:port of each member)");
  ASSIGN_OR_RETURN(out.etcd.endpoints, get_string_list(e["endpoints"], file, w + ".endpoints"));
  if (out.etcd.endpoints.empty()) return bad(file, w + ".endpoints", "must name at least one member");
  for (size_t i = 0; i < out.etcd.endpoints.size(); ++i) {
    std::string& ep = out.etcd.endpoints[i];
    for (const char* scheme : {"http://", "https://"}) {
      if (ep.rfind(scheme, 0) == 0) ep = ep.substr(std::string(scheme).size());
    }
    const auto colon = ep.rfind(':');
    if (ep.empty() || colon == std::string::npos || colon == 0 || !parse_count(ep.substr(colon + 1))) {
      return bad(file, w + ".endpoints[" + std::to_string(i) + "]", "'" + ep + "' is not host:port");
    }
  }
  if (e["prefix"]) {
    ASSIGN_OR_RETURN(out.etcd.prefix, get_string(e["prefix"], file, w + ".prefix"));
    if (out.etcd.prefix.empty() || out.etcd.prefix[0] != '/' || out.etcd.prefix.back() == '/') {
      return bad(file, w + ".prefix", "'" + out.etcd.prefix + "' must start with / and not end with /");
    }
  }
  if (e["tls"]) {
    const auto& t = e["tls"];
    RETURN_IF_ERROR(check_keys(t, file, w + ".tls", {"ca_file", "cert_file", "key_file"}));
    if (t["ca_file"]) {
      ASSIGN_OR_RETURN(out.etcd.ca_file, get_string(t["ca_file"], file, w + ".tls.ca_file"));
    }
    if (t["cert_file"]) {
      ASSIGN_OR_RETURN(out.etcd.cert_file, get_string(t["cert_file"], file, w + ".tls.cert_file"));
    }
    if (t["key_file"]) {
      ASSIGN_OR_RETURN(out.etcd.key_file, get_string(t["key_file"], file, w + ".tls.key_file"));
    }
    if (out.etcd.ca_file.empty()) return bad(file, w + ".tls.ca_file", "is required with tls");
    if (out.etcd.cert_file.empty() != out.etcd.key_file.empty()) {
      return bad(file, w + ".tls", "cert_file and key_file go together");
    }
  }
  if (e["username"]) {
    ASSIGN_OR_RETURN(out.etcd.username, get_string(e["username"], file, w + ".username"));
  }
  if (e["password_file"]) {
    ASSIGN_OR_RETURN(out.etcd.password_file, get_string(e["password_file"], file, w + ".password_file"));
  }
  if (out.etcd.username.empty() != out.etcd.password_file.empty()) {
    return bad(file, w, "username and password_file go together");
  }
  struct Bound {
    const char* key;
    std::chrono::seconds* value;
  };
  for (Bound b : {Bound{"timeout", &out.etcd.timeout}, Bound{"stale_after", &out.etcd.stale_after},
                  Bound{"node_ttl", &out.etcd.node_ttl}}) {
    if (!e[b.key]) continue;
    ASSIGN_OR_RETURN(*b.value, get_duration(e[b.key], file, w + "." + b.key));
    if (b.value->count() < 1 || b.value->count() > 3600) {
      return bad(file, w + "." + b.key, "must be 1s..1h");
    }
  }
  return out;
}

Result<NodeConfig> parse_node(const YAML::Node& node, const std::string& file) {
  RETURN_IF_ERROR(check_keys(node, file, "node", {"name", "advertise"}));
  NodeConfig out;
  if (node["name"]) {
    ASSIGN_OR_RETURN(out.name, get_string(node["name"], file, "node.name"));
  }
  if (node["advertise"]) {
    ASSIGN_OR_RETURN(out.advertise, get_string(node["advertise"], file, "node.advertise"));
  }
  return out;
}

Result<EncryptionConfig> parse_encryption(const YAML::Node& node, const std::vector<IssuerConfig>& issuers,
                                          const std::string& file) {
  RETURN_IF_ERROR(check_keys(node, file, "encryption", {"keys", "default_key"}));
  EncryptionConfig out;
  if (node["keys"]) {
    const auto& keys = node["keys"];
    if (!keys.IsMap()) return bad(file, "encryption.keys", "must map key names to {file | env | kms}");
    for (const auto& kv : keys) {
      KekConfig k;
      k.name = kv.first.as<std::string>();
      const std::string w = "encryption.keys." + k.name;
      if (!is_valid_name(k.name)) return bad(file, w, "a key name must be 1-128 of [A-Za-z0-9._-]");
      RETURN_IF_ERROR(check_keys(kv.second, file, w, {"file", "env", "kms", "retired_files", "groups"}));
      if (kv.second["groups"]) {
        ASSIGN_OR_RETURN(k.groups, get_string_list(kv.second["groups"], file, w + ".groups"));
        for (size_t i = 0; i < k.groups.size(); ++i) {
          // Qualified as admin groups are: a group means something only with its issuer.
          ASSIGN_OR_RETURN(k.groups[i], qualified_admin_group(k.groups[i], issuers, file,
                                                              w + ".groups[" + std::to_string(i) + "]"));
        }
      }
      if (kv.second["file"]) {
        ASSIGN_OR_RETURN(k.file, get_string(kv.second["file"], file, w + ".file"));
      }
      if (kv.second["env"]) {
        ASSIGN_OR_RETURN(k.env, get_string(kv.second["env"], file, w + ".env"));
      }
      if (kv.second["kms"]) {
        const auto& m = kv.second["kms"];
        RETURN_IF_ERROR(check_keys(m, file, w + ".kms", {"socket", "timeout"}));
        if (!m["socket"]) return bad(file, w + ".kms.socket", "is required (the plugin's unix socket)");
        ASSIGN_OR_RETURN(k.kms_socket, get_string(m["socket"], file, w + ".kms.socket"));
        if (k.kms_socket.rfind("unix://", 0) == 0) k.kms_socket = k.kms_socket.substr(7);
        if (k.kms_socket.empty() || k.kms_socket[0] != '/') {
          return bad(file, w + ".kms.socket", "must be an absolute path (or unix:///path)");
        }
        if (m["timeout"]) {
          ASSIGN_OR_RETURN(std::chrono::seconds t, get_duration(m["timeout"], file, w + ".kms.timeout"));
          if (t.count() < 1) return bad(file, w + ".kms.timeout", "must be at least 1s");
          k.kms_timeout = t;
        }
      }
      if (kv.second["retired_files"]) {
        ASSIGN_OR_RETURN(k.retired_files, get_string_list(kv.second["retired_files"], file, w + ".retired_files"));
      }
      const int sources = !k.file.empty() + !k.env.empty() + !k.kms_socket.empty();
      if (sources != 1) return bad(file, w, "needs exactly one of file, env or kms");
      if (!k.retired_files.empty() && k.file.empty()) {
        return bad(file, w + ".retired_files", "go with a file key (a KMS keeps its own earlier keys)");
      }
      out.keys.push_back(std::move(k));
    }
  }
  if (node["default_key"]) {
    ASSIGN_OR_RETURN(out.default_key, get_string(node["default_key"], file, "encryption.default_key"));
    bool known = false;
    for (const auto& k : out.keys) known = known || k.name == out.default_key;
    if (!known) return bad(file, "encryption.default_key", "'" + out.default_key + "' is not in encryption.keys");
  } else if (!out.keys.empty()) {
    out.default_key = out.keys.front().name;
  }
  return out;
}

}  // namespace

const char* username_claim_name(UsernameClaim claim) {
  switch (claim) {
    case UsernameClaim::kSub: return "sub";
    case UsernameClaim::kEmail: return "email";
    case UsernameClaim::kName: return "name";
  }
  return "sub";
}

Result<Config> parse_config(const std::string& yaml_text, const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return bad(file, "line " + std::to_string(e.mark.line + 1), std::string("invalid YAML: ") + e.msg);
  }
  Config out;
  out.file = file;
  if (root.IsNull()) return bad(file, "(root)", "empty configuration");
  try {
    RETURN_IF_ERROR(check_keys(
        root, file, "",
        {"data_dir", "mount_roots", "nodes", "api", "security", "audit", "metrics", "limits", "quotas",
         "store", "node", "encryption"}));
    if (root["data_dir"]) {
      ASSIGN_OR_RETURN(out.data_dir, get_string(root["data_dir"], file, "data_dir"));
    }
    if (root["mount_roots"]) {
      ASSIGN_OR_RETURN(out.mount_roots, get_string_list(root["mount_roots"], file, "mount_roots"));
      for (size_t i = 0; i < out.mount_roots.size(); ++i) {
        const auto& r = out.mount_roots[i];
        if (r.empty() || r[0] != '/' || r == "/") {
          return bad(file, "mount_roots[" + std::to_string(i) + "]",
                     "'" + r + "' must be an absolute directory other than /");
        }
      }
    }
    if (root["nodes"]) {
      ASSIGN_OR_RETURN(out.nodes, get_string_list(root["nodes"], file, "nodes"));
      for (size_t i = 0; i < out.nodes.size(); ++i) {
        const std::string key = "nodes[" + std::to_string(i) + "]";
        if (!is_valid_name(out.nodes[i])) {
          return bad(file, key, "'" + out.nodes[i] + "' must be 1-128 of [A-Za-z0-9._-], not starting with '.' or '-'");
        }
        for (size_t j = 0; j < i; ++j) {
          if (out.nodes[j] == out.nodes[i]) return bad(file, key, "'" + out.nodes[i] + "' is listed twice");
        }
      }
    }
    if (root["api"]) {
      ASSIGN_OR_RETURN(out.api, parse_api(root["api"], file));
    }
    if (root["audit"]) {
      const auto& a = root["audit"];
      RETURN_IF_ERROR(check_keys(a, file, "audit",
                                 {"dir", "format", "max_size", "keep", "fail_closed", "key_file"}));
      if (a["dir"]) {
        ASSIGN_OR_RETURN(out.audit.dir, get_string(a["dir"], file, "audit.dir"));
      }
      if (a["format"]) {
        ASSIGN_OR_RETURN(out.audit.format, get_string(a["format"], file, "audit.format"));
        if (out.audit.format != "logfmt" && out.audit.format != "json") {
          return bad(file, "audit.format", "'" + out.audit.format + "' is not logfmt or json");
        }
      }
      if (a["max_size"]) {
        std::string size;
        ASSIGN_OR_RETURN(size, get_string(a["max_size"], file, "audit.max_size"));
        auto bytes = parse_size(size);
        if (!bytes) return bad(file, "audit.max_size", bytes.status().message());
        out.audit.max_bytes = *bytes;
      }
      if (a["keep"]) {
        std::string keep;
        ASSIGN_OR_RETURN(keep, get_string(a["keep"], file, "audit.keep"));
        char* end = nullptr;
        long k = std::strtol(keep.c_str(), &end, 10);
        if (*end != '\0' || k < 1 || k > 1000) return bad(file, "audit.keep", "must be 1..1000");
        out.audit.keep = static_cast<int>(k);
      }
      if (a["fail_closed"]) {
        ASSIGN_OR_RETURN(out.audit.fail_closed,
                         get_bool(a["fail_closed"], file, "audit.fail_closed"));
      }
      if (a["key_file"]) {
        ASSIGN_OR_RETURN(out.audit.key_file, get_string(a["key_file"], file, "audit.key_file"));
      }
    }
    if (root["metrics"]) {
      const auto& m = root["metrics"];
      RETURN_IF_ERROR(check_keys(m, file, "metrics", {"require_token"}));
      if (m["require_token"]) {
        ASSIGN_OR_RETURN(out.metrics_require_token,
                         get_bool(m["require_token"], file, "metrics.require_token"));
      }
    }
    if (root["limits"]) {
      ASSIGN_OR_RETURN(out.limits, parse_limits(root["limits"], file));
    }
    if (root["quotas"]) {
      ASSIGN_OR_RETURN(out.quotas, parse_quotas(root["quotas"], file));
    }
    if (root["store"]) {
      ASSIGN_OR_RETURN(out.store, parse_store(root["store"], file));
    }
    if (root["node"]) {
      ASSIGN_OR_RETURN(out.node, parse_node(root["node"], file));
    }
    if (out.node.name.empty()) {
      char host[256] = {};
      if (::gethostname(host, sizeof host - 1) == 0) out.node.name = host;
      if (auto dot = out.node.name.find('.'); dot != std::string::npos) out.node.name.resize(dot);
    }
    if (!is_valid_name(out.node.name)) {
      return bad(file, "node.name", "'" + out.node.name +
                                        "' must be 1-128 of [A-Za-z0-9._-], not starting with '.' or '-'");
    }
    if (out.node.advertise.empty()) out.node.advertise = out.api.grpc;
    if (out.audit.dir.empty()) out.audit.dir = out.data_dir + "/log/security";
    if (out.audit.key_file.empty()) out.audit.key_file = out.data_dir + "/audit.key";
    if (!root["security"]) return bad(file, "security", "is required");
    ASSIGN_OR_RETURN(out.security, parse_security(root["security"], file));
    if (out.security.x509.enabled && out.api.tls.client_ca.empty()) {
      return bad(file, "security.x509", "needs api.tls.client_ca: without it no client certificate is asked for");
    }
    if (root["encryption"]) {
      ASSIGN_OR_RETURN(out.encryption, parse_encryption(root["encryption"], out.security.issuers, file));
    }
  } catch (const YAML::Exception& e) {
    return bad(file, "line " + std::to_string(e.mark.line + 1), e.msg);
  }
  return out;
}

Result<Config> load_config(const std::string& path) {
  auto text = read_file(path);
  if (!text) {
    return Status(Code::kInvalidArgument, "bad_config", path + ": " + text.status().message());
  }
  return parse_config(*text, path);
}

}  // namespace volguard::config
