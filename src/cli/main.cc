// The one `volguard` binary: argument parsing only; each command lives in cli/*.cc.
#include <CLI/CLI.hpp>
#include <iostream>

#include "api/server.h"
#include "cli/client_commands.h"
#include "cli/commands.h"
#include "common/version.h"
#include "csi/plugin.h"

namespace {

// Every subcommand and option name of the tree: the words of a command line that are not
// values.
void collect_words(const CLI::App* app, std::vector<std::string>* out) {
  out->push_back(app->get_name());
  for (const CLI::Option* o : app->get_options()) {
    for (const auto& n : o->get_lnames()) out->push_back("--" + n);
    for (const auto& n : o->get_snames()) out->push_back("-" + n);
  }
  for (const CLI::App* sub : app->get_subcommands({})) collect_words(sub, out);
}

std::vector<std::string> known_words(const CLI::App& app) {
  std::vector<std::string> words;
  collect_words(&app, &words);
  return words;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace volguard::cli;
  CLI::App app{"volguard: secure volume management"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("volguard ") + volguard::kVersion);

  // token generate / verify
  auto* token = app.add_subcommand("token", "Generate, verify or revoke tokens");
  token->require_subcommand(1);
  TokenGenerateArgs gen;
  auto* generate = token->add_subcommand("generate", "Sign a token (prints only the token)");
  generate->add_option("--config", gen.config_file, "Server config: default lifetime from it");
  // pxc's token-generate names (--token-name, ...) are aliases of ours.
  generate->add_option("--issuer,--token-issuer", gen.issuer, "iss claim")->capture_default_str();
  generate->add_option("--shared-secret-file", gen.shared_secret_file, "HS256 secret file");
  generate->add_option("--shared-secret", gen.shared_secret,
                       "HS256 secret by value, as pxctl takes it (warned about: prefer the file)");
  generate->add_option("--rsa-private-keyfile", gen.rsa_private_keyfile, "RSA key (RS256)");
  generate->add_option("--ecdsa-private-keyfile", gen.ecdsa_private_keyfile,
                       "EC key (ES256 for P-256, ES384 for P-384) or Ed25519 key (EdDSA)");
  generate->add_option("--auth-config", gen.auth_config, "YAML with name, email, sub, roles, groups");
  generate->add_option("--name,--token-name", gen.name, "name claim");
  generate->add_option("--email,--token-email", gen.email, "email claim");
  // pxc's walkthrough passes --token-subject="" (an empty value CLI11 otherwise refuses).
  generate->add_option("--subject,--token-subject", gen.subject,
                       "sub claim (empty: derived from --email, else --name)")
      ->expected(0, 1);
  generate->add_option("--roles,--token-roles", gen.roles, "roles, comma separated")->delimiter(',');
  generate->add_option("--groups,--token-groups", gen.groups, "groups, comma separated")->delimiter(',');
  generate->add_option("--audience", gen.audiences, "aud claim (repeatable)");
  generate->add_option("--duration,--token-duration", gen.duration, "lifetime: 30m, 24h, 7d, 1y");
  generate->add_option("--output", gen.output, "write the token to this file (mode 0600)");

  std::string verify_config, verify_token;
  auto* verify = token->add_subcommand("verify", "Verify a token exactly as the server does");
  verify->add_option("--config", verify_config, "Server config (security section)")->required();
  verify->add_option("token", verify_token, "The token, or - to read it from stdin")->required();

  InitArgs init_args;
  auto* init_cmd = app.add_subcommand("init", "Write a default config, secret and tokens");
  init_cmd->add_option("--data-dir", init_args.data_dir, "Data directory")->capture_default_str();
  init_cmd->add_option("--grpc", init_args.grpc, "gRPC listen address")->capture_default_str();
  init_cmd->add_option("--rest", init_args.rest, "REST listen address")->capture_default_str();
  init_cmd->fallthrough();  // -o json / -j: what was written, as one JSON object

  std::string server_config;
  bool check_only = false;
  auto* server = app.add_subcommand("server", "Run the volguard server");
  server->add_option("--config", server_config, "Server config file")->required();
  server->add_flag("--check", check_only, "Validate the config and keys, then exit");

  // The CSI plugin: its own --endpoint (the unix socket the sidecars dial) shadows the global
  // one; --server names the volguard server it forwards to.
  volguard::csi::PluginOptions csi_opts;
  auto* csi_cmd = app.add_subcommand("csi", "Serve the CSI v1 plugin (Identity, Controller, Node)");
  csi_cmd->add_option("--endpoint", csi_opts.endpoint, "unix:///csi/csi.sock")->required();
  csi_cmd->add_option("--node-id", csi_opts.node_id, "This node's id")->required();
  csi_cmd->add_option("--volguard-node", csi_opts.volguard_node,
                      "The volguard node this node plugin is on, reported as its topology "
                      "volguard.io/node (default: --node-id)");
  csi_cmd->add_option("--server", csi_opts.server, "volguard server gRPC address")->required();
  csi_cmd->add_option("--tls-ca", csi_opts.tls_ca, "CA certificate: use TLS to the server");
  csi_cmd->add_option("--tls-cert", csi_opts.tls_cert, "Client certificate, when the server requires one (mTLS)");
  csi_cmd->add_option("--tls-key", csi_opts.tls_key, "The client certificate's key (mode 0600)");
  csi_cmd->add_option("--node-token-file", csi_opts.node_token_file,
                      "This node's credential (role system.node, username = --node-id)");
  csi_cmd->add_option("--controller-token-file", csi_opts.controller_token_file,
                      "The controller's read-only credential (role system.csi-controller)");

  // Client verbs; global flags may come anywhere on the line.
  Globals g;
  app.fallthrough();
  token->fallthrough();  // made before: token revoke/revocations take the global flags too
  app.add_option("--endpoint", g.endpoint, "Server gRPC address")->capture_default_str()->envname("VOLGUARD_ENDPOINT");
  app.add_option("--token", g.token, "Bearer token (else --token-file, else $VOLGUARD_TOKEN)");
  app.add_option("--token-file", g.token_file, "File holding the bearer token");
  app.add_option("--tls-ca", g.tls_ca, "CA certificate: use TLS to the server");
  app.add_option("--tls-cert", g.tls_cert, "Client certificate (mTLS; with --tls-key and --tls-ca)");
  app.add_option("--tls-key", g.tls_key, "Client certificate's private key (mode 0600)");
  app.add_option("--session", g.session, "File carrying the last revision seen (cluster read-your-writes)");
  app.add_option("-o,--output", g.output, "Output format: json (errors too: one JSON object on stderr)")
      ->check(CLI::IsMember({"json", "table"}));
  bool json_flag = false;
  app.add_flag("-j", json_flag, "Same as -o json (pxctl)");

  VolumeArgs va;
  std::string chosen;  // "volume.create", "snapshot.list", ...
  auto* volume = app.add_subcommand("volume", "Manage volumes");
  volume->require_subcommand(1);
  auto verb = [&](CLI::App* parent, const std::string& group, const std::string& name,
                  const std::string& help) {
    auto* c = parent->add_subcommand(name, help);
    c->callback([&chosen, group, name] { chosen = group + "." + name; });
    return c;
  };
  auto* vc = verb(volume, "volume", "create", "Create a volume");
  vc->add_option("name", va.name, "Volume name")->required();
  vc->add_option("--size", va.size, "Size: a number is GiB as in pxctl (10 = 10 GiB); or 512M, 100B ... (default 1)");
  vc->add_option("--fs", va.fs, "ext4 (default) | xfs");
  vc->add_option("--label", va.labels, "KEY=VALUE (repeatable)");
  vc->add_option("--group", va.groups, "GROUP:r|w|a (repeatable)");
  vc->add_option("--collaborator", va.collaborators, "USER:r|w|a (repeatable)");
  vc->add_option("--public", va.public_access, "Public access: r|w|a");
  vc->add_option("--node", va.node, "Cluster: the node to hold the data (default: the node asked)");
  vc->add_flag("--secure", va.secure, "Encrypt at rest (fscrypt, a data key of its own wrapped by a KEK)");
  vc->add_option("--secret-key", va.secret_key, "The KEK (config encryption.keys) to wrap the data key; implies --secure");
  auto* vl = verb(volume, "volume", "list", "List volumes you may read");
  vl->add_option("--label", va.labels, "KEY=VALUE filter (repeatable)");
  vl->add_option("--owner", va.owner, "Only volumes of this principal");
  for (const char* v : {"inspect", "delete", "attach", "detach", "unmount", "stats"}) {
    verb(volume, "volume", v, std::string("Volume ") + v)->add_option("volume", va.name, "Volume id or name")->required();
  }
  auto* vu = verb(volume, "volume", "update", "Update labels or grow a volume");
  vu->add_option("volume", va.name, "Volume id or name")->required();
  vu->add_option("--label", va.labels, "KEY=VALUE to set (repeatable)");
  vu->add_option("--remove-label", va.remove_labels, "KEY to remove (repeatable)");
  vu->add_option("--size", va.size, "Grow to this size (a number is GiB, as in pxctl)");
  auto* vm = verb(volume, "volume", "mount", "Attach and mount a volume");
  vm->add_option("volume", va.name, "Volume id or name")->required();
  vm->add_option("--path", va.path, "Mount path (existing directory)")->required();
  auto* vr = verb(volume, "volume", "restore", "Restore a volume from a snapshot");
  vr->add_option("volume", va.name, "Volume id or name")->required();
  vr->add_option("--snapshot", va.snapshot, "Snapshot id or name")->required();
  auto* vcl = verb(volume, "volume", "clone", "Clone a volume (or a snapshot with --snapshot)");
  vcl->add_option("source", va.name, "Source volume id or name");
  vcl->add_option("--snapshot", va.snapshot, "Clone from this snapshot instead");
  vcl->add_option("--name", va.new_name, "Name of the new volume")->required();
  vcl->add_flag("--plain", va.plain, "Require a plain clone (refused when the source is encrypted)");

  auto* snap = volume->add_subcommand("snapshot", "Manage snapshots");
  snap->require_subcommand(1);
  auto* sc = verb(snap, "snapshot", "create", "Snapshot a volume");
  sc->add_option("volume", va.name, "Volume id or name")->required();
  sc->add_option("--name", va.new_name, "Snapshot name (default: VOLUME-snap-<UTC time>, printed)");
  verb(snap, "snapshot", "list", "List snapshots")->add_option("volume", va.name, "Only this volume's");
  verb(snap, "snapshot", "delete", "Delete a snapshot")->add_option("snapshot", va.name, "Snapshot id or name")->required();

  auto* access = volume->add_subcommand("access", "Manage volume ownership and ACLs");
  access->require_subcommand(1);
  auto* aa = verb(access, "access", "add", "Grant access");
  aa->add_option("volume", va.name, "Volume id or name")->required();
  aa->add_option("--group", va.groups, "GROUP:r|w|a");
  aa->add_option("--collaborator", va.collaborators, "USER:r|w|a (USER or ISSUER/USER)");
  aa->add_option("--public", va.public_access, "r|w|a");
  auto* ar = verb(access, "access", "remove", "Revoke access");
  ar->add_option("volume", va.name, "Volume id or name")->required();
  ar->add_option("--group", va.groups, "GROUP");
  ar->add_option("--collaborator", va.collaborators, "USER");
  ar->add_flag("--public", va.remove_public, "Remove public access");
  verb(access, "access", "show", "Show ownership")->add_option("volume", va.name, "Volume id or name")->required();
  auto* at = verb(access, "access", "transfer", "Transfer ownership (ownership admins)");
  at->add_option("volume", va.name, "Volume id or name")->required();
  at->add_option("--owner", va.owner, "New owner: USER or ISSUER/USER")->required();

  std::string role_arg;
  auto* role = app.add_subcommand("role", "Manage roles");
  role->require_subcommand(1);
  verb(role, "role", "create", "Create a role")->add_option("--role-config", role_arg, "Role JSON file")->required();
  verb(role, "role", "update", "Replace a role")->add_option("--role-config", role_arg, "Role JSON file")->required();
  verb(role, "role", "list", "List roles");
  // The name as a word or, as pxctl writes it, --name: one of the two (the command says which
  // is missing; CLI11 would mark both required in the help).
  for (const char* v : {"inspect", "delete"}) {
    auto* c = verb(role, "role", v, std::string(v) == "inspect" ? "Show a role (Portworx role JSON)" : "Delete a role");
    auto* positional = c->add_option("name", role_arg, "Role name");
    c->add_option("--name", role_arg, "Role name (instead of the word)")->excludes(positional);
  }

  QuotaArgs qa;
  auto* quota = app.add_subcommand("quota", "Per-tenant capacity quotas");
  quota->require_subcommand(1);
  auto* qs = verb(quota, "quota", "set", "Set a quota (admins); 0 or unlimited lifts a limit");
  auto* qw = verb(quota, "quota", "show", "Show your quotas and usage (admins: anyone's, --all)");
  for (auto* c : {qs, qw}) {
    auto* u = c->add_option("--user", qa.user, "ISSUER/NAME (or NAME of your issuer)");
    auto* gr = c->add_option("--group", qa.group, "DOMAIN/GROUP (or GROUP of your domain)");
    auto* gu = c->add_flag("--guest", qa.guest, "The guest (callers without a token)");
    u->excludes(gr)->excludes(gu);
    gr->excludes(gu);
  }
  qs->add_option("--max-bytes", qa.max_bytes, "Total provisioned size, e.g. 10G");
  qs->add_option("--max-volumes", qa.max_volumes, "Number of volumes");
  qs->add_option("--max-snapshots", qa.max_snapshots, "Number of snapshots");
  qs->add_flag("--reset", qa.reset, "Remove the quota (the guest: back to the config default)");
  qw->add_flag("--all", qa.all, "Every quota set, and the guest's");

  auto* node = app.add_subcommand("node", "The cluster's nodes");
  node->require_subcommand(1);
  verb(node, "node", "list", "List the nodes and their liveness");

  auto* key = app.add_subcommand("key", "Encryption keys of encrypted volumes");
  key->require_subcommand(1);
  verb(key, "key", "rotate", "Re-wrap every data key under its KEK's current version (admins)")
      ->add_option("--secret-key", va.secret_key, "Only the data keys of this KEK name");

  RevokeArgs ra;
  auto* revoke = verb(token, "token", "revoke",
                      "Take back tokens before they expire (admins): one by jti, or a user's");
  revoke->add_option("--jti", ra.jti, "The token's jti claim");
  revoke->add_option("--issuer", ra.issuer, "With --jti: only this issuer's token (default: any issuer)");
  revoke->add_option("--file", ra.file,
                     "A file holding the token (- for stdin): its jti, issuer and exp are read, "
                     "the token is never printed");
  revoke->add_option("--user", ra.user, "ISSUER/USERNAME: every token of this user issued before --before");
  revoke->add_option("--before", ra.before, "With --user: RFC 3339 UTC time (default: now)");
  revoke->add_option("--expires", ra.expires,
                     "RFC 3339 UTC time by which every token revoked has expired (then the "
                     "revocation goes by itself)");
  verb(token, "token", "revocations", "List the revocations in force");

  MigrateArgs ma;
  auto* store_cmd = app.add_subcommand("store", "Metadata store maintenance (offline)");
  store_cmd->require_subcommand(1);
  auto* migrate = store_cmd->add_subcommand("migrate", "Copy a single node's SQLite store into etcd");
  migrate->add_option("--from", ma.from, "The SQLite database (data_dir/volguard.db)")->required();
  migrate->add_option("--to", ma.to_config, "A server config whose store is etcd")->required();
  migrate->add_option("--node", ma.node, "Home node of the volumes (default: node.name of --to)");

  std::string can_method, can_volume;
  auto* auth = app.add_subcommand("auth", "Who am I, and what may I do");
  auth->require_subcommand(1);
  verb(auth, "auth", "whoami", "Show the caller's identity");
  auto* cani = verb(auth, "auth", "can-i", "Would METHOD be allowed (and why)?");
  cani->add_option("method", can_method, "e.g. volume.delete")->required();
  cani->add_option("--volume", can_volume, "Check ownership on this volume too");

  AuditArgs audit_args;
  auto* audit_cmd = app.add_subcommand("audit", "Verify and query the audit trail (offline)");
  audit_cmd->require_subcommand(1);
  auto* averify = audit_cmd->add_subcommand("verify", "Check the audit log's HMAC chain and seal");
  auto* ashow = audit_cmd->add_subcommand("show", "Query the audit (or, with --denied, access) log");
  averify->add_option("--config", audit_args.configs,
                       "Server config (audit.dir, audit.key_file); repeat it for every node of a cluster");
  ashow->add_option("--config", audit_args.config_file, "Server config (audit.dir, audit.key_file)");
  for (auto* c : {averify, ashow}) {
    c->add_option("--dir", audit_args.dir, "Log directory (default ./data/log/security)");
  }
  averify->add_option("--key-file", audit_args.key_file, "Chain key (default from --config)");
  ashow->add_option("--user", audit_args.user, "Only this username or issuer/username");
  ashow->add_option("--since", audit_args.since, "Only the last 30m, 1h, 7d ...");
  ashow->add_option("--method", audit_args.method, "Only this method, e.g. volume.create");
  ashow->add_flag("--denied", audit_args.denied, "Refusals from the access log");
  ashow->add_flag("--access", audit_args.access, "Read the access log instead of the audit log");

  // Failures follow -o json / -j from here on, argument parsing included.
  choose_error_format(error_format_from_args(argc, argv));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // CLI11's messages quote what was typed; a mistyped --tokn "$T" would print the token.
    // Only option and command names may show.
    return usage_failure(redact_values(e.what(), argc, argv, known_words(app)) +
                         " (run with --help for usage)");
  }

  if (json_flag) g.output = "json";
  if (g.output == "table") g.output.clear();
  audit_args.output = g.output;
  init_args.output = g.output;
  if (!chosen.empty()) {
    auto dot = chosen.find('.');
    std::string group = chosen.substr(0, dot), name = chosen.substr(dot + 1);
    if (group == "volume") return volume_command(g, name, va);
    if (group == "snapshot") return snapshot_command(g, name, va);
    if (group == "access") return access_command(g, name, va);
    if (group == "role") return role_command(g, name, role_arg);
    if (group == "auth") return auth_command(g, name, can_method, can_volume);
    if (group == "quota") return quota_command(g, name, qa);
    if (group == "node") return node_command(g, name);
    if (group == "key") return key_command(g, name, va);
    if (group == "token") return revoke_command(g, name, ra);
  }
  if (migrate->parsed()) return store_migrate(ma);
  if (averify->parsed()) return audit_verify(audit_args);
  if (ashow->parsed()) return audit_show(audit_args);
  if (generate->parsed()) return token_generate(gen);
  if (verify->parsed()) return token_verify(verify_config, verify_token);
  if (init_cmd->parsed()) return init(init_args);
  if (csi_cmd->parsed()) return volguard::csi::run_plugin(csi_opts);
  if (server->parsed()) {
    if (check_only) return server_check(server_config);
    return volguard::api::run_server(server_config);
  }
  return kExitUsage;
}
