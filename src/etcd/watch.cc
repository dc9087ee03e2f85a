// Client::watch: one thread per watch, one gRPC Watch stream at a time, moving to the next
// endpoint with a short backoff when the stream breaks, resuming after the last revision it
// delivered.
#include "etcd/watch.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "etcd/bidi_stream.h"

namespace volguard::etcd::internal {

namespace {

using Stream = BidiStream<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>;

constexpr auto kBackoff = std::chrono::milliseconds(200);

KeyValue to_kv(const mvccpb::KeyValue& kv) {
  return KeyValue{.key = kv.key(),
                  .value = kv.value(),
                  .create_revision = kv.create_revision(),
                  .mod_revision = kv.mod_revision(),
                  .version = kv.version(),
                  .lease = kv.lease()};
}

Status unavailable(std::string msg) {
  return Status(Code::kUnavailable, kReasonUnavailable, std::move(msg));
}

}  // namespace

WatchImpl::WatchImpl(std::shared_ptr<Core> core, std::string prefix, int64_t start_revision,
                     WatchCallbacks callbacks, std::chrono::milliseconds progress_interval)
    : core_(std::move(core)),
      key_(prefix.empty() ? std::string(1, '\0') : prefix),
      range_end_(prefix_end(prefix)),
      callbacks_(std::move(callbacks)),
      interval_(progress_interval),
      next_revision_(std::max<int64_t>(start_revision, 1)) {
  thread_ = std::thread([this] { run(); });
}

WatchImpl::~WatchImpl() {
  if (std::this_thread::get_id() == thread_.get_id()) {
    // Joining itself would hang forever: fail loudly instead.
    spdlog::critical("etcd watch destroyed from its own callback");
    std::terminate();
  }
  canceller_.cancel();
  thread_.join();
}

void WatchImpl::run() {
  size_t ep = core_->preferred();
  while (!canceller_.cancelled()) {
    Outcome out = run_stream(core_->endpoint(ep));
    if (canceller_.cancelled()) break;
    if (out.restart) continue;  // after a compaction: at once, same member
    if (healthy_ || !broken_reported_) {
      spdlog::debug("etcd watch on {}: {}", core_->endpoint(ep).address, out.why.message());
      healthy_ = false;
      broken_reported_ = true;
      if (callbacks_.on_broken) callbacks_.on_broken(out.why);
    }
    ep = (ep + 1) % core_->size();
    if (!canceller_.sleep_for(kBackoff)) break;
  }
}

WatchImpl::Outcome WatchImpl::run_stream(Endpoint& ep) {
  const auto timeout = core_->options().timeout;
  if (!core_->connected(ep, Clock::now() + timeout, &canceller_)) {
    return {unavailable("etcd watch: " + ep.address + " not connected"), false};
  }
  grpc::ClientContext ctx;
  std::string token;
  Status p = core_->prepare(ep, &ctx, Clock::time_point::max(), &canceller_, &token);
  if (!p.is_ok()) return {p, false};
  if (!canceller_.enter(&ctx)) return {Status::ok(), false};
  struct Leave {
    Canceller& c;
    grpc::ClientContext* ctx;
    ~Leave() { c.leave(ctx); }
  } leave{canceller_, &ctx};

  Stream stream(&ctx);
  auto fail = [&](const std::string& what) -> Outcome {
    grpc::Status s = stream.finish(/*cancel=*/false);
    if (core_->is_token_error(s)) core_->invalidate_token(token);
    std::string msg = "etcd watch on " + ep.address + ": " + what;
    if (!s.ok()) msg += ": " + s.error_message();
    return {unavailable(msg), false};
  };

  if (!stream.start([&](grpc::ClientContext* c,
                        grpc::CompletionQueue* cq) { return ep.watch->PrepareAsyncWatch(c, cq); },
                    to_system(Clock::now() + timeout))) {
    return fail("the stream did not start");
  }
  etcdserverpb::WatchRequest create;
  auto* cr = create.mutable_create_request();
  cr->set_key(key_);
  cr->set_range_end(range_end_);
  cr->set_start_revision(next_revision_);
  if (!stream.write(create)) return fail("the watch could not be sent");

  bool created = false;
  // Nothing at all (no creation ack, no progress response, no event) for this long after a
  // request: the member or the path to it is gone (a killed member is seen at once; this is for
  // a frozen one or a partition). Events count: a newer etcd holds a progress response back
  // while the watch catches up.
  const auto silence_limit = Clock::duration(timeout) + interval_;
  auto waiting_since = Clock::now();  // for the creation ack, then for a progress response
  bool waiting = true;
  auto next_progress = Clock::time_point::max();
  etcdserverpb::WatchResponse resp;
  for (;;) {
    auto wake = std::min(next_progress, waiting ? waiting_since + silence_limit : next_progress);
    switch (stream.next(&resp, to_system(wake))) {
      case Stream::Next::kEnded:
        return fail("the stream ended");
      case Stream::Next::kTimeout: {
        auto now = Clock::now();
        if (waiting && now >= waiting_since + silence_limit) {
          return fail(created ? "no progress response" : "no answer to the watch creation");
        }
        if (now >= next_progress) {
          etcdserverpb::WatchRequest progress;
          progress.mutable_progress_request();
          stream.write(progress);  // a write still in flight: this one is skipped
          if (!waiting) {
            waiting = true;
            waiting_since = now;
          }
          next_progress = now + interval_;
        }
        continue;
      }
      case Stream::Next::kMessage:
        if (waiting) waiting_since = Clock::now();
        break;
    }

    if (resp.created()) {
      if (resp.canceled()) {
        // etcd 3.4 refuses a watch whose token expired as "permission denied" (some 3.4 releases
        // say "invalid auth token"): authenticate again before the next try.
        core_->invalidate_token(token);
        return fail("etcd refused the watch: " + resp.cancel_reason());
      }
      created = true;
      healthy_ = true;
      broken_reported_ = false;
      waiting = false;
      next_progress = Clock::now() + interval_;
      continue;
    }
    if (!created) continue;
    if (resp.compact_revision() > 0) {
      // The history we need is gone. The stream ends here (etcd cancelled the watch).
      stream.finish(/*cancel=*/true);
      return compacted();
    }
    if (resp.canceled()) {
      if (resp.cancel_reason().find("auth") != std::string::npos) core_->invalidate_token(token);
      return fail("etcd cancelled the watch: " + resp.cancel_reason());
    }
    if (resp.events_size() > 0) {
      deliver(resp);
      continue;
    }
    // No events, not a creation, cancel or compaction: a progress response (watch_id -1 for one
    // we requested; our own id would be etcd's periodic one, which we do not ask for).
    waiting = false;
    progress(resp.header().revision());
    if (compaction_pending_) {
      compaction_pending_ = false;
      stream.finish(/*cancel=*/true);
      return compacted();
    }
  }
}

void WatchImpl::deliver(const etcdserverpb::WatchResponse& resp) {
  std::vector<WatchEvent> events;
  events.reserve(resp.events_size());
  for (const auto& ev : resp.events()) {
    // Already delivered (a resumed stream, or etcd < 3.4.24 sending an event twice) or covered by
    // a verified progress notification. A revision's events always come in one response.
    if (ev.kv().mod_revision() < next_revision_) continue;
    WatchEvent out;
    out.deleted = ev.type() == mvccpb::Event::DELETE;
    out.kv = to_kv(ev.kv());
    if (out.deleted) {
      out.kv.value.clear();
      out.kv.create_revision = 0;
      out.kv.version = 0;
      out.kv.lease = 0;
    }
    events.push_back(std::move(out));
  }
  if (events.empty()) return;
  // The last event's revision, not header.revision: a batch from a catching-up watcher carries
  // the store's current revision in its header while later events are still to come.
  int64_t through = events.back().kv.mod_revision;
  next_revision_ = through + 1;
  callbacks_.on_events(events, through);
}

// A progress response says the member's store is at `revision`. etcd before 3.4.25 (this machine
// has 3.4.23) may send it ahead of events of that revision still queued for the stream (etcd
// issue 15220): trusting it could report a view complete through a revision whose events are yet
// to arrive. So it is checked, in one linearizable read-only transaction, that the keys under the
// prefix at `revision` are exactly those at the last delivered revision L (same count, none
// modified after L). Then nothing the caller's view lacks happened up to `revision`: a late event
// up to it can only belong to a key created and deleted in between, and is skipped. Otherwise the
// caller's view is complete through L only. The check needs a quorum, so on_progress stops as
// soon as the cluster loses it, even while this member still answers.
void WatchImpl::progress(int64_t revision) {
  const int64_t last = next_revision_ - 1;
  const int64_t at = std::max(revision, last);
  etcdserverpb::TxnRequest req;
  auto count_at = [&](int64_t rev) {
    auto* r = req.add_success()->mutable_request_range();
    r->set_key(key_);
    r->set_range_end(range_end_);
    r->set_revision(rev);
    r->set_count_only(true);
  };
  if (last > 0) count_at(last);  // revision 0 would mean "now"; nothing existed before 1
  count_at(at);
  auto* changed = req.add_success()->mutable_request_range();
  changed->set_key(key_);
  changed->set_range_end(range_end_);
  changed->set_revision(at);
  changed->set_keys_only(true);
  changed->set_limit(1);
  changed->set_min_mod_revision(last + 1);  // (etcd counts before filtering: ask for a key)

  etcdserverpb::TxnResponse resp;
  Status s = core_->call(
      "watch progress check", Retry::kAlways,
      [&](Endpoint& ep, grpc::ClientContext* ctx) { return ep.kv->Txn(ctx, req, &resp); },
      &canceller_);
  if (!s.is_ok()) {
    if (s.code() == Code::kOutOfRange && s.message().find("compacted") != std::string::npos) {
      // L was compacted away: the watch cannot prove its view any more; reload like a compaction.
      compaction_pending_ = true;
    }
    spdlog::debug("etcd watch: no progress: {}", s.message());
    return;
  }
  if (resp.responses_size() != req.success_size()) return;
  int i = 0;
  int64_t count_last = last > 0 ? resp.responses(i++).response_range().count() : 0;
  int64_t count_now = resp.responses(i++).response_range().count();
  bool modified = resp.responses(i).response_range().kvs_size() > 0;
  if (count_last == count_now && !modified) {
    next_revision_ = at + 1;
    if (callbacks_.on_progress) callbacks_.on_progress(at);
  } else if (callbacks_.on_progress) {
    callbacks_.on_progress(last);
  }
}

WatchImpl::Outcome WatchImpl::compacted() {
  // The store's current revision, read on the prefix the caller may read.
  etcdserverpb::RangeRequest req;
  req.set_key(key_);
  req.set_range_end(range_end_);
  req.set_count_only(true);
  etcdserverpb::RangeResponse resp;
  Status s = core_->call(
      "range", Retry::kAlways,
      [&](Endpoint& ep, grpc::ClientContext* ctx) { return ep.kv->Range(ctx, req, &resp); },
      &canceller_);
  if (!s.is_ok()) return {s, false};
  int64_t current = resp.header().revision();
  if (callbacks_.on_compacted) callbacks_.on_compacted(current);
  next_revision_ = current + 1;
  return {Status::ok(), true};
}

}  // namespace volguard::etcd::internal
