// The load loop of the gRPC load tools (load_bench.cc, cluster_bench.cc): N client threads call
// as fast as they can for a while; throughput and latency percentiles over every call.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <thread>
#include <vector>

namespace volguard::bench {

struct LoadResult {
  double per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  size_t calls = 0;
  size_t errors = 0;
  std::vector<double> samples;  // sorted latencies, ms
};

// `clients` threads for `seconds`; make_call(c) runs once on thread c and returns the call it
// repeats (a bool() callable: false counts an error).
template <typename Fn>
LoadResult drive(int clients, double seconds, Fn make_call) {
  using Clock = std::chrono::steady_clock;
  std::vector<std::vector<double>> latencies(clients);
  std::atomic<size_t> errors{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  auto start = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto call = make_call(c);
      while (!stop.load(std::memory_order_relaxed)) {
        auto t0 = Clock::now();
        if (!call()) errors++;
        latencies[c].push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  LoadResult r;
  r.calls = all.size();
  r.errors = errors;
  r.per_second = all.size() / elapsed;
  if (!all.empty()) {
    r.p50_ms = all[all.size() / 2];
    r.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  r.samples = std::move(all);
  return r;
}

// Rounds of one workload as one row: calls/s is the mean of the rounds' rates; p50/p99 are over
// every call of every round.
inline LoadResult combine(const std::vector<LoadResult>& rounds) {
  LoadResult total;
  double rate = 0;
  std::vector<double> all;
  for (const auto& r : rounds) {
    rate += r.per_second;
    total.calls += r.calls;
    total.errors += r.errors;
    all.insert(all.end(), r.samples.begin(), r.samples.end());
  }
  std::sort(all.begin(), all.end());
  if (!rounds.empty()) total.per_second = rate / rounds.size();
  if (!all.empty()) {
    total.p50_ms = all[all.size() / 2];
    total.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  total.samples = std::move(all);
  return total;
}

}  // namespace volguard::bench
