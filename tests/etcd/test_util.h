// Helpers of the etcd client tests.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "etcd/client.h"
#include "etcd/etcd_cluster.h"

namespace volguard::etcd::testing {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using volguard::testing::EtcdCluster;

inline std::unique_ptr<Client> open_client(std::vector<std::string> endpoints,
                                           std::chrono::milliseconds timeout = 1000ms) {
  ClientOptions o;
  o.endpoints = std::move(endpoints);
  o.timeout = timeout;
  auto c = Client::open(o);
  if (!c.is_ok()) throw std::runtime_error(c.status().to_string());
  return std::move(c).value();
}

// Polls `pred` until it holds or `timeout` passes; true when it held.
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds every = 20ms) {
  auto until = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(every);
  }
}

// A put of key=value as a one-op txn (no compare).
inline Result<TxnResult> put(Client& c, const std::string& key, const std::string& value) {
  return c.txn({}, {Op{.type = Op::Type::kPut, .key = key, .value = value}}, {});
}

inline Result<TxnResult> del(Client& c, const std::string& key) {
  return c.txn({}, {Op{.type = Op::Type::kDelete, .key = key}}, {});
}

// Everything a watch reported, for the test thread to look at.
class Recorder {
 public:
  struct Progress {
    int64_t revision;
    Clock::time_point at;
  };

  WatchCallbacks callbacks() {
    WatchCallbacks cb;
    cb.on_events = [this](const std::vector<WatchEvent>& events, int64_t revision) {
      std::lock_guard lock(mu_);
      for (const auto& e : events) events_.push_back(e);
      if (events.empty() || events.back().kv.mod_revision != revision) bad_batch_ = true;
      through_ = revision;
    };
    cb.on_progress = [this](int64_t revision) {
      std::lock_guard lock(mu_);
      if (revision < through_) progress_backwards_ = true;
      through_ = revision;
      progress_.push_back({revision, Clock::now()});
    };
    cb.on_broken = [this](const Status& why) {
      std::lock_guard lock(mu_);
      broken_.push_back({why, Clock::now()});
    };
    cb.on_compacted = [this](int64_t current) {
      std::lock_guard lock(mu_);
      compacted_.push_back(current);
      through_ = current;
    };
    return cb;
  }

  std::vector<WatchEvent> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  size_t event_count() const {
    std::lock_guard lock(mu_);
    return events_.size();
  }
  std::vector<Progress> progress() const {
    std::lock_guard lock(mu_);
    return progress_;
  }
  size_t progress_count() const {
    std::lock_guard lock(mu_);
    return progress_.size();
  }
  // The highest revision the watch says the view is complete through.
  int64_t through() const {
    std::lock_guard lock(mu_);
    return through_;
  }
  size_t broken_count() const {
    std::lock_guard lock(mu_);
    return broken_.size();
  }
  Clock::time_point first_broken_at() const {
    std::lock_guard lock(mu_);
    return broken_.empty() ? Clock::time_point::max() : broken_.front().second;
  }
  std::string broken_reasons() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& [s, at] : broken_) out += s.to_string() + "\n";
    return out;
  }
  std::vector<int64_t> compacted() const {
    std::lock_guard lock(mu_);
    return compacted_;
  }
  bool bad_batch() const {
    std::lock_guard lock(mu_);
    return bad_batch_;
  }
  bool progress_backwards() const {
    std::lock_guard lock(mu_);
    return progress_backwards_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<WatchEvent> events_;
  std::vector<Progress> progress_;
  std::vector<std::pair<Status, Clock::time_point>> broken_;
  std::vector<int64_t> compacted_;
  int64_t through_ = 0;
  bool bad_batch_ = false;
  bool progress_backwards_ = false;
};

}  // namespace volguard::etcd::testing
