// Cluster load tool: what forwarding to a volume's home node costs.
//   build/bench/volguard_bench_cluster [clients] [seconds]      (defaults: 8 clients, 4 s)
//
// Starts a real 3-member etcd cluster on loopback (tests/etcd/etcd_cluster.h) and two volguard
// servers in this process, nodes a and b, sharing it (one prefix, one HS256 issuer, separate
// data dirs). A tenant creates one volume on a (a real mkfs), then N clients call volume.inspect
// of it on a (its home: answered locally) and on b (forwarded to a with the caller's token, where
// the whole pipeline runs again), in alternating rounds so that drift and noise on a shared
// machine fall on both sides alike. Prints throughput, p50/p99 and errors for both, and the
// ratio forwarded/home. No target: exits non-zero only on errors.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api/client.h"
#include "api/server.h"
#include "common/text.h"
#include "config/config.h"
#include "etcd/etcd_cluster.h"
#include "identity/token.h"
#include "load_common.h"
#include "volguard.pb.h"

namespace {

using namespace volguard;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using bench::drive;
using bench::LoadResult;

const std::string kSecret = "bench-secret-0123456789abcdef0123456789";
const std::string kVolume = "fwd-bench";
const std::string kInspect = "/volguard.v1.VolguardVolume/Inspect";

std::atomic<bool> g_interrupted{false};

std::string token(const std::string& sub, std::vector<std::string> roles) {
  identity::TokenClaims c{.issuer = "bench.local",
                          .subject = sub,
                          .roles = std::move(roles),
                          .groups = {"g-" + sub},
                          .lifetime_seconds = 3600};
  return identity::generate_token(identity::SigningKey::from_secret(kSecret).value(), c,
                                  static_cast<int64_t>(std::time(nullptr)))
      .value();
}

// The bench's temp dir, removed on every way out of run() (the etcd fixture removes its own).
struct TempDir {
  std::string path;
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

// Two free loopback ports, known before the server starts: a node registers its advertise
// address in etcd before it listens, so "127.0.0.1:0" would register port 0.
std::vector<int> free_ports(int n) {
  std::vector<int> fds, ports;
  for (int i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      if (fd >= 0) ::close(fd);
      break;
    }
    fds.push_back(fd);
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) ::close(fd);
  return ports;
}

struct Node {
  std::string name;
  std::string grpc;  // 127.0.0.1:port, also its advertise address
  std::string data_dir;
  std::unique_ptr<api::Server> server;
};

Status start_node(Node& node, const std::string& root, const std::vector<std::string>& etcd) {
  std::string endpoints;
  for (const auto& e : etcd) endpoints += (endpoints.empty() ? "" : ", ") + e;
  Status last = Status::ok();
  // A port taken between picking and binding fails the start: new ports, a fresh data dir.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto ports = free_ports(2);
    if (ports.size() != 2) return Status(Code::kInternal, "no_port", "cannot find a free port");
    node.grpc = "127.0.0.1:" + std::to_string(ports[0]);
    node.data_dir = root + "/" + node.name + "-" + std::to_string(attempt);
    std::error_code ec;
    fs::create_directories(node.data_dir, ec);
    fs::permissions(node.data_dir, fs::perms::owner_all, ec);
    std::string yaml = "data_dir: " + node.data_dir + "\napi:\n  grpc: " + node.grpc +
                       "\n  rest: 127.0.0.1:" + std::to_string(ports[1]) +
                       "\nnode:\n  name: " + node.name + "\n  advertise: " + node.grpc +
                       "\nstore:\n  etcd:\n    endpoints: [" + endpoints +
                       "]\n    prefix: /volguard-bench\n    stale_after: 3s\n    node_ttl: 2s\n" +
                       "security:\n  enabled: true\n  issuers:\n    - issuer: bench.local\n" +
                       "      shared_secret_file: " + root + "/secret\n";
    auto config = config::parse_config(yaml, node.name + ".yaml");
    if (!config) return config.status();
    auto server = api::Server::start(*config);
    if (server) {
      node.server = std::move(server).value();
      return Status::ok();
    }
    last = server.status();
    std::fprintf(stderr, "bench: starting node %s (attempt %d): %s\n", node.name.c_str(),
                 attempt + 1, last.to_string().c_str());
  }
  return last;
}

// A stalled call (one that never returns) must not hang the run: past `budget`, or 10 s after
// Ctrl-C/SIGTERM, the watchdog removes the temp dirs and ends the process (the etcd members die
// with it: PR_SET_PDEATHSIG). Destroyed (joined) on every normal way out.
class Watchdog {
 public:
  Watchdog(std::chrono::seconds budget, std::vector<std::string> dirs)
      : dirs_(std::move(dirs)), thread_([this, budget] { watch(budget); }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void watch(std::chrono::seconds budget) {
    auto until = Clock::now() + budget;
    std::optional<Clock::time_point> interrupted_at;
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return done_; })) {
      if (g_interrupted && !interrupted_at) interrupted_at = Clock::now();
      bool late = Clock::now() >= until;
      if (late || (interrupted_at && Clock::now() - *interrupted_at > std::chrono::seconds(10))) {
        std::fprintf(stderr, "bench: %s; giving up\n",
                     late ? "still running past its time budget (a call does not return?)"
                          : "interrupted and a call does not return");
        std::error_code ec;
        for (const auto& d : dirs_) fs::remove_all(d, ec);
        std::_Exit(3);
      }
    }
  }

  std::vector<std::string> dirs_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: starts once the rest is constructed
};

// Polls `pred` every 50 ms until it holds (true) or `timeout` passes or the run is interrupted.
bool eventually(const std::function<bool()>& pred, std::chrono::seconds timeout) {
  auto until = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= until || g_interrupted) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

int run(int clients, double seconds) {
  TempDir root;
  {
    char tmpl[] = "/tmp/volguard-bench-cluster-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      std::perror("bench: mkdtemp");
      return 2;
    }
    root.path = tmpl;
  }
  if (Status s = write_file(root.path + "/secret", kSecret, 0600); !s.is_ok()) {
    std::fprintf(stderr, "bench: %s\n", s.to_string().c_str());
    return 2;
  }
  auto t0 = Clock::now();
  testing::EtcdCluster etcd(3);  // throws when it does not become healthy; killed on every way out
  std::printf("etcd: 3 members healthy in %.1f s (%s)\n",
              std::chrono::duration<double>(Clock::now() - t0).count(), etcd.endpoint(0).c_str());

  // Setup (node start, waits, mkfs) well under 2 minutes; warm-up 2 s; the rounds 2 x seconds.
  Watchdog watchdog(std::chrono::seconds(120 + static_cast<int>(3 * seconds)),
                    {root.path, etcd.dir()});
  // Declared after the etcd cluster: the servers shut down before its members are killed.
  Node a{.name = "a"}, b{.name = "b"};
  for (Node* n : {&a, &b}) {
    if (Status s = start_node(*n, root.path, etcd.endpoints()); !s.is_ok()) {
      std::fprintf(stderr, "bench: node %s did not start: %s\n", n->name.c_str(),
                   s.to_string().c_str());
      return 2;
    }
  }
  const std::string user_token = token("tenant1", {"system.user"});
  auto connect = [&](const Node& n) {
    return std::make_shared<api::Client>(api::Client::connect(n.grpc, user_token, "").value());
  };

  // b must see a alive, at its advertised address, before it can forward anything to it.
  auto b_client = connect(b);
  bool a_alive = eventually(
      [&] {
        v1::Empty req;
        v1::NodeEnumerateResponse resp;
        if (!b_client->call("/volguard.v1.VolguardNode/Enumerate", req, &resp).is_ok())
          return false;
        for (const auto& n : resp.nodes()) {
          if (n.name() == "a" && n.alive() && n.address() == a.grpc) return true;
        }
        return false;
      },
      std::chrono::seconds(20));
  if (!a_alive) {
    std::fprintf(stderr, "bench: node b does not list node a alive at %s within 20 s\n",
                 a.grpc.c_str());
    return 2;
  }

  // One volume, homed on a (the node asked): a real mkfs of a small image.
  auto a_client = connect(a);
  {
    v1::CreateVolumeRequest req;
    req.set_name(kVolume);
    req.set_size("16M");
    v1::VolumeResponse resp;
    if (Status s = a_client->call("/volguard.v1.VolguardVolume/Create", req, &resp); !s.is_ok()) {
      std::fprintf(stderr, "bench: creating %s on a: %s\n", kVolume.c_str(), s.to_string().c_str());
      return 2;
    }
  }
  // b answers for it once its catalog has it (the watch), and says it lives on a.
  std::string home_seen;
  bool b_sees = eventually(
      [&] {
        v1::VolumeRef req;
        req.set_volume(kVolume);
        v1::VolumeResponse resp;
        if (!b_client->call(kInspect, req, &resp).is_ok()) return false;
        home_seen = resp.volume().home_node();
        return true;
      },
      std::chrono::seconds(10));
  if (!b_sees || home_seen != "a") {
    std::fprintf(
        stderr, "bench: inspect of %s through b: %s\n", kVolume.c_str(),
        b_sees ? ("home_node '" + home_seen + "', expected 'a'").c_str() : "fails for 10 s");
    return 2;
  }

  auto inspect_run = [&](const Node& n, double secs) {
    return drive(clients, secs, [&](int) {
      auto client = connect(n);
      return [client] {
        v1::VolumeRef req;
        req.set_volume(kVolume);
        v1::VolumeResponse resp;
        return client->call(kInspect, req, &resp).is_ok();
      };
    });
  };
  // Warm both paths up (b's channel to a included), then alternate home/forwarded rounds.
  inspect_run(a, 1);
  inspect_run(b, 1);
  std::map<bool, std::vector<LoadResult>> rounds;  // forwarded?
  for (int round = 0; round < 4 && !g_interrupted; ++round) {
    for (bool forwarded : {round % 2 != 0, round % 2 == 0}) {
      rounds[forwarded].push_back(inspect_run(forwarded ? b : a, seconds / 4));
    }
  }
  if (g_interrupted) {
    std::fprintf(stderr, "bench: interrupted\n");
    return 130;
  }
  LoadResult home = bench::combine(rounds[false]);
  LoadResult fwd = bench::combine(rounds[true]);

  std::printf("\n%d clients, %.1f s per side in 4 alternating rounds; volume %s homed on node a\n",
              clients, seconds, kVolume.c_str());
  std::printf("%-34s %10s %9s %9s %8s\n", "workload", "calls/s", "p50 ms", "p99 ms", "errors");
  auto row = [](const char* name, const LoadResult& r) {
    std::printf("%-34s %10.0f %9.3f %9.3f %8zu\n", name, r.per_second, r.p50_ms, r.p99_ms,
                r.errors);
  };
  row("inspect on the home node", home);
  row("inspect forwarded (b -> a)", fwd);
  double ratio = home.per_second > 0 ? fwd.per_second / home.per_second : 0;
  std::printf(
      "\nforwarding cost: forwarded/home throughput = %.2f, p50 %+.3f ms (%.3f -> %.3f ms)\n",
      ratio, fwd.p50_ms - home.p50_ms, home.p50_ms, fwd.p50_ms);
  return home.errors + fwd.errors == 0 && home.calls > 0 && fwd.calls > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int clients = argc > 1 ? std::atoi(argv[1]) : 8;
  double seconds = argc > 2 ? std::atof(argv[2]) : 4;
  if (clients < 1 || !(seconds > 0)) {
    std::fprintf(stderr, "usage: %s [clients >= 1] [seconds > 0]\n", argv[0]);
    return 2;
  }
  // Ctrl-C or SIGTERM: finish the current step and leave through run()'s cleanup (servers down,
  // etcd members killed, temp dirs removed). The etcd members die with this process anyway.
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_interrupted = true; };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  try {
    return run(clients, seconds);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench: %s\n", e.what());
    return 2;
  }
}
