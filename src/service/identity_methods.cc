// identity.*: whoami and capabilities (`auth can-i`). identity.version needs nothing of the
// service and is registered inline.
#include "common/text.h"
#include "service/handler_support.h"
#include "service/volume_service.h"

namespace volguard::service {

// ---- identity.whoami
Status VolumeService::whoami(Call& call, const v1::Empty&, v1::WhoAmIResponse* resp) {
  const auto& who = *call.who;
  resp->set_username(who.username);
  resp->set_subject(who.subject);
  resp->set_name(who.name);
  resp->set_email(who.email);
  resp->set_issuer(who.issuer);
  resp->set_group_domain(who.group_domain);
  for (const auto& r : who.roles) resp->add_roles(r);
  for (const auto& g : who.groups) resp->add_groups(g);
  resp->set_principal(who.principal());
  resp->set_guest(who.guest);
  resp->set_ownership_admin(admins_.is_admin(who));
  if (who.expires_at) resp->set_expires_at(rfc3339(who.expires_at));
  fill_quotas(who, resp);
  return Status::ok();
}

// ---- identity.capabilities
Status VolumeService::capabilities(Call& call, const v1::CapabilitiesRequest& req, v1::CapabilitiesResponse* resp) {
  std::string key = to_lower(req.method());
  const Pipeline& pipeline = *call.pipeline;
  const MethodSpec* spec = pipeline.table().find(key);
  if (!spec) return invalid("method", "'" + req.method() + "' is not a volguard method");
  // The pipeline's own decision, with only the first resource (the one can-i names).
  std::vector<std::string> refs(spec->resources.size());
  if (!refs.empty()) refs[0] = req.volume();
  CallDecision d = pipeline.decide(*spec, *call.who, refs, *spec->request_prototype,
                                   DecideMode::kExplain, nullptr);
  resp->set_role(d.role);
  resp->set_rule(d.rule);
  // Missing and unreadable look the same here as everywhere: not found.
  if (d.status.code() == Code::kNotFound) return d.status;
  resp->set_allowed(d.status.is_ok());
  if (!d.status.is_ok()) resp->set_reason(d.status.message());
  if (!req.volume().empty() && !spec->resources.empty() && d.needed != Access::kNone) {
    resp->set_access_needed(ownership::access_name(d.needed));
    resp->set_access_granted(ownership::access_name(d.granted));
    resp->set_access_via(d.via);
  }
  return Status::ok();
}

}  // namespace volguard::service
