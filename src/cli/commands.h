// The `volguard` subcommands, kept apart from argument parsing (CLI11 is slow to compile and
// lives only in main.cc).
#pragma once

#include <string>
#include <vector>

#include "cli/report.h"

namespace volguard::cli {

// Exit codes shared by every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;  // the check ran and said no (token invalid, ...)
inline constexpr int kExitUsage = 2;    // bad flags, bad config, unreadable file

struct TokenGenerateArgs {
  std::string config_file;  // optional: default lifetime from security.token_lifetime
  std::string issuer = "volguard.local";
  std::string shared_secret_file;
  std::string rsa_private_keyfile;
  std::string ecdsa_private_keyfile;
  std::string auth_config;
  std::string name, email, subject;
  std::vector<std::string> roles, groups, audiences;
  std::string duration;
  std::string output;
  std::string shared_secret;  // --shared-secret: pxctl's by-value form (warned about)
};
int token_generate(const TokenGenerateArgs& args);

int token_verify(const std::string& config_file, const std::string& token_arg);

struct InitArgs {
  std::string data_dir = "./data";
  std::string grpc = "127.0.0.1:9020";
  std::string rest = "127.0.0.1:9021";
  std::string output;  // "json": what was written as one JSON object
};
// Writes a default config, a fresh shared secret and admin/user tokens unless present.
int init(const InitArgs& args);

int server_check(const std::string& config_file);

// Offline audit verbs: read the log files, no server needed.
struct AuditArgs {
  std::string config_file;
  std::vector<std::string> configs;  // verify: one per node (each its own chain and key)
  std::string dir;
  std::string key_file;
  std::string user, since, method, output;
  bool denied = false;
  bool access = false;
};
int audit_verify(const AuditArgs& args);
int audit_show(const AuditArgs& args);

}  // namespace volguard::cli
