// The compiled role set, owned by one object and shared by the pipeline (which decides with it)
// and the role methods (which change it). Swapped atomically: a request in flight keeps the
// snapshot it started with; readers take no lock.
#pragma once

#include <atomic>
#include <memory>

#include "policy/policy.h"

namespace volguard::service {

class RoleRegistry {
 public:
  RoleRegistry() : roles_(std::make_shared<const policy::RoleSet>(policy::default_roles())) {}
  RoleRegistry(const RoleRegistry&) = delete;
  RoleRegistry& operator=(const RoleRegistry&) = delete;

  std::shared_ptr<const policy::RoleSet> current() const { return roles_.load(); }
  void replace(std::shared_ptr<const policy::RoleSet> roles) { roles_.store(std::move(roles)); }

 private:
  std::atomic<std::shared_ptr<const policy::RoleSet>> roles_;
};

}  // namespace volguard::service
