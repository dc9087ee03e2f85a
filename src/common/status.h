// One error type across all layers. `code` maps 1:1 onto gRPC status codes (same numbers) and
// onto HTTP statuses; `reason` is a stable machine-readable string; `message` is for humans and
// must never carry a token or a secret.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace volguard {

enum class Code : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

const char* code_name(Code code);
int http_status_of(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string reason, std::string message)
      : code_(code), reason_(std::move(reason)), message_(std::move(message)) {}

  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& reason() const { return reason_; }
  const std::string& message() const { return message_; }
  // "PERMISSION_DENIED rbac_denied: ..." — for logs and CLI stderr.
  std::string to_string() const;

 private:
  Code code_ = Code::kOk;
  std::string reason_;
  std::string message_;
};

// A value or the Status explaining why there is none (std::expected is C++23). [[nodiscard]] like
// Status: a dropped Result is a dropped error.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  const T& value() const& { return std::get<T>(v_); }
  T& value() & { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }
  const Status& status() const {
    static const Status kOkStatus;
    return is_ok() ? kOkStatus : std::get<Status>(v_);
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace volguard

// Early returns for the one error type, so that a function reads as its steps.
//
//   RETURN_IF_ERROR(store->put(rec));             // returns the Status unless it is OK
//   ASSIGN_OR_RETURN(auto key, load_key(path));   // declares `key` from a Result<T>
//   ASSIGN_OR_RETURN(out.issuer, get_string(n));  // or assigns to an existing object
//
// Both work in functions returning Status or Result<U> (a Status converts to either).
// RETURN_IF_ERROR takes a Status only (for a Result, test it or use ASSIGN_OR_RETURN).
// ASSIGN_OR_RETURN expands to several statements: use it as a statement of its own, never as the
// body of an unbraced if/else or loop; `lhs` must not contain an unparenthesised comma.
#define RETURN_IF_ERROR(...)                                                                   \
  do {                                                                                         \
    if (::volguard::Status vg_status_ = (__VA_ARGS__); !vg_status_.is_ok()) return vg_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, ...) \
  VG_ASSIGN_OR_RETURN_IMPL_(VG_CONCAT_(vg_result_, __COUNTER__), lhs, (__VA_ARGS__))

// Implementation details of ASSIGN_OR_RETURN: a uniquely named temporary holds the Result.
#define VG_CONCAT_INNER_(a, b) a##b
#define VG_CONCAT_(a, b) VG_CONCAT_INNER_(a, b)
#define VG_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.is_ok()) return tmp.status();          \
  lhs = std::move(tmp).value()
