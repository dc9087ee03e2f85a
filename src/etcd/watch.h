// The Watch behind Client::watch (internal to src/etcd/).
#pragma once

#include <thread>

#include "etcd/client.h"
#include "etcd/core.h"

namespace volguard::etcd::internal {

class WatchImpl : public Watch {
 public:
  WatchImpl(std::shared_ptr<Core> core, std::string prefix, int64_t start_revision,
            WatchCallbacks callbacks, std::chrono::milliseconds progress_interval);
  ~WatchImpl() override;

 private:
  struct Outcome {
    Status why;    // why the stream ended (for on_broken)
    bool restart;  // start again at once (after a compaction), nothing broke
  };

  void run();
  Outcome run_stream(Endpoint& ep);
  void deliver(const etcdserverpb::WatchResponse& resp);
  void progress(int64_t revision);
  Outcome compacted();

  std::shared_ptr<Core> core_;
  const std::string key_;
  const std::string range_end_;
  const WatchCallbacks callbacks_;
  const std::chrono::milliseconds interval_;
  Canceller canceller_;
  // Below: the watch thread's alone.
  int64_t next_revision_;  // the first revision not yet delivered
  bool healthy_ = false;   // the current stream was created
  bool broken_reported_ = false;
  bool compaction_pending_ = false;
  std::thread thread_;  // last: started when everything else is ready
};

}  // namespace volguard::etcd::internal
