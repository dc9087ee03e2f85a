// Unit tests of Pipeline with fakes: every refusal stage (exact code and reason, no handler run,
// nothing intended, one record), and the write-ahead order intent → handler → outcome → record.
#include "service/pipeline.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "service/fakes.h"
#include "service/method_table.h"
#include "service/role_registry.h"
#include "volguard.pb.h"

namespace volguard::service {
namespace {

using testing::FakeRecorder;
using testing::FakeResolver;
using testing::FakeVerifier;
using testing::person;
using testing::same_status;

using Strings = std::vector<std::string>;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The test methods' own role: service "test", every api.
constexpr char kTestRole[] = "test.caller";

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    register_methods();

    std::vector<policy::Role> roles = policy::default_roles();
    roles.push_back({kTestRole, {{{"test"}, {"*"}}}});
    roles_.replace(std::make_shared<const policy::RoleSet>(std::move(roles)));

    verifier_->add("tok-owner", person("owner", {kTestRole}));
    verifier_->add("tok-other", person("other", {kTestRole}));
    verifier_->add("tok-reader", person("reader", {kTestRole}));
    verifier_->add("tok-eng", person("dev", {kTestRole}, {"eng"}));
    verifier_->add("tok-stranger", person("stranger", {kTestRole}));
    verifier_->add("tok-plain", person("plain", {"system.user"}));  // no rule for service test
    verifier_->add("tok-admin", person("root", {"system.admin"}));
    verifier_->add("tok-groupadmin", person("ops", {kTestRole}, {"admins"}));

    // vol-0001 "team": owned by issuer/owner, eng may write, issuer/reader may read.
    store::VolumeRecord team;
    team.id = "vol-0001";
    team.name = "team";
    team.ownership.owner = "issuer/owner";
    team.ownership.groups = {{"groupdomain/eng", Access::kWrite}};
    team.ownership.collaborators = {{"issuer/reader", Access::kRead}};
    team.state = store::RecordState::kReady;
    resolver_.put(team);
    // vol-0002 "private": issuer/other's, no grants at all.
    store::VolumeRecord priv;
    priv.id = "vol-0002";
    priv.name = "private";
    priv.ownership.owner = "issuer/other";
    priv.state = store::RecordState::kReady;
    resolver_.put(priv);
    // vol-0003 "public": issuer/other's, readable by everyone.
    store::VolumeRecord pub;
    pub.id = "vol-0003";
    pub.name = "public";
    pub.ownership.owner = "issuer/other";
    pub.ownership.public_access = Access::kRead;
    pub.state = store::RecordState::kReady;
    resolver_.put(pub);
    store::SnapshotRecord team_snap;
    team_snap.id = "snap-0001";
    team_snap.name = "team-snap";
    team_snap.volume_id = "vol-0001";
    team_snap.state = store::RecordState::kReady;
    resolver_.put(team_snap);
    store::SnapshotRecord private_snap;
    private_snap.id = "snap-0002";
    private_snap.name = "private-snap";
    private_snap.volume_id = "vol-0002";
    private_snap.state = store::RecordState::kReady;
    resolver_.put(private_snap);

    security_.enabled = true;
    security_.guest_access = false;
    security_.admin_groups = {"groupdomain/admins"};
  }

  // The pipeline under the current security_ (built on first use, so that a test may change
  // the config first).
  const Pipeline& pipeline() {
    if (!pipeline_) {
      pipeline_ =
          std::make_unique<Pipeline>(security_, verifier_, nullptr, table_, resolver_, roles_, revocations_, recorder_, resolver_);
    }
    return *pipeline_;
  }

  Status invoke(const std::string& key, const std::string& token, const Message& request) {
    RequestMeta meta{.authorization = token.empty() ? "" : "Bearer " + token, .remote = "10.0.0.7"};
    return invoke_raw(key, meta, request);
  }
  Status invoke_raw(const std::string& key, const RequestMeta& meta, const Message& request) {
    const MethodSpec* spec = table_.find(key);
    EXPECT_NE(spec, nullptr) << key;
    std::unique_ptr<Message> response(spec->response_prototype->New());
    return pipeline().invoke(*spec, meta, request, response.get());
  }

  int runs(const std::string& key) const {
    auto it = runs_.find(key);
    return it == runs_.end() ? 0 : it->second;
  }
  int total_runs() const {
    int n = 0;
    for (const auto& [k, v] : runs_) n += v;
    return n;
  }

  // A refusal before any work: exactly `code`/`reason`, no handler ran, nothing was made ready,
  // intended or audited, and the decision was recorded once, as not authorized, with the
  // status the caller got.
  void expect_refused(const Status& got, Code code, const std::string& reason) {
    EXPECT_EQ(got.code(), code) << got.to_string();
    EXPECT_EQ(got.reason(), reason) << got.to_string();
    EXPECT_EQ(total_runs(), 0) << "a handler ran for a refused call";
    EXPECT_EQ(recorder_.kinds(), (Strings{"record"}));
    if (recorder_.events.size() == 1) {
      EXPECT_FALSE(recorder_.events[0].authorized);
      EXPECT_TRUE(same_status(recorder_.events[0].status, got))
          << recorder_.events[0].status.to_string() << " vs " << got.to_string();
    }
  }
  void reset() {
    recorder_.events.clear();
    trace_.clear();
    runs_.clear();
  }

  config::SecurityConfig security_;
  std::shared_ptr<FakeVerifier> verifier_ = std::make_shared<FakeVerifier>();
  FakeResolver resolver_;
  RoleRegistry roles_;
  RevocationRegistry revocations_;
  std::vector<std::string> trace_;  // recorder calls and handler runs, in order
  FakeRecorder recorder_{&trace_};
  MethodTable table_;
  std::unique_ptr<Pipeline> pipeline_;

  std::map<std::string, int> runs_;
  Status handler_result_;  // what test.write returns
  std::shared_ptr<const store::VolumeRecord> seen_volume_;
  bool saw_source_ = false;
  std::string seen_principal_;

 private:
  void ran(const std::string& key, const Call& call) {
    ++runs_[key];
    trace_.push_back("handler");
    seen_principal_ = call.who ? call.who->principal() : "";
  }

  void register_methods() {
    // Read-only, no resource.
    table_.add<v1::Empty, v1::Empty>(
        {.service = "test", .api = "read", .grpc_path = "/test.Test/Read"},
        [this](Call& call, const v1::Empty&, v1::Empty*) {
          ran("test.read", call);
          return Status::ok();
        });
    // A change to one volume the caller must be able to write.
    table_.add<v1::VolumeRef, v1::Empty>(
        {.service = "test",
         .api = "write",
         .grpc_path = "/test.Test/Write",
         .resources = {volume_field("volume", &v1::VolumeRef::volume, Access::kWrite)},
         .effect = Effect::kMutates},
        [this](Call& call, const v1::VolumeRef&, v1::Empty*) {
          ran("test.write", call);
          seen_volume_ = call.volume("volume");
          return handler_result_;
        });
    // A volume the request may leave out; when named, it is checked like any other.
    table_.add<v1::CloneVolumeRequest, v1::Empty>(
        {.service = "test",
         .api = "optional",
         .grpc_path = "/test.Test/Optional",
         .resources = {volume_field("source", &v1::CloneVolumeRequest::source, Access::kRead,
                                    Presence::kOptional)}},
        [this](Call& call, const v1::CloneVolumeRequest&, v1::Empty*) {
          ran("test.optional", call);
          saw_source_ = call.volume("source") != nullptr;
          return Status::ok();
        });
    // The need depends on the request: a new owner needs an ownership admin.
    table_.add<v1::UpdateVolumeRequest, v1::Empty>(
        {.service = "test",
         .api = "transfer",
         .grpc_path = "/test.Test/Transfer",
         .resources = {{.name = "volume",
                        .kind = ResourceKind::kVolume,
                        .ref =
                            [](const Message& m) {
                              return static_cast<const v1::UpdateVolumeRequest&>(m).volume();
                            },
                        .need =
                            [](const Message& m) {
                              return static_cast<const v1::UpdateVolumeRequest&>(m).owner().empty()
                                         ? Need{.access = Access::kWrite}
                                         : Need{.access = Access::kAdmin, .ownership_admin = true};
                            }}},
         .effect = Effect::kMutates},
        [this](Call& call, const v1::UpdateVolumeRequest&, v1::Empty*) {
          ran("test.transfer", call);
          return Status::ok();
        });
    // Two required resources: a volume to write and a snapshot to read.
    table_.add<v1::SnapshotRestoreRequest, v1::Empty>(
        {.service = "test",
         .api = "restore",
         .grpc_path = "/test.Test/Restore",
         .resources = {volume_field("volume", &v1::SnapshotRestoreRequest::volume, Access::kWrite),
                       snapshot_field("snapshot", &v1::SnapshotRestoreRequest::snapshot,
                                      Access::kRead)},
         .effect = Effect::kMutates},
        [this](Call& call, const v1::SnapshotRestoreRequest&, v1::Empty*) {
          ran("test.restore", call);
          return Status::ok();
        });
  }
};

v1::VolumeRef volume_ref(const std::string& ref) {
  v1::VolumeRef r;
  r.set_volume(ref);
  return r;
}

// ---- authentication

TEST_F(PipelineTest, NoTokenWithGuestAccessOffIsTokenMissing) {
  Status s = invoke("test.read", "", v1::Empty());
  expect_refused(s, Code::kUnauthenticated, "token_missing");
  EXPECT_FALSE(recorder_.events[0].who.has_value()) << "no identity for a failed authentication";
  EXPECT_TRUE(verifier_->seen().empty());
}

TEST_F(PipelineTest, NoTokenWithGuestAccessOnIsAGuestThatRolesDecide) {
  security_.guest_access = true;
  Status s = invoke("test.read", "", v1::Empty());
  // system.guest has no rule for service "test": refused as a guest, and told so.
  expect_refused(s, Code::kPermissionDenied, "rbac_denied");
  EXPECT_PRED2(contains, s.message(), "access denied without authentication token");
  ASSERT_TRUE(recorder_.events[0].who.has_value());
  EXPECT_TRUE(recorder_.events[0].who->guest);
}

TEST_F(PipelineTest, WrongSchemeIsTokenBadScheme) {
  for (const std::string header : {"Basic dG9rLW93bmVy", "tok-owner", "Bearertok-owner"}) {
    SCOPED_TRACE(header);
    reset();
    Status s = invoke_raw("test.read", {.authorization = header}, v1::Empty());
    expect_refused(s, Code::kUnauthenticated, "token_bad_scheme");
  }
  EXPECT_TRUE(verifier_->seen().empty()) << "a token under the wrong scheme is never verified";
}

TEST_F(PipelineTest, BadTokenIsTheVerifiersRefusal) {
  Status s = invoke("test.read", "forged", v1::Empty());
  expect_refused(s, Code::kUnauthenticated, "signature_invalid");
  EXPECT_EQ(s.message(), FakeVerifier::kForgedMessage);
  EXPECT_EQ(verifier_->seen(), (Strings{"forged"}));
}

TEST_F(PipelineTest, SchemeIsCaseInsensitiveAndTrailingNewlineIsNotPartOfTheToken) {
  Status s = invoke_raw("test.read", {.authorization = "bEaReR   tok-owner\r\n"}, v1::Empty());
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(verifier_->seen(), (Strings{"tok-owner"}));
  EXPECT_EQ(runs("test.read"), 1);
}

TEST_F(PipelineTest, NoVerifierWithSecurityOnRefusesEveryToken) {
  verifier_.reset();
  Status s = invoke("test.read", "tok-owner", v1::Empty());
  expect_refused(s, Code::kUnauthenticated, "issuer_unknown");
}

// ---- roles

TEST_F(PipelineTest, RoleWithoutARuleIsRbacDenied) {
  Status s = invoke("test.read", "tok-plain", v1::Empty());
  expect_refused(s, Code::kPermissionDenied, "rbac_denied");
  EXPECT_PRED2(contains, s.message(), "test.read");
  EXPECT_PRED2(contains, s.message(), "system.user");
}

TEST_F(PipelineTest, RolesAreDecidedBeforeAnyResource) {
  // A caller the roles refuse learns nothing about resources: not even that one is missing.
  Status s = invoke("test.write", "tok-plain", volume_ref("no-such-volume"));
  expect_refused(s, Code::kPermissionDenied, "rbac_denied");
}

// ---- resources

TEST_F(PipelineTest, MissingVolumeIsNotFound) {
  Status s = invoke("test.write", "tok-owner", volume_ref("no-such-volume"));
  expect_refused(s, Code::kNotFound, "volume_not_found");
  EXPECT_EQ(s.message(), "volume 'no-such-volume' not found");
}

TEST_F(PipelineTest, MissingSnapshotIsNotFound) {
  v1::SnapshotRestoreRequest req;
  req.set_volume("team");
  req.set_snapshot("no-such-snap");
  Status s = invoke("test.restore", "tok-owner", req);
  expect_refused(s, Code::kNotFound, "snapshot_not_found");
  EXPECT_EQ(s.message(), "snapshot 'no-such-snap' not found");
}

// Unreadable and missing are one answer, byte for byte: the same ref, first absent, then
// present but not readable by the caller.
TEST_F(PipelineTest, UnreadableVolumeIsTheSameNotFoundAsAMissingOne) {
  Status missing = invoke("test.write", "tok-stranger", volume_ref("hidden"));
  expect_refused(missing, Code::kNotFound, "volume_not_found");

  store::VolumeRecord hidden;
  hidden.id = "vol-0009";
  hidden.name = "hidden";
  hidden.ownership.owner = "issuer/other";
  resolver_.put(hidden);
  reset();
  Status unreadable = invoke("test.write", "tok-stranger", volume_ref("hidden"));
  expect_refused(unreadable, Code::kNotFound, "volume_not_found");
  EXPECT_TRUE(same_status(missing, unreadable)) << missing.to_string() << "\n"
                                                << unreadable.to_string();

  // The control: it is there, and its owner reaches the handler.
  reset();
  EXPECT_TRUE(invoke("test.write", "tok-other", volume_ref("hidden")).is_ok());
  EXPECT_EQ(runs("test.write"), 1);
}

TEST_F(PipelineTest, UnreadableSnapshotIsTheSameNotFoundAsAMissingOne) {
  v1::SnapshotRestoreRequest req;
  req.set_volume("team");
  req.set_snapshot("hidden-snap");
  // The owner of "team" may write it, and asks for a snapshot of issuer/other's private volume.
  Status missing = invoke("test.restore", "tok-owner", req);
  expect_refused(missing, Code::kNotFound, "snapshot_not_found");

  store::SnapshotRecord snap;
  snap.id = "snap-0009";
  snap.name = "hidden-snap";
  snap.volume_id = "vol-0002";  // issuer/other's private volume
  resolver_.put(snap);
  reset();
  Status unreadable = invoke("test.restore", "tok-owner", req);
  expect_refused(unreadable, Code::kNotFound, "snapshot_not_found");
  EXPECT_TRUE(same_status(missing, unreadable)) << missing.to_string() << "\n"
                                                << unreadable.to_string();
}

TEST_F(PipelineTest, RequiredResourceEmptyIsFieldRequired) {
  Status s = invoke("test.write", "tok-owner", volume_ref(""));
  expect_refused(s, Code::kInvalidArgument, "field_required");
  EXPECT_EQ(s.message(), "volume (a volume id or name) is required");
}

TEST_F(PipelineTest, SecondRequiredResourceEmptyIsFieldRequiredAfterTheFirstIsChecked) {
  v1::SnapshotRestoreRequest req;
  req.set_volume("team");
  Status s = invoke("test.restore", "tok-owner", req);
  expect_refused(s, Code::kInvalidArgument, "field_required");
  EXPECT_EQ(s.message(), "snapshot (a snapshot id or name) is required");
  // Resources are checked in order: a first one the caller may not read is the answer.
  reset();
  req.set_volume("private");
  expect_refused(invoke("test.restore", "tok-owner", req), Code::kNotFound, "volume_not_found");
}

TEST_F(PipelineTest, OptionalResourceMayBeLeftOutButIsCheckedWhenNamed) {
  v1::CloneVolumeRequest req;
  EXPECT_TRUE(invoke("test.optional", "tok-stranger", req).is_ok());
  EXPECT_EQ(runs("test.optional"), 1);
  EXPECT_FALSE(saw_source_) << "an absent optional resource reaches the handler as null";

  reset();
  req.set_source("private");
  expect_refused(invoke("test.optional", "tok-stranger", req), Code::kNotFound, "volume_not_found");

  reset();
  req.set_source("public");
  EXPECT_TRUE(invoke("test.optional", "tok-stranger", req).is_ok());
  EXPECT_TRUE(saw_source_);
}

// ---- ownership

TEST_F(PipelineTest, ReadAccessWhereWriteIsNeededIsAclInsufficient) {
  Status s = invoke("test.write", "tok-reader", volume_ref("team"));
  expect_refused(s, Code::kPermissionDenied, "acl_insufficient");
  EXPECT_PRED2(contains, s.message(), "test.write on volume team (vol-0001)");
  EXPECT_PRED2(contains, s.message(), "needs write access; issuer/reader has read");
  EXPECT_PRED2(contains, s.message(), "collaborator issuer/reader:r");

  // Public read is access too: refused as insufficient, not hidden.
  reset();
  expect_refused(invoke("test.write", "tok-stranger", volume_ref("public")),
                 Code::kPermissionDenied, "acl_insufficient");
}

TEST_F(PipelineTest, GroupGrantAllowsWrite) {
  EXPECT_TRUE(invoke("test.write", "tok-eng", volume_ref("team")).is_ok());
  EXPECT_EQ(runs("test.write"), 1);
  EXPECT_EQ(seen_volume_, resolver_.find_volume("vol-0001"))
      << "the handler gets the record resolved";
}

TEST_F(PipelineTest, NewOwnerNeedsAnOwnershipAdmin) {
  v1::UpdateVolumeRequest req;
  req.set_volume("team");
  req.set_owner("issuer/stranger");
  // The owner holds admin access on its volume, yet may not give it away.
  Status s = invoke("test.transfer", "tok-owner", req);
  expect_refused(s, Code::kPermissionDenied, "ownership_admin_required");
  EXPECT_PRED2(contains, s.message(), "test.transfer on volume team (vol-0001)");

  // The same request without a new owner needs only write.
  reset();
  req.clear_owner();
  EXPECT_TRUE(invoke("test.transfer", "tok-owner", req).is_ok());
  EXPECT_EQ(runs("test.transfer"), 1);

  // Ownership admins: by role, and by a group named in admin_groups.
  req.set_owner("issuer/stranger");
  for (const char* token : {"tok-admin", "tok-groupadmin"}) {
    SCOPED_TRACE(token);
    reset();
    EXPECT_TRUE(invoke("test.transfer", token, req).is_ok());
    EXPECT_EQ(runs("test.transfer"), 1);
  }
}

TEST_F(PipelineTest, DecideExplainsWhatInvokeEnforces) {
  const MethodSpec& spec = *table_.find("test.write");
  identity::Identity reader = person("reader", {kTestRole});
  CallDecision d =
      pipeline().decide(spec, reader, {"team"}, volume_ref("team"), DecideMode::kEnforce, nullptr);
  EXPECT_EQ(d.status.reason(), "acl_insufficient");
  EXPECT_EQ(d.needed, Access::kWrite);
  EXPECT_EQ(d.granted, Access::kRead);
  EXPECT_EQ(d.via, "collaborator issuer/reader:r");
  EXPECT_EQ(d.role, kTestRole);
  // Explaining skips a resource that is not named; enforcing requires it.
  EXPECT_TRUE(pipeline()
                  .decide(spec, reader, {""}, v1::VolumeRef(), DecideMode::kExplain, nullptr)
                  .status.is_ok());
  EXPECT_EQ(pipeline()
                .decide(spec, reader, {""}, v1::VolumeRef(), DecideMode::kEnforce, nullptr)
                .status.reason(),
            "field_required");
  EXPECT_TRUE(recorder_.events.empty()) << "decide alone records nothing";
}

// ---- security off

TEST_F(PipelineTest, SecurityOffAllowsEverything) {
  security_.enabled = false;
  v1::UpdateVolumeRequest transfer;
  transfer.set_volume("private");
  transfer.set_owner("issuer/stranger");
  v1::SnapshotRestoreRequest restore;
  restore.set_volume("private");
  restore.set_snapshot("private-snap");
  struct Case {
    const char* key;
    const Message* request;
  };
  const v1::VolumeRef write = volume_ref("private");
  const v1::Empty empty;
  for (const char* authorization : {"", "Bearer forged", "Basic x", "Bearer tok-plain"}) {
    for (const Case& c : {Case{"test.read", &empty}, Case{"test.write", &write},
                          Case{"test.transfer", &transfer}, Case{"test.restore", &restore}}) {
      SCOPED_TRACE(std::string(authorization) + " " + c.key);
      reset();
      Status s = invoke_raw(c.key, {.authorization = authorization}, *c.request);
      EXPECT_TRUE(s.is_ok()) << s.to_string();
      EXPECT_EQ(runs(c.key), 1);
      auto records = recorder_.of("record");
      ASSERT_EQ(records.size(), 1u);
      EXPECT_TRUE(records[0]->authorized);
      EXPECT_FALSE(records[0]->security_enabled);
    }
  }
  EXPECT_TRUE(verifier_->seen().empty()) << "no token is verified with security off";
  // What does not exist is still not found: a handler always gets a record.
  reset();
  expect_refused(invoke("test.write", "", volume_ref("no-such-volume")), Code::kNotFound,
                 "volume_not_found");
}

// ---- the recorder: write-ahead

TEST_F(PipelineTest, MutatingCallIsReadyIntentHandlerOutcomeRecordInThatOrder) {
  Status s = invoke("test.write", "tok-owner", volume_ref("team"));
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(trace_, (Strings{"audit_ready", "intent", "handler", "audit", "record"}));

  auto intent = recorder_.of("intent");
  auto outcome = recorder_.of("audit");
  auto record = recorder_.of("record");
  ASSERT_EQ(intent.size(), 1u);
  ASSERT_EQ(outcome.size(), 1u);
  ASSERT_EQ(record.size(), 1u);
  // One request: one id through intent, outcome and record.
  EXPECT_FALSE(intent[0]->request_id.empty());
  EXPECT_EQ(outcome[0]->request_id, intent[0]->request_id);
  EXPECT_EQ(record[0]->request_id, intent[0]->request_id);
  // The intent says who, what, on what and with which parameters, before the work.
  EXPECT_EQ(intent[0]->method, "test.write");
  EXPECT_EQ(intent[0]->resource, "volume/vol-0001");
  ASSERT_TRUE(intent[0]->who.has_value());
  EXPECT_EQ(intent[0]->who->principal(), "issuer/owner");
  EXPECT_PRED2(contains, intent[0]->params, "\"volume\":\"team\"");
  EXPECT_FALSE(intent[0]->authorized) << "the intent is written before the handler is let run";
  EXPECT_TRUE(outcome[0]->status.is_ok());
  EXPECT_TRUE(outcome[0]->authorized);
  EXPECT_EQ(outcome[0]->audit_message, "test.write succeeded");
  EXPECT_TRUE(record[0]->authorized);
  EXPECT_TRUE(record[0]->status.is_ok());
  EXPECT_EQ(record[0]->resource, "volume/vol-0001");
  EXPECT_EQ(seen_principal_, "issuer/owner");
}

TEST_F(PipelineTest, EveryRequestGetsItsOwnId) {
  ASSERT_TRUE(invoke("test.write", "tok-owner", volume_ref("team")).is_ok());
  ASSERT_TRUE(invoke("test.write", "tok-owner", volume_ref("team")).is_ok());
  auto intents = recorder_.of("intent");
  ASSERT_EQ(intents.size(), 2u);
  EXPECT_NE(intents[0]->request_id, intents[1]->request_id);
}

TEST_F(PipelineTest, FailedHandlerIsAuditedAsFailedAndReturned) {
  handler_result_ = Status(Code::kInternal, "disk_on_fire", "the disk is on fire");
  Status s = invoke("test.write", "tok-owner", volume_ref("team"));
  EXPECT_TRUE(same_status(s, handler_result_)) << s.to_string();
  EXPECT_EQ(trace_, (Strings{"audit_ready", "intent", "handler", "audit", "record"}));
  auto outcome = recorder_.of("audit");
  ASSERT_EQ(outcome.size(), 1u);
  EXPECT_TRUE(same_status(outcome[0]->status, handler_result_));
  EXPECT_EQ(outcome[0]->audit_message, "test.write failed");
  // Authorized (every check passed), and failed.
  EXPECT_TRUE(recorder_.of("record")[0]->authorized);
}

TEST_F(PipelineTest, AuditNotReadyRefusesBeforeIntentAndHandler) {
  recorder_.fail_ready = Status(Code::kUnavailable, "audit_unavailable", "disk full (fake)");
  Status s = invoke("test.write", "tok-owner", volume_ref("team"));
  EXPECT_TRUE(same_status(s, recorder_.fail_ready)) << s.to_string();
  EXPECT_EQ(total_runs(), 0);
  EXPECT_EQ(trace_, (Strings{"audit_ready", "record"}));
  auto record = recorder_.of("record");
  ASSERT_EQ(record.size(), 1u);
  EXPECT_FALSE(record[0]->authorized);
  EXPECT_TRUE(same_status(record[0]->status, recorder_.fail_ready));
}

TEST_F(PipelineTest, IntentFailureRefusesBeforeTheHandler) {
  recorder_.fail_intent =
      Status(Code::kUnavailable, "audit_unavailable", "the intent could not be written (fake)");
  Status s = invoke("test.write", "tok-owner", volume_ref("team"));
  EXPECT_TRUE(same_status(s, recorder_.fail_intent)) << s.to_string();
  EXPECT_EQ(total_runs(), 0);
  EXPECT_EQ(trace_, (Strings{"audit_ready", "intent", "record"}))
      << "no outcome for an intent the trail refused";
  auto record = recorder_.of("record");
  ASSERT_EQ(record.size(), 1u);
  EXPECT_FALSE(record[0]->authorized);
  EXPECT_TRUE(same_status(record[0]->status, recorder_.fail_intent));
}

TEST_F(PipelineTest, OutcomeFailureIsReturnedThoughTheHandlerRan) {
  recorder_.fail_audit =
      Status(Code::kUnavailable, "audit_unavailable", "the outcome could not be written (fake)");
  Status s = invoke("test.write", "tok-owner", volume_ref("team"));
  EXPECT_TRUE(same_status(s, recorder_.fail_audit)) << s.to_string();
  EXPECT_EQ(runs("test.write"), 1);
  EXPECT_EQ(trace_, (Strings{"audit_ready", "intent", "handler", "audit", "record"}));
  auto outcome = recorder_.of("audit");
  ASSERT_EQ(outcome.size(), 1u);
  EXPECT_TRUE(outcome[0]->status.is_ok()) << "the outcome said what the handler did";
  auto record = recorder_.of("record");
  ASSERT_EQ(record.size(), 1u);
  EXPECT_TRUE(record[0]->authorized);
  EXPECT_TRUE(same_status(record[0]->status, recorder_.fail_audit));
}

TEST_F(PipelineTest, ReadOnlyCallIsOnlyRecorded) {
  // A failing trail does not stop a read: nothing is changed, so nothing is written ahead.
  recorder_.fail_ready = Status(Code::kUnavailable, "audit_unavailable", "fake");
  recorder_.fail_intent = recorder_.fail_ready;
  recorder_.fail_audit = recorder_.fail_ready;
  ASSERT_TRUE(invoke("test.read", "tok-owner", v1::Empty()).is_ok());
  v1::CloneVolumeRequest opt;
  opt.set_source("team");
  ASSERT_TRUE(invoke("test.optional", "tok-reader", opt).is_ok());
  EXPECT_EQ(trace_, (Strings{"handler", "record", "handler", "record"}));
  for (const auto* r : recorder_.of("record")) EXPECT_TRUE(r->authorized);
}

// Every decision, refusals of each stage included, is recorded exactly once.
TEST_F(PipelineTest, EveryDecisionIsRecordedExactlyOnce) {
  security_.guest_access = false;
  v1::UpdateVolumeRequest transfer;
  transfer.set_volume("team");
  transfer.set_owner("issuer/x");
  const v1::Empty empty;
  struct Case {
    const char* key;
    std::string authorization;
    const Message* request;
    Code code;
  };
  const v1::VolumeRef team = volume_ref("team");
  const v1::VolumeRef priv = volume_ref("private");
  const v1::VolumeRef none = volume_ref("");
  const std::vector<Case> cases = {
      {"test.read", "", &empty, Code::kUnauthenticated},
      {"test.read", "Basic x", &empty, Code::kUnauthenticated},
      {"test.read", "Bearer forged", &empty, Code::kUnauthenticated},
      {"test.read", "Bearer tok-plain", &empty, Code::kPermissionDenied},
      {"test.write", "Bearer tok-stranger", &priv, Code::kNotFound},
      {"test.write", "Bearer tok-owner", &none, Code::kInvalidArgument},
      {"test.write", "Bearer tok-reader", &team, Code::kPermissionDenied},
      {"test.transfer", "Bearer tok-owner", &transfer, Code::kPermissionDenied},
      {"test.write", "Bearer tok-owner", &team, Code::kOk},
      {"test.read", "Bearer tok-owner", &empty, Code::kOk},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.key) + " " + c.authorization);
    reset();
    Status s = invoke_raw(c.key, {.authorization = c.authorization}, *c.request);
    EXPECT_EQ(s.code(), c.code) << s.to_string();
    auto records = recorder_.of("record");
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0]->authorized, c.code == Code::kOk);
    EXPECT_TRUE(same_status(records[0]->status, s));
    EXPECT_EQ(records[0]->method, c.key);
    if (c.code != Code::kOk) {
      EXPECT_TRUE(recorder_.of("intent").empty());
      EXPECT_EQ(total_runs(), 0);
    }
  }
}

}  // namespace
}  // namespace volguard::service
