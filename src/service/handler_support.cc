#include "service/handler_support.h"

#include <spdlog/spdlog.h>

#include <ctime>

#include "common/hex.h"
#include "common/text.h"

namespace volguard::service {

// Cleanup that cannot undo the caller's failure (an undo, a recovery step): a failure is not the
// caller's answer, but it must never be silent — recovery at the next start finishes the job.
void log_if_failed(const Status& s, const char* what, const std::string& id) {
  if (!s.is_ok()) spdlog::warn("{} {}: {} (left for recovery at the next start)", what, id, s.to_string());
}

// "owner O; groups a/eng:w; collaborators a/bob:r; public r": what a new volume was created
// with, for its audit record (an auditor must see the grants it started with).
std::string grants_text(const ownership::Ownership& o) {
  auto list = [](const std::map<std::string, ownership::Access>& m) {
    std::string out;
    for (const auto& [who, a] : m) out += (out.empty() ? "" : ",") + who + ":" + ownership::access_name(a);
    return out.empty() ? std::string("none") : out;
  };
  return "owner " + (o.owner.empty() ? std::string("none") : o.owner) + "; groups " + list(o.groups) +
         "; collaborators " + list(o.collaborators) + "; public " +
         (o.public_access == ownership::Access::kNone ? std::string("none")
                                                      : std::string(ownership::access_name(o.public_access)));
}

std::string new_id() { return random_hex(kIdLength / 2); }

int64_t now_unix() { return static_cast<int64_t>(std::time(nullptr)); }

bool looks_like_id(const std::string& ref) {
  if (ref.size() != kIdLength) return false;
  for (char c : ref) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Status invalid(const std::string& field, const std::string& why) {
  return Status(Code::kInvalidArgument, "invalid_" + field, field + ": " + why);
}

// Volume and snapshot names: safe in logs, file names and URLs.
Status check_name(const std::string& field, const std::string& name) {
  RETURN_IF_ERROR(volguard::check_name(field, name));
  if (looks_like_id(name)) {
    return Status(Code::kInvalidArgument, "name_looks_like_id",
                  field + ": '" + name + "' has the shape of an id (16 hex digits); ids and names "
                  "are separate, so pick a name that is not");
  }
  return Status::ok();
}

Status check_labels(const google::protobuf::Map<std::string, std::string>& labels) {
  for (const auto& [k, v] : labels) {
    if (k.empty() || k.size() > 253) return invalid("labels", "keys must be 1..253 characters");
    if (v.size() > 1024) return invalid("labels", "value of '" + k + "' exceeds 1024 characters");
    for (char c : k + v) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        return invalid("labels", "'" + k + "' contains control characters");
      }
    }
  }
  return Status::ok();
}

Result<ownership::Access> parse_grant(const std::string& field, const std::string& who,
                                      const std::string& text) {
  auto a = ownership::parse_access(text);
  if (!a) return invalid(field, who + ": access '" + text + "' must be r, w or a");
  return *a;
}

void fill_ownership(const ownership::Ownership& o, v1::Ownership* out) {
  out->set_owner(o.owner);
  for (const auto& [k, v] : o.groups) (*out->mutable_groups())[k] = std::string(1, ownership::access_letter(v));
  for (const auto& [k, v] : o.collaborators) {
    (*out->mutable_collaborators())[k] = std::string(1, ownership::access_letter(v));
  }
  out->set_public_(o.public_access == ownership::Access::kNone
                       ? ""
                       : std::string(1, ownership::access_letter(o.public_access)));
}

// A snapshot shows its volume's ownership: that is what decides access to it.
void fill_snapshot(const store::SnapshotRecord& s, const ownership::Ownership& o, v1::Snapshot* out) {
  out->set_id(s.id);
  out->set_name(s.name);
  out->set_volume_id(s.volume_id);
  out->set_size_bytes(s.size_bytes);
  fill_ownership(o, out->mutable_ownership());
  out->set_created_at(rfc3339(s.created_at));
  out->set_encrypted(!s.encryption.empty());
}


std::string encryption_text(const std::string& encryption, const store::WrappedDataKey& key) {
  if (encryption.empty()) return "";
  return ", encrypted (" + encryption + "; key " + key.key_name + ", kek " + key.kek_id + ")";
}

}  // namespace volguard::service
