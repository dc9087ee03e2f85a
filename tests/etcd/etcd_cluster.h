// A real etcd cluster for tests: N members of /usr/bin/etcd on 127.0.0.1 with free ports, each
// with its own data dir and zap log under one temp dir, short raft timings (heartbeat 50 ms,
// election 500 ms) so that elections take well under a second.
//
// Members are started with PR_SET_PDEATHSIG(SIGKILL): if the test process dies (crash, ctest
// timeout), the kernel kills them; the destructor kills them too. The dir left behind by such a
// death is removed by the next cluster's constructor (its owner.pid names a dead process). The
// parent is the thread that started the member: call start() from the test's main thread, not from
// a thread that ends.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace volguard::testing {

class EtcdCluster {
 public:
  struct Options {
    int members = 3;
    std::vector<std::string> extra_args;  // added to every member's command line
    // Also serve clients over TLS with client certificates required (a CA, a server and a client
    // certificate made with the openssl command), on a second port: tls_endpoint(i). The plain
    // port stays for the fixture's own health checks.
    bool tls = false;
  };

  // Starts the members and waits until every one reports healthy; throws std::runtime_error
  // (with the members' log tails) when they do not within 30 s.
  explicit EtcdCluster(int members = 3) : EtcdCluster(Options{.members = members}) {}
  explicit EtcdCluster(Options options);
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  int size() const { return static_cast<int>(members_.size()); }
  // "127.0.0.1:port" of each member's client URL, in member order.
  std::vector<std::string> endpoints() const;
  std::string endpoint(int i) const;
  // The same, starting with member `first` (a client prefers its first endpoint).
  std::vector<std::string> endpoints_from(int first) const;

  // With Options::tls: the TLS client endpoint and the files a client needs.
  std::string tls_endpoint(int i) const;
  std::string ca_file() const { return dir_ + "/tls/ca.pem"; }
  std::string client_cert_file() const { return dir_ + "/tls/client.pem"; }
  std::string client_key_file() const { return dir_ + "/tls/client.key"; }

  void kill(int i);   // SIGKILL, waits for the process to be gone
  void stop(int i);   // SIGTERM (SIGKILL after 10 s), waits for the process to be gone
  void start(int i);  // starts it again on its data dir; returns at once
  bool running(int i) const { return members_[i].pid > 0; }

  // Member i answers /health with "true" (it has a leader and serves) within `timeout`.
  bool wait_healthy(int i, std::chrono::milliseconds timeout);
  // Every running member does.
  bool wait_healthy(std::chrono::milliseconds timeout);
  // The index of the leader as the running members see it (the member whose own id is the leader
  // it reports), -1 when there is none within `timeout`.
  int leader(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // POSTs `json` to etcd's v3 JSON gateway on a running member (e.g. "/v3/kv/compaction");
  // returns the response body, or throws.
  std::string post(const std::string& path, const std::string& json) const;
  std::string log_tail(int i, int lines = 40) const;
  std::string logs() const;  // every member's log tail, for a failure message
  const std::string& dir() const { return dir_; }

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    int tls_port = 0;
    std::string data_dir;
    std::string log_file;
    pid_t pid = -1;
  };

  void pick_ports();
  void make_certificates();
  void spawn(int i);
  void wait_gone(int i, std::chrono::milliseconds grace);
  bool try_start_all();

  Options options_;
  std::string dir_;
  std::string token_;
  std::vector<Member> members_;
};

}  // namespace volguard::testing
