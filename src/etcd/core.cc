#include "etcd/core.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <sstream>

namespace volguard::etcd::internal {

namespace {

constexpr const char* kReasonConfig = "invalid_store_config";

Result<std::string> read_file(const std::string& what, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status(Code::kInvalidArgument, kReasonConfig,
                  "cannot read the etcd " + what + " " + path);
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

std::chrono::system_clock::time_point to_system(Clock::time_point t) {
  if (t == Clock::time_point::max()) return std::chrono::system_clock::time_point::max();
  auto now = Clock::now();
  auto left = t > now ? t - now : Clock::duration::zero();
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(left);
}

bool Canceller::enter(grpc::ClientContext* ctx) {
  std::lock_guard lock(mu_);
  if (cancelled_) return false;
  current_.push_back(ctx);
  return true;
}

void Canceller::leave(grpc::ClientContext* ctx) {
  std::lock_guard lock(mu_);
  std::erase(current_, ctx);
}

void Canceller::cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  for (auto* ctx : current_) ctx->TryCancel();
  cv_.notify_all();
}

bool Canceller::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

bool Canceller::sleep_for(Clock::duration d) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, d, [&] { return cancelled_; });
}

Result<std::shared_ptr<Core>> Core::create(const ClientOptions& options) {
  if (options.endpoints.empty()) {
    return Status(Code::kInvalidArgument, kReasonConfig, "no etcd endpoint given");
  }
  for (const auto& e : options.endpoints) {
    if (e.empty() || e.find("://") != std::string::npos) {
      return Status(Code::kInvalidArgument, kReasonConfig,
                    "an etcd endpoint is host:port (TLS comes from ca_file), not '" + e + "'");
    }
  }
  if (options.timeout.count() <= 0) {
    return Status(Code::kInvalidArgument, kReasonConfig, "the etcd call timeout must be positive");
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return Status(Code::kInvalidArgument, kReasonConfig,
                  "an etcd client certificate needs both cert_file and key_file");
  }
  if (!options.cert_file.empty() && options.ca_file.empty()) {
    return Status(Code::kInvalidArgument, kReasonConfig,
                  "an etcd client certificate needs ca_file (TLS)");
  }
  if (options.username.empty() && !options.password.empty()) {
    return Status(Code::kInvalidArgument, kReasonConfig, "an etcd password needs a username");
  }

  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.ca_file.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ASSIGN_OR_RETURN(ssl.pem_root_certs, read_file("CA file", options.ca_file));
    if (!options.cert_file.empty()) {
      ASSIGN_OR_RETURN(ssl.pem_cert_chain, read_file("client certificate", options.cert_file));
      ASSIGN_OR_RETURN(ssl.pem_private_key, read_file("client key", options.key_file));
    }
    creds = grpc::SslCredentials(ssl);
  }

  grpc::ChannelArguments args;
  // Each client its own connections: channels to the same member are not shared between clients
  // (a test's second client must not ride on the first one's connection state).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // A member back from a restart is used again within a second, not after gRPC's default backoff
  // (which grows to two minutes).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Detects a silently dead connection (partition, frozen host). Not more often than etcd's
  // default --grpc-keepalive-min-time (5 s), else etcd closes the connection (too_many_pings).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  // A range over many keys can exceed gRPC's 4 MiB default (etcd's own client sets no limit).
  args.SetMaxReceiveMessageSize(INT_MAX);

  std::shared_ptr<Core> core(new Core(options));
  for (const auto& address : options.endpoints) {
    Endpoint ep;
    ep.address = address;
    ep.channel = grpc::CreateCustomChannel(address, creds, args);
    ep.kv = etcdserverpb::KV::NewStub(ep.channel);
    ep.watch = etcdserverpb::Watch::NewStub(ep.channel);
    ep.lease = etcdserverpb::Lease::NewStub(ep.channel);
    ep.auth = etcdserverpb::Auth::NewStub(ep.channel);
    core->endpoints_.push_back(std::move(ep));
  }
  return core;
}

bool Core::connected(Endpoint& ep, Clock::time_point deadline, Canceller* canceller) {
  auto state = ep.channel->GetState(/*try_to_connect=*/true);
  while (state == GRPC_CHANNEL_IDLE || state == GRPC_CHANNEL_CONNECTING) {
    if (canceller != nullptr && canceller->cancelled()) return false;
    auto now = Clock::now();
    if (now >= deadline) return false;
    // In slices, so that a cancel is seen soon.
    auto slice = std::min(deadline, now + std::chrono::milliseconds(100));
    ep.channel->WaitForStateChange(state, to_system(slice));
    state = ep.channel->GetState(true);
  }
  return state == GRPC_CHANNEL_READY;
}

Result<std::string> Core::token(Endpoint& ep, Clock::time_point deadline, Canceller* canceller) {
  std::lock_guard lock(token_mu_);
  if (auth_disabled_) return std::string();
  if (!token_.empty()) return token_;

  grpc::ClientContext ctx;
  ctx.set_deadline(to_system(deadline));
  etcdserverpb::AuthenticateRequest req;
  req.set_name(options_.username);
  req.set_password(options_.password);
  etcdserverpb::AuthenticateResponse resp;
  if (canceller != nullptr && !canceller->enter(&ctx)) {
    return Status(Code::kCancelled, kReasonUnavailable, "etcd call cancelled");
  }
  grpc::Status s = ep.auth->Authenticate(&ctx, req, &resp);
  if (canceller != nullptr) canceller->leave(&ctx);
  if (s.ok()) {
    token_ = resp.token();
    return token_;
  }
  if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
      s.error_message().find("authentication is not enabled") != std::string::npos) {
    spdlog::warn("etcd: a username is configured but authentication is not enabled in etcd");
    auth_disabled_ = true;
    return std::string();
  }
  if (is_unavailable(s)) return to_status("authenticate", ep.address, s);
  return Status(Code::kUnauthenticated, kReasonAuth,
                "etcd at " + ep.address + " refused to authenticate user '" + options_.username +
                    "': " + s.error_message());
}

void Core::invalidate_token(const std::string& token) {
  std::lock_guard lock(token_mu_);
  if (token_ == token) token_.clear();
  auth_disabled_ = false;  // "user name is empty": auth was enabled since we looked
}

Status Core::prepare(Endpoint& ep, grpc::ClientContext* ctx, Clock::time_point deadline,
                     Canceller* canceller, std::string* token_used) {
  if (deadline != Clock::time_point::max()) ctx->set_deadline(to_system(deadline));
  // etcd's require-leader: a member without a leader refuses at once ("etcdserver: no leader")
  // instead of holding the call until its deadline, and ends a stream when it loses its leader.
  ctx->AddMetadata("hasleader", "true");
  token_used->clear();
  if (!options_.username.empty()) {
    ASSIGN_OR_RETURN(*token_used, token(ep, deadline, canceller));
    if (!token_used->empty()) ctx->AddMetadata("token", *token_used);
  }
  return Status::ok();
}

Status Core::call(const char* what, Retry retry, const Attempt& attempt, Canceller* canceller,
                  Clock::time_point until) {
  std::vector<std::string> failures;
  const size_t n = endpoints_.size();
  const size_t start = preferred_.load();
  for (size_t k = 0; k < n; ++k) {
    if (canceller != nullptr && canceller->cancelled()) {
      return Status(Code::kCancelled, kReasonUnavailable,
                    std::string("etcd ") + what + " cancelled");
    }
    auto now = Clock::now();
    if (now >= until) break;
    const size_t i = (start + k) % n;
    Endpoint& ep = endpoints_[i];
    auto deadline = std::min(until, now + options_.timeout);
    if (!connected(ep, deadline, canceller)) {
      failures.push_back(ep.address + ": not connected");
      continue;
    }
    grpc::Status s;
    bool skip = false;
    for (int auth_try = 0; auth_try < 2; ++auth_try) {
      grpc::ClientContext ctx;
      std::string token;
      Status p = prepare(ep, &ctx, deadline, canceller, &token);
      if (!p.is_ok()) {
        if (p.code() != Code::kUnavailable) return p;
        failures.push_back(p.message());
        skip = true;
        break;
      }
      if (canceller != nullptr && !canceller->enter(&ctx)) {
        return Status(Code::kCancelled, kReasonUnavailable,
                      std::string("etcd ") + what + " cancelled");
      }
      s = attempt(ep, &ctx);
      if (canceller != nullptr) canceller->leave(&ctx);
      if (s.ok()) {
        preferred_.store(i);
        return Status::ok();
      }
      // An expired token: once more with a new one (etcd refused the call before doing it).
      if (auth_try == 0 && !options_.username.empty() && is_token_error(s)) {
        invalidate_token(token);
        continue;
      }
      break;
    }
    if (skip) continue;
    if (!is_unavailable(s)) return to_status(what, ep.address, s);
    if (retry == Retry::kIfNotApplied && !is_not_applied(s)) {
      return Status(Code::kUnavailable, kReasonUnavailable,
                    std::string("etcd ") + what + " on " + ep.address +
                        " failed and may or may not have been applied: " + s.error_message());
    }
    spdlog::debug("etcd {} on {} failed: {}", what, ep.address, s.error_message());
    failures.push_back(ep.address + ": " + s.error_message());
  }
  std::string msg = std::string("etcd ") + what + " failed on every endpoint (";
  for (size_t i = 0; i < failures.size(); ++i) msg += (i ? "; " : "") + failures[i];
  if (failures.empty()) msg += "no time left";
  msg += ")";
  return Status(Code::kUnavailable, kReasonUnavailable, msg);
}

Status Core::to_status(const char* what, const std::string& address, const grpc::Status& s) {
  std::string msg = std::string("etcd ") + what + " on " + address + ": " + s.error_message();
  if (is_unavailable(s)) return Status(Code::kUnavailable, kReasonUnavailable, msg);
  return Status(static_cast<Code>(s.error_code()), kReasonError, msg);
}

bool Core::is_unavailable(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

bool Core::is_token_error(const grpc::Status& s) {
  const auto& m = s.error_message();
  return s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
         m == "etcdserver: invalid auth token" ||
         m == "etcdserver: revision of auth store is old" || m == "etcdserver: user name is empty";
}

bool Core::is_not_applied(const grpc::Status& s) {
  if (s.error_code() != grpc::StatusCode::UNAVAILABLE) return false;
  const auto& m = s.error_message();
  // Refused by etcd's require-leader check before the request reached the server's logic; or
  // gRPC found no connection to send it on.
  return m == "etcdserver: no leader" || starts_with(m, "failed to connect to all addresses");
}

}  // namespace volguard::etcd::internal
