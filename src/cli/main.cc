// The one `volguard` binary: argument parsing only; each command lives in cli/*.cc.
#include <CLI/CLI.hpp>
#include <iostream>

#include "api/server.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  using namespace volguard::cli;
  CLI::App app{"volguard: secure volume management"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "volguard 0.1.0");

  // token generate / verify
  auto* token = app.add_subcommand("token", "Generate or verify tokens");
  token->require_subcommand(1);
  TokenGenerateArgs gen;
  auto* generate = token->add_subcommand("generate", "Sign a token (prints only the token)");
  generate->add_option("--config", gen.config_file, "Server config: default lifetime from it");
  generate->add_option("--issuer", gen.issuer, "iss claim")->capture_default_str();
  generate->add_option("--shared-secret-file", gen.shared_secret_file, "HS256 secret file");
  generate->add_option("--rsa-private-keyfile", gen.rsa_private_keyfile, "RSA key (RS256)");
  generate->add_option("--ecdsa-private-keyfile", gen.ecdsa_private_keyfile,
                       "EC key (ES256 for P-256, ES384 for P-384) or Ed25519 key (EdDSA)");
  generate->add_option("--auth-config", gen.auth_config, "YAML with name, email, sub, roles, groups");
  generate->add_option("--name", gen.name, "name claim");
  generate->add_option("--email", gen.email, "email claim");
  generate->add_option("--subject", gen.subject, "sub claim");
  generate->add_option("--roles", gen.roles, "roles, comma separated")->delimiter(',');
  generate->add_option("--groups", gen.groups, "groups, comma separated")->delimiter(',');
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

  std::string server_config;
  bool check_only = false;
  auto* server = app.add_subcommand("server", "Run the volguard server");
  server->add_option("--config", server_config, "Server config file")->required();
  server->add_flag("--check", check_only, "Validate the config and keys, then exit");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  if (generate->parsed()) return token_generate(gen);
  if (verify->parsed()) return token_verify(verify_config, verify_token);
  if (init_cmd->parsed()) return init(init_args);
  if (server->parsed()) {
    if (check_only) return server_check(server_config);
    return volguard::api::run_server(server_config);
  }
  return kExitUsage;
}
