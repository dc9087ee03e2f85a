// The LeasedKey behind Client::keep (internal to src/etcd/).
#pragma once

#include <atomic>
#include <thread>

#include "etcd/client.h"
#include "etcd/core.h"

namespace volguard::etcd::internal {

class LeasedKeyImpl : public LeasedKey {
 public:
  // Grants the lease and puts the key before returning (an error when etcd cannot be reached).
  static Result<std::unique_ptr<LeasedKey>> create(std::shared_ptr<Core> core, std::string key,
                                                   std::string value, std::chrono::seconds ttl);
  ~LeasedKeyImpl() override;
  bool alive() const override { return alive_.load(); }

 private:
  LeasedKeyImpl(std::shared_ptr<Core> core, std::string key, std::string value,
                std::chrono::seconds ttl);
  Status grant_and_put();
  void run();
  // Renews on one member's keepalive stream until it fails or the lease is gone.
  Status keep_alive(Endpoint& ep);

  std::shared_ptr<Core> core_;
  const std::string key_;
  const std::string value_;
  const std::chrono::seconds ttl_;
  Canceller canceller_;
  std::atomic<bool> alive_{false};
  int64_t lease_ = 0;  // 0: none (to grant); the thread's alone once it runs
  std::thread thread_;
};

}  // namespace volguard::etcd::internal
