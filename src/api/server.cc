#include "api/server.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <thread>

#include "common/text.h"
#include "driver/driver.h"
#include "identity/verifier.h"
#include "service/audit_recorder.h"
#include "service/metrics.h"
#include "service/pipeline.h"
#include "service/volume_service.h"
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
               const service::MethodTable* table, WorkerPool* pool)
      : ctx_(ctx), pipeline_(pipeline), pool_(pool) {
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
    if (spec_->slow) {
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
    std::unique_ptr<Message> response(spec_->response_prototype->New());
    Status s = pipeline_->invoke(*spec_, meta, *request, response.get());
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
  const service::MethodSpec* spec_ = nullptr;
  grpc::ByteBuffer request_buf_;
  grpc::ByteBuffer response_buf_;
};

class GenericService : public grpc::CallbackGenericService {
 public:
  GenericService(const service::Pipeline* pipeline, const service::MethodTable* table,
                 WorkerPool* pool)
      : pipeline_(pipeline), table_(table), pool_(pool) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new UnaryReactor(ctx, pipeline_, table_, pool_);
  }

 private:
  const service::Pipeline* pipeline_;
  const service::MethodTable* table_;
  WorkerPool* pool_;
};

Result<std::pair<std::string, int>> split_address(const std::string& addr, const std::string& key) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos) {
    return Status(Code::kInvalidArgument, "bad_config", key + ": '" + addr + "' must be HOST:PORT");
  }
  int port = 0;
  try {
    port = std::stoi(addr.substr(colon + 1));
  } catch (...) {
    port = -1;
  }
  if (port < 0 || port > 65535) {
    return Status(Code::kInvalidArgument, "bad_config", key + ": '" + addr + "' has a bad port");
  }
  return std::make_pair(addr.substr(0, colon), port);
}

std::string error_json(const Status& s) {
  nlohmann::json j = {{"code", code_name(s.code())}, {"reason", s.reason()}, {"message", s.message()}};
  return j.dump();
}

}  // namespace

struct Server::Impl {
  config::Config config;
  std::shared_ptr<const identity::Verifier> verifier;
  std::unique_ptr<service::VolumeService> volumes;
  service::MethodTable table;
  std::unique_ptr<service::Pipeline> pipeline;
  service::Metrics metrics;
  std::unique_ptr<service::AuditRecorder> recorder;
  std::unique_ptr<WorkerPool> pool;
  std::unique_ptr<GenericService> generic;
  std::unique_ptr<grpc::Server> grpc_server;
  std::unique_ptr<httplib::Server> rest;
  std::thread rest_thread;
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
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  if (config.security.enabled) {
    auto verifier = identity::Verifier::from_config(config.security);
    if (!verifier) return verifier.status();
    impl->verifier = *verifier;
  }
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) {
    return Status(Code::kInvalidArgument, "bad_config",
                  config.file + ": data_dir: cannot create " + config.data_dir + ": " + ec.message());
  }
  auto store = store::open_sqlite_store(config.data_dir + "/volguard.db");
  if (!store) return store.status();
  auto driver = driver::open_local_driver(config.data_dir);
  if (!driver) return driver.status();
  impl->volumes = std::make_unique<service::VolumeService>(config, std::move(store).value(),
                                                           std::move(driver).value());
  impl->volumes->register_methods(&impl->table);
  impl->pipeline = std::make_unique<service::Pipeline>(config.security, impl->verifier,
                                                       &impl->table, impl->volumes.get());
  impl->volumes->set_pipeline(impl->pipeline.get());
  auto recorder = service::AuditRecorder::open(config, &impl->metrics);
  if (!recorder) return recorder.status();
  impl->recorder = std::move(recorder).value();
  impl->pipeline->set_recorder(impl->recorder.get());
  if (auto s = impl->volumes->recover(); !s.is_ok()) return s;

  // gRPC.
  impl->pool = std::make_unique<WorkerPool>(8);
  impl->generic = std::make_unique<GenericService>(impl->pipeline.get(), &impl->table, impl->pool.get());
  grpc::ServerBuilder builder;
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!config.api.tls.cert_file.empty()) {
    auto cert = read_file(config.api.tls.cert_file);
    auto key = read_file(config.api.tls.key_file);
    if (!cert) return Status(Code::kInvalidArgument, "bad_config", config.file + ": api.tls.cert_file: " + cert.status().message());
    if (!key) return Status(Code::kInvalidArgument, "bad_config", config.file + ": api.tls.key_file: " + key.status().message());
    grpc::SslServerCredentialsOptions options;
    options.pem_key_cert_pairs.push_back({*key, *cert});
    creds = grpc::SslServerCredentials(options);
  }
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
  if (!config.api.tls.cert_file.empty()) {
    impl->rest = std::make_unique<httplib::SSLServer>(config.api.tls.cert_file.c_str(),
                                                      config.api.tls.key_file.c_str());
  } else {
    impl->rest = std::make_unique<httplib::Server>();
  }
  auto* pipeline = impl->pipeline.get();
  auto* table = &impl->table;
  impl->rest->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  impl->rest->Post(R"(/v1/([a-z]+)/([a-z]+))", [pipeline, table](const httplib::Request& req,
                                                                 httplib::Response& res) {
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
    std::string body = req.body.empty() ? "{}" : req.body;
    if (auto st = google::protobuf::util::JsonStringToMessage(body, request.get(), parse); !st.ok()) {
      Status s(Code::kInvalidArgument, "bad_request",
               "body is not a valid " + request->GetTypeName() + ": " + std::string(st.message()));
      res.status = 400;
      res.set_content(error_json(s), "application/json");
      return;
    }
    service::RequestMeta meta;
    meta.authorization = req.get_header_value("Authorization");
    meta.remote = req.remote_addr + ":" + std::to_string(req.remote_port);
    std::unique_ptr<Message> response(spec->response_prototype->New());
    Status s = pipeline->invoke(*spec, meta, *request, response.get());
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
  auto* metrics = &impl->metrics;
  bool metrics_token = config.metrics_require_token && config.security.enabled;
  impl->rest->Get("/metrics", [pipeline, metrics, metrics_token](const httplib::Request& req,
                                                                 httplib::Response& res) {
    if (metrics_token) {
      service::RequestMeta meta{req.get_header_value("Authorization"), req.remote_addr};
      auto who = pipeline->authenticate(meta);
      Status refusal;
      if (!who) {
        refusal = who.status();
      } else if (who->guest) {
        refusal = Status(Code::kUnauthenticated, "token_missing", "/metrics needs a token");
      } else if (auto d = pipeline->roles()->decide(who->roles, "metrics", "inspect"); !d.allowed) {
        refusal = Status(Code::kPermissionDenied, d.reason, d.message);
      }
      if (!refusal.is_ok()) {
        res.status = http_status_of(refusal.code());
        res.set_content(error_json(refusal), "application/json");
        return;
      }
    }
    res.set_content(metrics->render(), "text/plain; version=0.0.4");
  });
  impl->rest->set_payload_max_length(1 << 20);
  int port = rest_addr->second;
  if (port == 0) {
    impl->rest_port = impl->rest->bind_to_any_port(rest_addr->first);
  } else {
    impl->rest_port = impl->rest->bind_to_port(rest_addr->first, port) ? port : -1;
  }
  if (impl->rest_port <= 0) {
    impl->grpc_server->Shutdown();
    return Status(Code::kUnavailable, "listen_failed",
                  config.file + ": api.rest: cannot listen on " + config.api.rest);
  }
  auto* rest = impl->rest.get();
  impl->rest_thread = std::thread([rest] { rest->listen_after_bind(); });
  std::string issuers;
  for (const auto& i : config.security.issuers) issuers += (issuers.empty() ? "" : ",") + i.issuer;
  Status started = impl->recorder->event(
      "Server started",
      {{"security_enabled", config.security.enabled ? "true" : "false"},
       {"guest_access", config.security.guest_access ? "true" : "false"},
       {"username_claim", config::username_claim_name(config.security.username_claim)},
       {"issuers", issuers},
       {"admin_groups", [&] {
          std::string g;
          for (const auto& a : config.security.admin_groups) g += (g.empty() ? "" : ",") + a;
          return g;
        }()},
       {"audit_fail_closed", config.audit.fail_closed ? "true" : "false"},
       {"previous_shutdown", impl->recorder->previous_run_unsealed() ? "unclean" : "clean"}});
  if (!started.is_ok() && config.audit.fail_closed) {
    impl->rest->stop();
    impl->rest_thread.join();
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
  if (impl_->rest_thread.joinable()) impl_->rest_thread.join();
  if (impl_->grpc_server) {
    impl_->grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(30));
    impl_->grpc_server->Wait();
  }
  if (impl_->pool) impl_->pool->stop();
  // The seal: a verify can tell a clean stop from a crash or a cut tail.
  if (impl_->recorder) impl_->recorder->event("Server stopped", {}, /*sealed=*/true);
  spdlog::info("volguard stopped");
}

int run_server(const std::string& config_path) {
  auto cfg = config::load_config(config_path);
  if (!cfg) {
    spdlog::error("{}", cfg.status().message());
    return 2;
  }
  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  auto server = Server::start(*cfg);
  if (!server) {
    spdlog::error("{}", server.status().message());
    return 2;
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("signal {}: stopping", sig);
  (*server)->shutdown();
  return 0;
}

}  // namespace volguard::api
