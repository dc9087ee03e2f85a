// Internals of the etcd client shared by Client, Watch and LeasedKey (not part of the API): the
// endpoints with their channels and stubs, the auth token, the unary-call loop that moves from
// endpoint to endpoint, and the cancellation of a thread's calls.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "etcd/client.h"
#include "etcd_rpc.grpc.pb.h"

namespace volguard::etcd::internal {

using Clock = std::chrono::steady_clock;

// gRPC takes deadlines on the system clock; we measure time on the steady one.
std::chrono::system_clock::time_point to_system(Clock::time_point t);

struct Endpoint {
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  std::unique_ptr<etcdserverpb::Auth::Stub> auth;
};

// Lets one thread's blocking work (calls, connection waits, sleeps) be interrupted from another:
// a destructor cancels, the worker sees it at once instead of after a deadline.
class Canceller {
 public:
  // Registers `ctx` as a call in flight (a stream and, within it, a unary call may both be);
  // false when already cancelled (then don't start it).
  bool enter(grpc::ClientContext* ctx);
  void leave(grpc::ClientContext* ctx);
  void cancel();
  bool cancelled() const;
  // Sleeps `d` unless cancelled first; false when cancelled.
  bool sleep_for(Clock::duration d);

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<grpc::ClientContext*> current_;
  bool cancelled_ = false;
};

// Whether a failed attempt may be repeated on another member: a read always; a write only when
// the failure proves it did nothing (else a compare-and-swap could apply twice, or report
// "compare failed" for a write that in fact succeeded).
enum class Retry { kAlways, kIfNotApplied };

class Core {
 public:
  static Result<std::shared_ptr<Core>> create(const ClientOptions& options);

  const ClientOptions& options() const { return options_; }
  size_t size() const { return endpoints_.size(); }
  Endpoint& endpoint(size_t i) { return endpoints_[i]; }
  size_t preferred() const { return preferred_.load(); }

  using Attempt = std::function<grpc::Status(Endpoint& ep, grpc::ClientContext* ctx)>;
  // Runs `attempt` on the preferred endpoint, then on the others while it fails in a way that
  // `retry` allows, each attempt with the options' timeout as deadline (shortened to `until` when
  // given). `what` names the operation in errors ("txn"); messages never contain keys' values.
  Status call(const char* what, Retry retry, const Attempt& attempt, Canceller* canceller = nullptr,
              Clock::time_point until = Clock::time_point::max());

  // Waits (until `deadline`) for the channel to be connected; false when it is not (nothing sent
  // there can have been applied). Does not wait on a channel whose last connection failed.
  bool connected(Endpoint& ep, Clock::time_point deadline, Canceller* canceller = nullptr);
  // Adds the metadata every call carries: the auth token (fetched first if needed) and etcd's
  // require-leader flag. Fails when the token cannot be had.
  Status prepare(Endpoint& ep, grpc::ClientContext* ctx, Clock::time_point deadline,
                 Canceller* canceller, std::string* token_used);
  // Forgets `token` after etcd refused it (expired, or the auth store changed).
  void invalidate_token(const std::string& token);

  // A failed gRPC status as ours: UNAVAILABLE/store_unavailable for the member being unreachable
  // or without quorum, else etcd's own code with reason store_error.
  static Status to_status(const char* what, const std::string& address, const grpc::Status& s);
  static bool is_unavailable(const grpc::Status& s);
  static bool is_token_error(const grpc::Status& s);
  // The request was refused before etcd did anything with it.
  static bool is_not_applied(const grpc::Status& s);

 private:
  explicit Core(ClientOptions options) : options_(std::move(options)) {}
  Result<std::string> token(Endpoint& ep, Clock::time_point deadline, Canceller* canceller);

  ClientOptions options_;
  std::vector<Endpoint> endpoints_;
  std::atomic<size_t> preferred_{0};
  std::mutex token_mu_;
  std::string token_;
  bool auth_disabled_ = false;  // etcd said auth is not enabled: send no token
};

inline constexpr const char* kReasonUnavailable = "store_unavailable";
inline constexpr const char* kReasonError = "store_error";
inline constexpr const char* kReasonAuth = "store_auth_failed";

}  // namespace volguard::etcd::internal
