#include "cli/client_commands.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "api/client.h"
#include "cli/commands.h"
#include "common/text.h"
#include "driver/driver.h"
#include "policy/policy.h"
#include "volguard.pb.h"

namespace volguard::cli {

namespace {

using google::protobuf::Message;

const std::string kVolumeSvc = "/volguard.v1.VolguardVolume/";
const std::string kMountSvc = "/volguard.v1.VolguardMountAttach/";
const std::string kRoleSvc = "/volguard.v1.VolguardRole/";
const std::string kIdentitySvc = "/volguard.v1.VolguardIdentity/";
const std::string kQuotaSvc = "/volguard.v1.VolguardQuota/";
const std::string kNodeSvc = "/volguard.v1.VolguardNode/";
const std::string kKeySvc = "/volguard.v1.VolguardKey/";
const std::string kTokenSvc = "/volguard.v1.VolguardToken/";

std::string resolve_token(const Globals& g) {
  // Trimmed like --token-file: `--token "$(cat f)"` keeps a CRLF's \r.
  if (!g.token.empty()) return std::string(trim_trailing_whitespace(g.token));
  if (!g.token_file.empty()) {
    auto t = read_file(g.token_file);
    if (!t) {
      std::exit(usage_error("--token-file: ", t.status().message()));
    }
    return std::string(trim_trailing_whitespace(*t));
  }
  const char* env = std::getenv("VOLGUARD_TOKEN");
  return env ? std::string(trim_trailing_whitespace(env)) : "";
}

bool is_64_bit(const google::protobuf::FieldDescriptor* f) {
  using FD = google::protobuf::FieldDescriptor;
  return f->cpp_type() == FD::CPPTYPE_INT64 || f->cpp_type() == FD::CPPTYPE_UINT64;
}

// Proto3's JSON mapping writes 64-bit integers as strings ("size_bytes": "1073741824"); a
// script wants numbers. Every size and count volguard prints is far below 2^53, where a JSON
// number is exact. Walks the descriptor beside the JSON: messages, repeated fields, maps.
void numbers_for_64_bit(const google::protobuf::Descriptor* d, nlohmann::json* j) {
  if (!j->is_object()) return;
  auto number = [](nlohmann::json* v) {
    if (!v->is_string()) return;
    const std::string text = v->get<std::string>();
    if (auto n = parse_count(text)) {
      *v = *n;
    } else if (!text.empty() && text[0] == '-') {
      if (auto m = parse_count(std::string_view(text).substr(1)); m && *m <= static_cast<uint64_t>(INT64_MAX)) {
        *v = -static_cast<int64_t>(*m);
      }
    }
  };
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    auto it = j->find(f->name());
    if (it == j->end()) continue;
    if (f->is_map()) {
      const auto* value = f->message_type()->map_value();
      for (auto& [k, v] : it->items()) {
        if (is_64_bit(value)) number(&v);
        else if (value->message_type()) numbers_for_64_bit(value->message_type(), &v);
      }
    } else if (f->is_repeated() && it->is_array()) {
      for (auto& v : *it) {
        if (is_64_bit(f)) number(&v);
        else if (f->message_type()) numbers_for_64_bit(f->message_type(), &v);
      }
    } else if (is_64_bit(f)) {
      number(&*it);
    } else if (f->message_type()) {
      numbers_for_64_bit(f->message_type(), &*it);
    }
  }
}

void print_json(const Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  auto j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    std::cout << out << "\n";
    return;
  }
  numbers_for_64_bit(m.GetDescriptor(), &j);
  std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

// Calls and reports; returns the exit code. `print` runs only on success in table mode.
int call(const Globals& g, const std::string& path, const Message& req, Message* resp,
         const std::function<void()>& print) {
  auto client = api::Client::connect(g.endpoint, resolve_token(g),
                                     ClientTls{.ca = g.tls_ca, .cert_file = g.tls_cert, .key_file = g.tls_key});
  if (!client) {
    return usage_error(client.status().message());
  }
  std::string session = g.session;
  if (session.empty()) {
    if (const char* env = std::getenv("VOLGUARD_SESSION")) session = env;
  }
  if (!session.empty()) {
    if (auto text = read_file(session); text.is_ok()) {
      if (auto rev = parse_count(trim_trailing_whitespace(*text))) client->set_min_revision(static_cast<int64_t>(*rev));
    }
  }
  Status s = client->call(path, req, resp);
  if (!session.empty() && client->revision() > 0) {
    if (Status w = write_file(session, std::to_string(client->revision()) + "\n", 0600); !w.is_ok()) {
      report_warning("--session: " + w.message());
    }
  }
  if (!s.is_ok()) {
    return report_failure(s, exit_code_for(static_cast<int>(s.code())));
  }
  if (g.output == "json") {
    print_json(*resp);
  } else if (print) {
    print();
  }
  return kExitOk;
}

// "g:r" → {g, r}; the last ':' splits so that issuer URLs in names survive.
bool split_grant(const std::string& text, std::string* name, std::string* access) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return false;
  *name = text.substr(0, colon);
  *access = text.substr(colon + 1);
  return true;
}

bool split_label(const std::string& text, std::string* k, std::string* v) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  *k = text.substr(0, eq);
  *v = text.substr(eq + 1);
  return true;
}

std::string acl_text(const v1::Ownership& o) {
  std::string out;
  for (const auto& [k, v] : o.groups()) out += (out.empty() ? "" : ",") + std::string("g:") + k + ":" + v;
  for (const auto& [k, v] : o.collaborators()) out += (out.empty() ? "" : ",") + std::string("u:") + k + ":" + v;
  if (!o.public_().empty()) out += (out.empty() ? "" : ",") + std::string("public:") + o.public_();
  return out.empty() ? "-" : out;
}

void print_volume_table(const std::vector<const v1::Volume*>& vols) {
  std::cout << std::left << std::setw(18) << "ID" << std::setw(24) << "NAME" << std::setw(8) << "SIZE"
            << std::setw(6) << "FS" << std::setw(28) << "OWNER" << std::setw(20) << "STATE"
            << "ACL\n";
  for (const auto* v : vols) {
    std::string state = v->mount_path().empty() ? (v->device().empty() ? v->state() : "attached")
                                                : "mounted " + v->mount_path();
    std::cout << std::setw(18) << v->id() << std::setw(24) << v->name() << std::setw(8) << v->size()
              << std::setw(6) << v->fs() << std::setw(28)
              << (v->ownership().owner().empty() ? "(public)" : v->ownership().owner())
              << std::setw(20) << state << acl_text(v->ownership()) << "\n";
  }
}

void print_volume(const v1::Volume& v) {
  std::cout << "Volume     : " << v.name() << " (" << v.id() << ")\n"
            << "Size       : " << v.size() << " (" << v.size_bytes() << " bytes)\n"
            << "Filesystem : " << v.fs() << "\n"
            << "State      : " << v.state() << "\n"
            << "Owner      : " << (v.ownership().owner().empty() ? "(none: public)" : v.ownership().owner()) << "\n"
            << "ACL        : " << acl_text(v.ownership()) << "\n";
  if (!v.home_node().empty()) std::cout << "Home node  : " << v.home_node() << "\n";
  std::cout << "Encrypted  : "
            << (v.encrypted() ? "yes (key " + v.secret_key() + ", " + v.kek_id() + ")" : std::string("no")) << "\n";
  if (!v.device().empty()) std::cout << "Device     : " << v.device() << "\n";
  if (!v.mount_path().empty()) std::cout << "Mounted at : " << v.mount_path() << "\n";
  if (!v.source_volume().empty()) std::cout << "Source     : " << v.source_volume() << "\n";
  if (!v.labels().empty()) {
    std::cout << "Labels     :";
    for (const auto& [k, val] : v.labels()) std::cout << " " << k << "=" << val;
    std::cout << "\n";
  }
  std::cout << "Created    : " << v.created_at() << "\n";
}

int usage(const std::string& why) { return usage_error(why); }

// pxctl's --size is in GiB: a bare number here is GiB too ("10" = 10 GiB). Anything with a
// unit goes to the server as written (bytes need "B": "4096B"), where parse_size reads it.
std::string pxctl_size(const std::string& text) {
  if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return text + "G";
  }
  return text;
}

}  // namespace

int exit_code_for(int grpc_code) {
  switch (static_cast<Code>(grpc_code)) {
    case Code::kOk: return 0;
    case Code::kUnauthenticated: return 3;
    case Code::kPermissionDenied: return 4;
    case Code::kNotFound: return 5;
    case Code::kAlreadyExists: return 6;
    case Code::kInvalidArgument: return 7;
    case Code::kFailedPrecondition: return 8;
    case Code::kUnavailable: return 9;
    case Code::kOutOfRange: return 10;
    case Code::kResourceExhausted: return 11;  // quota_exceeded
    default: return 1;
  }
}

int volume_command(const Globals& g, const std::string& verb, const VolumeArgs& a) {
  if (verb == "create") {
    v1::CreateVolumeRequest req;
    req.set_name(a.name);
    req.set_size(pxctl_size(a.size));
    req.set_fs(a.fs);
    for (const auto& l : a.labels) {
      std::string k, v;
      if (!split_label(l, &k, &v)) return usage("--label '" + l + "' must be KEY=VALUE");
      (*req.mutable_labels())[k] = v;
    }
    for (const auto& gr : a.groups) {
      std::string n, acc;
      if (!split_grant(gr, &n, &acc)) return usage("--group '" + gr + "' must be GROUP:r|w|a");
      (*req.mutable_groups())[n] = acc;
    }
    for (const auto& c : a.collaborators) {
      std::string n, acc;
      if (!split_grant(c, &n, &acc)) return usage("--collaborator '" + c + "' must be USER:r|w|a");
      (*req.mutable_collaborators())[n] = acc;
    }
    req.set_public_(a.public_access);
    req.set_home_node(a.node);
    req.set_secure(a.secure);
    req.set_secret_key(a.secret_key);
    v1::VolumeResponse resp;
    return call(g, kVolumeSvc + "Create", req, &resp, [&] {
      std::cout << "Volume successfully created: " << resp.volume().id() << "\n";
    });
  }
  if (verb == "list") {
    v1::EnumerateRequest req;
    for (const auto& l : a.labels) {
      std::string k, v;
      if (!split_label(l, &k, &v)) return usage("--label '" + l + "' must be KEY=VALUE");
      (*req.mutable_labels())[k] = v;
    }
    req.set_owner(a.owner);
    v1::EnumerateResponse resp;
    return call(g, kVolumeSvc + "Enumerate", req, &resp, [&] {
      std::vector<const v1::Volume*> vols;
      for (const auto& v : resp.volumes()) vols.push_back(&v);
      print_volume_table(vols);
    });
  }
  if (verb == "inspect") {
    v1::VolumeRef req;
    req.set_volume(a.name);
    v1::VolumeResponse resp;
    return call(g, kVolumeSvc + "Inspect", req, &resp, [&] { print_volume(resp.volume()); });
  }
  if (verb == "update") {
    v1::UpdateVolumeRequest req;
    req.set_volume(a.name);
    for (const auto& l : a.labels) {
      std::string k, v;
      if (!split_label(l, &k, &v)) return usage("--label '" + l + "' must be KEY=VALUE");
      (*req.mutable_set_labels())[k] = v;
    }
    for (const auto& k : a.remove_labels) req.add_remove_labels(k);
    req.set_size(pxctl_size(a.size));
    v1::VolumeResponse resp;
    return call(g, kVolumeSvc + "Update", req, &resp, [&] { print_volume(resp.volume()); });
  }
  if (verb == "delete") {
    v1::VolumeRef req;
    req.set_volume(a.name);
    v1::Empty resp;
    return call(g, kVolumeSvc + "Delete", req, &resp, [&] { std::cout << "Volume " << a.name << " deleted\n"; });
  }
  if (verb == "stats") {
    v1::VolumeRef req;
    req.set_volume(a.name);
    v1::StatsResponse resp;
    return call(g, kVolumeSvc + "Stats", req, &resp, [&] {
      std::cout << "size " << resp.size_bytes() << " allocated " << resp.allocated_bytes()
                << " fs_used " << resp.fs_used_bytes() << " fs_total " << resp.fs_total_bytes() << "\n";
    });
  }
  if (verb == "restore") {
    v1::SnapshotRestoreRequest req;
    req.set_volume(a.name);
    req.set_snapshot(a.snapshot);
    v1::VolumeResponse resp;
    return call(g, kVolumeSvc + "SnapshotRestore", req, &resp, [&] {
      std::cout << "Volume " << a.name << " restored from snapshot " << a.snapshot << "\n";
    });
  }
  if (verb == "clone") {
    v1::CloneVolumeRequest req;
    if (!a.snapshot.empty()) req.set_source_snapshot(a.snapshot);
    else req.set_source(a.name);
    req.set_name(a.new_name);
    if (a.plain) req.set_secure(false);
    v1::VolumeResponse resp;
    return call(g, kVolumeSvc + "Clone", req, &resp, [&] {
      std::cout << "Volume clone created: " << resp.volume().id() << "\n";
    });
  }
  if (verb == "attach") {
    v1::VolumeRef req;
    req.set_volume(a.name);
    v1::AttachResponse resp;
    return call(g, kMountSvc + "Attach", req, &resp, [&] {
      std::cout << "Volume " << a.name << " attached at " << resp.device() << "\n";
    });
  }
  if (verb == "detach" || verb == "unmount") {
    v1::VolumeRef req;
    req.set_volume(a.name);
    v1::Empty resp;
    return call(g, kMountSvc + (verb == "detach" ? "Detach" : "Unmount"), req, &resp,
                [&] { std::cout << "Volume " << a.name << " " << verb << "ed\n"; });
  }
  if (verb == "mount") {
    v1::MountRequest req;
    req.set_volume(a.name);
    req.set_path(a.path);
    v1::Empty resp;
    return call(g, kMountSvc + "Mount", req, &resp, [&] {
      std::cout << "Volume " << a.name << " mounted at " << a.path << "\n";
    });
  }
  return usage("unknown volume verb " + verb);
}

int snapshot_command(const Globals& g, const std::string& verb, const VolumeArgs& a) {
  if (verb == "create") {
    v1::SnapshotCreateRequest req;
    req.set_volume(a.name);
    // pxctl makes the name optional: VOLUME-snap-<UTC time to the second>, printed. A volume
    // given by id makes the name from the id; either is a valid name.
    std::string name = a.new_name;
    if (name.empty()) {
      char stamp[32];
      const std::time_t now = std::time(nullptr);
      std::tm tm{};
      gmtime_r(&now, &tm);
      std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
      name = a.name + "-snap-" + stamp;
    }
    req.set_name(name);
    v1::SnapshotResponse resp;
    return call(g, kVolumeSvc + "SnapshotCreate", req, &resp, [&] {
      std::cout << "Volume snap successful: " << resp.snapshot().id() << " (" << resp.snapshot().name() << ")\n";
    });
  }
  if (verb == "list") {
    v1::SnapshotEnumerateRequest req;
    req.set_volume(a.name);
    v1::SnapshotEnumerateResponse resp;
    return call(g, kVolumeSvc + "SnapshotEnumerate", req, &resp, [&] {
      std::cout << std::left << std::setw(18) << "ID" << std::setw(24) << "NAME" << std::setw(18)
                << "VOLUME" << "CREATED\n";
      for (const auto& s : resp.snapshots()) {
        std::cout << std::setw(18) << s.id() << std::setw(24) << s.name() << std::setw(18)
                  << s.volume_id() << s.created_at() << "\n";
      }
    });
  }
  if (verb == "delete") {
    v1::SnapshotRef req;
    req.set_snapshot(a.name);
    v1::Empty resp;
    return call(g, kVolumeSvc + "SnapshotDelete", req, &resp,
                [&] { std::cout << "Snapshot " << a.name << " deleted\n"; });
  }
  return usage("unknown snapshot verb " + verb);
}

int access_command(const Globals& g, const std::string& verb, const VolumeArgs& a) {
  if (verb == "show") {
    v1::VolumeRef req;
    req.set_volume(a.name);
    v1::VolumeResponse resp;
    return call(g, kVolumeSvc + "Inspect", req, &resp, [&] {
      const auto& o = resp.volume().ownership();
      std::cout << "Owner: " << (o.owner().empty() ? "(none: public)" : o.owner()) << "\n";
      for (const auto& [k, v] : o.groups()) std::cout << "Group: " << k << " " << v << "\n";
      for (const auto& [k, v] : o.collaborators()) std::cout << "Collaborator: " << k << " " << v << "\n";
      if (!o.public_().empty()) std::cout << "Public: " << o.public_() << "\n";
    });
  }
  v1::UpdateVolumeRequest req;
  req.set_volume(a.name);
  if (verb == "add") {
    for (const auto& gr : a.groups) {
      std::string n, acc;
      if (!split_grant(gr, &n, &acc)) return usage("--group '" + gr + "' must be GROUP:r|w|a");
      (*req.mutable_add_groups())[n] = acc;
    }
    for (const auto& c : a.collaborators) {
      std::string n, acc;
      if (!split_grant(c, &n, &acc)) return usage("--collaborator '" + c + "' must be USER:r|w|a");
      (*req.mutable_add_collaborators())[n] = acc;
    }
    req.set_set_public(a.public_access);
  } else if (verb == "remove") {
    for (const auto& gr : a.groups) req.add_remove_groups(gr);
    for (const auto& c : a.collaborators) req.add_remove_collaborators(c);
    if (a.remove_public) req.set_set_public("none");
  } else if (verb == "transfer") {
    if (a.owner.empty()) return usage("--owner is required");
    req.set_owner(a.owner);
  } else {
    return usage("unknown access verb " + verb);
  }
  if (req.add_groups().empty() && req.add_collaborators().empty() && req.remove_groups().empty() &&
      req.remove_collaborators().empty() && req.set_public().empty() && req.owner().empty()) {
    return usage("nothing to change: give --group, --collaborator or --public");
  }
  v1::VolumeResponse resp;
  return call(g, kVolumeSvc + "Update", req, &resp, [&] {
    std::cout << "Volume " << a.name << " access updated: owner "
              << resp.volume().ownership().owner() << ", " << acl_text(resp.volume().ownership())
              << "\n";
  });
}

int role_command(const Globals& g, const std::string& verb, const std::string& arg) {
  if ((verb == "inspect" || verb == "delete") && arg.empty()) {
    return usage("role " + verb + ": give the role name (as a word or with --name)");
  }
  if (verb == "create" || verb == "update") {
    auto text = read_file(arg);
    if (!text) return usage("--role-config: " + text.status().message());
    auto role = policy::role_from_json(*text);
    if (!role) return usage(arg + ": " + role.status().message());
    v1::RoleRequest req;
    req.mutable_role()->set_name(role->name);
    for (const auto& r : role->rules) {
      auto* pr = req.mutable_role()->add_rules();
      for (const auto& s : r.services) pr->add_services(s);
      for (const auto& ap : r.apis) pr->add_apis(ap);
    }
    v1::RoleResponse resp;
    return call(g, kRoleSvc + (verb == "create" ? "Create" : "Update"), req, &resp, [&] {
      std::cout << "Role " << resp.role().name() << " " << verb << "d\n";
    });
  }
  if (verb == "list") {
    v1::Empty req;
    v1::RoleEnumerateResponse resp;
    return call(g, kRoleSvc + "Enumerate", req, &resp, [&] {
      for (const auto& n : resp.names()) std::cout << n << "\n";
    });
  }
  if (verb == "inspect") {
    v1::RoleRef req;
    req.set_name(arg);
    v1::RoleResponse resp;
    // One shape with or without -o json: the role in Portworx's JSON, which `role create
    // --role-config` reads back.
    Globals same = g;
    same.output.clear();
    return call(same, kRoleSvc + "Inspect", req, &resp, [&] { print_json(resp.role()); });
  }
  if (verb == "delete") {
    v1::RoleRef req;
    req.set_name(arg);
    v1::Empty resp;
    return call(g, kRoleSvc + "Delete", req, &resp, [&] { std::cout << "Role " << arg << " deleted\n"; });
  }
  return usage("unknown role verb " + verb);
}

namespace {

// One line per quota: "group test.local/eng   48M / 1G   3 / 5   0 / unlimited   set".
void print_quotas(const google::protobuf::RepeatedPtrField<v1::Quota>& quotas) {
  auto of = [](uint64_t used, uint64_t max, bool bytes) {
    auto show = [bytes](uint64_t v) { return bytes ? driver::format_size(v) : std::to_string(v); };
    return show(used) + " / " + (max == 0 ? std::string("unlimited") : show(max));
  };
  std::cout << std::left << std::setw(40) << "SUBJECT" << std::setw(22) << "BYTES" << std::setw(18)
            << "VOLUMES" << std::setw(18) << "SNAPSHOTS" << "SOURCE\n";
  for (const auto& q : quotas) {
    std::string subject = q.kind() == "guest" ? "guest" : q.kind() + " " + q.subject();
    std::cout << std::setw(40) << subject << std::setw(22) << of(q.used_bytes(), q.max_bytes(), true)
              << std::setw(18) << of(q.used_volumes(), q.max_volumes(), false) << std::setw(18)
              << of(q.used_snapshots(), q.max_snapshots(), false) << q.source() << "\n";
  }
}

// --max-bytes 10G / --max-volumes 5; "0" or "unlimited" lifts the limit.
bool parse_limit(const std::string& flag, const std::string& text, bool bytes, uint64_t* out,
                 std::string* why) {
  if (text == "0" || to_lower(text) == "unlimited") {
    *out = 0;
    return true;
  }
  if (bytes) {
    auto b = driver::parse_size(pxctl_size(text));  // a bare number is GiB, as for --size
    if (!b) {
      *why = flag + ": " + b.status().message();
      return false;
    }
    *out = *b;
    return true;
  }
  auto n = parse_count(text);
  if (!n) {
    *why = flag + " '" + text + "' must be a count (0 or unlimited: no limit)";
    return false;
  }
  *out = *n;
  return true;
}

}  // namespace

int quota_command(const Globals& g, const std::string& verb, const QuotaArgs& a) {
  if (verb == "set") {
    v1::QuotaSetRequest req;
    req.set_user(a.user);
    req.set_group(a.group);
    req.set_guest(a.guest);
    req.set_reset(a.reset);
    const struct {
      const char* flag;
      const std::string& text;
      bool bytes;
      void (v1::QuotaSetRequest::*set)(uint64_t);
    } limits[] = {{"--max-bytes", a.max_bytes, true, &v1::QuotaSetRequest::set_max_bytes},
                  {"--max-volumes", a.max_volumes, false, &v1::QuotaSetRequest::set_max_volumes},
                  {"--max-snapshots", a.max_snapshots, false,
                   &v1::QuotaSetRequest::set_max_snapshots}};
    for (const auto& l : limits) {
      if (l.text.empty()) continue;  // unchanged
      uint64_t v = 0;
      std::string why;
      if (!parse_limit(l.flag, l.text, l.bytes, &v, &why)) return usage(why);
      (req.*l.set)(v);
    }
    v1::QuotaResponse resp;
    return call(g, kQuotaSvc + "Set", req, &resp, [&] { print_quotas(resp.quotas()); });
  }
  if (verb == "show") {
    v1::QuotaShowRequest req;
    req.set_user(a.user);
    req.set_group(a.group);
    req.set_guest(a.guest);
    req.set_all(a.all);
    v1::QuotaResponse resp;
    return call(g, kQuotaSvc + "Show", req, &resp, [&] { print_quotas(resp.quotas()); });
  }
  return usage("unknown quota verb " + verb);
}

int auth_command(const Globals& g, const std::string& verb, const std::string& method,
                 const std::string& volume) {
  if (verb == "whoami") {
    v1::Empty req;
    v1::WhoAmIResponse resp;
    return call(g, kIdentitySvc + "WhoAmI", req, &resp, [&] {
      if (resp.guest()) {
        std::cout << "guest (no token): roles [system.guest]\n";
        return;
      }
      std::cout << "Username  : " << resp.username() << "\nPrincipal : " << resp.principal()
                << "\nIssuer    : " << resp.issuer() << "\nName      : " << resp.name()
                << "\nEmail     : " << resp.email() << "\nRoles     :";
      for (const auto& r : resp.roles()) std::cout << " " << r;
      std::cout << "\nGroups    :";
      for (const auto& gr : resp.groups()) std::cout << " " << gr;
      if (!resp.group_domain().empty()) std::cout << " (group domain " << resp.group_domain() << ")";
      std::cout << "\nOwnership admin: " << (resp.ownership_admin() ? "yes" : "no")
                << "\nExpires   : " << resp.expires_at() << "\n";
      if (!resp.quotas().empty()) {
        std::cout << "Quotas (used / limit):\n";
        print_quotas(resp.quotas());
      }
    });
  }
  if (verb == "can-i") {
    v1::CapabilitiesRequest req;
    req.set_method(method);
    req.set_volume(volume);
    v1::CapabilitiesResponse resp;
    int rc = call(g, kIdentitySvc + "Capabilities", req, &resp, [&] {
      std::cout << (resp.allowed() ? "yes" : "no") << "\n";
      if (!resp.role().empty()) std::cout << "  role rule : " << resp.role() << " " << resp.rule() << "\n";
      if (!resp.access_needed().empty()) {
        std::cout << "  ownership : needs " << resp.access_needed() << ", has "
                  << resp.access_granted()
                  << (resp.access_via().empty() ? "" : " via " + resp.access_via()) << "\n";
      }
      if (!resp.reason().empty()) std::cout << "  why not   : " << resp.reason() << "\n";
    });
    if (rc == kExitOk && !resp.allowed()) return kExitRefused;
    return rc;
  }
  return usage("unknown auth verb " + verb);
}

int node_command(const Globals& g, const std::string& verb) {
  if (verb == "list") {
    v1::NodeEnumerateResponse resp;
    return call(g, kNodeSvc + "Enumerate", v1::Empty(), &resp, [&] {
      std::cout << std::left << std::setw(20) << "NODE" << std::setw(24) << "ADDRESS" << std::setw(8) << "STATE"
                << std::setw(10) << "VOLUMES" << std::setw(22) << "STARTED" << "VERSION\n";
      for (const auto& n : resp.nodes()) {
        std::cout << std::setw(20) << (n.name() + (n.self() ? " *" : "")) << std::setw(24) << n.address()
                  << std::setw(8) << (n.alive() ? "up" : "down") << std::setw(10) << n.volumes()
                  << std::setw(22) << n.started_at() << n.version() << "\n";
      }
    });
  }
  return usage("unknown node verb " + verb);
}

namespace {

// The claims of a token read without verifying it: the server verified it when it was used;
// here only its jti, iss and exp are wanted. Nothing of the token is ever printed.
struct TokenIds {
  std::string jti, issuer;
  int64_t exp = 0;
};
Result<TokenIds> token_ids(const std::string& file) {
  std::string text;
  if (file == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    ASSIGN_OR_RETURN(text, read_file(file));
  }
  const std::string_view token = trim_trailing_whitespace(text);
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  auto bad = [&](const std::string& why) {
    return Status(Code::kInvalidArgument, "bad_token_file", "--file " + file + ": " + why);
  };
  if (dot2 == std::string_view::npos) return bad("not a compact JWS token (header.payload.signature)");
  auto payload = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload) return bad("the token's payload is not base64url");
  nlohmann::json claims = nlohmann::json::parse(*payload, nullptr, /*allow_exceptions=*/false);
  if (!claims.is_object()) return bad("the token's payload is not a JSON object");
  TokenIds ids;
  if (!claims.contains("jti") || !claims["jti"].is_string() || claims["jti"].get<std::string>().empty()) {
    return bad("the token has no jti claim: revoke its user's tokens with --user ISSUER/USERNAME");
  }
  ids.jti = claims["jti"].get<std::string>();
  if (claims.contains("iss") && claims["iss"].is_string()) ids.issuer = claims["iss"].get<std::string>();
  if (claims.contains("exp") && claims["exp"].is_number_integer()) ids.exp = claims["exp"].get<int64_t>();
  return ids;
}

Result<int64_t> time_option(const std::string& flag, const std::string& text) {
  if (text.empty()) return int64_t{0};
  auto t = parse_rfc3339(text);
  if (!t) {
    return Status(Code::kInvalidArgument, "bad_time",
                  flag + " must be an RFC 3339 UTC time such as 2026-12-07T10:00:00Z");
  }
  return *t;
}

void print_revocation(const v1::Revocation& r) {
  const auto when = [](int64_t t) { return t == 0 ? std::string("-") : rfc3339(t); };
  std::cout << std::left << std::setw(7) << r.kind() << std::setw(40)
            << (r.kind() == "token" ? (r.issuer().empty() ? "*" : r.issuer()) + " jti " + r.subject()
                                    : r.subject() + " before " + when(r.before()))
            << "  expires " << (r.expires_at() == 0 ? std::string("never (kept until removed)") : when(r.expires_at()))
            << "  by " << r.by() << "\n";
}

}  // namespace

int revoke_command(const Globals& g, const std::string& verb, const RevokeArgs& a) {
  if (verb == "revocations") {
    v1::RevocationEnumerateResponse resp;
    return call(g, kTokenSvc + "Enumerate", v1::Empty(), &resp, [&] {
      for (const auto& r : resp.revocations()) print_revocation(r);
    });
  }
  if (verb != "revoke") return usage("unknown token verb " + verb);
  if ((!a.jti.empty()) + (!a.file.empty()) + (!a.user.empty()) != 1) {
    return usage("token revoke: give exactly one of --jti, --file, --user");
  }
  v1::TokenRevokeRequest req;
  auto before = time_option("--before", a.before);
  auto expires = time_option("--expires", a.expires);
  for (const auto* t : {&before, &expires}) {
    if (!*t) return usage(t->status().message());
  }
  if (!a.file.empty()) {
    if (!a.issuer.empty()) return usage("token revoke: --file reads the issuer from the token");
    auto ids = token_ids(a.file);
    if (!ids) return usage(ids.status().message());
    req.set_jti(ids->jti);
    req.set_issuer(ids->issuer);  // the server refuses an issuer it does not trust
    // The file is not verified: an exp already past (or edited to be) must not shorten the
    // revocation to nothing; the server then bounds it by max_token_lifetime, or keeps it.
    const int64_t now = static_cast<int64_t>(::time(nullptr));
    req.set_expires_at(*expires != 0 ? *expires : (ids->exp > now ? ids->exp : 0));
  } else {
    req.set_jti(a.jti);
    req.set_issuer(a.issuer);
    req.set_user(a.user);
    req.set_expires_at(*expires);
  }
  if (!a.user.empty()) req.set_before(*before);
  else if (*before != 0) return usage("token revoke: --before applies to --user");
  v1::TokenRevokeResponse resp;
  return call(g, kTokenSvc + "Revoke", req, &resp, [&] {
    std::cout << "Revoked: ";
    print_revocation(resp.revocation());
    if (resp.purged() > 0) std::cout << "Expired revocations removed: " << resp.purged() << "\n";
  });
}

int key_command(const Globals& g, const std::string& verb, const VolumeArgs& a) {
  if (verb == "rotate") {
    v1::KeyRotateRequest req;
    req.set_secret_key(a.secret_key);
    v1::KeyRotateResponse resp;
    return call(g, kKeySvc + "Rotate", req, &resp, [&] {
      std::cout << "Data keys re-wrapped: " << resp.rewrapped() << ", already current: " << resp.current()
                << ", failed: " << resp.failed() << "\n";
      for (const auto& e : resp.errors()) std::cout << "  " << e << "\n";
    });
  }
  return usage("unknown key verb " + verb);
}

}  // namespace volguard::cli
