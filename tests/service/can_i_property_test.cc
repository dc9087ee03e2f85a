// Property: `auth can-i` (the real identity.capabilities handler) tells every caller exactly what
// Pipeline::invoke then does, for every method of the real table, every caller and every kind of
// target, with security on and off.
#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "service/fakes.h"
#include "service/method_table.h"
#include "service/metrics.h"
#include "service/pipeline.h"
#include "service/role_registry.h"
#include "service/volume_service.h"
#include "volguard.pb.h"

namespace volguard::service {
namespace {

using testing::FakeResolver;
using testing::FakeVerifier;
using testing::person;
using testing::same_status;

constexpr char kCanI[] = "identity.capabilities";

// Takes every change: this property is about decisions, not the trail.
class AcceptingRecorder : public DecisionRecorder {
 public:
  void record(const DecisionRecord&) override {}
  Status audit_ready() override { return Status::ok(); }
  Status intent(const DecisionRecord&) override { return Status::ok(); }
  Status audit(const DecisionRecord&) override { return Status::ok(); }
};

// One caller: the token it presents (empty: none) and the identity the verifier makes of it.
struct Caller {
  std::string label;
  std::string token;
  identity::Identity who;
  // Whether its roles allow identity.capabilities itself (with security on): a caller that may
  // not ask is refused by the pipeline, and the question is then put to the same handler
  // directly, with the identity the pipeline would have handed it.
  bool may_ask = true;
  bool authenticates = true;  // false: the token is forged
};

// The real method table (handlers stubbed), a pipeline over fakes, the fixtures and callers.
struct World {
  explicit World(config::SecurityConfig security_config) : security(std::move(security_config)) {
    config.security = security;
    // Default roles plus one that allows a single method.
    std::vector<policy::Role> role_list = policy::default_roles();
    role_list.push_back({"volume.inspector", {{{"volume"}, {"inspect"}}}});
    roles.replace(std::make_shared<const policy::RoleSet>(std::move(role_list)));

    volumes = std::make_unique<VolumeService>(config, nullptr, nullptr, keys, roles, revocations);
    MethodTable real;
    volumes->register_methods(&real);
    register_metrics_methods(&real, nullptr);  // its handler is stubbed below
    stub_handlers(real);
    EXPECT_EQ(table.methods().size(), real.methods().size());

    add_fixtures();
    pipeline = std::make_unique<Pipeline>(security, verifier, nullptr, table, resolver, roles, revocations, recorder, resolver);
  }

  // The real table, copied entry by entry with every handler but can-i's replaced by a stub that
  // counts its runs: the real ones need a store and a driver, and what is checked here is only
  // whether the pipeline let the call through.
  void stub_handlers(const MethodTable& real) {
    for (const auto& spec : real.methods()) {
      MethodSpec copy = *spec;
      const std::string key = copy.key();
      if (key == kCanI) {
        // The real handler, counted: can-i asked about itself must run it too.
        copy.handler = [this, handler = spec->handler](Call& call, const Message& req,
                                                       Message* resp) {
          ++runs[kCanI];
          return handler(call, req, resp);
        };
      } else {
        copy.handler = [this, key](Call&, const Message&, Message*) {
          ++runs[key];
          return Status::ok();
        };
      }
      table.add_spec(std::move(copy));
    }
  }

  void add_fixtures() {
    auto volume = [&](const std::string& id, const std::string& name, ownership::Ownership o) {
      store::VolumeRecord v;
      v.id = id;
      v.name = name;
      v.ownership = std::move(o);
      v.state = store::RecordState::kReady;
      resolver.put(v);
    };
    auto snapshot = [&](const std::string& id, const std::string& name, const std::string& vol) {
      store::SnapshotRecord s;
      s.id = id;
      s.name = name;
      s.volume_id = vol;
      s.state = store::RecordState::kReady;
      resolver.put(s);
    };
    volume("vol-0001", "vol-team",
           {.owner = "issuer/owner",
            .groups = {{"groupdomain/eng", Access::kWrite}},
            .collaborators = {{"issuer/reader", Access::kRead}}});
    volume("vol-0002", "vol-public", {.owner = "issuer/someone", .public_access = Access::kRead});
    volume("vol-0003", "vol-private", {.owner = "issuer/someone"});
    volume("vol-0004", "vol-unowned", {});  // guest-made: everyone's
    snapshot("snap-0001", "snap-team", "vol-0001");
    snapshot("snap-0002", "snap-public", "vol-0002");
    snapshot("snap-0003", "snap-private", "vol-0003");
    snapshot("snap-0004", "snap-unowned", "vol-0004");
    snapshot("snap-0009", "snap-orphan", "vol-gone");  // its volume is gone: admins only

    auto add = [&](std::string label, identity::Identity who, bool may_ask = true) {
      std::string token = "tok-" + label;
      verifier->add(token, who);
      callers.push_back({std::move(label), std::move(token), std::move(who), may_ask});
    };
    add("admin", person("root", {"system.admin"}));
    add("owner", person("owner", {"system.user"}));
    add("reader", person("reader", {"system.user"}));
    add("eng", person("dev", {"system.user"}, {"eng"}));
    add("stranger", person("stranger", {"system.user"}));
    add("inspector", person("insp", {"volume.inspector"}), /*may_ask=*/false);
    add("ownership-admin", person("ops", {"system.user"}, {"admins"}));
    add("unknown-role", person("ghost", {"no.such.role"}), /*may_ask=*/false);
    callers.push_back({.label = "guest", .who = identity::guest_identity(), .may_ask = false});
    callers.push_back({.label = "forged", .token = "forged-token", .authenticates = false});
  }

  const Caller& caller(const std::string& label) const {
    for (const auto& c : callers) {
      if (c.label == label) return c;
    }
    ADD_FAILURE() << "no caller " << label;
    return callers.front();
  }

  RequestMeta meta(const Caller& c) const {
    return {.authorization = c.token.empty() ? "" : "Bearer " + c.token, .remote = "10.0.0.9"};
  }

  // `auth can-i <key> --volume <ref>` as `c`.
  Status can_i(const Caller& c, const std::string& key, const std::string& ref,
               v1::CapabilitiesResponse* out) {
    v1::CapabilitiesRequest req;
    req.set_method(key);
    req.set_volume(ref);
    Status through = pipeline->invoke(kCanI, meta(c), req, out);
    const bool refused_to_ask = security.enabled && c.authenticates && !c.may_ask &&
                                !(c.who.guest && !security.guest_access);
    if (!refused_to_ask) return through;
    // Not allowed to ask: the pipeline says so (roles), and the handler answers directly.
    EXPECT_EQ(through.code(), Code::kPermissionDenied) << c.label << ": " << through.to_string();
    EXPECT_EQ(through.reason(), "rbac_denied") << c.label;
    ++asked_directly;
    out->Clear();
    Call call;
    call.who = &c.who;
    call.method = kCanI;
    call.security_enabled = security.enabled;
    call.pipeline = pipeline.get();
    return table.find(kCanI)->handler(call, req, out);
  }

  // The request invoke gets: the method's first declared resource named `ref` (set by the
  // proto field the check is named after), everything else left at its default.
  std::unique_ptr<Message> request_for(const MethodSpec& spec, const std::string& ref) const {
    std::unique_ptr<Message> req(spec.request_prototype->New());
    if (!spec.resources.empty()) {
      const auto* field = req->GetDescriptor()->FindFieldByName(spec.resources[0].name);
      if (field == nullptr || field->type() != google::protobuf::FieldDescriptor::TYPE_STRING) {
        ADD_FAILURE() << spec.key() << ": no string field " << spec.resources[0].name;
        return req;
      }
      req->GetReflection()->SetString(req.get(), field, ref);
    }
    if (spec.key() == kCanI) {
      // can-i itself as the target: asked about a method that exists, it answers OK.
      static_cast<v1::CapabilitiesRequest*>(req.get())->set_method("identity.version");
    }
    return req;
  }

  config::SecurityConfig security;
  config::Config config;
  RoleRegistry roles;
  RevocationRegistry revocations;
  DataKeys keys{config::EncryptionConfig{}};
  std::unique_ptr<VolumeService> volumes;
  MethodTable table;
  std::shared_ptr<FakeVerifier> verifier = std::make_shared<FakeVerifier>();
  FakeResolver resolver;
  AcceptingRecorder recorder;
  std::unique_ptr<Pipeline> pipeline;
  std::vector<Caller> callers;
  std::map<std::string, int> runs;
  size_t asked_directly = 0;
};

const std::vector<std::string> kRefs = {
    "vol-team",    "vol-public",   "vol-private",  "vol-unowned", "snap-team",
    "snap-public", "snap-private", "snap-unowned", "snap-orphan", "no-such-thing"};

config::SecurityConfig security(bool enabled, bool guest_access) {
  config::SecurityConfig s;
  s.enabled = enabled;
  s.guest_access = guest_access;
  s.admin_groups = {"groupdomain/admins"};
  return s;
}

// What each check of a method reads from the request is the proto field it is named after:
// the property below names resources by that field.
TEST(CanIPropertyTest, EveryResourceIsNamedAfterTheFieldItReads) {
  World world(security(true, true));
  size_t checked = 0;
  for (const auto& spec : world.table.methods()) {
    for (const auto& check : spec->resources) {
      SCOPED_TRACE(spec->key() + " " + check.name);
      std::unique_ptr<Message> req(spec->request_prototype->New());
      const auto* field = req->GetDescriptor()->FindFieldByName(check.name);
      ASSERT_NE(field, nullptr);
      req->GetReflection()->SetString(req.get(), field, "probe");
      EXPECT_EQ(check.ref(*req), "probe");
      ++checked;
    }
  }
  EXPECT_GE(checked, 17u);
}

size_t rpc_count() {
  const auto* file = v1::Volume::descriptor()->file();
  size_t n = 0;
  for (int s = 0; s < file->service_count(); ++s) n += file->service(s)->method_count();
  return n;
}

struct Tally {
  size_t cases = 0;
  size_t ran = 0;
  size_t field_required = 0;
  size_t denied = 0;
  size_t not_found = 0;
  size_t unauthenticated = 0;
};

// One (method, caller, target): can-i's answer and invoke's result agree.
void check_case(World& world, const MethodSpec& spec, const Caller& c, const std::string& ref,
                Tally* tally) {
  const std::string key = spec.key();
  SCOPED_TRACE("security=" + std::string(world.security.enabled ? "on" : "off") +
               " guest_access=" + (world.security.guest_access ? "on" : "off") +
               " caller=" + c.label + " method=" + key + " ref=" + ref);
  ++tally->cases;
  v1::CapabilitiesResponse answer;
  Status asked = world.can_i(c, key, ref, &answer);

  auto request = world.request_for(spec, ref);
  std::unique_ptr<Message> response(spec.response_prototype->New());
  const int before = world.runs[key];
  Status got = world.pipeline->invoke(spec, world.meta(c), *request, response.get());
  const bool ran = world.runs[key] == before + 1;
  EXPECT_LE(world.runs[key], before + 1);

  if (asked.code() == Code::kUnauthenticated) {
    ++tally->unauthenticated;
    EXPECT_TRUE(same_status(asked, got)) << asked.to_string() << "\n" << got.to_string();
    EXPECT_FALSE(ran);
    return;
  }
  if (asked.code() == Code::kNotFound) {
    ++tally->not_found;
    EXPECT_TRUE(same_status(asked, got)) << asked.to_string() << "\n" << got.to_string();
    EXPECT_FALSE(ran);
    return;
  }
  ASSERT_TRUE(asked.is_ok()) << "can-i itself failed: " << asked.to_string();
  if (!answer.allowed()) {
    ++tally->denied;
    EXPECT_EQ(got.code(), Code::kPermissionDenied) << got.to_string();
    EXPECT_EQ(got.message(), answer.reason());
    EXPECT_FALSE(ran);
    return;
  }
  // Allowed: the handler ran, or a second required resource (not named here) was missing.
  if (ran) {
    ++tally->ran;
    EXPECT_TRUE(got.is_ok()) << got.to_string();
    return;
  }
  EXPECT_EQ(got.code(), Code::kInvalidArgument) << got.to_string();
  EXPECT_EQ(got.reason(), "field_required") << got.to_string();
  bool second_required = false;
  for (size_t i = 1; i < spec.resources.size(); ++i) {
    if (spec.resources[i].presence == Presence::kRequired) second_required = true;
  }
  EXPECT_TRUE(second_required) << key << " has no second required resource";
  ++tally->field_required;
}

TEST(CanIPropertyTest, CanIAgreesWithInvokeForEveryMethodCallerAndTarget) {
  Tally tally;
  size_t expected = 0;
  size_t asked_directly = 0;
  for (auto [enabled, guest] :
       {std::pair{true, true}, std::pair{true, false}, std::pair{false, true}}) {
    World world(security(enabled, guest));
    const size_t methods = world.table.methods().size();
    // Every RPC of the proto is in the table (one-to-one: server_test), so every one is checked.
    ASSERT_EQ(methods, rpc_count());
    ASSERT_GE(methods, 28u);
    expected += methods * world.callers.size() * kRefs.size();
    for (const auto& spec : world.table.methods()) {
      for (const auto& c : world.callers) {
        for (const auto& ref : kRefs) check_case(world, *spec, c, ref, &tally);
      }
    }
    asked_directly += world.asked_directly;
  }
  std::printf(
      "can-i property: %zu cases (%zu ran, %zu field_required, %zu denied, %zu not_found, %zu "
      "unauthenticated); %zu asked of the handler directly\n",
      tally.cases, tally.ran, tally.field_required, tally.denied, tally.not_found,
      tally.unauthenticated, asked_directly);
  // The loop checked what it should have: every case, and each kind of answer.
  EXPECT_EQ(tally.cases, expected);
  EXPECT_GE(tally.cases, 28u * 10 * 9 * 3);
  EXPECT_GT(tally.ran, 0u);
  EXPECT_GT(tally.field_required, 0u);
  EXPECT_GT(tally.denied, 0u);
  EXPECT_GT(tally.not_found, 0u);
  EXPECT_GT(tally.unauthenticated, 0u);
  EXPECT_GT(asked_directly, 0u);
}

// Anchors for the property: the fixtures mean what they say, so that "agree" is not "agree on
// everything refused".
TEST(CanIPropertyTest, FixturesGiveTheExpectedAnswers) {
  World world(security(true, true));
  struct Expect {
    const char* caller;
    const char* method;
    const char* ref;
    Code code;        // of can-i
    bool allowed;     // when OK
    const char* via;  // access_via: the caller's grant on the resource; "" = none was checked
  };
  const std::vector<Expect> expectations = {
      {"owner", "volume.delete", "vol-team", Code::kOk, true, "owner"},
      {"reader", "volume.inspect", "vol-team", Code::kOk, true, "collaborator issuer/reader:r"},
      {"reader", "volume.delete", "vol-team", Code::kOk, false, "collaborator issuer/reader:r"},
      {"eng", "mountattach.attach", "vol-team", Code::kOk, true, "group groupdomain/eng:w"},
      {"eng", "volume.snapshotdelete", "snap-team", Code::kOk, false, "group groupdomain/eng:w"},
      {"stranger", "volume.inspect", "vol-private", Code::kNotFound, false, ""},
      {"stranger", "volume.inspect", "vol-public", Code::kOk, true, "public:r"},
      {"stranger", "volume.inspect", "snap-team", Code::kNotFound, false, ""},  // not a volume
      {"stranger", "volume.snapshotdelete", "snap-private", Code::kNotFound, false, ""},
      {"stranger", "volume.snapshotdelete", "vol-unowned", Code::kNotFound, false, ""},
      {"stranger", "volume.delete", "vol-unowned", Code::kOk, true, "unowned"},
      {"stranger", "role.create", "", Code::kOk, false, ""},
      {"guest", "volume.inspect", "vol-public", Code::kOk, true, "public:r"},
      {"guest", "volume.inspect", "vol-team", Code::kNotFound, false, ""},
      {"guest", "identity.whoami", "", Code::kOk, false, ""},
      {"inspector", "volume.inspect", "vol-public", Code::kOk, true, "public:r"},
      {"inspector", "volume.stats", "vol-public", Code::kOk, false, ""},
      {"unknown-role", "volume.inspect", "vol-public", Code::kOk, false, ""},
      {"ownership-admin", "volume.delete", "vol-private", Code::kOk, true, "ownership admin"},
      {"ownership-admin", "volume.snapshotdelete", "snap-orphan", Code::kOk, true,
       "ownership admin (the snapshot's volume is gone)"},
      {"owner", "volume.snapshotdelete", "snap-orphan", Code::kNotFound, false, ""},
      {"admin", "role.create", "", Code::kOk, true, ""},
      {"forged", "volume.inspect", "vol-public", Code::kUnauthenticated, false, ""},
  };
  for (const auto& e : expectations) {
    SCOPED_TRACE(std::string(e.caller) + " " + e.method + " " + e.ref);
    v1::CapabilitiesResponse answer;
    Status s = world.can_i(world.caller(e.caller), e.method, e.ref, &answer);
    EXPECT_EQ(s.code(), e.code) << s.to_string();
    if (s.is_ok()) {
      EXPECT_EQ(answer.allowed(), e.allowed) << answer.reason();
      EXPECT_EQ(answer.access_via(), e.via);
      if (!e.allowed) {
        EXPECT_FALSE(answer.reason().empty());
      }
    }
  }
}

// The direct question (for callers who may not ask) answers as the pipeline's would: compared
// for every caller that may ask.
TEST(CanIPropertyTest, AskingTheHandlerDirectlyAnswersAsThePipelineDoes) {
  World world(security(true, true));
  size_t compared = 0;
  const MethodSpec& can_i = *world.table.find(kCanI);
  for (const auto& c : world.callers) {
    if (!c.may_ask || !c.authenticates || c.who.guest) continue;
    for (const auto& spec : world.table.methods()) {
      for (const auto& ref : kRefs) {
        SCOPED_TRACE(c.label + " " + spec->key() + " " + ref);
        v1::CapabilitiesRequest req;
        req.set_method(spec->key());
        req.set_volume(ref);
        v1::CapabilitiesResponse through, direct;
        Status a = world.pipeline->invoke(can_i, world.meta(c), req, &through);
        Call call;
        call.who = &c.who;
        call.method = kCanI;
        call.pipeline = world.pipeline.get();
        Status b = can_i.handler(call, req, &direct);
        EXPECT_TRUE(same_status(a, b)) << a.to_string() << "\n" << b.to_string();
        EXPECT_EQ(through.SerializeAsString(), direct.SerializeAsString());
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, world.table.methods().size() * 6 * kRefs.size());
}

}  // namespace
}  // namespace volguard::service
