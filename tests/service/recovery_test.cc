// Crash recovery of the write-ahead audit trail with the real AuditRecorder: intents a crash left
// without an outcome get exactly one `outcome=unknown` record at the next start, and only once.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "audit/audit.h"
#include "service/audit_recorder.h"
#include "service/fakes.h"

namespace volguard::service {
namespace {

using testing::person;

class RecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/volguard-recovery-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    config_.data_dir = dir_ + "/data";
    config_.audit.dir = dir_ + "/data/log/security";
    config_.audit.key_file = dir_ + "/data/audit.key";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<AuditRecorder> open() {
    auto r = AuditRecorder::open(config_, &metrics_);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? std::move(r).value() : nullptr;
  }

  // A state change as the pipeline hands it to the recorder.
  DecisionRecord change(const std::string& request_id, const std::string& method,
                        const std::string& resource, const std::string& params) const {
    DecisionRecord r;
    r.method = method;
    r.request_id = request_id;
    r.remote = "10.0.0.3";
    r.who = &alice_;
    r.resource = resource;
    r.params = params;
    return r;
  }

  std::vector<audit::Record> trail() const {
    auto records = audit::read_all(config_.audit.dir + "/" + kAuditLogName);
    EXPECT_TRUE(records.is_ok()) << records.status().to_string();
    return records.is_ok() ? *records : std::vector<audit::Record>{};
  }
  static std::string field(const audit::Record& r, const char* key) {
    const std::string* v = r.get(key);
    return v ? *v : "<absent>";
  }
  std::vector<audit::Record> unknown_outcomes() const {
    std::vector<audit::Record> out;
    for (auto& r : trail()) {
      if (field(r, "outcome") == "unknown") out.push_back(r);
    }
    return out;
  }

  std::string dir_;
  config::Config config_;
  Metrics metrics_;
  identity::Identity alice_ = person("alice", {"system.user"}, {"eng"});
};

// Three intents, one outcome, a crash: the two open ones are closed as unknown, with what the
// callback says is there now; the next start finds nothing open.
TEST_F(RecoveryTest, OpenIntentsGetOneUnknownOutcomeEach) {
  const std::string create_params = R"({"name":"fresh","size":"1G"})";
  const std::string delete_params = R"({"volume":"vol-0002"})";
  const std::string attach_params = R"({"volume":"vol-0003"})";
  {
    auto recorder = open();
    ASSERT_NE(recorder, nullptr);
    // A create names no resource before it runs; delete and attach do.
    ASSERT_TRUE(recorder->intent(change("req-create", "volume.create", "", create_params)).is_ok());
    ASSERT_TRUE(
        recorder->intent(change("req-delete", "volume.delete", "volume/vol-0002", delete_params))
            .is_ok());
    ASSERT_TRUE(
        recorder
            ->intent(change("req-attach", "mountattach.attach", "volume/vol-0003", attach_params))
            .is_ok());
    DecisionRecord done = change("req-delete", "volume.delete", "volume/vol-0002", delete_params);
    done.authorized = true;
    done.audit_message = "Volume vol-0002 deleted";
    ASSERT_TRUE(recorder->audit(done).is_ok());
    // Destroyed without a seal record: as far as the trail can tell, the process died here.
  }
  ASSERT_TRUE(unknown_outcomes().empty());

  std::vector<std::pair<std::string, std::string>> asked;
  auto found = [&](const std::string& resource, const std::string& params) {
    asked.emplace_back(resource, params);
    return "state of [" + resource + "] for " + params;
  };
  {
    auto recorder = open();
    ASSERT_NE(recorder, nullptr);
    EXPECT_TRUE(recorder->previous_run_unsealed());
    auto open_count = recorder->recover_intents(found);
    ASSERT_TRUE(open_count.is_ok()) << open_count.status().to_string();
    EXPECT_EQ(*open_count, 2u);
  }
  // Asked once about each open intent, in the order they were written; never about the one
  // whose outcome is on record.
  const std::vector<std::pair<std::string, std::string>> expected_asks = {
      {"", create_params}, {"volume/vol-0003", attach_params}};
  EXPECT_EQ(asked, expected_asks);

  auto unknown = unknown_outcomes();
  ASSERT_EQ(unknown.size(), 2u);
  std::map<std::string, const audit::Record*> by_intent;
  for (const auto& r : unknown) by_intent[field(r, "intent")] = &r;
  ASSERT_EQ(by_intent.size(), 2u);
  ASSERT_TRUE(by_intent.count("req-create"));
  ASSERT_TRUE(by_intent.count("req-attach"));
  EXPECT_FALSE(by_intent.count("req-delete"));

  // Each says what the intent said (who, what, on what) and what the callback found.
  const std::map<std::string, std::tuple<std::string, std::string, std::string>> expected = {
      {"req-create", {"volume.create", "", create_params}},
      {"req-attach", {"mountattach.attach", "volume/vol-0003", attach_params}}};
  std::map<std::string, std::string> intent_time;
  for (const auto& r : trail()) {
    if (r.get("intent") && !r.get("outcome")) intent_time[field(r, "intent")] = field(r, "time");
  }
  for (const auto& [id, want] : expected) {
    SCOPED_TRACE(id);
    const audit::Record& r = *by_intent[id];
    const auto& [method, resource, params] = want;
    EXPECT_EQ(field(r, "request_id"), id);
    EXPECT_EQ(field(r, "method"), method);
    EXPECT_EQ(field(r, "resource"), resource);
    EXPECT_EQ(field(r, "username"), "alice");
    EXPECT_EQ(field(r, "issuer"), "issuer");
    EXPECT_EQ(field(r, "groups"), R"(["eng"])");
    EXPECT_EQ(field(r, "remote"), "10.0.0.3");
    EXPECT_EQ(field(r, "msg"), "Outcome unknown");
    EXPECT_EQ(field(r, "level"), "warning");
    EXPECT_EQ(field(r, "found"), "state of [" + resource + "] for " + params);
    EXPECT_EQ(field(r, "intent_time"), intent_time[id]);
    EXPECT_NE(intent_time[id], "");
  }

  // The next start: every intent has its outcome now.
  asked.clear();
  {
    auto recorder = open();
    ASSERT_NE(recorder, nullptr);
    auto open_count = recorder->recover_intents(found);
    ASSERT_TRUE(open_count.is_ok()) << open_count.status().to_string();
    EXPECT_EQ(*open_count, 0u);
  }
  EXPECT_TRUE(asked.empty());
  EXPECT_EQ(unknown_outcomes().size(), 2u) << "no second unknown outcome for one intent";
}

// A failed attempt closes its intent as surely as a done one: only the intent with no outcome
// at all is unknown.
TEST_F(RecoveryTest, FailedOutcomeClosesItsIntent) {
  {
    auto recorder = open();
    ASSERT_NE(recorder, nullptr);
    for (const char* id : {"req-failed", "req-open"}) {
      ASSERT_TRUE(recorder->intent(change(id, "volume.delete", "volume/vol-0001", "{}")).is_ok());
    }
    DecisionRecord failed = change("req-failed", "volume.delete", "volume/vol-0001", "{}");
    failed.status = Status(Code::kInternal, "driver_failed", "the disk said no");
    failed.audit_message = "volume.delete failed";
    ASSERT_TRUE(recorder->audit(failed).is_ok());
  }
  auto recorder = open();
  ASSERT_NE(recorder, nullptr);
  std::vector<std::string> asked;
  auto open_count = recorder->recover_intents([&](const std::string& resource, const std::string&) {
    asked.push_back(resource);
    return std::string("checked");
  });
  ASSERT_TRUE(open_count.is_ok()) << open_count.status().to_string();
  EXPECT_EQ(*open_count, 1u);
  EXPECT_EQ(asked, std::vector<std::string>{"volume/vol-0001"});
  auto unknown = unknown_outcomes();
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_EQ(field(unknown[0], "intent"), "req-open");
}

// An intent in a rotated file whose outcome landed in the live one is closed; an intent whose
// file rotated away from the live one with no outcome is still found.
TEST_F(RecoveryTest, IntentsAreMatchedAcrossRotatedFiles) {
  config_.audit.max_bytes = 2048;  // a few records per file
  config_.audit.keep = 100;        // and none deleted by retention
  const std::string padding(300, 'x');
  {
    auto recorder = open();
    ASSERT_NE(recorder, nullptr);
    ASSERT_TRUE(recorder
                    ->intent(change("req-early-open", "volume.update", "volume/vol-0001",
                                    R"({"pad":")" + padding + R"("})"))
                    .is_ok());
    ASSERT_TRUE(recorder
                    ->intent(change("req-early-done", "volume.update", "volume/vol-0002",
                                    R"({"pad":")" + padding + R"("})"))
                    .is_ok());
    // Enough other intents, each closed, to push the first two into a rotated file.
    for (int i = 0; i < 12; ++i) {
      const std::string id = "req-filler-" + std::to_string(i);
      DecisionRecord r =
          change(id, "volume.update", "volume/vol-0003", R"({"pad":")" + padding + R"("})");
      ASSERT_TRUE(recorder->intent(r).is_ok());
      r.audit_message = "Volume vol-0003 updated";
      ASSERT_TRUE(recorder->audit(r).is_ok());
    }
    DecisionRecord done = change("req-early-done", "volume.update", "volume/vol-0002", "{}");
    done.audit_message = "Volume vol-0002 updated";
    ASSERT_TRUE(recorder->audit(done).is_ok());
  }
  ASSERT_TRUE(std::filesystem::exists(config_.audit.dir + "/" + kAuditLogName + ".1"))
      << "the test needs the early intents in a rotated file";

  std::vector<std::string> asked;
  auto found = [&](const std::string& resource, const std::string&) {
    asked.push_back(resource);
    return std::string("checked");
  };
  {
    auto recorder = open();
    ASSERT_NE(recorder, nullptr);
    auto open_count = recorder->recover_intents(found);
    ASSERT_TRUE(open_count.is_ok()) << open_count.status().to_string();
    EXPECT_EQ(*open_count, 1u);
  }
  EXPECT_EQ(asked, std::vector<std::string>{"volume/vol-0001"});
  auto unknown = unknown_outcomes();
  EXPECT_EQ(unknown.size(), 1u);
  for (const auto& r : unknown) EXPECT_EQ(field(r, "intent"), "req-early-open");

  // Closed for good: the next start finds nothing open.
  asked.clear();
  auto recorder = open();
  ASSERT_NE(recorder, nullptr);
  auto again = recorder->recover_intents(found);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ(*again, 0u);
  EXPECT_TRUE(asked.empty());
}

}  // namespace
}  // namespace volguard::service
