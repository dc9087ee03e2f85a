// Client verbs (pxctl-style): each builds one request, calls the server over gRPC, and prints a
// table or (-o json) the reply.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace volguard::cli {

struct Globals {
  std::string endpoint = "127.0.0.1:9020";
  std::string token;
  std::string token_file;
  std::string tls_ca;
  std::string tls_cert, tls_key;  // a client certificate (mTLS)
  std::string output;  // "" (table) | "json"
  // A file carrying the store revision from one command to the next (else $VOLGUARD_SESSION):
  // read-your-writes when consecutive commands go to different nodes of a cluster.
  std::string session;
};

// Exit codes distinguish the refusals (README "CLI exit codes").
int exit_code_for(int grpc_code);

struct VolumeArgs {
  std::string name;          // the volume (or source) positional
  std::string size, fs;
  std::vector<std::string> labels, remove_labels, groups, collaborators;
  std::string public_access;
  std::string path, snapshot, new_name, owner;
  std::string node;  // create: the cluster node to hold the data
  bool remove_public = false;
  bool secure = false;     // create: encrypt at rest
  std::string secret_key;  // create: the KEK name; key rotate: only this KEK's keys
  bool plain = false;      // clone: ask for a plain clone (refused for an encrypted source)
};

int volume_command(const Globals& g, const std::string& verb, const VolumeArgs& a);
int snapshot_command(const Globals& g, const std::string& verb, const VolumeArgs& a);
int access_command(const Globals& g, const std::string& verb, const VolumeArgs& a);
int role_command(const Globals& g, const std::string& verb, const std::string& name_or_file);
int auth_command(const Globals& g, const std::string& verb, const std::string& method,
                 const std::string& volume);

// `volguard quota set|show`: exactly one subject (--user, --group, --guest) for set; show
// without one lists the caller's own quotas, --all every quota (admins).
struct QuotaArgs {
  std::string user, group;
  bool guest = false, all = false, reset = false;
  std::string max_bytes, max_volumes, max_snapshots;  // "" unchanged; "0"/"unlimited" no limit
};
int quota_command(const Globals& g, const std::string& verb, const QuotaArgs& a);
int node_command(const Globals& g, const std::string& verb);
// `volguard key rotate [--secret-key NAME]`.
int key_command(const Globals& g, const std::string& verb, const VolumeArgs& a);

// `volguard token revoke` (one of --jti, --file, --user) and `volguard token revocations`.
struct RevokeArgs {
  std::string jti, issuer;  // one token by its jti (issuer: only that issuer's)
  std::string file;         // the token itself ("-": stdin): its jti, iss and exp are read
  std::string user;         // a principal's tokens issued before --before (default now)
  std::string before, expires;  // RFC 3339 UTC ("2026-12-07T10:00:00Z")
};
int revoke_command(const Globals& g, const std::string& verb, const RevokeArgs& a);

// `volguard store migrate`: every record of a single node's SQLite store into the etcd store a
// cluster config names (offline: the node's server is stopped). Volumes and snapshots are
// homed on `node` (default: the config's node.name), whose disk holds their data.
struct MigrateArgs {
  std::string from;         // the SQLite database
  std::string to_config;    // a server config with store.etcd
  std::string node;
};
int store_migrate(const MigrateArgs& a);

}  // namespace volguard::cli
