// Integration: the REST transport against clients that misbehave — trickling bytes, holding
// connections, sending what is not a valid request — on the real server over loopback. Peers
// are told apart by source address: all of 127.0.0.0/8 is loopback on Linux.
#include <cstring>
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "support/test_server.h"

namespace volguard {
namespace {

using testing::TestServer;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// A TCP connection to 127.0.0.1:port from `source` (any 127.x.y.z); -1 on failure.
int connect_from(const std::string& source, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  inet_pton(AF_INET, source.c_str(), &local.sin_addr);
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &server.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void send_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// What came back on a raw connection.
struct Reply {
  bool closed = false;  // the server closed it
  std::string raw;
  int status = 0;
  std::string body;
};

// Reads until the server closes the connection or `within` passes.
Reply read_until_closed(int fd, std::chrono::milliseconds within) {
  Reply r;
  auto until = Clock::now() + within;
  char buf[4096];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      r.closed = true;
      break;
    }
    r.raw.append(buf, static_cast<size_t>(n));
  }
  if (r.raw.rfind("HTTP/1.1 ", 0) == 0 && r.raw.size() >= 12) r.status = std::stoi(r.raw.substr(9, 3));
  if (auto end = r.raw.find("\r\n\r\n"); end != std::string::npos) r.body = r.raw.substr(end + 4);
  return r;
}

// One request on a fresh connection from `source`; the reply up to the server's close.
Reply round_trip(int port, const std::string& request, const std::string& source = "127.0.0.1") {
  int fd = connect_from(source, port);
  EXPECT_GE(fd, 0);
  send_all(fd, request);
  Reply r = read_until_closed(fd, 5000ms);
  ::close(fd);
  return r;
}

// The refusal is `status` with the API's JSON error body {code, reason, message}.
void expect_json_error(int status, const std::string& body, int want_status,
                       const std::string& code, const std::string& reason) {
  EXPECT_EQ(status, want_status) << body;
  auto j = nlohmann::json::parse(body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << "not a JSON object: '" << body << "'";
  EXPECT_EQ(j.value("code", ""), code) << body;
  EXPECT_EQ(j.value("reason", ""), reason) << body;
  EXPECT_FALSE(j.value("message", "").empty()) << body;
}
void expect_json_error(const Reply& r, int want_status, const std::string& code,
                       const std::string& reason) {
  expect_json_error(r.status, r.body, want_status, code, reason);
}

// Slowloris: 14 connections from one peer trickle a request a byte every 100 ms — in the
// request line, in the headers, in the body — and one sends nothing. httplib alone served 8
// connections at a time with a per-recv timeout, so these held every worker forever. Now another
// peer's /healthz and API call are answered at once, each trickler gets a 408 JSON error and is
// closed by the 2 s deadline, and the silent one is closed without a word.
TEST(RestSlowlorisTest, TricklersAreCutAtTheDeadlineWhileOthersAreServed) {
  TestServer srv("", true, "  rest_read_timeout: 2s\n");
  const int port = srv.rest_port();
  std::vector<int> in_line, in_headers, in_body;
  for (int i = 0; i < 5; ++i) in_line.push_back(connect_from("127.0.0.2", port));
  for (int i = 0; i < 5; ++i) in_headers.push_back(connect_from("127.0.0.2", port));
  for (int i = 0; i < 4; ++i) in_body.push_back(connect_from("127.0.0.2", port));
  const int silent = connect_from("127.0.0.2", port);
  const auto opened = Clock::now();
  for (int fd : in_headers) send_all(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
  for (int fd : in_body) {
    send_all(fd, "POST /v1/identity/version HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: 4000\r\n\r\n");
  }
  std::atomic<bool> stop{false};
  std::thread trickler([&] {
    const std::string line = "GET /healthz?" + std::string(4000, 'a');
    const std::string header = "X-Slow: " + std::string(4000, 'b');
    const std::string body = std::string(4000, ' ');
    for (size_t i = 0; !stop && i < 4000; ++i) {
      for (int fd : in_line) (void)::send(fd, &line[i], 1, MSG_NOSIGNAL);
      for (int fd : in_headers) (void)::send(fd, &header[i], 1, MSG_NOSIGNAL);
      for (int fd : in_body) (void)::send(fd, &body[i], 1, MSG_NOSIGNAL);
      std::this_thread::sleep_for(100ms);
    }
  });
  std::this_thread::sleep_for(300ms);  // every trickler has its connection and is sending

  httplib::Client fresh("127.0.0.1", port);
  fresh.set_connection_timeout(2);
  fresh.set_read_timeout(2);
  auto asked = Clock::now();
  auto health = fresh.Get("/healthz");
  ASSERT_TRUE(health) << "healthz did not answer while tricklers hold connections";
  EXPECT_EQ(health->status, 200);
  auto version = fresh.Post("/v1/identity/version", "{}", "application/json");
  ASSERT_TRUE(version);
  EXPECT_EQ(version->status, 200) << version->body;
  EXPECT_LT(Clock::now() - asked, 2s);

  for (auto [name, group] : {std::pair{"request line", &in_line}, std::pair{"headers", &in_headers},
                             std::pair{"body", &in_body}}) {
    for (int fd : *group) {
      SCOPED_TRACE(std::string("trickling the ") + name);
      Reply r = read_until_closed(fd, 8000ms);
      SCOPED_TRACE("closed=" + std::to_string(r.closed) + " raw=" + r.raw + " errno=" + std::strerror(errno) +
                   " t=" + std::to_string((Clock::now() - opened) / 1ms));
      expect_json_error(r, 408, "DEADLINE_EXCEEDED", "request_timeout");
    }
  }
  Reply quiet = read_until_closed(silent, 8000ms);
  EXPECT_TRUE(quiet.closed);
  EXPECT_EQ(quiet.raw, "");
  // All by the 2 s deadline, give or take scheduling: never held for the trickle's 400 s.
  EXPECT_LT(Clock::now() - opened, 6s);
  stop = true;
  trickler.join();
  for (auto* group : {&in_line, &in_headers, &in_body}) {
    for (int fd : *group) ::close(fd);
  }
  ::close(silent);
}

// One address may hold rest_max_connections_per_peer connections: the next is refused at once
// with 429 and the JSON error, while another address is served; a closed connection frees its
// slot.
TEST(RestConnectionCapTest, PerPeerCapRefusesTheNextAndFreesOnClose) {
  TestServer srv("", true,
                 "  rest_read_timeout: 20s\n  rest_max_connections: 8\n"
                 "  rest_max_connections_per_peer: 3\n");
  const int port = srv.rest_port();
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) held.push_back(connect_from("127.0.0.2", port));
  std::this_thread::sleep_for(200ms);  // admitted before the next one (accepting is in order anyway)
  int over = connect_from("127.0.0.2", port);
  Reply refused = read_until_closed(over, 5000ms);
  EXPECT_TRUE(refused.closed);
  expect_json_error(refused, 429, "RESOURCE_EXHAUSTED", "too_many_connections");
  ::close(over);

  const std::string health = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  Reply other = round_trip(port, health, "127.0.0.3");
  EXPECT_EQ(other.status, 200) << other.raw;
  EXPECT_EQ(other.body, "ok\n");

  ::close(held.back());
  held.pop_back();
  Reply again;
  for (auto until = Clock::now() + 5s; Clock::now() < until; std::this_thread::sleep_for(50ms)) {
    again = round_trip(port, health, "127.0.0.2");
    if (again.status == 200) break;
  }
  EXPECT_EQ(again.status, 200) << "the closed connection's slot was not freed: " << again.raw;
  for (int fd : held) ::close(fd);
}

// rest_max_connections bounds the workers: with every one held, the next connection (from a
// peer under its own cap) is refused at once with 503 and the JSON error instead of queueing.
TEST(RestConnectionCapTest, TotalCapRefusesWith503) {
  TestServer srv("", true,
                 "  rest_read_timeout: 20s\n  rest_max_connections: 4\n"
                 "  rest_max_connections_per_peer: 2\n");
  const int port = srv.rest_port();
  std::vector<int> held;
  for (const char* peer : {"127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"}) {
    held.push_back(connect_from(peer, port));
  }
  std::this_thread::sleep_for(200ms);
  int over = connect_from("127.0.0.4", port);
  Reply refused = read_until_closed(over, 5000ms);
  EXPECT_TRUE(refused.closed);
  expect_json_error(refused, 503, "UNAVAILABLE", "server_busy");
  ::close(over);
  for (int fd : held) ::close(fd);
}

// Every refusal made by the HTTP layer, before the pipeline, is the API's JSON error body.
TEST(RestRefusalsTest, HttpLayerRefusalsAreJsonErrors) {
  TestServer srv("", true, "  rest_read_timeout: 2s\n");
  const int port = srv.rest_port();
  // No body at all (no Content-Length, as `curl -X POST` sends) is the empty request, answered
  // at once — httplib alone waited for the client to close, then said 400 with no body.
  auto asked = Clock::now();
  Reply r = round_trip(port, "POST /v1/identity/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_TRUE(nlohmann::json::parse(r.body, nullptr, false).contains("version")) << r.body;
  EXPECT_LT(Clock::now() - asked, 1500ms);
  // An empty body with a length, and no content type, is the empty request too.
  r = round_trip(port, "POST /v1/identity/version HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n");
  EXPECT_EQ(r.status, 200) << r.raw;

  httplib::Client rest("127.0.0.1", port);
  rest.set_read_timeout(5);
  // 400: a body that is not the request message (the pipeline's refusal, unchanged).
  auto res = rest.Post("/v1/volume/create", "{not json", "application/json");
  ASSERT_TRUE(res);
  expect_json_error(res->status, res->body, 400, "INVALID_ARGUMENT", "bad_request");
  // 413: over 1 MiB, refused from the header before the body is read.
  res = rest.Post("/v1/volume/create", std::string((1 << 20) + 1, ' '), "application/json");
  ASSERT_TRUE(res) << "the client must still read the 413: " << res.error();
  expect_json_error(res->status, res->body, 413, "RESOURCE_EXHAUSTED", "body_too_large");
  r = round_trip(port, "POST /v1/volume/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 9999999999\r\n\r\n");
  expect_json_error(r, 413, "RESOURCE_EXHAUSTED", "body_too_large");
  EXPECT_TRUE(r.closed);
  // 413: a chunked body is cut at 1 MiB as it arrives.
  {
    int fd = connect_from("127.0.0.1", port);
    send_all(fd, "POST /v1/volume/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n");
    const std::string chunk = "10000\r\n" + std::string(0x10000, ' ') + "\r\n";
    for (int i = 0; i < 17; ++i) send_all(fd, chunk);
    send_all(fd, "0\r\n\r\n");
    r = read_until_closed(fd, 5000ms);
    ::close(fd);
    expect_json_error(r, 413, "RESOURCE_EXHAUSTED", "body_too_large");
  }
  // 415: a body that is not declared JSON (curl -d sends a form type).
  res = rest.Post("/v1/volume/create", "name=x", "application/x-www-form-urlencoded");
  ASSERT_TRUE(res);
  expect_json_error(res->status, res->body, 415, "INVALID_ARGUMENT", "unsupported_media_type");
  res = rest.Post("/v1/volume/enumerate", "{}", "application/json; charset=utf-8");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << "a JSON type with parameters is JSON: " << res->body;
  // 405: the API takes POST; /healthz takes GET. Allow says what the route takes.
  res = rest.Get("/v1/volume/create");
  ASSERT_TRUE(res);
  expect_json_error(res->status, res->body, 405, "UNIMPLEMENTED", "method_not_allowed");
  EXPECT_EQ(res->get_header_value("Allow"), "POST");
  res = rest.Delete("/v1/volume/delete");
  ASSERT_TRUE(res);
  expect_json_error(res->status, res->body, 405, "UNIMPLEMENTED", "method_not_allowed");
  res = rest.Post("/healthz", "{}", "application/json");
  ASSERT_TRUE(res);
  expect_json_error(res->status, res->body, 405, "UNIMPLEMENTED", "method_not_allowed");
  EXPECT_EQ(res->get_header_value("Allow"), "GET, HEAD");
  // 404: no such route, and no such method under a route.
  res = rest.Get("/nope");
  ASSERT_TRUE(res);
  expect_json_error(res->status, res->body, 404, "NOT_FOUND", "route_unknown");
  res = rest.Post("/v1/volume/create/extra", "{}", "application/json");
  ASSERT_TRUE(res);
  expect_json_error(res->status, res->body, 404, "NOT_FOUND", "route_unknown");
  res = rest.Post("/v1/volume/format", "{}", "application/json");
  ASSERT_TRUE(res);
  expect_json_error(res->status, res->body, 404, "NOT_FOUND", "method_unknown");
  // 400: not HTTP, a bad length, ambiguous lengths (request smuggling), a GET with a body.
  expect_json_error(round_trip(port, "HELLO\r\n\r\n"), 400, "INVALID_ARGUMENT", "bad_http_request");
  expect_json_error(round_trip(port, "POST /v1/identity/version HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"),
                    400, "INVALID_ARGUMENT", "bad_http_request");
  expect_json_error(round_trip(port, "POST /v1/identity/version HTTP/1.1\r\nContent-Length: 2\r\n"
                                   "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n{}"),
                    400, "INVALID_ARGUMENT", "bad_http_request");
  expect_json_error(round_trip(port, "GET /healthz HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"), 400,
                    "INVALID_ARGUMENT", "bad_http_request");
  // 414: a request URI over 8 KiB.
  expect_json_error(round_trip(port, "GET /healthz?" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n"),
                    414, "INVALID_ARGUMENT", "uri_too_long");
  // A pipeline refusal keeps the connection; the next request on it is served.
  {
    int fd = connect_from("127.0.0.1", port);
    send_all(fd, "POST /v1/volume/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: 9\r\n\r\n{not json"
                 "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    r = read_until_closed(fd, 5000ms);
    ::close(fd);
    EXPECT_EQ(r.raw.rfind("HTTP/1.1 400", 0), 0u) << r.raw;
    EXPECT_NE(r.raw.find("HTTP/1.1 200"), std::string::npos) << r.raw;
  }
}

// Over TLS the deadline covers the handshake: a client that connects and says nothing, or
// trickles its ClientHello, is closed by the deadline, and HTTPS is served meanwhile.
TEST(RestTlsDeadlineTest, StalledHandshakesAreClosed) {
  char tmpl[] = "/tmp/volguard-tls-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + dir + "/key.pem -out " +
                    dir + "/cert.pem -days 1 -subj /CN=localhost -addext "
                    "subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  {
    TestServer srv("", true,
                   "  rest_read_timeout: 1s\n  tls:\n    cert_file: " + dir +
                       "/cert.pem\n    key_file: " + dir + "/key.pem\n");
    const int port = srv.rest_port();
    int silent = connect_from("127.0.0.2", port);
    int trickle = connect_from("127.0.0.2", port);
    const auto opened = Clock::now();
    std::atomic<bool> stop{false};
    std::thread trickler([&] {
      const char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, static_cast<char>(0xfc)};
      for (size_t i = 0; !stop && i < sizeof hello; ++i) {
        (void)::send(trickle, &hello[i], 1, MSG_NOSIGNAL);
        std::this_thread::sleep_for(200ms);
      }
    });
    httplib::SSLClient rest("127.0.0.1", port);
    rest.set_ca_cert_path((dir + "/cert.pem").c_str());
    rest.enable_server_certificate_verification(true);
    auto r = rest.Get("/healthz");
    ASSERT_TRUE(r) << "TLS REST failed";
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(read_until_closed(silent, 6000ms).closed);
    EXPECT_TRUE(read_until_closed(trickle, 6000ms).closed);
    EXPECT_LT(Clock::now() - opened, 5s);
    stop = true;
    trickler.join();
    ::close(silent);
    ::close(trickle);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace volguard
