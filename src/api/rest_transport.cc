#include "api/rest_transport.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <optional>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include "common/fd.h"

namespace volguard::api {

namespace {

using Clock = std::chrono::steady_clock;

// Requests served on one connection before it is closed (the last response says so).
constexpr int kMaxRequestsPerConnection = 100;
// How long a closing connection keeps reading (and discarding) what the client still sends, so
// that closing does not reset the connection before the client has read our last response.
constexpr auto kLinger = std::chrono::seconds(1);

enum class Wait { kReady, kTimeout, kStopped, kError };

// Waits until fd has `events` or `deadline` passes. With `stopping`, also gives up (within
// 100 ms) once the server stops.
Wait wait_for(int fd, short events, Clock::time_point deadline,
              const std::atomic<bool>* stopping) {
  while (true) {
    if (stopping != nullptr && stopping->load()) return Wait::kStopped;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Wait::kTimeout;
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 100)));
    if (n > 0) return Wait::kReady;  // POLLHUP/POLLERR too: the next recv/send tells which
    if (n < 0 && errno != EINTR) return Wait::kError;
  }
}

// The numeric address and port of a socket's peer (or of its own end).
std::pair<std::string, int> address_of(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  auto* sa = reinterpret_cast<sockaddr*>(&ss);
  if ((peer ? ::getpeername(fd, sa, &len) : ::getsockname(fd, sa, &len)) != 0) return {"", 0};
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
  if (::getnameinfo(sa, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return {"", 0};
  }
  return {host, std::atoi(serv)};
}

const char* reason_phrase(int http) {
  switch (http) {
    case 408: return "Request Timeout";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

// A complete error response for the paths that answer without httplib (before a request was
// parsed, or when its request line never arrived whole).
std::string raw_response(int http, const Status& s) {
  std::string body = error_json(s);
  return "HTTP/1.1 " + std::to_string(http) + " " + reason_phrase(http) +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

short want_of(int ssl_error) {
  if (ssl_error == SSL_ERROR_WANT_READ) return POLLIN;
  if (ssl_error == SSL_ERROR_WANT_WRITE) return POLLOUT;
  return 0;
}

// One accepted connection as httplib's Stream: plain TCP or TLS over a non-blocking socket. Every
// read waits at most until the current request's deadline (and not past a stop); every write
// waits at most write_timeout for the peer to take bytes. Owns the socket (and the SSL).
class Connection final : public httplib::Stream {
 public:
  Connection(int fd, SSL* ssl, const RestLimits& limits, const std::atomic<bool>& stopping)
      : fd_(fd), ssl_(ssl), limits_(limits), stopping_(stopping) {}
  ~Connection() override {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      (void)SSL_shutdown(ssl_);  // close_notify, best effort: the socket never blocks
      SSL_free(ssl_);
    }
    linger();  // then fd_ closes the socket
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Arms the deadline for the next request: it must arrive whole within read_timeout.
  void begin_request() {
    deadline_ = Clock::now() + limits_.read_timeout;
    expired_ = false;
    responded_ = false;
    got_bytes_ = buf_pos_ < buf_len_;  // a pipelined request already began
  }
  // The peer's certificate as the handshake verified it (PEM), "" without one. Rendered once
  // per connection: it cannot change after the handshake (SSL_OP_NO_RENEGOTIATION below).
  const std::string& peer_certificate_pem() {
    if (!peer_pem_) peer_pem_ = render_peer_certificate();
    return *peer_pem_;
  }
  std::string render_peer_certificate() const {
    if (ssl_ == nullptr) return "";
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (cert == nullptr) return "";
    std::string pem;
    if (BIO* bio = BIO_new(BIO_s_mem())) {
      if (PEM_write_bio_X509(bio, cert) == 1) {
        char* data = nullptr;
        const long n = BIO_get_mem_data(bio, &data);
        if (n > 0) pem.assign(data, static_cast<size_t>(n));
      }
      BIO_free(bio);
    }
    X509_free(cert);
    return pem;
  }
  // The TLS handshake, within the first request's deadline.
  bool handshake() {
    while (true) {
      ERR_clear_error();
      int r = SSL_accept(ssl_);
      if (r == 1) return true;
      short want = want_of(SSL_get_error(ssl_, r));
      if (want == 0) return false;
      Wait w = wait_for(fd_.get(), want, deadline_, &stopping_);
      if (w == Wait::kTimeout) expired_ = true;
      if (w != Wait::kReady) return false;
    }
  }
  bool expired() const { return expired_; }
  bool got_bytes() const { return got_bytes_; }
  bool responded() const { return responded_; }
  bool closing() const { return closing_; }
  void close_after_response() { closing_ = true; }

  // The 408 for a request whose request line never arrived whole (httplib answers nothing then).
  void write_timeout_response() {
    std::string out = raw_response(408, request_timeout(limits_.read_timeout));
    (void)write(out.data(), out.size());
  }

  bool is_readable() const override {
    if (buf_pos_ < buf_len_ || (ssl_ != nullptr && SSL_pending(ssl_) > 0)) return true;
    pollfd p{fd_.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }
  bool is_writable() const override {
    return wait_for(fd_.get(), POLLOUT, Clock::now() + limits_.write_timeout, nullptr) == Wait::kReady;
  }

  ssize_t read(char* ptr, size_t size) override {
    if (buf_pos_ == buf_len_) {
      ssize_t n = read_some(buf_, sizeof buf_);
      if (n <= 0) return n;
      buf_pos_ = 0;
      buf_len_ = static_cast<size_t>(n);
      got_bytes_ = true;
    }
    size_t n = std::min(size, buf_len_ - buf_pos_);
    std::memcpy(ptr, buf_ + buf_pos_, n);
    buf_pos_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    responded_ = true;
    size_t done = 0;
    while (done < size) {
      short want = 0;
      ssize_t n = send_once(ptr + done, size - done, &want);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (want == 0 ||
          wait_for(fd_.get(), want, Clock::now() + limits_.write_timeout, nullptr) != Wait::kReady) {
        closing_ = true;
        return -1;
      }
    }
    return static_cast<ssize_t>(size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    std::tie(ip, port) = address_of(fd_.get(), /*peer=*/true);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    std::tie(ip, port) = address_of(fd_.get(), /*peer=*/false);
  }
  socket_t socket() const override { return fd_.get(); }

 private:
  // Bytes read (0 at the end of the stream), or -1: an error, a stop, or the deadline.
  ssize_t read_some(char* ptr, size_t size) {
    while (true) {
      short want = 0;
      ssize_t n = recv_once(ptr, size, &want);
      if (n >= 0) return n;
      if (want == 0) return -1;
      Wait w = wait_for(fd_.get(), want, deadline_, &stopping_);
      if (w == Wait::kTimeout) expired_ = true;
      if (w != Wait::kReady) return -1;
    }
  }

  // One attempt: bytes moved, 0 at the end of the stream, or -1 with `want` the poll event to
  // wait for before trying again (0: give up).
  ssize_t recv_once(char* ptr, size_t size, short* want) {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      size_t got = 0;
      if (SSL_read_ex(ssl_, ptr, size, &got) == 1) return static_cast<ssize_t>(got);
      int e = SSL_get_error(ssl_, 0);
      if (e == SSL_ERROR_ZERO_RETURN) return 0;
      *want = want_of(e);
      return -1;
    }
    ssize_t n = ::recv(fd_.get(), ptr, size, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) *want = POLLIN;
    return n;
  }
  ssize_t send_once(const char* ptr, size_t size, short* want) {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      size_t put = 0;
      if (SSL_write_ex(ssl_, ptr, size, &put) == 1) return static_cast<ssize_t>(put);
      *want = want_of(SSL_get_error(ssl_, 0));
      return -1;
    }
    ssize_t n = ::send(fd_.get(), ptr, size, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) *want = POLLOUT;
    return n;
  }

  // Sends our FIN, then reads and discards until the client closes or kLinger passes: closing a
  // socket with unread input resets the connection, and a reset can destroy the response the
  // client has not read yet (a refused request's body may still be arriving).
  void linger() {
    ::shutdown(fd_.get(), SHUT_WR);
    auto until = Clock::now() + kLinger;
    char sink[4096];
    while (wait_for(fd_.get(), POLLIN, until, &stopping_) == Wait::kReady) {
      ssize_t n = ::recv(fd_.get(), sink, sizeof sink, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return;
    }
  }

  UniqueFd fd_;
  SSL* ssl_;
  std::optional<std::string> peer_pem_;
  const RestLimits& limits_;
  const std::atomic<bool>& stopping_;
  Clock::time_point deadline_{};
  bool expired_ = false;    // a read gave up at the deadline
  bool got_bytes_ = false;  // some of the current request arrived
  bool responded_ = false;  // some of a response to it was written
  bool closing_ = false;    // close once the current response is written
  char buf_[4096];
  size_t buf_pos_ = 0;
  size_t buf_len_ = 0;
};

// The connection the calling thread serves (httplib runs a request's handlers on it).
thread_local Connection* t_connection = nullptr;

// One thread per open connection, made on demand and kept for the next one. Admission already
// bounds open connections, so with threads capped at the same bound a job never waits behind
// another connection.
class Workers {
 public:
  explicit Workers(size_t max_threads) : max_threads_(max_threads) {}
  void run(std::function<void()> job) {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
    if (idle_ < jobs_.size() && threads_.size() < max_threads_) {
      threads_.emplace_back([this] { loop(); });
    } else {
      cv_.notify_one();
    }
  }
  // Runs what is queued, then joins. Callers stop submitting first.
  void join() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void loop() {
    // A peer that closes early must cost an EPIPE, not the process (OpenSSL writes with write(2)).
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    std::unique_lock lock(mu_);
    while (true) {
      ++idle_;
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      --idle_;
      if (jobs_.empty()) return;
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }

  const size_t max_threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stopping_ = false;
};

// httplib hands each accepted socket to its task queue. Ours admits it right there on the accept
// thread (a few syscalls, never a read or a wait), so a refusal costs no worker and nothing waits
// in an unbounded queue.
class AdmitOnAcceptThread final : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

}  // namespace

struct RestServer::Impl {
  explicit Impl(const RestLimits& l) : limits(l), workers(l.max_connections) {}

  void admit(int fd);
  void serve(int fd);
  void release(const std::string& peer);

  const RestLimits limits;
  std::unique_ptr<httplib::Server> http;
  SSL_CTX* tls = nullptr;
  // httplib's parser and router for one request (process_request is protected: reached through
  // the GuardedServer below).
  std::function<bool(httplib::Stream&, bool last, bool& closed)> serve_request;
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::map<std::string, size_t> per_peer;  // open connections by peer address
  size_t open = 0;
  Workers workers;
  std::thread listener;
  std::atomic<bool> listener_done{false};
  std::mutex stop_mu;
  bool stopped = false;
};

namespace {

// httplib's server (plain or TLS) with its per-socket processing replaced by ours: httplib calls
// process_and_close_socket for every accepted socket; we admit it, and serve it on our worker.
template <class Base>
class GuardedServer final : public Base {
 public:
  template <class... Args>
  explicit GuardedServer(RestServer::Impl* owner, Args&&... args)
      : Base(std::forward<Args>(args)...), owner_(owner) {}
  bool serve_request(httplib::Stream& strm, bool last, bool& closed) {
    return this->process_request(strm, last, closed, nullptr);
  }

 private:
  bool process_and_close_socket(socket_t sock) override {
    owner_->admit(sock);
    return true;
  }
  RestServer::Impl* owner_;
};

// Refuses on the accept thread without waiting: the response fits the socket buffer, and what
// the client already sent is drained so that closing does not reset the connection first. Over
// TLS an answer needs a handshake, which could wait: the connection is just closed.
void refuse_now(int fd, bool tls, int http, const Status& s) {
  if (!tls) {
    std::string out = raw_response(http, s);
    (void)::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(fd, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < 16 && ::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
    }
  }
  ::close(fd);
}

}  // namespace

void RestServer::Impl::admit(int fd) {
  std::string peer = address_of(fd, /*peer=*/true).first;
  int http = 0;
  Status refusal;
  {
    std::lock_guard lock(mu);
    if (stopping.load()) {
      ::close(fd);
      return;
    }
    size_t& mine = per_peer[peer];
    if (mine >= limits.max_connections_per_peer) {
      http = 429;
      refusal = Status(Code::kResourceExhausted, "too_many_connections",
                       peer + " already has " + std::to_string(mine) +
                           " open connections (api.rest_max_connections_per_peer)");
    } else if (open >= limits.max_connections) {
      http = 503;
      refusal = Status(Code::kUnavailable, "server_busy",
                       std::to_string(open) + " connections are open (api.rest_max_connections)");
      if (mine == 0) per_peer.erase(peer);
    } else {
      ++mine;
      ++open;
      workers.run([this, fd, peer] {
        serve(fd);
        release(peer);
      });
      return;
    }
  }
  spdlog::debug("rest: refused a connection from {}: {}", peer, refusal.to_string());
  refuse_now(fd, tls != nullptr, http, refusal);
}

void RestServer::Impl::release(const std::string& peer) {
  std::lock_guard lock(mu);
  --open;
  if (auto it = per_peer.find(peer); it != per_peer.end() && --it->second == 0) per_peer.erase(it);
}

void RestServer::Impl::serve(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  // A response goes out as headers then body: with Nagle's algorithm the body waits for the
  // client's delayed ACK of the headers (~40 ms per request on Linux). Requests and answers are
  // small and whole, so send at once.
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  SSL* ssl = nullptr;
  if (tls != nullptr && ((ssl = SSL_new(tls)) == nullptr || SSL_set_fd(ssl, fd) != 1)) {
    if (ssl != nullptr) SSL_free(ssl);
    ::close(fd);
    return;
  }
  Connection conn(fd, ssl, limits, stopping);
  conn.begin_request();
  if (ssl != nullptr && !conn.handshake()) return;
  t_connection = &conn;
  for (int left = kMaxRequestsPerConnection; left > 0; --left) {
    bool closed = false;
    bool ok = serve_request(conn, left == 1, closed);
    if (conn.expired() && conn.got_bytes() && !conn.responded()) conn.write_timeout_response();
    if (!ok || closed || conn.closing() || conn.expired()) break;
    conn.begin_request();
  }
  t_connection = nullptr;
}

RestServer::RestServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RestServer::~RestServer() { stop(); }

Result<std::unique_ptr<RestServer>> RestServer::create(const RestLimits& limits,
                                                       const std::string& cert_file,
                                                       const std::string& key_file,
                                                       const std::string& client_ca) {
  auto impl = std::make_unique<Impl>(limits);
  if (!cert_file.empty()) {
    // With a client CA httplib makes OpenSSL require and verify a peer certificate
    // (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT): no certificate, no request.
    auto server = std::make_unique<GuardedServer<httplib::SSLServer>>(
        impl.get(), cert_file.c_str(), key_file.c_str(), client_ca.empty() ? nullptr : client_ca.c_str());
    if (!server->is_valid()) {
      return Status(Code::kInvalidArgument, "bad_config",
                    "api.tls: cannot load the certificate " + cert_file + " and key " + key_file +
                        (client_ca.empty() ? "" : " or the client CA " + client_ca));
    }
    impl->tls = server->ssl_context();
    // The client certificate is read once per connection: it must not change under it.
    SSL_CTX_set_options(impl->tls, SSL_OP_NO_RENEGOTIATION);
    impl->serve_request = [s = server.get()](httplib::Stream& strm, bool last, bool& closed) {
      return s->serve_request(strm, last, closed);
    };
    impl->http = std::move(server);
  } else {
    auto server = std::make_unique<GuardedServer<httplib::Server>>(impl.get());
    impl->serve_request = [s = server.get()](httplib::Stream& strm, bool last, bool& closed) {
      return s->serve_request(strm, last, closed);
    };
    impl->http = std::move(server);
  }
  impl->http->new_task_queue = [] { return new AdmitOnAcceptThread; };
  // Only for the Keep-Alive header httplib writes: what serve() enforces, told to the client.
  impl->http->set_keep_alive_max_count(kMaxRequestsPerConnection);
  impl->http->set_keep_alive_timeout(limits.read_timeout.count());
  return std::unique_ptr<RestServer>(new RestServer(std::move(impl)));
}

httplib::Server& RestServer::http() { return *impl_->http; }

Result<int> RestServer::start(const std::string& host, int port) {
  auto* http = impl_->http.get();
  // httplib (the compiled library) listens with a backlog of 5, so a burst of connections has
  // SYNs dropped and connects stalled for a second: we learn the socket here and listen again
  // with a real backlog. SO_REUSEADDR only: httplib's default SO_REUSEPORT would let a second
  // process bind the same port and take half of our connections.
  int listening = -1;
  http->set_socket_options([&listening](socket_t sock) {
    int one = 1;
    (void)::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    listening = sock;
  });
  int bound = port == 0 ? http->bind_to_any_port(host) : (http->bind_to_port(host, port) ? port : -1);
  if (bound <= 0 || listening < 0 || ::listen(listening, SOMAXCONN) != 0) {
    return Status(Code::kUnavailable, "listen_failed",
                  "cannot listen on " + host + ":" + std::to_string(port));
  }
  auto* impl = impl_.get();
  impl->listener = std::thread([impl] {
    impl->http->listen_after_bind();
    impl->listener_done = true;
  });
  // httplib's stop() does nothing until its accept loop runs: wait for it, so that a stop right
  // after start cannot leave the listener running forever.
  while (!http->is_running() && !impl->listener_done.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return bound;
}

void RestServer::stop() {
  if (!impl_) return;
  std::lock_guard lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->stopping = true;
  impl_->http->stop();
  if (impl_->listener.joinable()) impl_->listener.join();
  impl_->workers.join();
}

std::string error_json(const Status& s) {
  nlohmann::json j = {{"code", code_name(s.code())}, {"reason", s.reason()}, {"message", s.message()}};
  return j.dump();
}

Status request_timeout(std::chrono::seconds read_timeout) {
  return Status(Code::kDeadlineExceeded, "request_timeout",
                "the request was not received whole within " +
                    std::to_string(read_timeout.count()) + "s (api.rest_read_timeout)");
}

bool request_deadline_passed() { return t_connection != nullptr && t_connection->expired(); }

std::string peer_certificate_pem() {
  if (t_connection == nullptr) return "";
  return t_connection->peer_certificate_pem();
}

void close_after_response() {
  if (t_connection != nullptr) t_connection->close_after_response();
}

}  // namespace volguard::api
