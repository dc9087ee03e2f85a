// One bidirectional gRPC stream driven from a single thread with deadlines (the watch and the
// lease keepalive): gRPC's async API on a private completion queue, so that the thread can wait
// for "a response or the time to send the next request", and another thread can end the wait by
// cancelling the ClientContext. Internal to src/etcd/.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>

namespace volguard::etcd::internal {

template <typename Request, typename Response>
class BidiStream {
 public:
  using Stream = grpc::ClientAsyncReaderWriter<Request, Response>;
  // Makes the (not yet started) call: e.g. stub->PrepareAsyncWatch(ctx, cq).
  using Prepare =
      std::function<std::unique_ptr<Stream>(grpc::ClientContext*, grpc::CompletionQueue*)>;
  using Deadline = std::chrono::system_clock::time_point;

  enum class Next { kMessage, kTimeout, kEnded };

  // `ctx` must outlive this object.
  explicit BidiStream(grpc::ClientContext* ctx) : ctx_(ctx) {}
  BidiStream(const BidiStream&) = delete;
  BidiStream& operator=(const BidiStream&) = delete;

  ~BidiStream() {
    if (stream_ != nullptr && !finished_) finish(/*cancel=*/true);
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  // Starts the call; false when it could not start before `deadline` (or at all).
  bool start(const Prepare& prepare, Deadline deadline) {
    stream_ = prepare(ctx_, &cq_);
    stream_->StartCall(tag(kStart));
    start_pending_ = true;
    while (start_pending_) {
      if (!pump(deadline)) return false;
    }
    return !dead_;
  }

  // Sends `request` unless a write is still in flight or the stream is dead (false then).
  bool write(const Request& request) {
    if (dead_ || write_pending_ || stream_ == nullptr) return false;
    stream_->Write(request, tag(kWrite));
    write_pending_ = true;
    return true;
  }

  // The next response, or kTimeout at `deadline`, or kEnded when the stream is over.
  Next next(Response* out, Deadline deadline) {
    if (!dead_ && !read_pending_ && !have_message_) {
      stream_->Read(&response_, tag(kRead));
      read_pending_ = true;
    }
    for (;;) {
      if (have_message_) {
        *out = std::move(response_);
        response_.Clear();
        have_message_ = false;
        return Next::kMessage;
      }
      if (dead_) return Next::kEnded;
      if (!pump(deadline)) return Next::kTimeout;
    }
  }

  // Ends the call and returns its status: the server's when it ended the stream, else (cancel, or
  // the stream still open) CANCELLED after cancelling it. Waits for every operation in flight.
  grpc::Status finish(bool cancel) {
    if (finished_ || stream_ == nullptr) return status_;
    if (cancel || !read_failed_) ctx_->TryCancel();
    while (start_pending_ || write_pending_ || read_pending_) pump(Deadline::max());
    stream_->Finish(&status_, tag(kFinish));
    finish_pending_ = true;
    while (finish_pending_) pump(Deadline::max());
    finished_ = true;
    return status_;
  }

 private:
  enum Op : intptr_t { kStart = 1, kWrite, kRead, kFinish };
  static void* tag(Op op) { return reinterpret_cast<void*>(static_cast<intptr_t>(op)); }

  // Handles one completion; false at `deadline`.
  bool pump(Deadline deadline) {
    void* t = nullptr;
    bool ok = false;
    switch (cq_.AsyncNext(&t, &ok, deadline)) {
      case grpc::CompletionQueue::TIMEOUT:
        return false;
      case grpc::CompletionQueue::SHUTDOWN:
        dead_ = true;
        start_pending_ = write_pending_ = read_pending_ = finish_pending_ = false;
        return true;
      case grpc::CompletionQueue::GOT_EVENT:
        break;
    }
    switch (static_cast<Op>(reinterpret_cast<intptr_t>(t))) {
      case kStart:
        start_pending_ = false;
        if (!ok) dead_ = true;
        break;
      case kWrite:
        write_pending_ = false;
        if (!ok) dead_ = true;
        break;
      case kRead:
        read_pending_ = false;
        if (ok) {
          have_message_ = true;
        } else {
          dead_ = true;
          read_failed_ = true;
        }
        break;
      case kFinish:
        finish_pending_ = false;
        break;
    }
    return true;
  }

  grpc::ClientContext* ctx_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<Stream> stream_;
  Response response_;
  grpc::Status status_;
  bool start_pending_ = false;
  bool write_pending_ = false;
  bool read_pending_ = false;
  bool finish_pending_ = false;
  bool have_message_ = false;
  bool dead_ = false;
  bool read_failed_ = false;  // the server ended the stream (its status is worth reading)
  bool finished_ = false;
};

}  // namespace volguard::etcd::internal
