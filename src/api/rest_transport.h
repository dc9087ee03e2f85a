// The REST transport under cpp-httplib: which connections are served, by which worker, and how
// long a request may take to arrive. httplib parses HTTP and routes, but it cannot bound a
// request's total arrival time (its read timeout restarts at every recv, so a client sending a
// byte a second holds a worker forever), it queues accepted sockets without limit behind a fixed
// pool of 8 threads, and it cannot cap connections per client: 8 connections trickling headers
// stalled every other caller, /healthz included. So accepting is triaged here, each admitted
// connection gets its own worker, and every read (TLS handshake included) is ours.
#pragma once

#include <httplib.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"

namespace volguard::api {

struct RestLimits {
  // From accepting a connection (or writing the previous response on it) to having read a whole
  // request, headers and body. Past it: 408 when part of a request came, a silent close when none.
  std::chrono::seconds read_timeout{10};
  // Each wait for the peer to take response bytes.
  std::chrono::seconds write_timeout{5};
  // Open connections, each holding one worker thread (threads are made on demand, never more).
  size_t max_connections = 64;
  // Open connections per peer address; below max_connections so one address cannot hold them all.
  size_t max_connections_per_peer = 16;
};

class RestServer {
 public:
  // An HTTP server (HTTPS when cert_file is set) serving under `limits`. Add routes on http().
  // With client_ca, every connection must present a certificate that chains to it (mTLS).
  static Result<std::unique_ptr<RestServer>> create(const RestLimits& limits,
                                                    const std::string& cert_file,
                                                    const std::string& key_file,
                                                    const std::string& client_ca = "");
  ~RestServer();

  httplib::Server& http();
  // Binds host:port (port 0: any free port) and starts accepting; returns the port.
  Result<int> start(const std::string& host, int port);
  // Stops accepting and reading: idle connections and requests still arriving are closed; a
  // handler already running finishes and its response is written. Waits for every worker.
  // Idempotent.
  void stop();

  struct Impl;

 private:
  explicit RestServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The JSON body of every REST error: {"code","reason","message"}.
std::string error_json(const Status& s);
// The refusal of a request that did not arrive whole within read_timeout (HTTP 408).
Status request_timeout(std::chrono::seconds read_timeout);

// What a handler may ask of the connection serving its request. httplib runs a request's
// handlers on the thread that reads it, so these act on the calling thread's connection (and do
// nothing outside one).
//
// True when the request's read deadline passed before it was read whole.
bool request_deadline_passed();
// The client certificate the connection's TLS handshake verified (PEM), or "" (no mTLS).
std::string peer_certificate_pem();
// Closes the connection once the current response is written: the rest of a refused request may
// still be on the wire and must not be parsed as the next request.
void close_after_response();

}  // namespace volguard::api
