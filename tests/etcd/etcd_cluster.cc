#include "etcd/etcd_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace volguard::testing {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kEtcd = "/usr/bin/etcd";

// Removes the dirs of clusters whose test process died without its destructor (SIGKILL, a
// ctest timeout): the members died with it (PDEATHSIG), their data stays, and on /dev/shm each
// member's preallocated WAL holds about 120 MB of memory.
void remove_stale_dirs(const std::string& base) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(base, ec)) {
    if (entry.path().filename().string().rfind("volguard-etcd-", 0) != 0) continue;
    std::ifstream in(entry.path() / "owner.pid");
    pid_t owner = 0;
    if (!(in >> owner) || owner <= 0) continue;
    if (::kill(owner, 0) != 0 && errno == ESRCH) fs::remove_all(entry.path(), ec);
  }
}

std::string make_temp_dir() {
  // /dev/shm when there is one: etcd fsyncs its WAL on every write.
  std::string base = fs::is_directory("/dev/shm") && access("/dev/shm", W_OK) == 0
                         ? "/dev/shm"
                         : fs::temp_directory_path().string();
  remove_stale_dirs(base);
  std::string templ = base + "/volguard-etcd-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed in " + base);
  std::ofstream(templ + "/owner.pid") << getpid() << "\n";
  return templ;
}

// Free ports from the kernel: bind port 0, read it back. All sockets stay open until every port
// is picked, so that the ports differ.
std::vector<int> free_ports(int n) {
  std::vector<int> fds;
  std::vector<int> ports;
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("cannot find a free port");
    }
    fds.push_back(fd);
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) close(fd);
  return ports;
}

std::string url(int port) { return "http://127.0.0.1:" + std::to_string(port); }

std::atomic<int> g_cluster_counter{0};

}  // namespace

EtcdCluster::EtcdCluster(Options options) : options_(std::move(options)) {
  if (access(kEtcd, X_OK) != 0) throw std::runtime_error("etcd is not installed at /usr/bin/etcd");
  dir_ = make_temp_dir();
  token_ = "vgtest-" + std::to_string(getpid()) + "-" + std::to_string(g_cluster_counter++);
  members_.resize(options_.members);
  for (int i = 0; i < size(); ++i) {
    members_[i].name = "m" + std::to_string(i);
    members_[i].log_file = dir_ + "/m" + std::to_string(i) + ".log";
  }
  if (options_.tls) make_certificates();
  // A port taken between picking and binding makes a member exit: new ports, fresh data dirs.
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (try_start_all()) return;
    std::string logs_text = logs();
    for (int i = 0; i < size(); ++i) kill(i);
    if (attempt == 2) {
      fs::remove_all(dir_);
      throw std::runtime_error("the etcd cluster did not become healthy:\n" + logs_text);
    }
    for (auto& m : members_) fs::remove_all(m.data_dir);
  }
}

bool EtcdCluster::try_start_all() {
  pick_ports();
  for (int i = 0; i < size(); ++i) spawn(i);
  return wait_healthy(std::chrono::seconds(30));
}

EtcdCluster::~EtcdCluster() {
  for (int i = 0; i < size(); ++i) kill(i);
  if (std::getenv("VOLGUARD_KEEP_ETCD_DIR") == nullptr) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

void EtcdCluster::make_certificates() {
  std::string tls = dir_ + "/tls";
  fs::create_directories(tls);
  auto run = [](const std::string& cmd) {
    if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0) {
      throw std::runtime_error("failed: " + cmd);
    }
  };
  auto write = [](const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  };
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
  run("openssl req -x509" + ec + " -keyout " + tls + "/ca.key -out " + tls +
      "/ca.pem -days 2 -subj /CN=volguard-test-ca");
  write(tls + "/server.ext",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
  write(tls + "/client.ext", "extendedKeyUsage=clientAuth\n");
  for (const std::string name : {"server", "client"}) {
    run("openssl req" + ec + " -keyout " + tls + "/" + name + ".key -out " + tls + "/" + name +
        ".csr -subj /CN=" + name);
    run("openssl x509 -req -in " + tls + "/" + name + ".csr -CA " + tls + "/ca.pem -CAkey " + tls +
        "/ca.key -CAcreateserial -days 2 -out " + tls + "/" + name + ".pem -extfile " + tls + "/" +
        name + ".ext");
  }
}

void EtcdCluster::pick_ports() {
  auto ports = free_ports(3 * size());
  for (int i = 0; i < size(); ++i) {
    members_[i].client_port = ports[3 * i];
    members_[i].peer_port = ports[3 * i + 1];
    members_[i].tls_port = ports[3 * i + 2];
    members_[i].data_dir = dir_ + "/m" + std::to_string(i) + ".etcd";
  }
}

void EtcdCluster::spawn(int i) {
  Member& m = members_[i];
  if (m.pid > 0) return;
  std::string initial;
  for (const auto& o : members_) {
    initial += (initial.empty() ? "" : ",") + o.name + "=" + url(o.peer_port);
  }
  std::string client_urls = url(m.client_port);
  if (options_.tls) client_urls += ",https://127.0.0.1:" + std::to_string(m.tls_port);
  std::vector<std::string> args = {kEtcd,
                                   "--name",
                                   m.name,
                                   "--data-dir",
                                   m.data_dir,
                                   "--listen-client-urls",
                                   client_urls,
                                   "--advertise-client-urls",
                                   url(m.client_port),
                                   "--listen-peer-urls",
                                   url(m.peer_port),
                                   "--initial-advertise-peer-urls",
                                   url(m.peer_port),
                                   "--initial-cluster",
                                   initial,
                                   "--initial-cluster-state",
                                   "new",
                                   "--initial-cluster-token",
                                   token_,
                                   "--heartbeat-interval",
                                   "50",
                                   "--election-timeout",
                                   "500",
                                   "--logger",
                                   "zap",
                                   "--log-outputs",
                                   m.log_file};
  if (options_.tls) {
    for (const char* a : {"--cert-file", "/tls/server.pem", "--key-file", "/tls/server.key",
                          "--trusted-ca-file", "/tls/ca.pem"}) {
      args.push_back(a[0] == '/' ? dir_ + a : a);
    }
    args.push_back("--client-cert-auth");
  }
  for (const auto& a : options_.extra_args) args.push_back(a);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string err_file = m.log_file + ".stderr";
  pid_t parent = getpid();

  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // Async-signal-safe calls only (the test process has other threads).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    int null_fd = open("/dev/null", O_RDWR);
    int err_fd = open(err_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (null_fd >= 0) {
      dup2(null_fd, 0);
      dup2(null_fd, 1);
    }
    if (err_fd >= 0) dup2(err_fd, 2);
    execv(kEtcd, argv.data());
    _exit(127);
  }
  m.pid = pid;
}

void EtcdCluster::wait_gone(int i, std::chrono::milliseconds grace) {
  Member& m = members_[i];
  auto until = Clock::now() + grace;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(m.pid, &status, WNOHANG);
    if (r == m.pid || (r < 0 && errno == ECHILD)) break;
    if (Clock::now() >= until) {
      ::kill(m.pid, SIGKILL);
      waitpid(m.pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  m.pid = -1;
}

void EtcdCluster::kill(int i) {
  if (members_[i].pid <= 0) return;
  ::kill(members_[i].pid, SIGKILL);
  wait_gone(i, std::chrono::seconds(10));
}

void EtcdCluster::stop(int i) {
  if (members_[i].pid <= 0) return;
  ::kill(members_[i].pid, SIGTERM);
  wait_gone(i, std::chrono::seconds(10));
}

void EtcdCluster::start(int i) { spawn(i); }

std::vector<std::string> EtcdCluster::endpoints() const { return endpoints_from(0); }

std::string EtcdCluster::endpoint(int i) const {
  return "127.0.0.1:" + std::to_string(members_[i].client_port);
}

std::string EtcdCluster::tls_endpoint(int i) const {
  return "127.0.0.1:" + std::to_string(members_[i].tls_port);
}

std::vector<std::string> EtcdCluster::endpoints_from(int first) const {
  std::vector<std::string> out;
  for (int k = 0; k < size(); ++k) out.push_back(endpoint((first + k) % size()));
  return out;
}

bool EtcdCluster::wait_healthy(int i, std::chrono::milliseconds timeout) {
  auto until = Clock::now() + timeout;
  httplib::Client cli("127.0.0.1", members_[i].client_port);
  cli.set_connection_timeout(0, 200000);
  cli.set_read_timeout(1, 0);
  for (;;) {
    if (members_[i].pid <= 0) return false;
    int status = 0;
    if (waitpid(members_[i].pid, &status, WNOHANG) == members_[i].pid) {
      members_[i].pid = -1;  // it exited (e.g. its port was taken)
      return false;
    }
    if (auto res = cli.Get("/health"); res && res->status == 200) {
      auto j = nlohmann::json::parse(res->body, nullptr, false);
      if (j.is_object() && j.value("health", "") == "true") return true;
    }
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

bool EtcdCluster::wait_healthy(std::chrono::milliseconds timeout) {
  auto until = Clock::now() + timeout;
  for (int i = 0; i < size(); ++i) {
    if (!running(i)) continue;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    if (!wait_healthy(i, std::max(left, std::chrono::milliseconds(0)))) return false;
  }
  return true;
}

int EtcdCluster::leader(std::chrono::milliseconds timeout) {
  auto until = Clock::now() + timeout;
  for (;;) {
    for (int i = 0; i < size(); ++i) {
      if (!running(i)) continue;
      httplib::Client cli("127.0.0.1", members_[i].client_port);
      cli.set_connection_timeout(0, 200000);
      cli.set_read_timeout(1, 0);
      auto res = cli.Post("/v3/maintenance/status", "{}", "application/json");
      if (!res || res->status != 200) continue;
      auto j = nlohmann::json::parse(res->body, nullptr, false);
      if (!j.is_object() || !j.contains("header")) continue;
      // 64-bit numbers come as strings from the JSON gateway.
      std::string self = j["header"].value("member_id", "");
      std::string leader = j.value("leader", "");
      if (!self.empty() && self == leader) return i;
    }
    if (Clock::now() >= until) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::string EtcdCluster::post(const std::string& path, const std::string& json) const {
  for (int i = 0; i < size(); ++i) {
    if (!running(i)) continue;
    httplib::Client cli("127.0.0.1", members_[i].client_port);
    cli.set_connection_timeout(1, 0);
    cli.set_read_timeout(5, 0);
    auto res = cli.Post(path, json, "application/json");
    if (!res) continue;
    if (res->status != 200) {
      throw std::runtime_error("etcd " + path + " answered " + std::to_string(res->status) + ": " +
                               res->body);
    }
    return res->body;
  }
  throw std::runtime_error("no etcd member answered " + path);
}

std::string EtcdCluster::log_tail(int i, int lines) const {
  std::string out;
  for (const auto& file : {members_[i].log_file + ".stderr", members_[i].log_file}) {
    std::ifstream in(file);
    std::vector<std::string> all;
    for (std::string line; std::getline(in, line);) all.push_back(line);
    size_t from = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
    for (size_t k = from; k < all.size(); ++k) out += all[k] + "\n";
  }
  return out;
}

std::string EtcdCluster::logs() const {
  std::string out;
  for (int i = 0; i < size(); ++i) {
    out += "--- " + members_[i].name + " (" + endpoint(i) + ")\n" + log_tail(i);
  }
  return out;
}

}  // namespace volguard::testing
