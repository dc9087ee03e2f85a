#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <ctime>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <span>

#include "cli/commands.h"
#include "common/hex.h"
#include "common/text.h"
#include "config/config.h"
#include "identity/token.h"
#include "identity/verifier.h"

namespace volguard::cli {

namespace fs = std::filesystem;

namespace {

Status write_token(const fs::path& path, const identity::SigningKey& key,
                   identity::TokenClaims claims, int64_t lifetime) {
  claims.issuer = "volguard.local";
  claims.lifetime_seconds = lifetime;
  auto token = identity::generate_token(key, claims, static_cast<int64_t>(std::time(nullptr)));
  if (!token) return token.status();
  return write_file(path.string(), *token + "\n", 0600);
}

}  // namespace

int init(const InitArgs& args) {
  std::error_code ec;
  fs::create_directories(args.data_dir, ec);
  if (ec) {
    return usage_error("cannot create ", args.data_dir, ": ", ec.message());
  }
  fs::path dir = fs::absolute(args.data_dir).lexically_normal();
  ::chmod(dir.c_str(), 0700);
  fs::path secret_file = dir / "shared.secret";
  fs::path config_file = dir / "volguard.yaml";
  // The key-encryption key of encrypted volumes (`volume create --secure`): a local one, so that
  // encryption works out of the box. Production: a KMS (encryption.keys.<name>.kms), so that
  // the KEK is not on the node's disk beside the data (README: Encryption at rest).
  fs::path kek_file = dir / "kek.key";

  if (!fs::exists(secret_file)) {
    unsigned char rnd[48];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
      return usage_error("no randomness for the shared secret");
    }
    std::string secret = base64url_encode(std::string_view(reinterpret_cast<char*>(rnd), sizeof rnd));
    if (auto s = write_file(secret_file.string(), secret + "\n", 0600); !s.is_ok()) {
      return usage_error(s.message());
    }
  }
  if (!fs::exists(kek_file)) {
    unsigned char rnd[32];
    if (RAND_priv_bytes(rnd, sizeof rnd) != 1) {
      return usage_error("no randomness for the key-encryption key");
    }
    std::string hex = to_hex(std::span<const unsigned char>(rnd, sizeof rnd));
    OPENSSL_cleanse(rnd, sizeof rnd);
    Status s = write_file(kek_file.string(), hex + "\n", 0600);
    OPENSSL_cleanse(hex.data(), hex.size());
    if (!s.is_ok()) {
      return usage_error(s.message());
    }
  }
  if (!fs::exists(config_file)) {
    std::string yaml =
        "# volguard server configuration (written by `volguard init`)\n"
        "data_dir: " + dir.string() + "\n"
        "api:\n"
        "  grpc: " + args.grpc + "\n"
        "  rest: " + args.rest + "\n"
        "security:\n"
        "  enabled: true\n"
        "  guest_access: true\n"
        "  username_claim: sub\n"
        "  token_lifetime: 24h\n"
        "  issuers:\n"
        "    - issuer: volguard.local\n"
        "      shared_secret_file: " + secret_file.string() + "\n"
        "encryption:\n"
        "  keys:\n"
        "    local:\n"
        "      file: " + kek_file.string() + "\n";
    if (auto s = write_file(config_file.string(), yaml, 0600); !s.is_ok()) {
      return usage_error(s.message());
    }
  }
  auto cfg = config::load_config(config_file.string());
  if (!cfg) {
    return usage_error(cfg.status().message());
  }
  // Tokens are re-minted on every init so that `make run` always hands out live ones.
  for (const auto& ic : cfg->security.issuers) {
    if (ic.issuer != "volguard.local" || ic.shared_secret_file.empty()) continue;
    auto secret = identity::load_secret(ic);
    if (!secret) {
      return usage_error(secret.status().message());
    }
    auto key = identity::SigningKey::from_secret(std::move(secret).value());
    if (!key) {
      return usage_error(key.status().message());
    }
    int64_t lifetime = cfg->security.token_lifetime.count();
    identity::TokenClaims admin{.subject = "admin", .name = "Administrator",
                                .email = "admin@volguard.local", .roles = {"system.admin"},
                                .groups = {"*"}};
    identity::TokenClaims user{.subject = "user", .name = "User", .email = "user@volguard.local",
                               .roles = {"system.user"}, .groups = {"users"}};
    for (auto [file, claims] : {std::pair{dir / "admin.token", admin},
                                std::pair{dir / "user.token", user}}) {
      if (auto s = write_token(file, *key, claims, lifetime); !s.is_ok()) {
        return usage_error(s.message());
      }
    }
  }
  if (args.output == "json") {
    std::cout << nlohmann::json{{"data_dir", dir.string()},
                                {"config", config_file.string()},
                                {"admin_token_file", (dir / "admin.token").string()},
                                {"user_token_file", (dir / "user.token").string()},
                                {"grpc", cfg->api.grpc},
                                {"rest", cfg->api.rest}}
                     .dump()
              << "\n";
    return kExitOk;
  }
  // Commands that run as printed, from the directory `make run` ran in.
  std::cout << "volguard initialised in " << dir.string() << "\n"
            << "  config:       " << config_file.string() << "\n"
            << "  admin token:  " << (dir / "admin.token").string() << " (system.admin)\n"
            << "  user token:   " << (dir / "user.token").string() << " (system.user)\n"
            << "\nNext, in another terminal (gRPC " << cfg->api.grpc << ", REST " << cfg->api.rest
            << "):\n"
            << "  export VOLGUARD_TOKEN=$(cat " << (dir / "user.token").string() << ")\n"
            << "  ./build/volguard --endpoint " << cfg->api.grpc << " auth whoami\n"
            << "  ./build/volguard --endpoint " << cfg->api.grpc << " volume create demo --size 1\n"
            << "  ./build/volguard --endpoint " << cfg->api.grpc << " volume list\n"
            << "  curl -s -XPOST http://" << cfg->api.rest
            << "/v1/volume/enumerate -H \"Authorization: bearer $VOLGUARD_TOKEN\"\n"
            << "(or `make install` puts volguard on PATH; stop the server with Ctrl-C)\n\n";
  return kExitOk;
}

int server_check(const std::string& config_file) {
  auto cfg = config::load_config(config_file);
  if (!cfg) {
    return usage_error(cfg.status().message());
  }
  auto verifier = identity::Verifier::from_config(cfg->security);
  if (!verifier) {
    return usage_error(verifier.status().message());
  }
  const auto& sec = cfg->security;
  std::cout << "config " << config_file << ": OK\n"
            << "  security.enabled: " << (sec.enabled ? "true" : "false") << "\n"
            << "  guest_access: " << (sec.guest_access ? "true" : "false") << "\n"
            << "  username_claim: " << config::username_claim_name(sec.username_claim) << "\n"
            << "  clock_skew: " << format_duration(sec.clock_skew) << "\n"
            << "  issuers: " << (*verifier)->issuer_count() << "\n";
  for (const auto& ic : sec.issuers) {
    std::cout << "    - " << ic.issuer << " ("
              << (!ic.public_key_file.empty() ? "public key " + ic.public_key_file
                  : !ic.shared_secret_env.empty() ? "shared secret from $" + ic.shared_secret_env
                                                  : "shared secret " + ic.shared_secret_file)
              << ")\n";
  }
  return kExitOk;
}

}  // namespace volguard::cli
