#include "audit/audit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>

#include "common/fd.h"
#include "common/hex.h"
#include "common/openssl.h"
#include "common/text.h"

namespace volguard::audit {

namespace fs = std::filesystem;

const std::string* Record::get(std::string_view key) const {
  for (const auto& [k, v] : fields) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::string now_rfc3339() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm_utc;
  gmtime_r(&tv.tv_sec, &tm_utc);
  char buf[64];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm_utc);
  snprintf(buf + n, sizeof buf - n, ".%06ldZ", static_cast<long>(tv.tv_usec));
  return buf;
}

namespace {

bool bare(std::string_view v) {
  if (v.empty()) return false;
  for (char c : v) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '/' || c == '@' || c == ':' || c == '+' ||
              c == '*' || c == ',' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return true;
}

void append_quoted(std::string* out, std::string_view v) {
  out->push_back('"');
  for (unsigned char c : v) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          snprintf(buf, sizeof buf, "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

// Keys are ours, never a caller's: still, keep them to a safe alphabet.
std::string safe_key(std::string_view k) {
  std::string out;
  for (char c : k) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    out.push_back(ok ? c : '_');
  }
  return out;
}

}  // namespace

std::string to_logfmt(const Record& r) {
  std::string out;
  for (const auto& [k, v] : r.fields) {
    if (!out.empty()) out.push_back(' ');
    out += safe_key(k);
    out.push_back('=');
    if (bare(v)) out += v;
    else append_quoted(&out, v);
  }
  return out;
}

std::string to_json_line(const Record& r) {
  // Ordered output; nlohmann escapes every string, so no value can break the line.
  std::string out = "{";
  for (size_t i = 0; i < r.fields.size(); ++i) {
    const auto& [k, v] = r.fields[i];
    if (i > 0) out.push_back(',');
    out += nlohmann::json(safe_key(k)).dump();
    out.push_back(':');
    // A typed value is re-serialised from its parse (never pasted): what is written is always
    // one well-formed JSON value, whatever the text held. Text that is not the kind it claims
    // is written as a string.
    nlohmann::json value = nlohmann::json::value_t::discarded;
    switch (r.kind(i)) {
      case ValueKind::kNumber: {
        value = nlohmann::json::parse(v, nullptr, false);
        if (!value.is_number()) value = nlohmann::json::value_t::discarded;
        break;
      }
      case ValueKind::kBool:
        if (v == "true" || v == "false") value = (v == "true");
        break;
      case ValueKind::kJson:
        value = nlohmann::json::parse(v, nullptr, false);
        break;
      case ValueKind::kString:
        break;
    }
    if (value.is_discarded()) value = v;
    out += value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return out + "}";
}

Result<Record> parse_line(std::string_view line) {
  Record r;
  auto bad = [&](const std::string& why) {
    return Status(Code::kDataLoss, "bad_record", why);
  };
  // Only what the encoder writes is read back: a key outside its alphabet is not ours.
  auto foreign_key = [](const std::string& k) { return k.empty() || safe_key(k) != k; };
  if (!line.empty() && line.front() == '{') {
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
    for (const auto& [k, v] : j.items()) {
      if (foreign_key(k)) return bad("key '" + safe_key(k) + "' is not one volguard writes");
      if (v.is_string()) {
        r.add(k, v.get<std::string>());
      } else if (v.is_number()) {
        r.add_number(k, v.dump());
      } else if (v.is_boolean()) {
        r.add_bool(k, v.get<bool>());
      } else if (v.is_array() || v.is_object()) {
        r.add_json(k, v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      } else {
        return bad("field " + k + " is null");
      }
    }
    return r;
  }
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    if (i >= line.size()) break;
    size_t eq = line.find('=', i);
    if (eq == std::string_view::npos) return bad("key without value");
    std::string key(line.substr(i, eq - i));
    if (foreign_key(key)) return bad("key '" + safe_key(key) + "' is not one volguard writes");
    i = eq + 1;
    std::string value;
    if (i < line.size() && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\' && i < line.size()) {
          char e = line[i++];
          switch (e) {
            case 'n': value.push_back('\n'); break;
            case 'r': value.push_back('\r'); break;
            case 't': value.push_back('\t'); break;
            case 'u': {
              if (i + 4 > line.size()) return bad("short \\u escape");
              unsigned code = 0;
              const char* first = line.data() + i;
              auto [end, ec] = std::from_chars(first, first + 4, code, 16);
              if (ec != std::errc() || end != first + 4) return bad("bad \\u escape");
              // The encoder escapes control characters only; anything else it writes raw.
              if (code >= 0x20 && code != 0x7f) return bad("\\u escape of a character volguard writes raw");
              value.push_back(static_cast<char>(code));
              i += 4;
              break;
            }
            case '"':
            case '\\': value.push_back(e); break;
            default: return bad(std::string("unknown escape \\") + (e >= 0x20 && e < 0x7f ? std::string(1, e) : "?"));
          }
        } else {
          value.push_back(c);
        }
      }
      if (!closed) return bad("unterminated quoted value of " + key);
    } else {
      size_t end = line.find(' ', i);
      if (end == std::string_view::npos) end = line.size();
      value = std::string(line.substr(i, end - i));
      i = end;
    }
    r.add(std::move(key), std::move(value));
  }
  return r;
}

std::string hmac_hex(const std::string& key, const std::string& data) {
  return to_hex(hmac_sha256(key, data));
}

namespace {

// The part of a line the chain covers: everything before the chain field.
std::string_view chained_prefix(std::string_view line) {
  size_t pos = line.rfind(" chain=");
  if (pos == std::string_view::npos) pos = line.rfind(",\"chain\":");
  return pos == std::string_view::npos ? line : line.substr(0, pos);
}

std::vector<std::string> files_in_order(const std::string& path) {
  std::vector<std::string> files;
  for (int i = 1000; i >= 1; --i) {
    std::string p = path + "." + std::to_string(i);
    if (fs::exists(p)) files.push_back(p);
  }
  if (fs::exists(path)) files.push_back(path);
  return files;
}

// The first line of a file, parsed; nullopt for an empty or unreadable file.
std::optional<Record> first_record(const std::string& file) {
  std::ifstream in(file);
  std::string line;
  if (!std::getline(in, line) || line.empty()) return std::nullopt;
  auto rec = parse_line(line);
  if (!rec) return std::nullopt;
  return std::move(rec).value();
}

bool parse_u64(const std::string* text, uint64_t* out) {
  if (text == nullptr) return false;
  auto n = parse_count(*text);
  if (n) *out = *n;
  return n.has_value();
}

std::string render(const Record& r, Format f) { return f == Format::kJson ? to_json_line(r) : to_logfmt(r); }

}  // namespace

LogFile::LogFile(LogOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<LogFile>> LogFile::open(LogOptions options) {
  std::error_code ec;
  fs::create_directories(fs::path(options.path).parent_path(), ec);
  if (ec) {
    return Status(Code::kUnavailable, "audit_unavailable",
                  "cannot create " + fs::path(options.path).parent_path().string() + ": " + ec.message());
  }
  ::chmod(fs::path(options.path).parent_path().c_str(), 0700);
  std::unique_ptr<LogFile> log(new LogFile(std::move(options)));
  RETURN_IF_ERROR(log->recover_chain());
  RETURN_IF_ERROR(log->check_anchor());
  RETURN_IF_ERROR(log->open_fd());
  log->flusher_ = std::thread([l = log.get()] { l->flusher(); });
  // A chained file always starts with its header: the genesis of a new chain, or (after a crash
  // between a rotation and its header) the header the rotation did not get to write.
  if (!log->options_.chain_key.empty() && log->size_ == 0) {
    RETURN_IF_ERROR(log->append_header(log->seq_ == 0, ""));
  }
  return log;
}

LogFile::~LogFile() {
  // Drain what is queued (non-durable appends do not wait) before stopping.
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return queue_.empty(); });
  }
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  fd_.reset();
}

Status LogFile::open_fd() {
  fd_.reset();  // the old fd first, so that errno below is the open's
  // O_NOFOLLOW: whoever can write the log directory must not be able to point our appends (and
  // the chmod below) at another file with a symlink named like the log.
  fd_.reset(
      ::open(options_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd_) {
    return Status(Code::kUnavailable, "audit_unavailable",
                  "cannot open " + options_.path + ": " + std::strerror(errno) +
                      (errno == ELOOP ? " (it is a symbolic link)" : ""));
  }
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
    fd_.reset();
    return Status(Code::kUnavailable, "audit_unavailable",
                  "cannot use " + options_.path + ": not a regular file with one link");
  }
  if (::fchmod(fd_.get(), 0600) != 0) {  // never wider, even if it existed
    return Status(Code::kUnavailable, "audit_unavailable",
                  "cannot chmod " + options_.path + ": " + std::strerror(errno));
  }
  size_ = static_cast<uint64_t>(st.st_size);
  return Status::ok();
}

// Continues the chain and sequence from the newest complete record on disk.
Status LogFile::recover_chain() {
  if (options_.chain_key.empty()) return Status::ok();
  auto files = files_in_order(options_.path);
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    std::ifstream in(*it);
    std::string line, last;
    while (std::getline(in, line)) {
      if (!line.empty()) last = line;
    }
    if (last.empty()) continue;
    auto rec = parse_line(last);
    if (!rec) continue;
    const std::string* seq = rec->get("seq");
    const std::string* chain = rec->get("chain");
    if (!seq || !chain) continue;
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(seq->data(), seq->data() + seq->size(), n);
    if (ec != std::errc() || end != seq->data() + seq->size()) {
      return Status(Code::kFailedPrecondition, "audit_tampered",
                    *it + ": the last record's seq '" + *seq + "' is not a number; run "
                    "`volguard audit verify` and keep the file as evidence");
    }
    seq_ = n;
    chain_ = *chain;
    const std::string* sealed = rec->get("sealed");
    previous_unsealed_ = !(sealed && *sealed == "true");
    break;
  }
  // Where each file starts (current first), for the next rotation's header.
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    uint64_t first = 0;
    auto rec = first_record(*it);
    if (rec && parse_u64(rec->get("seq"), &first)) {
      first_seqs_.push_back(first);
    } else if (*it == options_.path) {
      first_seqs_.push_back(seq_ + 1);  // the current file is empty: it starts with the next
    }
  }
  if (first_seqs_.empty()) first_seqs_.push_back(seq_ + 1);
  return Status::ok();
}

Status LogFile::check_anchor() const {
  if (options_.chain_key.empty() || options_.anchor_path.empty()) return Status::ok();
  std::ifstream in(options_.anchor_path);
  if (!in) return Status::ok();  // no header written yet: a new trail
  std::string seq_text, chain;
  in >> seq_text >> chain;
  uint64_t anchored = 0;
  if (!parse_u64(&seq_text, &anchored) || chain.empty()) {
    return Status(Code::kFailedPrecondition, "audit_tampered",
                  options_.anchor_path + ": not an audit anchor (\"<seq> <chain>\")");
  }
  // The anchored header is the first record of one of the files.
  for (const auto& f : files_in_order(options_.path)) {
    auto rec = first_record(f);
    uint64_t seq = 0;
    if (rec && parse_u64(rec->get("seq"), &seq) && seq == anchored) {
      const std::string* c = rec->get("chain");
      if (c && *c == chain) return Status::ok();
    }
  }
  return Status(Code::kFailedPrecondition, "audit_tampered",
                options_.path + ": the audit trail no longer holds its file header seq " +
                    seq_text + " (anchored in " + options_.anchor_path +
                    "): files were deleted, emptied or cut at the head. Keep them as evidence; "
                    "to start a new trail, move the trail and the anchor away");
}

Record LogFile::header_record(bool genesis, const std::string& removed) const {
  Record h;
  h.add("time", now_rfc3339());
  h.add("level", "info");
  h.add("msg", kFileHeaderMsg);
  h.add("method", "server");
  h.add_number("retained_from", std::to_string(first_seqs_.empty() ? seq_ + 1 : first_seqs_.back()));
  if (genesis) {
    h.add_bool("genesis", true);
    h.add("key_id", chain_key_id(options_.chain_key));
  }
  if (!removed.empty()) h.add("retention_removed", removed);
  return h;
}

void LogFile::write_anchor(uint64_t seq, const std::string& chain) const {
  if (options_.anchor_path.empty()) return;
  const std::string tmp = options_.anchor_path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return;
  const std::string text = std::to_string(seq) + " " + chain + "\n";
  const bool ok =
      ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
      ::fsync(fd.get()) == 0 && fd.close_checked() == 0;
  if (ok) ::rename(tmp.c_str(), options_.anchor_path.c_str());
}

Status LogFile::append_header(bool genesis, const std::string& removed) {
  std::unique_lock lock(mu_);
  auto pending = queue_locked(header_record(genesis, removed));
  const uint64_t seq = seq_;
  const std::string chain = chain_;
  cv_.wait(lock, [&] { return pending->done; });
  if (pending->result.is_ok()) write_anchor(seq, chain);
  return pending->result;
}

Status LogFile::rotate_locked() {
  ::fsync(fd_.get());
  fd_.reset();
  std::error_code ec;
  fs::remove(options_.path + "." + std::to_string(options_.keep), ec);
  for (int i = options_.keep - 1; i >= 1; --i) {
    std::string from = options_.path + "." + std::to_string(i);
    if (fs::exists(from)) fs::rename(from, options_.path + "." + std::to_string(i + 1), ec);
  }
  fs::rename(options_.path, options_.path + ".1", ec);
  return open_fd();
}

std::string anchor_path_for(const std::string& key_file) {
  const fs::path dir = fs::path(key_file).parent_path();
  return (dir.empty() ? fs::path("audit.anchor") : dir / "audit.anchor").string();
}

std::string chain_key_id(const std::string& chain_key) {
  return hmac_hex(chain_key, "volguard audit chain key id").substr(0, 16);
}

Status LogFile::append(Record record) {
  std::unique_lock lock(mu_);
  uint64_t header_seq = 0;
  std::string header_chain;
  if (!options_.chain_key.empty()) {
    // Rotation of a chained log happens here, between records, so that the new file's header
    // is chained in order: wait for what is queued to be written, rotate, chain the header.
    const uint64_t estimate = render(record, options_.format).size() + 160;
    if (size_ + queued_bytes_ > 0 && size_ + queued_bytes_ + estimate > options_.max_bytes) {
      cv_.wait(lock, [&] { return (queue_.empty() && !flushing_) || stopping_; });
      if (Status s = rotate_locked(); !s.is_ok()) {
        healthy_ = false;
        return s;
      }
      first_seqs_.push_front(seq_ + 1);
      std::string removed;
      while (first_seqs_.size() > static_cast<size_t>(options_.keep) + 1) {
        const uint64_t from = first_seqs_.back();
        first_seqs_.pop_back();
        removed = std::to_string(from) + "-" + std::to_string(first_seqs_.back() - 1);
      }
      queue_locked(header_record(false, removed));
      header_seq = seq_;
      header_chain = chain_;
    }
  }
  auto pending = queue_locked(std::move(record));
  if (!options_.durable) {
    return healthy_ ? Status::ok()
                    : Status(Code::kUnavailable, "audit_unavailable", "cannot write " + options_.path);
  }
  cv_.wait(lock, [&] { return pending->done; });
  if (header_seq != 0 && pending->result.is_ok()) write_anchor(header_seq, header_chain);
  return pending->result;
}

std::shared_ptr<LogFile::Pending> LogFile::queue_locked(Record record) {
  auto pending = std::make_shared<Pending>();
  // Chain values are assigned here, in queue order, under the lock.
  if (!options_.chain_key.empty()) record.add_number("seq", std::to_string(seq_ + 1));
  pending->line = render(record, options_.format);
  if (!options_.chain_key.empty()) {
    // The chain covers the rendered record (with seq) and the previous chain value.
    std::string covered = pending->line;
    if (options_.format == Format::kJson) covered.pop_back();  // without the closing brace
    std::string chain = hmac_hex(options_.chain_key, chain_ + "\n" + covered);
    if (options_.format == Format::kJson) {
      pending->line = covered + ",\"chain\":\"" + chain + "\"}";
    } else {
      pending->line += " chain=" + chain;
    }
    seq_ += 1;
    chain_ = chain;
  }
  pending->line.push_back('\n');
  // The access log is written behind the request: the caller does not wait for the flusher
  // (bounded, so a stuck disk cannot eat memory). mu_ is held by the caller; this waits on it.
  if (!options_.durable && queue_.size() >= kMaxQueued && !stopping_) {
    std::unique_lock<std::mutex> relock(mu_, std::adopt_lock);
    cv_.wait(relock, [&] { return queue_.size() < kMaxQueued || stopping_; });
    relock.release();
  }
  queued_bytes_ += pending->line.size();
  queue_.push_back(pending);
  // The flusher of a log written behind the request gathers records for a moment (see
  // flusher()); waking it for each one would cost a futex call per request.
  if (options_.durable || queue_.size() == 1 || queue_.size() == kGather) cv_.notify_all();
  return pending;
}

void LogFile::flusher() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty() && stopping_) return;
    if (!options_.durable && !stopping_ && queue_.size() < kGather) {
      // Nobody waits for these records: under load, one write per kGather requests instead of
      // a wake-up and a write per request. A lone record is written kGatherWindow later.
      cv_.wait_for(lock, kGatherWindow, [&] { return stopping_ || queue_.size() >= kGather; });
    }
    std::vector<std::shared_ptr<Pending>> batch(queue_.begin(), queue_.end());
    queue_.clear();
    flushing_ = true;
    std::string data;
    for (const auto& p : batch) data += p->line;
    Status result;
    if (!fd_) {
      if (auto s = open_fd(); !s.is_ok()) result = s;
    }
    // Chained logs rotate in append(), where the new file's header can be chained in order.
    if (result.is_ok() && options_.chain_key.empty() && size_ > 0 &&
        size_ + data.size() > options_.max_bytes) {
      if (auto s = rotate_locked(); !s.is_ok()) result = s;
    }
    if (result.is_ok()) {
      // One write per batch: a record is never split, by rotation or by a crash between calls.
      lock.unlock();
      ssize_t n = ::write(fd_.get(), data.data(), data.size());
      int err = errno;
      bool ok = n == static_cast<ssize_t>(data.size());
      if (ok && options_.durable) {
        auto t0 = std::chrono::steady_clock::now();
        ok = ::fdatasync(fd_.get()) == 0;
        err = errno;
        if (fsync_observer_) {
          fsync_observer_(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
      }
      lock.lock();
      if (!ok) {
        if (n > 0) {
          // A partial write would leave a torn record: cut it back off.
          if (::ftruncate(fd_.get(), static_cast<off_t>(size_)) != 0) {
            // Nothing more to do: verify will report the torn tail.
          }
        }
        if (n >= 0 && n < static_cast<ssize_t>(data.size())) err = ENOSPC;  // short write
        result = Status(Code::kUnavailable, "audit_unavailable",
                        "cannot write " + options_.path + ": " + std::strerror(err));
      } else {
        size_ += data.size();
      }
    }
    if (!result.is_ok()) {
      healthy_ = false;
      // Records not written do not exist: roll the chain back so the next one links to the
      // last record on disk.
      if (!options_.chain_key.empty()) {
        seq_ -= batch.size();
        auto files = files_in_order(options_.path);
        chain_.clear();
        for (auto it = files.rbegin(); it != files.rend() && chain_.empty(); ++it) {
          std::ifstream in(*it);
          std::string line, last;
          while (std::getline(in, line)) {
            if (!line.empty()) last = line;
          }
          if (auto rec = parse_line(last); rec.is_ok() && rec->get("chain")) chain_ = *rec->get("chain");
        }
        // Records queued after this batch were chained to the lost ones: fail them too.
        for (auto& p : queue_) {
          p->result = Status(Code::kUnavailable, "audit_unavailable", "audit log write failed");
          p->done = true;
        }
        seq_ -= queue_.size();
        queue_.clear();
      }
    } else {
      healthy_ = true;
      written_ += batch.size();
    }
    flushing_ = false;
    queued_bytes_ = 0;
    for (const auto& p : queue_) queued_bytes_ += p->line.size();
    for (auto& p : batch) {
      p->result = result;
      p->done = true;
    }
    cv_.notify_all();
  }
}

bool LogFile::healthy() const {
  std::lock_guard lock(mu_);
  return healthy_;
}

uint64_t LogFile::records_written() const {
  std::lock_guard lock(mu_);
  return written_;
}

Result<std::vector<Record>> read_all(const std::string& path) {
  std::vector<Record> out;
  for (const auto& f : files_in_order(path)) {
    std::ifstream in(f);
    if (!in) return Status(Code::kNotFound, "file_unreadable", "cannot read " + f);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      auto r = parse_line(line);
      if (r) out.push_back(std::move(r).value());
    }
  }
  return out;
}

VerifyReport verify_chain(const std::string& path, const std::string& key,
                          const std::string& anchor_path) {
  VerifyReport report;
  auto files = files_in_order(path);
  if (files.empty()) {
    report.ok = false;
    report.problem = "no audit log at " + path;
    return report;
  }
  std::string prev;
  uint64_t expected_seq = 0;
  bool anchored = false;
  uint64_t oldest_first = 0;      // the first seq of the oldest file kept
  uint64_t retained_from = 0;     // what the newest file header says it must be
  uint64_t header_seq = 0;        // that header's seq
  std::string retention_note;     // what retention removed, as recorded
  std::map<uint64_t, std::string> headers;  // seq -> chain of every file header (for the anchor)
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), {});
    if (content.empty()) {
      report.ok = false;
      report.problem = f + ": empty — a trail file always starts with its header (it was emptied)";
      return report;
    }
    size_t pos = 0;
    uint64_t line_no = 0;
    while (pos < content.size()) {
      size_t nl = content.find('\n', pos);
      ++line_no;
      std::string where = f + " line " + std::to_string(line_no);
      if (nl == std::string::npos) {
        report.ok = false;
        report.problem = where + ": torn last record (the file was cut mid-record)";
        return report;
      }
      std::string line = content.substr(pos, nl - pos);
      pos = nl + 1;
      auto rec = parse_line(line);
      const std::string* seq_text = rec ? rec->get("seq") : nullptr;
      const std::string* chain = rec ? rec->get("chain") : nullptr;
      if (!rec || !seq_text || !chain) {
        report.ok = false;
        report.problem = where + ": not an audit record (edited or inserted)";
        return report;
      }
      uint64_t seq = 0;
      if (!parse_u64(seq_text, &seq)) {
        report.ok = false;
        report.problem = where + ": seq '" + *seq_text + "' is not a number (edited)";
        return report;
      }
      const std::string* msg = rec->get("msg");
      const bool is_header = msg != nullptr && *msg == kFileHeaderMsg;
      if (line_no == 1 && !is_header) {
        report.ok = false;
        report.problem = where + ": seq " + std::to_string(seq) +
                         " is not the file's header: records were cut from the head of " + f +
                         " (or the file was replaced)";
        return report;
      }
      if (is_header) {
        uint64_t from = 0;
        if (!parse_u64(rec->get("retained_from"), &from)) {
          report.ok = false;
          report.problem = where + ": file header without retained_from (edited)";
          return report;
        }
        retained_from = from;
        header_seq = seq;
        headers[seq] = *chain;
        if (const std::string* removed = rec->get("retention_removed")) {
          retention_note = "; retention removed seq " + *removed + " (recorded at seq " +
                           std::to_string(seq) + ")";
        }
      }
      if (!anchored) {
        anchored = true;
        oldest_first = seq;
        if (seq != 1) {
          // The oldest file kept: its header is the anchor (whether that is right is checked
          // against the newest header's retained_from at the end).
          expected_seq = seq + 1;
          prev = *chain;
          report.records++;
          continue;
        }
        const std::string* genesis = rec->get("genesis");
        const std::string* key_id = rec->get("key_id");
        if (genesis == nullptr || *genesis != "true" || key_id == nullptr) {
          report.ok = false;
          report.problem = where + ": seq 1 is not the chain's genesis record (forged)";
          return report;
        }
        if (*key_id != chain_key_id(key)) {
          report.ok = false;
          report.problem = where + ": the chain was made with key id " + *key_id +
                           ", not with this key (" + chain_key_id(key) + ")";
          return report;
        }
        expected_seq = 1;
      }
      if (seq != expected_seq) {
        report.ok = false;
        report.problem = where + ": seq " + std::to_string(seq) + " where " +
                         std::to_string(expected_seq) +
                         " was expected (a record was deleted, inserted or reordered)";
        return report;
      }
      std::string covered(chained_prefix(line));
      std::string want = hmac_hex(key, prev + "\n" + covered);
      if (want != *chain) {
        report.ok = false;
        report.problem = where + ": seq " + std::to_string(seq) +
                         " does not match its chain value (the record, or one before it, was edited)";
        return report;
      }
      prev = *chain;
      expected_seq = seq + 1;
      report.records++;
      const std::string* sealed = rec->get("sealed");
      report.tail_sealed = sealed && *sealed == "true";
      if (report.tail_sealed) report.last_sealed_seq = seq;
    }
  }
  if (!report.ok) return report;
  report.problem.clear();
  if (oldest_first != retained_from) {
    report.ok = false;
    report.problem = oldest_first < retained_from
                         ? "the oldest file starts at seq " + std::to_string(oldest_first) +
                               " but the header at seq " + std::to_string(header_seq) +
                               " says the trail starts at " + std::to_string(retained_from)
                         : "records seq " + std::to_string(retained_from) + " to " +
                               std::to_string(oldest_first - 1) +
                               " are missing: the header at seq " + std::to_string(header_seq) +
                               " says the trail starts at " + std::to_string(retained_from) +
                               " (files were deleted or cut, not by retention)";
    return report;
  }
  if (!anchor_path.empty()) {
    std::ifstream in(anchor_path);
    std::string seq_text, chain;
    uint64_t anchored_seq = 0;
    if (in && (in >> seq_text >> chain) && parse_u64(&seq_text, &anchored_seq)) {
      auto it = headers.find(anchored_seq);
      if (it == headers.end() || it->second != chain) {
        report.ok = false;
        report.problem = "the file header seq " + seq_text + " anchored in " + anchor_path +
                         " is not in the trail: newer files were deleted or emptied";
        return report;
      }
    } else if (in) {
      report.ok = false;
      report.problem = anchor_path + ": not an audit anchor";
      return report;
    }
  }
  if (oldest_first > 1) {
    report.problem = "chain starts at seq " + std::to_string(oldest_first) +
                     " (older files removed by retention" + retention_note + ")";
  }
  return report;
}

}  // namespace volguard::audit
