#include <sys/stat.h>

#include <ctime>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/text.h"
#include "config/config.h"
#include "identity/token.h"
#include "identity/verifier.h"

namespace volguard::cli {

using identity::SigningKey;

int token_generate(const TokenGenerateArgs& args) {
  int key_flags = !args.shared_secret_file.empty() + !args.shared_secret.empty() +
                  !args.rsa_private_keyfile.empty() + !args.ecdsa_private_keyfile.empty();
  if (key_flags != 1) {
    return usage_error(
        "give exactly one of --shared-secret-file, --shared-secret, --rsa-private-keyfile, "
        "--ecdsa-private-keyfile");
  }
  identity::TokenClaims claims;
  if (!args.auth_config.empty()) {
    if (!args.name.empty() || !args.email.empty() || !args.subject.empty() ||
        !args.roles.empty() || !args.groups.empty()) {
      return usage_error("--auth-config excludes --name/--email/--subject/--roles/--groups");
    }
    auto loaded = identity::claims_from_auth_config(args.auth_config);
    if (!loaded) {
      return usage_error(loaded.status().message());
    }
    claims = std::move(loaded).value();
  } else {
    claims.name = args.name;
    claims.email = args.email;
    claims.subject = args.subject;
    claims.roles = args.roles;
    claims.groups = args.groups;
  }
  // As OpenStorage's generator does, a token without sub gets one derived from who it names,
  // so that the default username claim is never empty.
  if (claims.subject.empty()) claims.subject = !claims.email.empty() ? claims.email : claims.name;
  if (claims.subject.empty()) {
    return usage_error("the token names nobody: give --subject, --email or --name");
  }
  claims.issuer = args.issuer;
  claims.audiences = args.audiences;

  int64_t lifetime = 24 * 3600;
  if (!args.config_file.empty()) {
    auto cfg = config::load_config(args.config_file);
    if (!cfg) {
      return usage_error(cfg.status().message());
    }
    lifetime = cfg->security.token_lifetime.count();
  }
  if (!args.duration.empty()) {
    auto d = parse_duration(args.duration);
    if (!d || d->count() == 0) {
      return usage_error("--duration: ", (d ? std::string("must be greater than zero") : d.status().message()));
    }
    lifetime = d->count();
  }
  claims.lifetime_seconds = lifetime;

  Result<SigningKey> key = Status(Code::kInternal, "", "");
  std::string key_file;
  if (!args.shared_secret.empty()) {
    // pxctl's form. Accepted, never echoed, but the secret is now in the shell's history and,
    // while this runs, in every user's `ps`.
    report_warning(
        "--shared-secret puts the secret in the shell history and the process list; prefer "
        "--shared-secret-file");
    key_file = "--shared-secret";
    key = SigningKey::from_secret(args.shared_secret);
  } else if (!args.shared_secret_file.empty()) {
    key_file = args.shared_secret_file;
    auto secret = read_file(key_file);
    if (!secret) {
      return usage_error("--shared-secret-file: ", secret.status().message());
    }
    // Read as the verifier reads shared_secret_file: without the line end.
    key = SigningKey::from_secret(std::string(trim_trailing_newlines(*secret)));
  } else {
    key_file = !args.rsa_private_keyfile.empty() ? args.rsa_private_keyfile
                                                 : args.ecdsa_private_keyfile;
    auto pem = read_file(key_file);
    if (!pem) {
      return usage_error(pem.status().message());
    }
    key = SigningKey::from_private_pem(*pem);
    if (key) {
      bool want_rsa = !args.rsa_private_keyfile.empty();
      bool is_rsa = key->alg() == identity::Alg::kRS256;
      if (want_rsa != is_rsa) {
        return usage_error(key_file, ": key is not ", (want_rsa ? "an RSA" : "an ECDSA/Ed25519"), " private key");
      }
    }
  }
  if (!key) {
    return usage_error(key_file, ": ", key.status().message());
  }
  auto token = identity::generate_token(*key, claims, static_cast<int64_t>(std::time(nullptr)));
  if (!token) {
    return usage_error(token.status().message());
  }
  if (!args.output.empty()) {
    if (auto s = write_file(args.output, *token + "\n", 0600); !s.is_ok()) {
      return usage_error("--output: ", s.message());
    }
    return kExitOk;
  }
  std::cout << *token << "\n";
  return kExitOk;
}

int token_verify(const std::string& config_file, const std::string& token_arg) {
  auto cfg = config::load_config(config_file);
  if (!cfg) {
    return usage_error(cfg.status().message());
  }
  auto verifier = identity::Verifier::from_config(cfg->security, /*fetch_keys_now=*/true);
  if (!verifier) {
    return usage_error(verifier.status().message());
  }
  std::string token = token_arg;
  if (token == "-") {
    token.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  token.resize(trim_trailing_whitespace(token).size());
  auto id = (*verifier)->verify(token);
  if (!id) {
    // The reason and check only: the token itself is never echoed.
    return report_failure(id.status(), kExitRefused);
  }
  nlohmann::json out = {
      {"username", id->username}, {"subject", id->subject}, {"name", id->name},
      {"email", id->email},       {"issuer", id->issuer},   {"roles", id->roles},
      {"groups", id->groups},     {"expires_at", rfc3339(id->expires_at)},
  };
  std::cout << out.dump() << "\n";
  return kExitOk;
}

}  // namespace volguard::cli
