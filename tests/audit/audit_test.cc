#include "audit/audit.h"

#include <cerrno>
#include <cstring>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/mount.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/text.h"

namespace volguard::audit {
namespace {

namespace fs = std::filesystem;
const std::string kKey = "audit-test-key-0123456789abcdef0123456789";

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/volguard-audit-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/volguard-audit.log";
  }
  void TearDown() override {
    ::umount2((dir_ + "/tiny").c_str(), MNT_DETACH);
    fs::remove_all(dir_);
  }
  std::unique_ptr<LogFile> open(uint64_t max_bytes = 1 << 20, int keep = 5,
                                Format format = Format::kLogfmt, std::string path = "") {
    return LogFile::open({.path = path.empty() ? path_ : path, .format = format,
                          .max_bytes = max_bytes, .keep = keep, .durable = true,
                          .chain_key = kKey})
        .value();
  }
  static Record rec(const std::string& msg, const std::string& user = "alice") {
    Record r;
    r.add("time", now_rfc3339());
    r.add("level", "info");
    r.add("msg", msg);
    r.add("method", "volume.create");
    r.add("username", user);
    return r;
  }
  std::vector<std::string> lines(const std::string& p = "") {
    std::ifstream in(p.empty() ? path_ : p);
    std::vector<std::string> out;
    std::string l;
    while (std::getline(in, l)) out.push_back(l);
    return out;
  }
  void rewrite(const std::vector<std::string>& ls) {
    std::ofstream out(path_, std::ios::trunc);
    for (const auto& l : ls) out << l << "\n";
  }
  std::string dir_, path_;
};

TEST_F(AuditTest, LogfmtQuotesSoClaimsCannotForgeFieldsOrLines) {
  Record r;
  r.add("msg", "Authorized");
  r.add("name", "Eve\" level=error msg=\"forged");
  r.add("email", "a@b\nlevel=error msg=second-record");
  r.add("groups", "[eng,ops]");
  r.add("subject", "key=value");
  r.add("empty", "");
  r.add("ctl", std::string("x\x01y\x7f", 4));
  std::string line = to_logfmt(r);
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  EXPECT_NE(line.find("groups=[eng,ops]"), std::string::npos) << line;
  EXPECT_NE(line.find("empty=\"\""), std::string::npos) << line;
  auto back = parse_line(line);
  ASSERT_TRUE(back.is_ok());
  ASSERT_EQ(back->fields.size(), r.fields.size());
  for (size_t i = 0; i < r.fields.size(); ++i) {
    EXPECT_EQ(back->fields[i], r.fields[i]) << i;
  }
  // JSON lines too.
  std::string json = to_json_line(r);
  EXPECT_EQ(json.find('\n'), std::string::npos);
  auto jback = parse_line(json);
  ASSERT_TRUE(jback.is_ok());
  EXPECT_EQ(*jback->get("name"), "Eve\" level=error msg=\"forged");
}

// Found by tests/fuzz/audit_line_fuzz.cc: the parser accepted lines the encoder never writes
// (a key outside [a-z0-9_], which the encoder writes as '_'; a \u escape of a character it
// writes raw, decoded to a different byte; an unknown escape), so a parsed line did not render
// back to itself. Such lines are now refused: verify and show read only what volguard wrote.
TEST_F(AuditTest, TheParserRefusesWhatTheEncoderNeverWrites) {
  for (const char* line : {"ti*me=t level=info", "Time=t", "=v", "a-b=1", "k=\"\\u0100\"", "k=\"\\x\"",
                           "{\"Time\":\"t\"}", "{\"a b\":1}", "{\"\":1}"}) {
    auto r = parse_line(line);
    EXPECT_FALSE(r.is_ok()) << line;
    if (!r.is_ok()) {
      EXPECT_EQ(r.status().reason(), "bad_record") << line;
    }
  }
  // What the encoder writes still parses back to itself.
  auto ok = parse_line("time=t k_2=\"a\\u0001\\u007f\\n\\\"\"");
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(*ok->get("k_2"), std::string("a\x01\x7f\n\"", 5));
}

// JSON lines must be UTF-8: a value that is not (no claim can be: tokens are UTF-8 JSON) is
// written with U+FFFD in place of each bad sequence, and the line stays one valid record.
// logfmt keeps the bytes as they are (tests/fuzz/logfmt_fuzz.cc checks both).
TEST_F(AuditTest, JsonLinesReplaceInvalidUtf8AndStayValid) {
  Record r;
  r.add("name", std::string("a\xff\xfe" "b", 4));
  auto back = parse_line(to_json_line(r));
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(*back->get("name"), "a\xef\xbf\xbd\xef\xbf\xbd" "b");
  auto raw = parse_line(to_logfmt(r));
  ASSERT_TRUE(raw.is_ok());
  EXPECT_EQ(*raw->get("name"), std::string("a\xff\xfe" "b", 4));
}

// In the JSON format numbers and booleans are bare and lists are arrays (a group named
// "eng,admin" is one element, never two); logfmt writes the same values as text. Typed text
// that is not what it claims is written as a string, so no value can break the line's JSON.
TEST_F(AuditTest, JsonRecordsKeepNumbersBooleansAndListsTyped) {
  Record r;
  r.add("msg", "Authorized");
  r.add_number("seq", "4");
  r.add_number("duration_ms", "0.125");
  r.add_bool("sealed", true);
  r.add_json("groups", R"(["eng,admin","ops"])");
  r.add_json("params", R"({"name":"v1","size":"1G"})");
  r.add_number("not_a_number", "4; drop");
  r.add_json("not_json", "[\"unterminated");
  r.add("text", "4");
  auto j = nlohmann::json::parse(to_json_line(r));
  EXPECT_TRUE(j["seq"].is_number_integer());
  EXPECT_EQ(j["seq"], 4);
  EXPECT_TRUE(j["duration_ms"].is_number_float());
  EXPECT_EQ(j["sealed"], true);
  ASSERT_TRUE(j["groups"].is_array());
  EXPECT_EQ(j["groups"].size(), 2u);
  EXPECT_EQ(j["groups"][0], "eng,admin");
  EXPECT_EQ(j["params"]["name"], "v1");
  EXPECT_EQ(j["not_a_number"], "4; drop");
  EXPECT_EQ(j["not_json"], "[\"unterminated");
  EXPECT_EQ(j["text"], "4");  // a string stays a string
  // Read back: the same text and kinds (what verify and `audit show` see).
  auto back = parse_line(to_json_line(r));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(*back->get("seq"), "4");
  EXPECT_EQ(*back->get("sealed"), "true");
  EXPECT_EQ(nlohmann::json::parse(*back->get("groups")), nlohmann::json::parse(R"(["eng,admin","ops"])"));
  EXPECT_EQ(back->kind(1), ValueKind::kNumber);
  EXPECT_EQ(back->kind(3), ValueKind::kBool);
  EXPECT_EQ(back->kind(4), ValueKind::kJson);
  // logfmt: text, quoted where needed, one line.
  const std::string line = to_logfmt(r);
  EXPECT_NE(line.find(" seq=4 "), std::string::npos) << line;
  EXPECT_NE(line.find(" sealed=true "), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST_F(AuditTest, ChainVerifiesAndSealIsReported) {
  {
    auto log = open();
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(log->append(rec("r" + std::to_string(i))).is_ok());
    Record seal = rec("Server stopped");
    seal.add("sealed", "true");
    ASSERT_TRUE(log->append(seal).is_ok());
  }
  // The file header (genesis) + 20 + the seal.
  auto report = verify_chain(path_, kKey);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.records, 22u);
  EXPECT_TRUE(report.tail_sealed);
  EXPECT_EQ(report.last_sealed_seq, 22u);
  // A wrong key fails at the first record.
  EXPECT_FALSE(verify_chain(path_, kKey + "x").ok);
  // Reopening continues the chain, and remembers the last run was sealed.
  auto log = open();
  EXPECT_FALSE(log->previous_run_unsealed());
  ASSERT_TRUE(log->append(rec("after restart")).is_ok());
  report = verify_chain(path_, kKey);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.records, 23u);
  EXPECT_FALSE(report.tail_sealed);
  EXPECT_EQ(report.last_sealed_seq, 22u);
  log.reset();
  EXPECT_TRUE(open()->previous_run_unsealed());
}

TEST_F(AuditTest, EveryTamperingIsDetected) {
  {
    auto log = open();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(log->append(rec("record-" + std::to_string(i))).is_ok());
    Record seal = rec("sealed");
    seal.add("sealed", "true");
    ASSERT_TRUE(log->append(seal).is_ok());
  }
  const auto original = lines();
  ASSERT_EQ(original.size(), 12u);  // the file header, 10 records, the seal
  struct Case {
    const char* name;
    std::function<std::vector<std::string>(std::vector<std::string>)> edit;
    const char* expect;
  };
  std::vector<Case> cases = {
      {"edit a byte", [](auto l) { l[5][l[5].find("record-4") + 7] = '9'; return l; }, "seq 6 does not match"},
      {"edit a user", [](auto l) { auto p = l[2].find("username=alice"); l[2].replace(p, 14, "username=bob"); return l; }, "seq 3"},
      {"delete a line", [](auto l) { l.erase(l.begin() + 3); return l; }, "seq 5 where 4 was expected"},
      {"swap two lines", [](auto l) { std::swap(l[5], l[6]); return l; }, "seq 7 where 6 was expected"},
      {"insert a line", [](auto l) { l.insert(l.begin() + 2, l[1]); return l; }, "seq 2 where 3 was expected"},
      {"forge a line", [](auto l) { l.insert(l.begin() + 2, "time=x level=info msg=forged seq=3 chain=00"); return l; }, "seq 3 does not match"},
      // The head: cutting the oldest records (and keeping whole, genuine records after them)
      // used to verify as "older files rotated away".
      {"cut the head", [](auto l) { l.erase(l.begin(), l.begin() + 4); return l; }, "is not the file's header"},
      {"cut the header only", [](auto l) { l.erase(l.begin()); return l; }, "is not the file's header"},
      {"forge the first record", [](auto l) { l[0] = "time=x level=info msg=\"Audit file opened\" method=server retained_from=1 seq=1 chain=00"; return l; }, "not the chain's genesis"},
      {"forge a new genesis", [](auto l) { l.erase(l.begin(), l.begin() + 4); l.insert(l.begin(), "time=x level=info msg=\"Audit file opened\" method=server retained_from=5 seq=4 chain=00"); return l; }, "does not match its chain value"},
      {"empty the file", [](auto) { return std::vector<std::string>{}; }, "empty"},
  };
  for (const auto& c : cases) {
    rewrite(c.edit(original));
    auto report = verify_chain(path_, kKey);
    EXPECT_FALSE(report.ok) << c.name;
    EXPECT_NE(report.problem.find(c.expect), std::string::npos) << c.name << ": " << report.problem;
  }
  // Cut the tail mid-record: torn.
  rewrite(original);
  auto size = fs::file_size(path_);
  fs::resize_file(path_, size - 10);
  auto report = verify_chain(path_, kKey);
  EXPECT_FALSE(report.ok);
  EXPECT_NE(report.problem.find("torn"), std::string::npos) << report.problem;
  // Cut whole records off the end: intact but no longer sealed.
  auto cut = original;
  cut.resize(7);
  rewrite(cut);
  report = verify_chain(path_, kKey);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_FALSE(report.tail_sealed);
  EXPECT_EQ(report.last_sealed_seq, 0u);
}

TEST_F(AuditTest, JsonLinesAreChainedAndVerifiedToo) {
  {
    auto log = open(1 << 20, 5, Format::kJson);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(log->append(rec("json-" + std::to_string(i), "x\"y")).is_ok());
  }
  auto ls = lines();
  ASSERT_EQ(ls.size(), 6u);
  for (const auto& l : ls) {
    EXPECT_EQ(l.front(), '{');
    EXPECT_NE(l.find(",\"chain\":\""), std::string::npos) << l;
  }
  auto report = verify_chain(path_, kKey);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.records, 6u);
  auto all = read_all(path_).value();
  EXPECT_EQ(*all[1].get("username"), "x\"y");
  ls[3].replace(ls[3].find("json-2"), 6, "json-9");
  rewrite(ls);
  report = verify_chain(path_, kKey);
  EXPECT_FALSE(report.ok);
  EXPECT_NE(report.problem.find("seq 4"), std::string::npos) << report.problem;
}

TEST_F(AuditTest, UnwritableFileIsRefusedAtOpen) {
  fs::create_directories(path_);  // a directory where the log file should be
  auto log = LogFile::open({.path = path_, .durable = true, .chain_key = kKey});
  ASSERT_FALSE(log.is_ok());
  EXPECT_EQ(log.status().code(), Code::kUnavailable);
  EXPECT_NE(log.status().message().find(path_), std::string::npos);
}

TEST_F(AuditTest, RotationKeepsRecordsWholeAndTheChainAcrossFiles) {
  {
    auto log = open(/*max_bytes=*/2000, /*keep=*/3);
    for (int i = 0; i < 60; ++i) ASSERT_TRUE(log->append(rec("rotating-" + std::to_string(i))).is_ok());
  }
  ASSERT_TRUE(fs::exists(path_ + ".1"));
  ASSERT_TRUE(fs::exists(path_ + ".3"));
  EXPECT_FALSE(fs::exists(path_ + ".4"));  // retention
  for (const auto& f : {path_, path_ + ".1", path_ + ".2", path_ + ".3"}) {
    EXPECT_LE(fs::file_size(f), 2000u + 400u) << f;
    for (const auto& l : lines(f)) EXPECT_TRUE(parse_line(l).is_ok()) << l;
    EXPECT_EQ((fs::status(f).permissions() & fs::perms::all), fs::perms::owner_read | fs::perms::owner_write) << f;
  }
  auto report = verify_chain(path_, kKey);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_NE(report.problem.find("older files removed by retention; retention removed seq"),
            std::string::npos) << report.problem;
  auto all = read_all(path_).value();
  EXPECT_EQ(*all.back().get("msg"), "rotating-59");
  // Every file starts with its header, naming where the retained trail starts.
  for (const auto& f : {path_, path_ + ".1", path_ + ".2", path_ + ".3"}) {
    auto first = parse_line(lines(f).front());
    ASSERT_TRUE(first.is_ok());
    EXPECT_EQ(*first->get("msg"), kFileHeaderMsg) << f;
  }
  // Deleting the oldest file by hand (not by retention), or cutting its head, is tampering.
  const std::string oldest = path_ + ".3";
  fs::rename(oldest, dir_ + "/evidence");
  report = verify_chain(path_, kKey);
  EXPECT_FALSE(report.ok);
  EXPECT_NE(report.problem.find("are missing"), std::string::npos) << report.problem;
  fs::rename(dir_ + "/evidence", oldest);
  EXPECT_TRUE(verify_chain(path_, kKey).ok);
  auto old_lines = lines(oldest);
  {
    std::ofstream out(oldest, std::ios::trunc);
    for (size_t i = 2; i < old_lines.size(); ++i) out << old_lines[i] << "\n";
  }
  report = verify_chain(path_, kKey);
  EXPECT_FALSE(report.ok);
  EXPECT_NE(report.problem.find("is not the file's header"), std::string::npos) << report.problem;
}

TEST_F(AuditTest, ConcurrentAppendsShareFsyncs) {
  auto log = open();
  std::atomic<int> fsyncs{0};
  log->set_fsync_observer([&](double) { fsyncs++; });
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        ASSERT_TRUE(log->append(rec("t" + std::to_string(t) + "-" + std::to_string(i))).is_ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(log->records_written(), 641u);  // and the file header
  EXPECT_LT(fsyncs.load(), 640) << "group commit should batch fsyncs";
  auto report = verify_chain(path_, kKey);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.records, 641u);
}

TEST_F(AuditTest, DiskFullFailsThenRecovers) {
  std::string tiny = dir_ + "/tiny";
  fs::create_directories(tiny);
  if (::mount("tmpfs", tiny.c_str(), "tmpfs", 0, "size=64k") != 0) FAIL() << "cannot mount tmpfs: " << std::strerror(errno);
  std::string path = tiny + "/volguard-audit.log";
  auto log = open(1 << 20, 5, Format::kLogfmt, path);
  ASSERT_TRUE(log->append(rec("before")).is_ok());
  {
    std::ofstream filler(tiny + "/filler");
    std::string block(4096, 'x');
    while (filler.write(block.data(), block.size())) {
    }
  }
  Status s;
  for (int i = 0; i < 50 && s.is_ok(); ++i) s = log->append(rec(std::string(200, 'y')));
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_EQ(s.reason(), "audit_unavailable");
  EXPECT_FALSE(log->healthy());
  fs::remove(tiny + "/filler");
  ASSERT_TRUE(log->append(rec("after")).is_ok());
  EXPECT_TRUE(log->healthy());
  // Nothing torn, and the chain skips nothing: the failed records never existed.
  auto report = verify_chain(path, kKey);
  EXPECT_TRUE(report.ok) << report.problem;
  auto all = read_all(path).value();
  EXPECT_EQ(*all.back().get("msg"), "after");
}

// The anchor (kept beside the key, outside the log directory) names the newest file header: a
// trail whose newest files were deleted or emptied is refused at open and fails verify, rather
// than silently starting a new chain.
TEST_F(AuditTest, AnchoredTrailCannotBeEmptiedOrDeleted) {
  const std::string anchor = dir_ + "/audit.anchor";
  auto open_anchored = [&] {
    return LogFile::open({.path = path_, .max_bytes = 1500, .keep = 3, .durable = true,
                          .chain_key = kKey, .anchor_path = anchor});
  };
  {
    auto log = open_anchored().value();
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(log->append(rec("anchored-" + std::to_string(i))).is_ok());
  }
  ASSERT_TRUE(fs::exists(anchor));
  ASSERT_TRUE(fs::exists(path_ + ".1"));
  EXPECT_TRUE(verify_chain(path_, kKey, anchor).ok);
  // Emptying the current file (its header with it).
  const auto current = lines();
  rewrite({});
  auto refused = open_anchored();
  ASSERT_FALSE(refused.is_ok()) << "an emptied trail was reopened as if new";
  EXPECT_EQ(refused.status().reason(), "audit_tampered");
  EXPECT_NE(refused.status().message().find(anchor), std::string::npos) << refused.status().message();
  // Deleting it entirely: the rotated files verify as a chain, but the anchor says more existed.
  fs::remove(path_);
  auto report = verify_chain(path_, kKey, anchor);
  EXPECT_FALSE(report.ok);
  EXPECT_NE(report.problem.find("anchored"), std::string::npos) << report.problem;
  EXPECT_FALSE(open_anchored().is_ok());
  // Restored: accepted again.
  rewrite(current);
  EXPECT_TRUE(verify_chain(path_, kKey, anchor).ok) << verify_chain(path_, kKey, anchor).problem;
  EXPECT_TRUE(open_anchored().is_ok());
}

}  // namespace
}  // namespace volguard::audit
