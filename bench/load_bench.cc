// Load tool: N concurrent gRPC clients against a real volguard server on loopback.
//   make bench              (or: build/bench/volguard_bench_load [clients] [seconds])
//
// Measures volume.inspect throughput and p50/p99 latency with security on and off in the same
// run, and volume.enumerate over 10,000 volumes owned by 100 users (filtered to one user's).
// Seeding: the 10,000 volumes are written through the metadata store with sparse, unformatted
// image files (they are never mounted here), so that seeding takes seconds, not an hour of mkfs.
#include <fcntl.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include "api/client.h"
#include "api/server.h"
#include "common/text.h"
#include "config/config.h"
#include "identity/token.h"
#include "load_common.h"
#include "store/store.h"
#include "volguard.pb.h"

namespace {

using namespace volguard;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using bench::drive;
using bench::LoadResult;

const std::string kSecret = "bench-secret-0123456789abcdef0123456789";
constexpr int kUsers = 100;
constexpr int kVolumesPerUser = 100;

std::string token(const std::string& sub, std::vector<std::string> roles) {
  identity::TokenClaims c{.issuer = "bench.local", .subject = sub, .roles = std::move(roles),
                          .groups = {"g-" + sub}, .lifetime_seconds = 3600};
  return identity::generate_token(identity::SigningKey::from_secret(kSecret).value(), c,
                                  static_cast<int64_t>(std::time(nullptr)))
      .value();
}

void seed(const std::string& data_dir, int users = kUsers) {
  fs::create_directories(data_dir + "/volumes");
  auto store = store::open_sqlite_store(data_dir + "/volguard.db").value();
  auto start = Clock::now();
  for (int u = 0; u < users; ++u) {
    for (int i = 0; i < kVolumesPerUser; ++i) {
      store::VolumeRecord v;
      char id[32];
      std::snprintf(id, sizeof id, "%04d%012d", u, i);
      v.id = id;
      v.name = "u" + std::to_string(u) + "-vol" + std::to_string(i);
      v.size_bytes = 16 << 20;
      v.ownership.owner = "bench.local/u" + std::to_string(u);
      v.ownership.groups["team-" + std::to_string(u % 10)] = ownership::Access::kRead;
      v.labels = {{"app", "bench"}, {"user", std::to_string(u)}};
      v.state = store::RecordState::kReady;
      v.created_at = 1800000000;
      if (auto s = store->create_volume(v); !s.is_ok()) {
        std::fprintf(stderr, "seed: %s\n", s.to_string().c_str());
        std::exit(1);
      }
      int fd = ::open((data_dir + "/volumes/" + v.id + ".img").c_str(), O_CREAT | O_WRONLY, 0600);
      if (fd < 0 || ::ftruncate(fd, 16 << 20) != 0) std::exit(1);
      ::close(fd);
    }
  }
  std::printf("seeded %d volumes in %.1f s\n", users * kVolumesPerUser,
              std::chrono::duration<double>(Clock::now() - start).count());
}

// The ceiling of the inspect rows: gRPC alone, set up as api::Server sets it up (a callback
// generic service, the same channel argument), whose one handler reads the request and answers
// a canned VolumeResponse — no pipeline, no catalog. The same api::Client drives it.
class CannedReactor : public grpc::ServerGenericBidiReactor {
 public:
  CannedReactor(const std::string* canned) : canned_(canned) { StartRead(&request_); }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request"));
      return;
    }
    grpc::Slice slice(*canned_);
    response_ = grpc::ByteBuffer(&slice, 1);
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
  }
  void OnDone() override { delete this; }

 private:
  const std::string* canned_;
  grpc::ByteBuffer request_, response_;
};

class CannedService : public grpc::CallbackGenericService {
 public:
  explicit CannedService(std::string canned) : canned_(std::move(canned)) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    return new CannedReactor(&canned_);
  }

 private:
  const std::string canned_;
};

config::Config make_config(const std::string& dir, bool security) {
  std::string yaml = "data_dir: " + dir + "\napi:\n  grpc: 127.0.0.1:0\n  rest: 127.0.0.1:0\n" +
                     "security:\n  enabled: " + (security ? "true" : "false") +
                     "\n  issuers:\n    - issuer: bench.local\n      shared_secret_file: " + dir +
                     "/../secret\n";
  return config::parse_config(yaml, "bench.yaml").value();
}

}  // namespace

int main(int argc, char** argv) {
  int clients = argc > 1 ? std::atoi(argv[1]) : 8;
  double seconds = argc > 2 ? std::atof(argv[2]) : 5;
  char tmpl[] = "/tmp/volguard-bench-XXXXXX";
  std::string root = mkdtemp(tmpl);
  if (Status s = write_file(root + "/secret", kSecret, 0600); !s.is_ok()) {
    std::fprintf(stderr, "bench: %s\n", s.to_string().c_str());
    return 2;
  }
  seed(root + "/on");
  seed(root + "/off");  // seeded again, not copied: a copy would fill the sparse files
  seed(root + "/small", 1);  // the limit of enumerate: one user's 100 volumes and nothing else

  std::map<bool, std::unique_ptr<api::Server>> servers;
  for (bool security : {true, false}) {
    auto s = api::Server::start(make_config(root + (security ? "/on" : "/off"), security));
    if (!s) {
      std::fprintf(stderr, "start: %s\n", s.status().to_string().c_str());
      return 1;
    }
    servers[security] = std::move(s).value();
  }
  // The bare gRPC server, answering what the real one answers for u7-vol42.
  std::unique_ptr<CannedService> canned;
  std::unique_ptr<grpc::Server> bare;
  int bare_port = 0;
  {
    auto c = api::Client::connect("127.0.0.1:" + std::to_string(servers[true]->grpc_port()),
                                  token("u7", {"system.user"}), "").value();
    v1::VolumeRef req;
    req.set_volume("u7-vol42");
    v1::VolumeResponse resp;
    if (!c.call("/volguard.v1.VolguardVolume/Inspect", req, &resp).is_ok()) return 1;
    canned = std::make_unique<CannedService>(resp.SerializeAsString());
    grpc::ServerBuilder builder;
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &bare_port);
    builder.RegisterCallbackGenericService(canned.get());
    bare = builder.BuildAndStart();
    if (!bare || bare_port == 0) return 1;
  }
  auto small = api::Server::start(make_config(root + "/small", true));
  if (!small) {
    std::fprintf(stderr, "start: %s\n", small.status().to_string().c_str());
    return 1;
  }
  const std::string owner_token = token("u7", {"system.user"});
  const std::string admin_token = token("root", {"system.admin"});
  auto endpoint = [&](bool security) {
    return "127.0.0.1:" + std::to_string(servers[security]->grpc_port());
  };

  auto inspect_run = [&](bool security, double secs, int n = 0, const std::string& at = "") {
    return drive(n > 0 ? n : clients, secs, [&, security, at](int) {
      auto client = std::make_shared<api::Client>(
          api::Client::connect(at.empty() ? endpoint(security) : at, owner_token, "").value());
      return [client] {
        v1::VolumeRef req;
        req.set_volume("u7-vol42");
        v1::VolumeResponse resp;
        return client->call("/volguard.v1.VolguardVolume/Inspect", req, &resp).is_ok();
      };
    });
  };
  // Warm both servers up, then alternate on/off rounds so that drift and noise on this shared
  // 2-core machine fall on both sides alike.
  inspect_run(true, 1);
  inspect_run(false, 1);
  std::map<bool, std::vector<LoadResult>> rounds;
  for (int round = 0; round < 4; ++round) {
    for (bool security : {round % 2 == 0, round % 2 != 0}) {
      rounds[security].push_back(inspect_run(security, seconds / 4));
    }
  }
  // REST: the same inspect as POST /v1/volume/inspect over keep-alive connections (one
  // httplib client each), 1 and `clients` clients, beside gRPC's rows.
  auto rest_run = [&](int n, double secs) {
    return drive(n, secs, [&](int) {
      auto client = std::make_shared<httplib::Client>("127.0.0.1", servers[true]->rest_port());
      client->set_keep_alive(true);
      client->set_tcp_nodelay(true);
      return [client, &owner_token] {
        httplib::Headers headers = {{"Authorization", "Bearer " + owner_token}};
        auto res = client->Post("/v1/volume/inspect", headers, R"({"volume":"u7-vol42"})", "application/json");
        return res && res->status == 200;
      };
    });
  };
  const double rss_seeded_kb = [] {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6));
    }
    return 0.0;
  }();
  std::map<bool, LoadResult> inspect;
  for (bool security : {true, false}) inspect[security] = bench::combine(rounds[security]);
  // Enumerate: one user's 100 of 10,000 (filtered by ownership), and an admin's all 10,000.
  auto enumerate = [&](const std::string& tok, int n_clients, size_t expect, const std::string& at) {
    return drive(n_clients, seconds / 2, [&, expect](int) {
      auto client = std::make_shared<api::Client>(api::Client::connect(at, tok, "").value());
      return [client, expect] {
        v1::EnumerateRequest req;
        v1::EnumerateResponse resp;
        return client->call("/volguard.v1.VolguardVolume/Enumerate", req, &resp).is_ok() &&
               static_cast<size_t>(resp.volumes_size()) == expect;
      };
    });
  };
  LoadResult enum_user = enumerate(owner_token, 1, kVolumesPerUser, endpoint(true));
  LoadResult enum_admin = enumerate(admin_token, 1, kUsers * kVolumesPerUser, endpoint(true));
  LoadResult enum_limit = enumerate(token("u0", {"system.user"}), 1, kVolumesPerUser,
                                    "127.0.0.1:" + std::to_string((*small)->grpc_port()));

  rest_run(1, 1);  // warm-up
  LoadResult rest1 = rest_run(1, seconds / 2);
  LoadResult rest_n = rest_run(clients, seconds / 2);
  LoadResult grpc1 = inspect_run(true, seconds / 2, 1);
  const std::string bare_at = "127.0.0.1:" + std::to_string(bare_port);
  inspect_run(true, 1, clients, bare_at);  // warm-up
  LoadResult bare_n = inspect_run(true, seconds / 2, clients, bare_at);
  LoadResult bare64 = inspect_run(true, seconds / 2, 64, bare_at);
  LoadResult on64 = inspect_run(true, seconds / 2, 64);

  std::printf("\n%-34s %10s %9s %9s %8s\n", "workload", "calls/s", "p50 ms", "p99 ms", "errors");
  auto row = [](const char* name, const LoadResult& r) {
    std::printf("%-34s %10.0f %9.3f %9.3f %8zu\n", name, r.per_second, r.p50_ms, r.p99_ms, r.errors);
  };
  row(("inspect, security on, " + std::to_string(clients) + " clients").c_str(), inspect[true]);
  row(("inspect, security off, " + std::to_string(clients) + " clients").c_str(), inspect[false]);
  row("enumerate 100 of 10000 (one user)", enum_user);
  row("enumerate 10000 of 10000 (admin)", enum_admin);
  row("enumerate 100 of 100 (the limit)", enum_limit);
  row("inspect, gRPC, 1 client", grpc1);
  row(("bare gRPC (canned), " + std::to_string(clients) + " clients").c_str(), bare_n);
  row("inspect, security on, 64 clients", on64);
  row("bare gRPC (canned), 64 clients", bare64);
  row("inspect, REST keep-alive, 1 client", rest1);
  row(("inspect, REST keep-alive, " + std::to_string(clients) + " clients").c_str(), rest_n);
  double ratio = inspect[true].per_second / inspect[false].per_second;
  bool ok_ratio = ratio >= 0.85;
  bool ok_p99 = inspect[true].p99_ms < 2.0;
  bool ok_enum = enum_user.p50_ms <= 0.5;
  bool no_errors = inspect[true].errors + inspect[false].errors + enum_user.errors + enum_admin.errors +
                       enum_limit.errors == 0;
  std::printf("\ninspect security on / off: %.3f (target >= 0.85: %s)\n", ratio, ok_ratio ? "met" : "NOT MET");
  std::printf("inspect p99 with security on: %.3f ms (target < 2 ms: %s)\n", inspect[true].p99_ms,
              ok_p99 ? "met" : "NOT MET");
  std::printf("enumerate one user's 100 of 10000: p50 %.3f ms beside 100 of 100: p50 %.3f ms, ratio %.2f "
              "(target p50 <= 0.5 ms: %s)\n",
              enum_user.p50_ms, enum_limit.p50_ms, enum_user.p50_ms > 0 ? enum_limit.p50_ms / enum_user.p50_ms : 0,
              ok_enum ? "met" : "NOT MET");
  const double ceil_n = inspect[true].per_second / bare_n.per_second, ceil64 = on64.per_second / bare64.per_second;
  const bool ok_ceiling = ceil_n >= 0.8 && ceil64 >= 0.8;
  std::printf("inspect vs the bare gRPC ceiling: %.2f at %d clients, %.2f at 64 (target >= 0.8: %s)\n", ceil_n,
              clients, ceil64, ok_ceiling ? "met" : "NOT MET");
  const bool ok_rest = rest1.p50_ms < 0.5 && rest_n.per_second >= 0.5 * inspect[true].per_second;
  std::printf("REST inspect: p50 %.3f ms at 1 client (target < 0.5 ms); %.0f/s at %d clients = %.2f of gRPC's "
              "(target >= 0.5): %s\n",
              rest1.p50_ms, rest_n.per_second, clients, rest_n.per_second / inspect[true].per_second,
              ok_rest ? "met" : "NOT MET");
  std::printf("process RSS with the three servers up (20,100 volumes in catalogs): %.0f KiB, about %.0f bytes "
              "per volume (an upper bound: code, gRPC and three servers included)\n",
              rss_seeded_kb, rss_seeded_kb * 1024 / (2 * kUsers * kVolumesPerUser + kVolumesPerUser));
  servers.clear();
  small->reset();
  bare->Shutdown();
  fs::remove_all(root);
  return ok_ratio && ok_p99 && ok_enum && ok_rest && ok_ceiling && no_errors && rest1.errors + rest_n.errors == 0 ? 0 : 1;
}
