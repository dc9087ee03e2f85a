// The audit trail: an access log (every authorization decision, refusals included) and an
// audit log (every state change, durable before it is acknowledged, HMAC-chained so that an
// edit, deletion, insertion, reordering or cut is detected by `volguard audit verify`).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/fd.h"
#include "common/status.h"

namespace volguard::audit {

// What a value is, for the JSON format: logfmt writes every value as text, JSON writes numbers
// and booleans bare and lists (roles, groups) and request parameters as JSON, so that a log
// shipper indexes `seq` as a number and `groups` as an array whose elements cannot be confused
// with a separator inside one group's name.
enum class ValueKind { kString, kNumber, kBool, kJson };

// One record: ordered key/value fields (time, level and msg first). Values are kept as text
// (what logfmt writes and verify reads); `kinds` runs beside `fields`.
struct Record {
  std::vector<std::pair<std::string, std::string>> fields;
  std::vector<ValueKind> kinds;
  void add(std::string key, std::string value) { add_as(std::move(key), std::move(value), ValueKind::kString); }
  void add_number(std::string key, std::string digits) {
    add_as(std::move(key), std::move(digits), ValueKind::kNumber);
  }
  void add_bool(std::string key, bool value) { add_as(std::move(key), value ? "true" : "false", ValueKind::kBool); }
  // `json` is JSON text (an array, an object); written as a string when it does not parse.
  void add_json(std::string key, std::string json) { add_as(std::move(key), std::move(json), ValueKind::kJson); }
  void add_as(std::string key, std::string value, ValueKind kind) {
    fields.emplace_back(std::move(key), std::move(value));
    kinds.resize(fields.size() - 1, ValueKind::kString);
    kinds.push_back(kind);
  }
  ValueKind kind(size_t i) const { return i < kinds.size() ? kinds[i] : ValueKind::kString; }
  const std::string* get(std::string_view key) const;
};

enum class Format { kLogfmt, kJson };

// logfmt with values quoted whenever they hold anything outside [A-Za-z0-9-._/@:+*,\[\]];
// quotes, backslashes and control characters are escaped, so a claim can never forge a field
// or a second line.
std::string to_logfmt(const Record& r);
std::string to_json_line(const Record& r);
// Parses one line written by to_logfmt / to_json_line (used by verify and show).
Result<Record> parse_line(std::string_view line);

// RFC 3339 UTC with microseconds.
std::string now_rfc3339();

struct LogOptions {
  std::string path;            // e.g. <data_dir>/log/security/volguard-audit.log
  Format format = Format::kLogfmt;
  uint64_t max_bytes = 100ull << 20;  // rotate when the file would exceed this
  int keep = 10;                      // rotated files kept: path.1 … path.N
  bool durable = false;               // fsync (group commit) before append() returns
  std::string chain_key;              // non-empty: HMAC-SHA256 chain over records
  // Chained logs: where the seq and chain value of the newest file header are kept, outside the
  // log directory (an intruder who can edit the logs must not be able to edit this too). At
  // open, a trail that no longer holds that header (files deleted or emptied) is refused.
  std::string anchor_path;
};

// The first record of every file of a chained log (msg "Audit file opened"): `retained_from` is
// the seq the oldest file kept must start at; the first file of a chain also says `genesis=true`
// and the key's id; a rotation that deleted a file by retention names its seqs in
// `retention_removed`. Head cuts, deleted files and emptied files then fail verification.
inline constexpr char kFileHeaderMsg[] = "Audit file opened";
// An id of the chain key that reveals nothing of it (for the genesis record and verify).
std::string chain_key_id(const std::string& chain_key);
// Where the anchor of the trail chained with the key in `key_file` is kept: beside the key.
std::string anchor_path_for(const std::string& key_file);

// Appends whole records to one file; rotation never splits a record. Thread-safe. With
// `durable`, concurrent appenders share one write + fsync (group commit).
class LogFile {
 public:
  static Result<std::unique_ptr<LogFile>> open(LogOptions options);
  ~LogFile();

  // Adds seq and chain fields when chained; returns once the record is written (and synced
  // when durable). Failure leaves the log unhealthy until a later write succeeds.
  Status append(Record record);
  bool healthy() const;
  uint64_t records_written() const;
  // Durations of fsyncs, for metrics.
  void set_fsync_observer(std::function<void(double seconds)> fn) { fsync_observer_ = std::move(fn); }
  // Whether the previous run ended without a seal record (crash or kill).
  bool previous_run_unsealed() const { return previous_unsealed_; }

 private:
  explicit LogFile(LogOptions options);
  Status recover_chain();
  Status check_anchor() const;
  Status open_fd();
  Status rotate_locked();
  void flusher();
  Record header_record(bool genesis, const std::string& removed) const;
  void write_anchor(uint64_t seq, const std::string& chain) const;
  Status append_header(bool genesis, const std::string& removed);

  static constexpr size_t kMaxQueued = 100000;
  static constexpr size_t kGather = 64;  // non-durable logs: records per write under load
  static constexpr std::chrono::milliseconds kGatherWindow{2};
  struct Pending {
    std::string line;
    Status result;
    bool done = false;
  };
  // Adds seq and chain to `record` (when chained) and queues its line; the caller holds mu_.
  std::shared_ptr<Pending> queue_locked(Record record);

  LogOptions options_;
  UniqueFd fd_;
  uint64_t size_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Pending>> queue_;
  std::thread flusher_;
  bool stopping_ = false;
  bool healthy_ = true;
  uint64_t seq_ = 0;
  std::string chain_;  // hex of the last chain value
  uint64_t written_ = 0;
  bool previous_unsealed_ = false;
  // Chained logs: the first seq of the current file (front), path.1, path.2, …
  std::deque<uint64_t> first_seqs_;
  uint64_t queued_bytes_ = 0;  // lines queued for the current file, not yet written
  bool flushing_ = false;      // the flusher holds a batch (written outside the lock)
  std::function<void(double)> fsync_observer_;
};

// Verification of a chained audit log (the file and its rotated predecessors).
struct VerifyReport {
  bool ok = true;
  uint64_t records = 0;
  uint64_t last_sealed_seq = 0;  // 0 = never sealed
  bool tail_sealed = false;      // the last record is a seal (clean shutdown)
  std::string problem;           // the first problem found, naming file, line and seq
};
// With `anchor_path` (LogOptions::anchor_path), the anchored header must be in the trail.
VerifyReport verify_chain(const std::string& path, const std::string& chain_key,
                          const std::string& anchor_path = "");

// Reads all records in order (rotated files first).
Result<std::vector<Record>> read_all(const std::string& path);

std::string hmac_hex(const std::string& key, const std::string& data);

}  // namespace volguard::audit
