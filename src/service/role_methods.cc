// role.*: create, enumerate, inspect, update, delete. RBAC only (roles have no owner). A change
// is stored, then the compiled set is published to the registry the pipeline decides with.
#include "common/text.h"
#include "service/volume_service.h"

namespace volguard::service {

namespace {

void to_spec(const policy::Role& r, v1::RoleSpec* out) {
  out->set_name(r.name);
  for (const auto& rule : r.rules) {
    auto* pr = out->add_rules();
    for (const auto& s : rule.services) pr->add_services(s);
    for (const auto& a : rule.apis) pr->add_apis(a);
  }
}

policy::Role from_spec(const v1::RoleSpec& spec) {
  policy::Role r;
  r.name = spec.name();
  for (const auto& pr : spec.rules()) {
    r.rules.push_back({{pr.services().begin(), pr.services().end()}, {pr.apis().begin(), pr.apis().end()}});
  }
  return r;
}

}  // namespace

// ---- role.create
Status VolumeService::create_role(Call& call, const v1::RoleRequest& req, v1::RoleResponse* resp) {
  policy::Role role = from_spec(req.role());
  call.resource_for_log = "role/" + role.name;
  RETURN_IF_ERROR(policy::validate_role(role));
  std::lock_guard lock(roles_mu_);
  if (policy::is_default_role(role.name)) {
    return Status(Code::kAlreadyExists, "role_is_system",
                  "role name " + role.name + " is a system role");
  }
  if (const auto* existing = roles_.current()->find(role.name)) {
    if (*existing == role) {  // idempotent create
      to_spec(role, resp->mutable_role());
      return Status::ok();
    }
    return Status(Code::kAlreadyExists, "role_exists", "role " + role.name + " already exists");
  }
  // "System.Admin" next to "system.admin" reads as the same role in a token, a log or a
  // review: names that differ only by case are one name.
  const std::string lowered = to_lower(role.name);
  for (const auto& r : roles_.current()->roles()) {
    if (to_lower(r.name) == lowered) {
      return Status(Code::kAlreadyExists, "role_exists",
                    "role " + role.name + " differs only by case from existing role " + r.name);
    }
  }
  // Created only if absent in the store too: another node may have made it a moment ago.
  RETURN_IF_ERROR(store_->put_role({role.name, policy::role_to_json(role)}, store::PutMode::kCreate));
  RETURN_IF_ERROR(rebuild_roles());
  to_spec(role, resp->mutable_role());
  return Status::ok();
}

// ---- role.enumerate
Status VolumeService::enumerate_roles(Call&, const v1::Empty&, v1::RoleEnumerateResponse* resp) {
  for (const auto& r : roles_.current()->roles()) resp->add_names(r.name);
  return Status::ok();
}

// ---- role.inspect
Status VolumeService::inspect_role(Call& call, const v1::RoleRef& req, v1::RoleResponse* resp) {
  call.resource_for_log = "role/" + req.name();
  auto roles = roles_.current();
  const auto* r = roles->find(req.name());
  if (!r) return Status(Code::kNotFound, "role_not_found", "role '" + req.name() + "' not found");
  to_spec(*r, resp->mutable_role());
  return Status::ok();
}

// ---- role.update
Status VolumeService::update_role(Call& call, const v1::RoleRequest& req, v1::RoleResponse* resp) {
  policy::Role role = from_spec(req.role());
  call.resource_for_log = "role/" + role.name;
  RETURN_IF_ERROR(policy::validate_role(role));
  std::lock_guard lock(roles_mu_);
  if (policy::is_default_role(role.name) && !policy::is_mutable_default_role(role.name)) {
    return Status(Code::kPermissionDenied, "role_immutable",
                  "role " + role.name + " is a system role and cannot be updated "
                  "(only system.guest can)");
  }
  if (!roles_.current()->find(role.name)) {
    return Status(Code::kNotFound, "role_not_found", "role '" + role.name + "' not found");
  }
  RETURN_IF_ERROR(store_->put_role({role.name, policy::role_to_json(role)}, store::PutMode::kUpsert));
  RETURN_IF_ERROR(rebuild_roles());
  to_spec(role, resp->mutable_role());
  return Status::ok();
}

// ---- role.delete
Status VolumeService::delete_role(Call& call, const v1::RoleRef& req, v1::Empty*) {
  call.resource_for_log = "role/" + req.name();
  std::lock_guard lock(roles_mu_);
  if (policy::is_default_role(req.name())) {
    return Status(Code::kPermissionDenied, "role_immutable",
                  "role " + req.name() + " is a system role and cannot be deleted");
  }
  if (auto s = store_->delete_role(req.name()); !s.is_ok()) {
    if (s.code() == Code::kNotFound) {
      return Status(Code::kNotFound, "role_not_found", "role '" + req.name() + "' not found");
    }
    return s;
  }
  return rebuild_roles();
}

}  // namespace volguard::service
