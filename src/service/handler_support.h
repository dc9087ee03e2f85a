// What the method handlers share: request field checks (each refusal names its field) and the
// record → response fills. Internal to src/service/.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "ownership/ownership.h"
#include "store/store.h"
#include "volguard.pb.h"

namespace volguard::service {

// Server ids are 16 lowercase hex digits (new_id); no name may take that shape.
inline constexpr size_t kIdLength = 16;
bool looks_like_id(const std::string& ref);
std::string new_id();
int64_t now_unix();

// INVALID_ARGUMENT `invalid_<field>` "<field>: <why>".
Status invalid(const std::string& field, const std::string& why);
// Volume and snapshot names: safe in logs, file names and URLs, and never shaped like an id.
Status check_name(const std::string& field, const std::string& name);
Status check_labels(const google::protobuf::Map<std::string, std::string>& labels);
Result<ownership::Access> parse_grant(const std::string& field, const std::string& who,
                                      const std::string& text);

// Cleanup that cannot undo the caller's failure (an undo, a recovery step): a failure is not the
// caller's answer, but it must never be silent — recovery at the next start finishes the job.
void log_if_failed(const Status& s, const char* what, const std::string& id);

// "owner O; groups a/eng:w; collaborators a/bob:r; public r": what a new volume was created
// with, for its audit record (an auditor must see the grants it started with).
std::string grants_text(const ownership::Ownership& o);
// ", encrypted (fscrypt; key main, kek local:…)" for an audit message; "" for a plain record.
// Names the KEK, never key material.
std::string encryption_text(const std::string& encryption, const store::WrappedDataKey& key);

void fill_ownership(const ownership::Ownership& o, v1::Ownership* out);
// A snapshot shows its volume's ownership: that is what decides access to it.
void fill_snapshot(const store::SnapshotRecord& s, const ownership::Ownership& o, v1::Snapshot* out);

}  // namespace volguard::service
