#include "etcd/leased_key.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "etcd/bidi_stream.h"

namespace volguard::etcd::internal {

namespace {

using Stream =
    BidiStream<etcdserverpb::LeaseKeepAliveRequest, etcdserverpb::LeaseKeepAliveResponse>;

constexpr auto kBackoff = std::chrono::milliseconds(200);

}  // namespace

Result<std::unique_ptr<LeasedKey>> LeasedKeyImpl::create(std::shared_ptr<Core> core,
                                                         std::string key, std::string value,
                                                         std::chrono::seconds ttl) {
  if (ttl.count() < 1) {
    return Status(Code::kInvalidArgument, "invalid_lease", "a lease ttl is at least 1 s");
  }
  std::unique_ptr<LeasedKeyImpl> k(
      new LeasedKeyImpl(std::move(core), std::move(key), std::move(value), ttl));
  RETURN_IF_ERROR(k->grant_and_put());
  k->alive_ = true;
  k->thread_ = std::thread([p = k.get()] { p->run(); });
  return std::unique_ptr<LeasedKey>(std::move(k));
}

LeasedKeyImpl::LeasedKeyImpl(std::shared_ptr<Core> core, std::string key, std::string value,
                             std::chrono::seconds ttl)
    : core_(std::move(core)), key_(std::move(key)), value_(std::move(value)), ttl_(ttl) {}

LeasedKeyImpl::~LeasedKeyImpl() {
  canceller_.cancel();
  if (thread_.joinable()) thread_.join();
  if (lease_ == 0) return;
  // Best effort, within one call timeout in all: the key goes at once instead of after the ttl.
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(lease_);
  etcdserverpb::LeaseRevokeResponse resp;
  Status s = core_->call(
      "lease revoke", Retry::kAlways,
      [&](Endpoint& ep, grpc::ClientContext* ctx) {
        return ep.lease->LeaseRevoke(ctx, req, &resp);
      },
      nullptr, Clock::now() + core_->options().timeout);
  if (!s.is_ok()) spdlog::debug("etcd: lease not revoked (it expires by itself): {}", s.message());
}

Status LeasedKeyImpl::grant_and_put() {
  etcdserverpb::LeaseGrantRequest grant;
  grant.set_ttl(ttl_.count());
  etcdserverpb::LeaseGrantResponse granted;
  // A retried grant may leave an unused lease behind: it expires after the ttl.
  RETURN_IF_ERROR(core_->call(
      "lease grant", Retry::kAlways,
      [&](Endpoint& ep, grpc::ClientContext* ctx) {
        return ep.lease->LeaseGrant(ctx, grant, &granted);
      },
      &canceller_));
  if (!granted.error().empty()) {
    return Status(Code::kUnavailable, kReasonUnavailable, "etcd lease grant: " + granted.error());
  }
  etcdserverpb::PutRequest put;
  put.set_key(key_);
  put.set_value(value_);
  put.set_lease(granted.id());
  etcdserverpb::PutResponse resp;
  // The same put twice is the same state: retrying is safe.
  RETURN_IF_ERROR(core_->call(
      "put", Retry::kAlways,
      [&](Endpoint& ep, grpc::ClientContext* ctx) { return ep.kv->Put(ctx, put, &resp); },
      &canceller_));
  lease_ = granted.id();
  return Status::ok();
}

void LeasedKeyImpl::run() {
  size_t ep = core_->preferred();
  while (!canceller_.cancelled()) {
    if (lease_ == 0) {
      Status s = grant_and_put();
      if (!s.is_ok()) {
        spdlog::debug("etcd: leased key not put again: {}", s.message());
        alive_ = false;
        if (!canceller_.sleep_for(kBackoff)) break;
        continue;
      }
      alive_ = true;
    }
    Status s = keep_alive(core_->endpoint(ep));
    if (canceller_.cancelled()) break;
    if (lease_ != 0) {
      // The stream broke with the lease possibly still valid: next member; a lapse shows as
      // TTL 0 in the first answer there.
      spdlog::debug("etcd lease keepalive: {}", s.message());
      ep = (ep + 1) % core_->size();
      if (!canceller_.sleep_for(kBackoff)) break;
    }
  }
}

Status LeasedKeyImpl::keep_alive(Endpoint& ep) {
  const auto timeout = core_->options().timeout;
  const auto period = std::chrono::duration_cast<Clock::duration>(ttl_) / 3;
  auto unavailable = [&](const std::string& what) {
    alive_ = false;
    return Status(Code::kUnavailable, kReasonUnavailable,
                  "etcd keepalive on " + ep.address + ": " + what);
  };
  if (!core_->connected(ep, Clock::now() + timeout, &canceller_))
    return unavailable("not connected");
  grpc::ClientContext ctx;
  std::string token;
  if (Status p = core_->prepare(ep, &ctx, Clock::time_point::max(), &canceller_, &token);
      !p.is_ok()) {
    alive_ = false;
    return p;
  }
  if (!canceller_.enter(&ctx)) return Status::ok();
  struct Leave {
    Canceller& c;
    grpc::ClientContext* ctx;
    ~Leave() { c.leave(ctx); }
  } leave{canceller_, &ctx};

  Stream stream(&ctx);
  auto fail = [&](const std::string& what) {
    grpc::Status s = stream.finish(/*cancel=*/false);
    if (core_->is_token_error(s)) core_->invalidate_token(token);
    return unavailable(s.ok() ? what : what + ": " + s.error_message());
  };
  if (!stream.start(
          [&](grpc::ClientContext* c, grpc::CompletionQueue* cq) {
            return ep.lease->PrepareAsyncLeaseKeepAlive(c, cq);
          },
          to_system(Clock::now() + timeout))) {
    return fail("the stream did not start");
  }
  etcdserverpb::LeaseKeepAliveRequest req;
  req.set_id(lease_);
  etcdserverpb::LeaseKeepAliveResponse resp;
  for (;;) {
    auto sent = Clock::now();
    if (!stream.write(req)) return fail("the renewal could not be sent");
    // The answer, within the call timeout.
    for (;;) {
      auto r = stream.next(&resp, to_system(sent + timeout));
      if (r == Stream::Next::kEnded) return fail("the stream ended");
      if (r == Stream::Next::kTimeout) return fail("no answer to a renewal");
      if (resp.id() == lease_) break;
    }
    if (resp.ttl() <= 0) {
      // The lease expired (etcd unreachable past the ttl) or was revoked: a new one, and the key
      // put again.
      lease_ = 0;
      alive_ = false;
      stream.finish(/*cancel=*/true);
      return Status(Code::kUnavailable, kReasonUnavailable, "etcd lease expired");
    }
    alive_ = true;
    auto next = sent + period;
    // Nothing is expected in between; wake at the next renewal (or on cancel).
    for (;;) {
      auto r = stream.next(&resp, to_system(next));
      if (r == Stream::Next::kEnded) return fail("the stream ended");
      if (r == Stream::Next::kTimeout) break;
    }
  }
}

}  // namespace volguard::etcd::internal
