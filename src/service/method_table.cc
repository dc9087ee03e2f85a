#include "service/method_table.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

namespace volguard::service {

namespace {

// A handler asked for a resource its method never declared: a programming error that every
// test of the method hits at once. Acting on "nothing" instead could skip a check.
[[noreturn]] void undeclared(const std::string& method, std::string_view kind, std::string_view name) {
  spdlog::critical("{}: handler asked for {} '{}', which the method does not declare", method, kind, name);
  std::abort();
}

template <typename T>
const std::shared_ptr<const T>& find_named(
    const std::vector<std::pair<std::string, std::shared_ptr<const T>>>& list, std::string_view name,
    const std::string& method, std::string_view kind) {
  for (const auto& [n, v] : list) {
    if (n == name) return v;
  }
  undeclared(method, kind, name);
}

}  // namespace

const std::shared_ptr<const store::VolumeRecord>& Call::volume(std::string_view name) const {
  return find_named(volumes_, name, method, "volume");
}

const std::shared_ptr<const store::SnapshotRecord>& Call::snapshot(std::string_view name) const {
  return find_named(snapshots_, name, method, "snapshot");
}

void MethodTable::insert(MethodSpec spec) {
  // Two entries under one key or path, or two resources under one name, would make the table
  // say one thing and the transports do another: refused at registration (start-up).
  if (by_key_.count(spec.key()) || by_grpc_.count(spec.grpc_path)) {
    spdlog::critical("method {} ({}) registered twice", spec.key(), spec.grpc_path);
    std::abort();
  }
  for (size_t i = 0; i < spec.resources.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (spec.resources[i].name == spec.resources[j].name) {
        spdlog::critical("method {} declares resource '{}' twice", spec.key(), spec.resources[i].name);
        std::abort();
      }
    }
  }
  auto owned = std::make_unique<const MethodSpec>(std::move(spec));
  by_key_[owned->key()] = owned.get();
  by_grpc_[owned->grpc_path] = owned.get();
  methods_.push_back(std::move(owned));
}

std::vector<const MethodSpec*> MethodTable::methods() const {
  std::vector<const MethodSpec*> out;
  out.reserve(methods_.size());
  for (const auto& m : methods_) out.push_back(m.get());
  return out;
}

const MethodSpec* MethodTable::find(const std::string& key) const {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? nullptr : it->second;
}

const MethodSpec* MethodTable::find_grpc(const std::string& path) const {
  auto it = by_grpc_.find(path);
  return it == by_grpc_.end() ? nullptr : it->second;
}

}  // namespace volguard::service
