#include "etcd/client.h"

#include "etcd/core.h"
#include "etcd/leased_key.h"
#include "etcd/watch.h"

namespace volguard::etcd {

using internal::Core;
using internal::Endpoint;
using internal::Retry;

std::string prefix_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto c = static_cast<unsigned char>(end.back());
    if (c < 0xff) {
      end.back() = static_cast<char>(c + 1);
      return end;
    }
    end.pop_back();
  }
  // Only 0xff bytes (or nothing): no key is past the prefix; "\0" means "to the end" in etcd.
  return std::string(1, '\0');
}

namespace {

KeyValue to_kv(const mvccpb::KeyValue& kv) {
  return KeyValue{.key = kv.key(),
                  .value = kv.value(),
                  .create_revision = kv.create_revision(),
                  .mod_revision = kv.mod_revision(),
                  .version = kv.version(),
                  .lease = kv.lease()};
}

std::vector<KeyValue> to_kvs(const etcdserverpb::RangeResponse& r) {
  std::vector<KeyValue> out;
  out.reserve(r.kvs_size());
  for (const auto& kv : r.kvs()) out.push_back(to_kv(kv));
  return out;
}

void to_compare(const Compare& c, etcdserverpb::Compare* out) {
  out->set_key(c.key);
  switch (c.result) {
    case Compare::Result::kEqual:
      out->set_result(etcdserverpb::Compare::EQUAL);
      break;
    case Compare::Result::kGreater:
      out->set_result(etcdserverpb::Compare::GREATER);
      break;
    case Compare::Result::kLess:
      out->set_result(etcdserverpb::Compare::LESS);
      break;
    case Compare::Result::kNotEqual:
      out->set_result(etcdserverpb::Compare::NOT_EQUAL);
      break;
  }
  switch (c.target) {
    case Compare::Target::kVersion:
      out->set_target(etcdserverpb::Compare::VERSION);
      out->set_version(c.number);
      break;
    case Compare::Target::kCreate:
      out->set_target(etcdserverpb::Compare::CREATE);
      out->set_create_revision(c.number);
      break;
    case Compare::Target::kMod:
      out->set_target(etcdserverpb::Compare::MOD);
      out->set_mod_revision(c.number);
      break;
    case Compare::Target::kValue:
      out->set_target(etcdserverpb::Compare::VALUE);
      out->set_value(c.value);
      break;
  }
}

void to_op(const Op& op, etcdserverpb::RequestOp* out) {
  switch (op.type) {
    case Op::Type::kGet: {
      auto* r = out->mutable_request_range();
      r->set_key(op.key);
      r->set_range_end(op.range_end);
      break;
    }
    case Op::Type::kPut: {
      auto* r = out->mutable_request_put();
      r->set_key(op.key);
      r->set_value(op.value);
      r->set_lease(op.lease);
      break;
    }
    case Op::Type::kDelete: {
      auto* r = out->mutable_request_delete_range();
      r->set_key(op.key);
      r->set_range_end(op.range_end);
      break;
    }
  }
}

bool read_only(const std::vector<Op>& ops) {
  for (const auto& op : ops) {
    if (op.type != Op::Type::kGet) return false;
  }
  return true;
}

class ClientImpl : public Client {
 public:
  explicit ClientImpl(std::shared_ptr<Core> core) : core_(std::move(core)) {}

  Result<std::vector<KeyValue>> range(const std::string& key, const std::string& range_end,
                                      int64_t* revision) override {
    etcdserverpb::RangeRequest req;
    req.set_key(key);
    req.set_range_end(range_end);
    etcdserverpb::RangeResponse resp;
    RETURN_IF_ERROR(core_->call(
        "range", Retry::kAlways,
        [&](Endpoint& ep, grpc::ClientContext* ctx) { return ep.kv->Range(ctx, req, &resp); }));
    if (revision != nullptr) *revision = resp.header().revision();
    return to_kvs(resp);
  }

  Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                        const std::vector<Op>& failure) override {
    etcdserverpb::TxnRequest req;
    for (const auto& c : compares) to_compare(c, req.add_compare());
    for (const auto& op : success) to_op(op, req.add_success());
    for (const auto& op : failure) to_op(op, req.add_failure());
    etcdserverpb::TxnResponse resp;
    Retry retry = read_only(success) && read_only(failure) ? Retry::kAlways : Retry::kIfNotApplied;
    RETURN_IF_ERROR(core_->call("txn", retry, [&](Endpoint& ep, grpc::ClientContext* ctx) {
      return ep.kv->Txn(ctx, req, &resp);
    }));
    TxnResult out;
    out.succeeded = resp.succeeded();
    out.revision = resp.header().revision();
    for (const auto& r : resp.responses()) {
      if (r.has_response_range()) out.ranges.push_back(to_kvs(r.response_range()));
    }
    return out;
  }

  Result<int64_t> current_revision() override {
    etcdserverpb::RangeRequest req;
    req.set_key(core_->options().revision_key);
    req.set_count_only(true);
    etcdserverpb::RangeResponse resp;
    RETURN_IF_ERROR(core_->call(
        "range", Retry::kAlways,
        [&](Endpoint& ep, grpc::ClientContext* ctx) { return ep.kv->Range(ctx, req, &resp); }));
    return resp.header().revision();
  }

  Result<std::unique_ptr<Watch>> watch(const std::string& prefix, int64_t start_revision,
                                       WatchCallbacks callbacks,
                                       std::chrono::milliseconds progress_interval) override {
    if (!callbacks.on_events) {
      return Status(Code::kInvalidArgument, "invalid_watch", "a watch needs on_events");
    }
    if (start_revision < 1) {
      return Status(Code::kInvalidArgument, "invalid_watch", "a watch starts at a revision >= 1");
    }
    if (progress_interval.count() <= 0) {
      return Status(Code::kInvalidArgument, "invalid_watch",
                    "the progress interval must be positive");
    }
    return std::unique_ptr<Watch>(new internal::WatchImpl(core_, prefix, start_revision,
                                                          std::move(callbacks), progress_interval));
  }

  Result<std::unique_ptr<LeasedKey>> keep(const std::string& key, const std::string& value,
                                          std::chrono::seconds ttl) override {
    return internal::LeasedKeyImpl::create(core_, key, value, ttl);
  }

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace

Result<std::unique_ptr<Client>> Client::open(const ClientOptions& options) {
  ASSIGN_OR_RETURN(auto core, Core::create(options));
  return std::unique_ptr<Client>(new ClientImpl(std::move(core)));
}

}  // namespace volguard::etcd
