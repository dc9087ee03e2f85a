#include "service/quota.h"

#include <algorithm>

#include "driver/driver.h"

namespace volguard::service {

namespace {

// One quota dimension of a refusal: "max_volumes is 3; in use 3 (+1 in flight), requested 1".
std::string exceeded_text(const char* limit_name, uint64_t limit, uint64_t used, uint64_t pending,
                          uint64_t requested, bool bytes) {
  auto show = [bytes](uint64_t v) { return bytes ? driver::format_size(v) : std::to_string(v); };
  return std::string(limit_name) + " is " + show(limit) + "; in use " + show(used) + " (+" +
         show(pending) + " in flight), requested " + show(requested);
}

}  // namespace

uint64_t saturating_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

std::string QuotaSubject::text() const {
  if (kind == store::QuotaKind::kGuest) return "guest";
  return std::string(store::quota_kind_name(kind)) + " " + name;
}

std::vector<std::string> qualified_groups(const identity::Identity& who) {
  std::vector<std::string> out;
  for (const auto& g : who.groups) {
    // "*" in a token marks an ownership admin, not a tenant: nobody is charged as group "*".
    if (g == "*") continue;
    std::string q = who.qualified_group(g);
    if (!q.empty() && std::find(out.begin(), out.end(), q) == out.end()) out.push_back(std::move(q));
  }
  return out;
}

std::vector<QuotaSubject> charged_subjects(const store::VolumeRecord& v) {
  std::vector<QuotaSubject> out;
  if (!v.ownership.owner.empty()) out.push_back({store::QuotaKind::kUser, v.ownership.owner});
  for (const auto& g : v.charged_groups) out.push_back({store::QuotaKind::kGroup, g});
  if (v.charged_guest) out.push_back({store::QuotaKind::kGuest, ""});
  return out;
}

Result<uint64_t> parse_volume_size(const std::string& text, uint64_t max_volume_size) {
  auto size = driver::parse_size(text);
  if (!size) {
    // OUT_OF_RANGE (2^63 and above) keeps its code: valid syntax, impossible amount.
    if (size.status().code() == Code::kOutOfRange) return size.status();
    return Status(Code::kInvalidArgument, "invalid_size", "size: " + size.status().message());
  }
  if (*size > max_volume_size) {
    return Status(Code::kOutOfRange, "size_too_large",
                  "size: " + driver::format_size(*size) + " exceeds the largest volume this server "
                  "makes (limits.max_volume_size " + driver::format_size(max_volume_size) + ")");
  }
  return *size;
}

Status check_label_bounds(const std::string& field,
                          const std::map<std::string, std::string>& labels) {
  if (labels.size() > kMaxLabels) {
    return Status(Code::kInvalidArgument, "invalid_labels",
                  field + ": a volume may carry at most " + std::to_string(kMaxLabels) +
                      " labels (this request leaves " + std::to_string(labels.size()) + ")");
  }
  size_t total = 0;
  for (const auto& [k, v] : labels) total += k.size() + v.size();
  if (total > kMaxLabelBytes) {
    return Status(Code::kInvalidArgument, "invalid_labels",
                  field + ": a volume's labels may total at most " +
                      std::to_string(kMaxLabelBytes) + " bytes of keys and values (this request "
                      "leaves " + std::to_string(total) + ")");
  }
  return Status::ok();
}

// ---- QuotaReservation

QuotaReservation::QuotaReservation(QuotaReservation&& other) noexcept
    : book_(std::exchange(other.book_, nullptr)),
      subjects_(std::move(other.subjects_)),
      amount_(other.amount_) {}

QuotaReservation& QuotaReservation::operator=(QuotaReservation&& other) noexcept {
  if (this != &other) {
    release();
    book_ = std::exchange(other.book_, nullptr);
    subjects_ = std::move(other.subjects_);
    amount_ = other.amount_;
  }
  return *this;
}

QuotaReservation::~QuotaReservation() { release(); }

void QuotaReservation::release() {
  if (book_ != nullptr) std::exchange(book_, nullptr)->release(subjects_, amount_);
}

// ---- QuotaBook

void QuotaBook::load(const std::vector<store::QuotaRecord>& records) {
  std::map<QuotaSubject, QuotaLimits> stored;
  for (const auto& r : records) {
    stored[{r.kind, r.name}] = {r.max_bytes, r.max_volumes, r.max_snapshots};
  }
  std::lock_guard lock(mu_);
  stored_ = std::move(stored);
}

void QuotaBook::put(const QuotaSubject& subject, const std::optional<QuotaLimits>& limits) {
  std::lock_guard lock(mu_);
  if (limits) {
    stored_[subject] = *limits;
  } else {
    stored_.erase(subject);
  }
}

QuotaBook::InForce QuotaBook::limits_locked(const QuotaSubject& subject) const {
  if (auto it = stored_.find(subject); it != stored_.end()) return {it->second, "set"};
  if (subject.kind == store::QuotaKind::kGuest) return {guest_default_, "config"};
  return {};
}

QuotaBook::InForce QuotaBook::limits_of(const QuotaSubject& subject) const {
  std::lock_guard lock(mu_);
  return limits_locked(subject);
}

std::vector<QuotaSubject> QuotaBook::stored_subjects() const {
  std::lock_guard lock(mu_);
  std::vector<QuotaSubject> out;
  for (const auto& [s, l] : stored_) out.push_back(s);
  return out;
}

Result<QuotaReservation> QuotaBook::reserve(std::vector<QuotaSubject> subjects,
                                            const QuotaUsage& amount, const UsageFn& usage) {
  std::sort(subjects.begin(), subjects.end());
  subjects.erase(std::unique(subjects.begin(), subjects.end()), subjects.end());
  std::lock_guard lock(mu_);
  if (!subjects.empty()) {
    const std::vector<QuotaUsage> used = usage(subjects);
    for (size_t i = 0; i < subjects.size(); ++i) {
      const QuotaLimits limits = limits_locked(subjects[i]).limits;
      QuotaUsage pending;
      if (auto it = pending_.find(subjects[i]); it != pending_.end()) pending = it->second;
      // Only the dimensions this request grows are checked: a resize is not refused because
      // the volume count is already over a quota lowered since.
      struct Dimension {
        const char* name;
        uint64_t limit, used, pending, requested;
        bool bytes;
      };
      const Dimension dims[] = {
          {"max_bytes", limits.max_bytes, used[i].bytes, pending.bytes, amount.bytes, true},
          {"max_volumes", limits.max_volumes, used[i].volumes, pending.volumes, amount.volumes,
           false},
          {"max_snapshots", limits.max_snapshots, used[i].snapshots, pending.snapshots,
           amount.snapshots, false},
      };
      for (const auto& d : dims) {
        if (d.limit == 0 || d.requested == 0) continue;
        if (saturating_add(saturating_add(d.used, d.pending), d.requested) > d.limit) {
          return Status(Code::kResourceExhausted, "quota_exceeded",
                        "quota of " + subjects[i].text() + " exceeded: " +
                            exceeded_text(d.name, d.limit, d.used, d.pending, d.requested, d.bytes));
        }
      }
    }
    for (const auto& s : subjects) {
      QuotaUsage& p = pending_[s];
      p.bytes = saturating_add(p.bytes, amount.bytes);
      p.volumes += amount.volumes;
      p.snapshots += amount.snapshots;
    }
  }
  QuotaReservation held;
  held.book_ = this;
  held.subjects_ = std::move(subjects);
  held.amount_ = amount;
  return held;
}

void QuotaBook::release(const std::vector<QuotaSubject>& subjects, const QuotaUsage& amount) {
  std::lock_guard lock(mu_);
  for (const auto& s : subjects) {
    auto it = pending_.find(s);
    if (it == pending_.end()) continue;
    QuotaUsage& p = it->second;
    p.bytes -= std::min(p.bytes, amount.bytes);
    p.volumes -= std::min(p.volumes, amount.volumes);
    p.snapshots -= std::min(p.snapshots, amount.snapshots);
    if (p.bytes == 0 && p.volumes == 0 && p.snapshots == 0) pending_.erase(it);
  }
}

}  // namespace volguard::service
