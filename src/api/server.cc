#include <absl/synchronization/mutex.h>

#include "api/server.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <optional>
#include <thread>

#include "api/rest_transport.h"
#include "common/dir_lock.h"
#include "common/text.h"
#include "driver/driver.h"
#include "identity/verifier.h"
#include "service/audit_recorder.h"
#include "service/metrics.h"
#include "volguard.pb.h"
#include "service/core.h"
#include "store/store.h"

namespace volguard::api {

namespace {

using google::protobuf::Message;

// Runs slow (driver) calls off gRPC's event threads.
class WorkerPool {
 public:
  explicit WorkerPool(size_t n) {
    for (size_t i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~WorkerPool() { stop(); }
  void submit(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }
  // Finishes queued jobs, then joins.
  void stop() {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void loop() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

grpc::Status to_grpc(const Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), s.message());
}

// One unary call of any method in the table. A path not in the table is UNIMPLEMENTED:
// there is no other way in.
class UnaryReactor : public grpc::ServerGenericBidiReactor {
 public:
  UnaryReactor(grpc::GenericCallbackServerContext* ctx, const service::Pipeline* pipeline,
               const service::MethodTable* table, WorkerPool* pool, bool cluster)
      : ctx_(ctx), pipeline_(pipeline), pool_(pool), cluster_(cluster) {
    spec_ = table->find_grpc(ctx->method());
    if (spec_ == nullptr) {
      Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no method " + ctx->method()));
      return;
    }
    StartRead(&request_buf_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request message"));
      return;
    }
    // In a cluster a call may block: forwarded to its volume's home node (a blocking gRPC call),
    // or waiting for the catalog to reach the caller's revision (read-your-writes, up to 2 s).
    // gRPC's callback threads are few (2 on a 2-core machine) and shared by every server in the
    // process: blocking them stalls this node's other calls and, with the home node in the same
    // process (bench/cluster_bench.cc), deadlocks until the forward's deadline. So every call of
    // a cluster node runs on the pool (shared with driver calls: WorkerPool(8) below).
    if (spec_->driver_io() || cluster_) {
      pool_->submit([this] { process(); });
    } else {
      process();
    }
  }

  void OnDone() override { delete this; }

 private:
  void process() {
    std::unique_ptr<Message> request(spec_->request_prototype->New());
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (request_buf_.Dump(&slices).ok()) {
      for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    if (!request->ParseFromString(bytes)) {
      finish_error(Status(Code::kInvalidArgument, "bad_request",
                          "request is not a valid " + request->GetTypeName()));
      return;
    }
    service::RequestMeta meta;
    const auto& md = ctx_->client_metadata();
    if (auto it = md.find("authorization"); it != md.end()) {
      meta.authorization.assign(it->second.data(), it->second.size());
    }
    meta.remote = ctx_->peer();
    if (const auto auth = ctx_->auth_context()) {
      const auto pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
      if (!pems.empty()) meta.client_certificate.assign(pems.front().data(), pems.front().size());
    }
    if (auto it = md.find("volguard-min-revision"); it != md.end()) {
      auto rev = parse_count(std::string_view(it->second.data(), it->second.size()));
      if (!rev || *rev > static_cast<uint64_t>(INT64_MAX)) {
        finish_error(Status(Code::kInvalidArgument, "bad_request",
                            "metadata volguard-min-revision must be a revision number"));
        return;
      }
      meta.min_revision = static_cast<int64_t>(*rev);
    }
    if (auto it = md.find("volguard-forwarded-by"); it != md.end()) {
      meta.forwarded_by.assign(it->second.data(), it->second.size());
      if (!is_valid_name(meta.forwarded_by)) {
        finish_error(Status(Code::kInvalidArgument, "bad_request",
                            "metadata volguard-forwarded-by must be a node name"));
        return;
      }
    }
    std::unique_ptr<Message> response(spec_->response_prototype->New());
    Status s = pipeline_->invoke(*spec_, meta, *request, response.get());
    ctx_->AddTrailingMetadata("volguard-revision", std::to_string(pipeline_->seen_revision()));
    if (!s.is_ok()) {
      finish_error(s);
      return;
    }
    std::string out;
    response->SerializeToString(&out);
    grpc::Slice slice(out);
    response_buf_ = grpc::ByteBuffer(&slice, 1);
    StartWriteAndFinish(&response_buf_, grpc::WriteOptions(), grpc::Status::OK);
  }

  void finish_error(const Status& s) {
    ctx_->AddTrailingMetadata("volguard-reason", s.reason());
    Finish(to_grpc(s));
  }

  grpc::GenericCallbackServerContext* ctx_;
  const service::Pipeline* pipeline_;
  WorkerPool* pool_;
  bool cluster_;
  const service::MethodSpec* spec_ = nullptr;
  grpc::ByteBuffer request_buf_;
  grpc::ByteBuffer response_buf_;
};

class GenericService : public grpc::CallbackGenericService {
 public:
  GenericService(const service::Pipeline* pipeline, const service::MethodTable* table,
                 WorkerPool* pool, bool cluster)
      : pipeline_(pipeline), table_(table), pool_(pool), cluster_(cluster) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new UnaryReactor(ctx, pipeline_, table_, pool_, cluster_);
  }

 private:
  const service::Pipeline* pipeline_;
  const service::MethodTable* table_;
  WorkerPool* pool_;
  bool cluster_;
};

Result<std::pair<std::string, int>> split_address(const std::string& addr, const std::string& key) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos) {
    return Status(Code::kInvalidArgument, "bad_config", key + ": '" + addr + "' must be HOST:PORT");
  }
  const auto parsed = parse_count(std::string_view(addr).substr(colon + 1));
  const int port = parsed && *parsed <= 65535 ? static_cast<int>(*parsed) : -1;
  if (port < 0) {
    return Status(Code::kInvalidArgument, "bad_config", key + ": '" + addr + "' has a bad port");
  }
  return std::make_pair(addr.substr(0, colon), port);
}

// REST routes: GET/HEAD /healthz and /metrics, POST /v1/<service>/<api> with no body or a JSON
// body of at most kMaxRestBody bytes. Nothing else is served.
constexpr const char* kApiRoute = R"(/v1/([a-z]+)/([a-z]+))";
constexpr size_t kMaxRestBody = 1 << 20;

// A refusal made by the HTTP layer itself, before or instead of the pipeline.
struct HttpRefusal {
  int http;
  Status status;
  std::string allow = {};  // the methods the route takes (405)
};

// Answers a refusal with the same JSON body as a pipeline error, then closes the connection: the
// rest of a refused request may still be on the wire and must not be read as the next request.
void write_refusal(httplib::Response& res, const HttpRefusal& r) {
  res.status = r.http;
  res.set_content(error_json(r.status), "application/json");
  if (!r.allow.empty()) res.set_header("Allow", r.allow);
  if (!res.has_header("Connection")) res.set_header("Connection", "close");
  close_after_response();
}

HttpRefusal bad_http(const std::string& message) {
  return {400, Status(Code::kInvalidArgument, "bad_http_request", message)};
}

HttpRefusal too_large(const std::string& what) {
  return {413, Status(Code::kResourceExhausted, "body_too_large",
                      what + "; at most " + std::to_string(kMaxRestBody) + " bytes are accepted")};
}

// The refusals httplib makes on its own, which come without a body.
HttpRefusal httplib_refusal(int http, const std::string& path) {
  switch (http) {
    case 400: return bad_http("the request is not valid HTTP/1.1");
    case 404: return {404, Status(Code::kNotFound, "route_unknown", "no route " + path)};
    case 413: return too_large("the body is too large");
    case 414: return {414, Status(Code::kInvalidArgument, "uri_too_long", "the request URI is too long")};
    default:
      return {http, Status(http >= 500 ? Code::kInternal : Code::kInvalidArgument, "http_error",
                           "HTTP status " + std::to_string(http))};
  }
}

// Whether path is kApiRoute (matched by hand: GCC 12 warns falsely on std::regex under ASan).
bool is_api_path(std::string_view path) {
  if (!path.starts_with("/v1/")) return false;
  path.remove_prefix(4);
  auto slash = path.find('/');
  auto lower = [](std::string_view part) {
    return !part.empty() &&
           std::all_of(part.begin(), part.end(), [](char c) { return c >= 'a' && c <= 'z'; });
  };
  return slash != std::string_view::npos && lower(path.substr(0, slash)) &&
         lower(path.substr(slash + 1));
}

bool is_json(const std::string& content_type) {
  std::string type = to_lower(content_type.substr(0, content_type.find(';')));
  auto first = type.find_first_not_of(" \t");
  auto last = type.find_last_not_of(" \t");
  return first != std::string::npos && type.substr(first, last - first + 1) == "application/json";
}

// Decides from the request line and headers alone, before any body is read, so that a refused
// body is never buffered nor waited for.
std::optional<HttpRefusal> refuse_before_body(const httplib::Request& req) {
  const bool api = is_api_path(req.path);
  const bool get = req.path == "/healthz" || req.path == "/metrics";
  const std::string route = req.method + " " + req.path;
  if (!api && !get) {
    return HttpRefusal{404, Status(Code::kNotFound, "route_unknown",
                                   "no route " + req.path + " (the API is POST /v1/<service>/<api>)")};
  }
  if (get && req.method != "GET" && req.method != "HEAD") {
    return HttpRefusal{405, Status(Code::kUnimplemented, "method_not_allowed", route + ": takes GET"),
                       "GET, HEAD"};
  }
  if (api && req.method != "POST") {
    return HttpRefusal{405, Status(Code::kUnimplemented, "method_not_allowed",
                                   route + ": the API takes POST with a JSON body"),
                       "POST"};
  }
  // Two lengths are how requests get smuggled past a proxy: refuse anything ambiguous.
  const bool chunked = req.has_header("Transfer-Encoding");
  if (req.get_header_value_count("Content-Length") > 1 ||
      req.get_header_value_count("Transfer-Encoding") > 1 ||
      (chunked && req.has_header("Content-Length"))) {
    return bad_http("conflicting Content-Length / Transfer-Encoding headers");
  }
  if (chunked && to_lower(req.get_header_value("Transfer-Encoding")) != "chunked") {
    return bad_http("Transfer-Encoding '" + req.get_header_value("Transfer-Encoding") +
                    "' is not supported (only chunked)");
  }
  uint64_t length = 0;
  if (req.has_header("Content-Length")) {
    std::string text = req.get_header_value("Content-Length");
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), length);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
      return bad_http("Content-Length '" + text + "' is not a number");
    }
  }
  if (length > kMaxRestBody) return too_large("the body is " + std::to_string(length) + " bytes");
  if (!chunked && length == 0) return std::nullopt;
  if (get) return bad_http(route + " takes no body");
  if (!is_json(req.get_header_value("Content-Type"))) {
    return HttpRefusal{415, Status(Code::kInvalidArgument, "unsupported_media_type",
                                   "a request body must be Content-Type: application/json (got '" +
                                       req.get_header_value("Content-Type") + "')")};
  }
  return std::nullopt;
}

// Reads the body refuse_before_body let through. A request with neither Content-Length nor
// chunking has no body (RFC 9112 §6.3) and is the empty request; httplib alone would wait for
// the client to close. A chunked body is cut at kMaxRestBody.
std::optional<HttpRefusal> read_body(const httplib::Request& req,
                                     const httplib::ContentReader& reader, std::string* body,
                                     std::chrono::seconds read_timeout) {
  if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) return std::nullopt;
  bool over = false;
  bool whole = reader([&](const char* data, size_t n) {
    over = body->size() + n > kMaxRestBody;
    if (!over) body->append(data, n);
    return !over;
  });
  if (whole) return std::nullopt;
  if (over) return too_large("the chunked body is larger");
  if (request_deadline_passed()) return HttpRefusal{408, request_timeout(read_timeout)};
  return bad_http("the body ended early or its chunked encoding is malformed");
}

// Every REST route, and the JSON answer to every refusal on the way to one.
void add_rest_routes(httplib::Server& http, const service::Pipeline* pipeline,
                     const service::MethodTable* table, const service::MetricsExporter* metrics,
                     bool metrics_token, std::chrono::seconds read_timeout) {
  http.set_payload_max_length(kMaxRestBody);
  http.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    auto refusal = refuse_before_body(req);
    if (!refusal) return httplib::Server::HandlerResponse::Unhandled;
    write_refusal(res, *refusal);
    return httplib::Server::HandlerResponse::Handled;
  });
  // httplib's own refusals (malformed request, URI too long, a request cut by the read deadline)
  // come without a body; every response of ours that is an error already has one.
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [read_timeout](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        write_refusal(res, request_deadline_passed()
                               ? HttpRefusal{408, request_timeout(read_timeout)}
                               : httplib_refusal(res.status, req.path));
        return httplib::Server::HandlerResponse::Handled;
      }));
  // httplib would put the exception's text in a response header: log it, answer INTERNAL.
  http.set_exception_handler([](const httplib::Request& req, httplib::Response& res,
                                std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      spdlog::error("rest: {} {}: {}", req.method, req.path, e.what());
    } catch (...) {
      spdlog::error("rest: {} {}: unknown exception", req.method, req.path);
    }
    write_refusal(res, {500, Status(Code::kInternal, "internal", "internal error")});
  });
  http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  http.Post(kApiRoute, [pipeline, table, read_timeout](const httplib::Request& req,
                                                       httplib::Response& res,
                                                       const httplib::ContentReader& reader) {
    // The body first, even for an unknown method: the connection stays usable.
    std::string body;
    if (auto refusal = read_body(req, reader, &body, read_timeout)) {
      write_refusal(res, *refusal);
      return;
    }
    std::string key = std::string(req.matches[1]) + "." + std::string(req.matches[2]);
    const service::MethodSpec* spec = table->find(key);
    if (spec == nullptr) {
      res.status = 404;
      res.set_content(error_json(Status(Code::kNotFound, "method_unknown", "no method " + key)),
                      "application/json");
      return;
    }
    std::unique_ptr<Message> request(spec->request_prototype->New());
    google::protobuf::util::JsonParseOptions parse;
    parse.ignore_unknown_fields = false;
    // No body is the empty request, as in gRPC.
    if (body.empty()) body = "{}";
    if (auto st = google::protobuf::util::JsonStringToMessage(body, request.get(), parse); !st.ok()) {
      Status s(Code::kInvalidArgument, "bad_request",
               "body is not a valid " + request->GetTypeName() + ": " + std::string(st.message()));
      res.status = 400;
      res.set_content(error_json(s), "application/json");
      return;
    }
    service::RequestMeta meta;
    meta.authorization = req.get_header_value("Authorization");
    meta.client_certificate = peer_certificate_pem();
    meta.remote = req.remote_addr + ":" + std::to_string(req.remote_port);
    if (req.has_header("Volguard-Min-Revision")) {
      auto rev = parse_count(req.get_header_value("Volguard-Min-Revision"));
      if (!rev || *rev > static_cast<uint64_t>(INT64_MAX)) {
        Status bad(Code::kInvalidArgument, "bad_request", "header Volguard-Min-Revision must be a revision number");
        res.status = 400;
        res.set_content(error_json(bad), "application/json");
        return;
      }
      meta.min_revision = static_cast<int64_t>(*rev);
    }
    std::unique_ptr<Message> response(spec->response_prototype->New());
    Status s = pipeline->invoke(*spec, meta, *request, response.get());
    res.set_header("Volguard-Revision", std::to_string(pipeline->seen_revision()));
    if (!s.is_ok()) {
      res.status = http_status_of(s.code());
      res.set_content(error_json(s), "application/json");
      return;
    }
    google::protobuf::util::JsonPrintOptions print;
    print.preserve_proto_field_names = true;
    print.always_print_primitive_fields = true;
    std::string out;
    (void)google::protobuf::util::MessageToJsonString(*response, &out, print);
    res.set_content(out, "application/json");
  });
  // GET /metrics is the method metrics.inspect: the same pipeline as every call (authentication,
  // the one decision, the access log, the auth-failure counter), so `auth can-i` knows it too.
  http.Get("/metrics", [pipeline, table, metrics, metrics_token](const httplib::Request& req,
                                                                 httplib::Response& res) {
    if (!metrics_token) {  // metrics.require_token: false — an explicit opt-out
      res.set_content(metrics->render(), "text/plain; version=0.0.4");
      return;
    }
    const service::MethodSpec* spec = table->find("metrics.inspect");
    service::RequestMeta meta{.authorization = req.get_header_value("Authorization"),
                              .client_certificate = peer_certificate_pem(),
                              .remote = req.remote_addr};
    v1::MetricsResponse out;
    Status s = spec == nullptr ? Status(Code::kInternal, "method_missing", "metrics.inspect")
                               : pipeline->invoke(*spec, meta, v1::Empty(), &out);
    if (!s.is_ok()) {
      res.status = http_status_of(s.code());
      res.set_content(error_json(s), "application/json");
      return;
    }
    res.set_content(out.text(), "text/plain; version=0.0.4");
  });
}

}  // namespace

struct Server::Impl {
  std::unique_ptr<service::Core> core;  // first member: outlives the transports
  std::unique_ptr<WorkerPool> pool;
  std::unique_ptr<GenericService> generic;
  std::unique_ptr<grpc::Server> grpc_server;
  std::unique_ptr<RestServer> rest;
  int grpc_port = 0;
  int rest_port = 0;
  bool stopped = false;
  std::mutex stop_mu;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { shutdown(); }
int Server::grpc_port() const { return impl_->grpc_port; }
int Server::rest_port() const { return impl_->rest_port; }

Result<std::unique_ptr<Server>> Server::start(const config::Config& config) {
  // Debian's abseil is built with absl::Mutex deadlock detection on: every lock gRPC takes
  // walks a global lock graph under its own mutex (GraphCycles in a profile of the inspect
  // bench). It is a debugging aid for abseil's users; gRPC's locking is not ours to debug.
  static std::once_flag no_deadlock_graph;
  std::call_once(no_deadlock_graph,
                 [] { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); });
  auto impl = std::make_unique<Impl>();
  // The TLS private key is checked before anything is created: a key group or others can read
  // is refused (read_private_file), like the shared secrets and the audit key.
  std::string tls_key;
  if (!config.api.tls.key_file.empty()) {
    auto key = read_private_file(config.api.tls.key_file);
    if (!key) {
      return Status(key.status().code(), key.status().reason(),
                    config.file + ": api.tls.key_file: " + key.status().message());
    }
    tls_key = std::move(key).value();
  }
  ASSIGN_OR_RETURN(impl->core, service::Core::open(config));
  service::Core& core = *impl->core;

  // gRPC.
  impl->pool = std::make_unique<WorkerPool>(8);
  impl->generic = std::make_unique<GenericService>(&core.pipeline(), &core.table(), impl->pool.get(),
                                                   config.store.etcd_enabled);
  grpc::ServerBuilder builder;
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!config.api.tls.cert_file.empty()) {
    auto cert = read_file(config.api.tls.cert_file);
    if (!cert) return Status(Code::kInvalidArgument, "bad_config", config.file + ": api.tls.cert_file: " + cert.status().message());
    grpc::SslServerCredentialsOptions options;
    options.pem_key_cert_pairs.push_back({tls_key, *cert});
    if (!config.api.tls.client_ca.empty()) {
      // mTLS: no certificate chaining to the client CA, no call (the chain and the dates are
      // checked in the handshake; the pipeline maps the verified leaf, CRL included).
      auto ca = read_file(config.api.tls.client_ca);
      if (!ca) {
        return Status(Code::kInvalidArgument, "bad_config",
                      config.file + ": api.tls.client_ca: " + ca.status().message());
      }
      options.pem_root_certs = *ca;
      options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    creds = grpc::SslServerCredentials(options);
  }
  // gRPC binds with SO_REUSEPORT by default: a second server on the same port would start and
  // take half of the connections. Exclusive.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(config.api.grpc, creds, &impl->grpc_port);
  builder.RegisterCallbackGenericService(impl->generic.get());
  impl->grpc_server = builder.BuildAndStart();
  if (!impl->grpc_server || impl->grpc_port == 0) {
    return Status(Code::kUnavailable, "listen_failed",
                  config.file + ": api.grpc: cannot listen on " + config.api.grpc);
  }

  // REST.
  auto rest_addr = split_address(config.api.rest, config.file + ": api.rest");
  if (!rest_addr) return rest_addr.status();
  RestLimits limits;
  limits.read_timeout = config.api.rest_read_timeout;
  limits.max_connections = config.api.rest_max_connections;
  limits.max_connections_per_peer = config.api.rest_max_connections_per_peer;
  auto rest = RestServer::create(limits, config.api.tls.cert_file, config.api.tls.key_file,
                                 config.api.tls.client_ca);
  if (!rest) {
    impl->grpc_server->Shutdown();
    return Status(rest.status().code(), rest.status().reason(),
                  config.file + ": " + rest.status().message());
  }
  impl->rest = std::move(rest).value();
  add_rest_routes(impl->rest->http(), &core.pipeline(), &core.table(), &core.metrics_exporter(),
                  config.metrics_require_token && config.security.enabled,
                  config.api.rest_read_timeout);
  auto rest_port = impl->rest->start(rest_addr->first, rest_addr->second);
  if (!rest_port) {
    impl->grpc_server->Shutdown();
    return Status(Code::kUnavailable, "listen_failed",
                  config.file + ": api.rest: cannot listen on " + config.api.rest);
  }
  impl->rest_port = *rest_port;
  // Lists as JSON arrays: an issuer or group whose name holds a ',' cannot read as two.
  nlohmann::json issuers = nlohmann::json::array();
  for (const auto& i : config.security.issuers) issuers.push_back(i.issuer);
  audit::Record started_fields;
  started_fields.add_bool("security_enabled", config.security.enabled);
  started_fields.add_bool("guest_access", config.security.guest_access);
  started_fields.add("username_claim", config::username_claim_name(config.security.username_claim));
  started_fields.add_json("issuers", issuers.dump());
  started_fields.add_json("admin_groups", nlohmann::json(config.security.admin_groups).dump());
  started_fields.add_bool("audit_fail_closed", config.audit.fail_closed);
  started_fields.add("previous_shutdown", core.recorder().previous_run_unsealed() ? "unclean" : "clean");
  Status started = core.recorder().event("Server started", std::move(started_fields));
  if (!started.is_ok() && config.audit.fail_closed) {
    impl->rest->stop();
    impl->grpc_server->Shutdown();
    return Status(Code::kUnavailable, "audit_unavailable",
                  "cannot write the audit log: " + started.message());
  }
  spdlog::info("volguard listening: grpc {} port {}, rest {} port {}, security {}",
               config.api.grpc, impl->grpc_port, config.api.rest, impl->rest_port,
               config.security.enabled ? "on" : "OFF (every call allowed)");
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::shutdown() {
  if (!impl_) return;
  std::lock_guard lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  // Stop accepting; calls in flight get up to 30 s to finish.
  if (impl_->rest) impl_->rest->stop();
  if (impl_->grpc_server) {
    impl_->grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(30));
    impl_->grpc_server->Wait();
  }
  if (impl_->pool) impl_->pool->stop();
  // The seal: a verify can tell a clean stop from a crash or a cut tail.
  if (impl_->core) {
    if (Status s = impl_->core->recorder().event("Server stopped", {}, /*sealed=*/true); !s.is_ok()) {
      spdlog::error("audit: the shutdown seal could not be written ({}): verify will say NOT SEALED",
                    s.to_string());
    }
  }
  spdlog::info("volguard stopped");
}

int run_server(const std::string& config_path) {
  auto cfg = config::load_config(config_path);
  if (!cfg) {
    spdlog::error("{}", cfg.status().message());
    return 2;
  }
  // No core dumps and no ptrace by other users: a data key unwrapped through a KMS passes
  // through gRPC's and protobuf's buffers, which are not locked or cleansed (crypto/kms_kek.h).
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    spdlog::warn("prctl(PR_SET_DUMPABLE, 0) failed: a core dump of this process could hold data keys");
  }
  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  auto server = Server::start(*cfg);
  if (!server) {
    spdlog::error("{}: {}", server.status().reason(), server.status().message());
    return 2;
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("signal {}: stopping", sig);
  (*server)->shutdown();
  return 0;
}

}  // namespace volguard::api
