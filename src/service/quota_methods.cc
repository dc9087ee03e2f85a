// Quotas in the service: the quota.* methods, usage from the catalog, and the reservations
// that volume.create / clone / update (grow) and volume.snapshotcreate take before any work.
#include <google/protobuf/repeated_ptr_field.h>

#include <algorithm>

#include "driver/driver.h"
#include "service/quota.h"
#include "service/volume_service.h"
#include "volguard.pb.h"

namespace volguard::service {

namespace {

using store::QuotaKind;
using Quotas = google::protobuf::RepeatedPtrField<v1::Quota>;

// Every quota that applies to `who`: their principal and groups, or the guest's. Nothing when
// security is off (no caller is anybody).
std::vector<QuotaSubject> subjects_of(const identity::Identity& who) {
  if (who.guest) return {{QuotaKind::kGuest, ""}};
  std::vector<QuotaSubject> out;
  if (who.issuer.empty()) return out;
  out.push_back({QuotaKind::kUser, who.principal()});
  for (auto& g : qualified_groups(who)) out.push_back({QuotaKind::kGroup, std::move(g)});
  return out;
}

void add_quotas(const QuotaBook& book, const std::vector<QuotaSubject>& subjects,
                const std::vector<QuotaUsage>& usage, Quotas* out) {
  for (size_t i = 0; i < subjects.size(); ++i) {
    const auto in_force = book.limits_of(subjects[i]);
    auto* q = out->Add();
    q->set_kind(store::quota_kind_name(subjects[i].kind));
    q->set_subject(subjects[i].name);
    q->set_max_bytes(in_force.limits.max_bytes);
    q->set_max_volumes(in_force.limits.max_volumes);
    q->set_max_snapshots(in_force.limits.max_snapshots);
    q->set_used_bytes(usage[i].bytes);
    q->set_used_volumes(usage[i].volumes);
    q->set_used_snapshots(usage[i].snapshots);
    q->set_source(in_force.source);
  }
}

std::string limits_text(const QuotaLimits& l) {
  auto count = [](uint64_t v) { return v == 0 ? std::string("unlimited") : std::to_string(v); };
  return "max_bytes " + (l.max_bytes == 0 ? std::string("unlimited") : driver::format_size(l.max_bytes)) +
         ", max_volumes " + count(l.max_volumes) + ", max_snapshots " + count(l.max_snapshots);
}

}  // namespace

Status VolumeService::load_quotas() {
  std::lock_guard reload(reload_mu_);
  auto stored = store_->list_quotas();
  if (!stored) return stored.status();
  quotas_.load(*stored);
  return Status::ok();
}

std::vector<QuotaUsage> VolumeService::catalog_usage(const std::vector<QuotaSubject>& subjects) const {
  std::vector<QuotaUsage> out(subjects.size());
  auto index_of = [&](const QuotaSubject& s) -> size_t {
    return static_cast<size_t>(std::find(subjects.begin(), subjects.end(), s) - subjects.begin());
  };
  std::shared_lock lock(catalog_mu_);
  for (const auto& [id, v] : volumes_) {
    for (const auto& s : charged_subjects(*v)) {
      if (size_t i = index_of(s); i < out.size()) {
        out[i].bytes = saturating_add(out[i].bytes, v->size_bytes);
        ++out[i].volumes;
      }
    }
  }
  for (const auto& [id, snap] : snapshots_) {
    // A snapshot counts against its volume's subjects, evaluated now (as its access is).
    auto v = volumes_.find(snap->volume_id);
    if (v == volumes_.end()) continue;
    for (const auto& s : charged_subjects(*v->second)) {
      // A snapshot is a full copy of the image: it takes the volume's size from max_bytes too.
      if (size_t i = index_of(s); i < out.size()) {
        out[i].bytes = saturating_add(out[i].bytes, snap->size_bytes);
        ++out[i].snapshots;
      }
    }
  }
  return out;
}

Result<QuotaReservation> VolumeService::reserve_new_volume(const Call& call,
                                                           store::VolumeRecord* rec) {
  if (call.security_enabled) {
    if (call.who->guest) {
      rec->charged_guest = true;
    } else {
      rec->charged_groups = qualified_groups(*call.who);
    }
  }
  return reserve_for(call, *rec, {rec->size_bytes, 1, 0});
}

Result<QuotaReservation> VolumeService::reserve_for(const Call& call,
                                                    const store::VolumeRecord& volume,
                                                    const QuotaUsage& amount) {
  // Security off: nobody is anybody, so there is no one to charge.
  if (!call.security_enabled) return QuotaReservation();
  return quotas_.reserve(charged_subjects(volume), amount,
                         [this](const std::vector<QuotaSubject>& s) { return catalog_usage(s); });
}

void VolumeService::fill_quotas(const identity::Identity& who, v1::WhoAmIResponse* out) const {
  auto subjects = subjects_of(who);
  add_quotas(quotas_, subjects, catalog_usage(subjects), out->mutable_quotas());
}

// Where new volumes go, and what the caller's quotas still allow: the tightest max_bytes among
// the quotas that apply to the caller (each its limit minus what is charged to it).
Status VolumeService::volume_capacity(Call& call, const v1::Empty&, v1::CapacityResponse* resp) {
  ASSIGN_OR_RETURN(driver::VolumeDriver::Capacity disk, driver_->capacity());
  resp->set_available_bytes(disk.available_bytes);
  resp->set_total_bytes(disk.total_bytes);
  if (!call.security_enabled) return Status::ok();
  const auto subjects = subjects_of(*call.who);
  const auto usage = catalog_usage(subjects);
  for (size_t i = 0; i < subjects.size(); ++i) {
    const uint64_t limit = quotas_.limits_of(subjects[i]).limits.max_bytes;
    if (limit == 0) continue;  // unlimited
    const uint64_t left = limit > usage[i].bytes ? limit - usage[i].bytes : 0;
    if (!resp->quota_limited() || left < resp->quota_available_bytes()) {
      resp->set_quota_limited(true);
      resp->set_quota_available_bytes(left);
    }
  }
  return Status::ok();
}

// The one subject a request names: exactly one of user, group, guest; users and groups
// qualified as grants are, so that a quota and a grant name the same tenant the same way.
Result<QuotaSubject> VolumeService::quota_subject(const identity::Identity& who, const std::string& user,
                                                  const std::string& group, bool guest) const {
  if (!user.empty() + !group.empty() + guest != 1) {
    return Status(Code::kInvalidArgument, "invalid_subject",
                  "subject: give exactly one of user, group or guest");
  }
  if (guest) return QuotaSubject{QuotaKind::kGuest, ""};
  auto name = !user.empty() ? qualify_user(who, user) : qualify_group(who, group);
  if (!name) return name.status();
  if (*name == "*") {
    return Status(Code::kInvalidArgument, "invalid_subject", "subject: '*' is everyone, not one user or group");
  }
  return QuotaSubject{!user.empty() ? QuotaKind::kUser : QuotaKind::kGroup, *name};
}

// ---- quota.set
Status VolumeService::set_quota(Call& call, const v1::QuotaSetRequest& req, v1::QuotaResponse* resp) {
  auto subject = quota_subject(*call.who, req.user(), req.group(), req.guest());
  if (!subject) return subject.status();
  call.resource_for_log = std::string("quota/") + store::quota_kind_name(subject->kind) +
                          (subject->name.empty() ? "" : ":" + subject->name);
  const struct {
    const char* field;
    bool given;
    uint64_t value;
  } fields[] = {{"max_bytes", req.has_max_bytes(), req.max_bytes()},
                {"max_volumes", req.has_max_volumes(), req.max_volumes()},
                {"max_snapshots", req.has_max_snapshots(), req.max_snapshots()}};
  bool any = false;
  for (const auto& f : fields) {
    any = any || f.given;
    // Same bound as sizes: usage and limits stay in the signed 64-bit range everywhere.
    if (f.given && f.value > static_cast<uint64_t>(INT64_MAX)) {
      return Status(Code::kOutOfRange, "limit_out_of_range",
                    std::string(f.field) + ": " + std::to_string(f.value) +
                        " is too large (at most 2^63 - 1; 0 means unlimited)");
    }
  }
  if (req.reset() && any) {
    return Status(Code::kInvalidArgument, "invalid_reset",
                  "reset: cannot be combined with max_bytes, max_volumes or max_snapshots");
  }
  if (!req.reset() && !any) {
    return Status(Code::kInvalidArgument, "invalid_max_bytes",
                  "max_bytes: give at least one of max_bytes, max_volumes, max_snapshots "
                  "(0 = unlimited), or reset");
  }
  std::lock_guard lock(quota_set_mu_);
  std::optional<QuotaLimits> next;
  if (!req.reset()) {
    // Limits not named keep their value: raising bytes does not lift the volume count.
    QuotaLimits l = quotas_.limits_of(*subject).limits;
    if (req.has_max_bytes()) l.max_bytes = req.max_bytes();
    if (req.has_max_volumes()) l.max_volumes = req.max_volumes();
    if (req.has_max_snapshots()) l.max_snapshots = req.max_snapshots();
    // A user or group without any limit needs no row; the guest's all-zero row matters:
    // it overrides the configured default.
    if (l != QuotaLimits{} || subject->kind == QuotaKind::kGuest) next = l;
  }
  std::unique_lock reload(reload_mu_);  // store and publish as one, against a watch reload
  if (next) {
    store::QuotaRecord rec{subject->kind, subject->name, next->max_bytes, next->max_volumes,
                           next->max_snapshots};
    RETURN_IF_ERROR(store_->put_quota(rec));
  } else if (auto s = store_->delete_quota(subject->kind, subject->name);
             !s.is_ok() && s.code() != Code::kNotFound) {
    return s;
  }
  quotas_.put(*subject, next);
  reload.unlock();
  call.audit_message =
      "Quota of " + subject->text() +
      (next ? " set: " + limits_text(*next)
            : std::string(" reset (") +
                  (subject->kind == QuotaKind::kGuest ? "quotas.guest of the config"
                                                      : "unlimited") +
                  ")");
  std::vector<QuotaSubject> one{*subject};
  add_quotas(quotas_, one, catalog_usage(one), resp->mutable_quotas());
  return Status::ok();
}

// ---- quota.show
Status VolumeService::show_quota(Call& call, const v1::QuotaShowRequest& req, v1::QuotaResponse* resp) {
  const auto& who = *call.who;
  const bool named = !req.user().empty() || !req.group().empty() || req.guest();
  std::vector<QuotaSubject> subjects;
  if (!named && !req.all()) {
    subjects = subjects_of(who);
  } else {
    // The decision quota.set itself would get — the pipeline's one decision, not a second
    // reading of the roles: whoever may set quotas may see anyone's.
    const MethodSpec* set_spec = call.pipeline->table().find("quota.set");
    const bool admin = !call.security_enabled ||
                       (set_spec != nullptr && call.pipeline
                                                   ->decide(*set_spec, who, {}, *set_spec->request_prototype,
                                                            DecideMode::kEnforce, nullptr)
                                                   .status.is_ok());
    if (req.all()) {
      if (named) {
        return Status(Code::kInvalidArgument, "invalid_all",
                      "all: cannot be combined with user, group or guest");
      }
      if (!admin) {
        return Status(Code::kPermissionDenied, "quota_admin_required",
                      "quota.show of every quota needs a role that allows quota.set");
      }
      subjects = quotas_.stored_subjects();
      QuotaSubject guest{QuotaKind::kGuest, ""};
      if (std::find(subjects.begin(), subjects.end(), guest) == subjects.end()) {
        subjects.push_back(guest);
      }
    } else {
      auto subject = quota_subject(who, req.user(), req.group(), req.guest());
      if (!subject) return subject.status();
      auto mine = subjects_of(who);
      if (!admin && std::find(mine.begin(), mine.end(), *subject) == mine.end()) {
        return Status(Code::kPermissionDenied, "quota_admin_required",
                      "quota.show of " + subject->text() +
                          " needs a role that allows quota.set: a caller sees only the "
                          "quotas that apply to them");
      }
      subjects.push_back(std::move(*subject));
    }
  }
  add_quotas(quotas_, subjects, catalog_usage(subjects), resp->mutable_quotas());
  return Status::ok();
}

}  // namespace volguard::service
