// Per-tenant capacity quotas and the bounds every request obeys (issue 9 §5).
//
// A quota belongs to a subject: a principal, a group (the tenant) or the guest. A volume is
// charged to its owner principal and to the groups its creator carried (recorded on the
// volume), a guest's volume to the guest; a snapshot counts against its volume's subjects.
// Usage is derived from the in-memory catalog, never stored, so it cannot drift; requests in
// flight hold a reservation, so concurrent requests cannot overshoot a limit together.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "config/config.h"
#include "identity/identity.h"
#include "store/store.h"

namespace volguard::service {

using config::QuotaLimits;

// Upper bounds on a volume's labels: they are kept in memory and copied into every listing.
inline constexpr size_t kMaxLabels = 64;
inline constexpr size_t kMaxLabelBytes = 16 * 1024;  // keys + values

struct QuotaSubject {
  store::QuotaKind kind = store::QuotaKind::kUser;
  std::string name;  // principal, qualified group, "" for the guest
  auto operator<=>(const QuotaSubject&) const = default;
  // "user test.local/alice", "group test.local/eng", "guest": for messages.
  std::string text() const;
};

struct QuotaUsage {
  uint64_t bytes = 0;
  uint64_t volumes = 0;
  uint64_t snapshots = 0;
};

// The caller's groups as quotas, grants and charges name them. The one place that turns an
// identity's group claims into quota subjects.
std::vector<std::string> qualified_groups(const identity::Identity& who);

// Who a volume is charged to: its owner, the groups recorded at creation, the guest.
std::vector<QuotaSubject> charged_subjects(const store::VolumeRecord& v);

// a + b, or UINT64_MAX when it would wrap: usage sums must never wrap to a small number.
uint64_t saturating_add(uint64_t a, uint64_t b);

// A volume size as the user wrote it ("16M"): INVALID_ARGUMENT
// `invalid_size` for bad syntax, OUT_OF_RANGE `size_out_of_range` for 2^63 and above, OUT_OF_RANGE
// `size_too_large` above limits.max_volume_size.
[[nodiscard]] Result<uint64_t> parse_volume_size(const std::string& text, uint64_t max_volume_size);

// Bounds on a volume's whole label set; INVALID_ARGUMENT `invalid_labels` naming `field`.
[[nodiscard]] Status check_label_bounds(const std::string& field,
                                        const std::map<std::string, std::string>& labels);

class QuotaBook;

// What one request holds against quotas while it runs; released when destroyed. Keep it until
// the new record is in the catalog (where usage is counted) or the request has failed.
class QuotaReservation {
 public:
  QuotaReservation() = default;
  QuotaReservation(QuotaReservation&& other) noexcept;
  QuotaReservation& operator=(QuotaReservation&& other) noexcept;
  QuotaReservation(const QuotaReservation&) = delete;
  QuotaReservation& operator=(const QuotaReservation&) = delete;
  ~QuotaReservation();

 private:
  friend class QuotaBook;
  void release();
  QuotaBook* book_ = nullptr;
  std::vector<QuotaSubject> subjects_;
  QuotaUsage amount_;
};

// The limits in force (stored quotas, the configured guest default) and the reservations in
// flight. Thread-safe.
class QuotaBook {
 public:
  // Usage of each subject (same order) as the catalog holds it right now.
  using UsageFn = std::function<std::vector<QuotaUsage>(const std::vector<QuotaSubject>&)>;

  explicit QuotaBook(const QuotaLimits& guest_default) : guest_default_(guest_default) {}

  // Replaces every stored quota (at start).
  void load(const std::vector<store::QuotaRecord>& records);
  // Stores (or, with nullopt, removes) one subject's quota in memory; the caller has written
  // the store first.
  void put(const QuotaSubject& subject, const std::optional<QuotaLimits>& limits);

  struct InForce {
    QuotaLimits limits;
    const char* source = "none";  // "set" (quota.set), "config" (quotas.guest), "none"
  };
  InForce limits_of(const QuotaSubject& subject) const;
  std::vector<QuotaSubject> stored_subjects() const;

  // Admits `amount` for every subject, or refuses RESOURCE_EXHAUSTED `quota_exceeded` naming the
  // first quota it would exceed. Usage, reservations in flight and the check are one critical
  // section, so two requests can never both take the last unit.
  [[nodiscard]] Result<QuotaReservation> reserve(std::vector<QuotaSubject> subjects,
                                                 const QuotaUsage& amount, const UsageFn& usage);

 private:
  friend class QuotaReservation;
  void release(const std::vector<QuotaSubject>& subjects, const QuotaUsage& amount);
  InForce limits_locked(const QuotaSubject& subject) const;

  mutable std::mutex mu_;
  QuotaLimits guest_default_;
  std::map<QuotaSubject, QuotaLimits> stored_;
  std::map<QuotaSubject, QuotaUsage> pending_;
};

}  // namespace volguard::service
