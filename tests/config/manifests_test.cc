// The Kubernetes manifests (deploy/kubernetes/): they parse, hold what a deployment needs, and
// every choice the CSI path depends on is checked: the secrets each StorageClass names, the
// ${...} templates against what the pinned sidecar versions resolve, image tags, resources,
// the sidecars' RBAC, probes, the node and controller credentials, and the server config as
// each node renders it. Each check returns its problems as text; the shipped manifests must
// have none, and hand-made broken manifests must be caught (so that the checks can fail).
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "config/config.h"

namespace {

namespace fs = std::filesystem;

const std::string kSource = VOLGUARD_SOURCE_DIR;
const std::string kDeploy = kSource + "/deploy/kubernetes";
const std::string kDriver = "csi.volguard.io";

using Problems = std::vector<std::string>;

std::string join(const Problems& p) {
  std::string out;
  for (const auto& s : p) out += "  " + s + "\n";
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string str(const YAML::Node& n) { return n && n.IsScalar() ? n.as<std::string>() : ""; }

// n[path...], or an undefined node where a key is missing (yaml-cpp throws when indexing a
// missing key's result).
YAML::Node at(YAML::Node n, std::initializer_list<std::string> path) {
  for (const auto& k : path) {
    if (!n || !n.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node& cn = n;
    const YAML::Node next = cn[k];
    if (!next) return YAML::Node(YAML::NodeType::Undefined);
    n.reset(next);  // rebinds (Node::operator= would assign into the shared node)
  }
  return n;
}

bool contains(const YAML::Node& seq, const std::string& want) {
  if (!seq || !seq.IsSequence()) return false;
  for (const auto& v : seq) {
    if (str(v) == want || str(v) == "*") return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Loading

struct Manifests {
  std::vector<YAML::Node> docs;
  const YAML::Node* find(const std::string& kind, const std::string& name) const {
    for (const auto& d : docs) {
      if (str(d["kind"]) == kind && str(d["metadata"]["name"]) == name) return &d;
    }
    return nullptr;
  }
  std::vector<YAML::Node> of_kind(const std::string& kind) const {
    std::vector<YAML::Node> out;
    for (const auto& d : docs) {
      if (str(d["kind"]) == kind) out.push_back(d);
    }
    return out;
  }
};

void add_docs(Manifests* m, const std::vector<YAML::Node>& docs) {
  for (const auto& d : docs) {
    if (d && !d.IsNull()) m->docs.push_back(d);
  }
}

// What `kubectl apply -f DIR` reads: the YAML files of DIR itself, not its subdirectories.
Manifests load_dir(const std::string& dir) {
  Manifests m;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto ext = e.path().extension();
    if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json")) {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) add_docs(&m, YAML::LoadAllFromFile(f.string()));
  return m;
}

Manifests load_text(const std::string& text) {
  Manifests m;
  add_docs(&m, YAML::LoadAll(text));
  return m;
}

// Everything shipped: the directory applied first, and the snapshot class applied after the CRDs.
Manifests load_all() {
  Manifests m = load_dir(kDeploy);
  Manifests s = load_dir(kDeploy + "/snapshots");
  m.docs.insert(m.docs.end(), s.docs.begin(), s.docs.end());
  return m;
}

// The containers (and init containers) of every workload, with where they are.
struct Container {
  std::string where;  // Kind/name/container
  YAML::Node pod;     // the pod spec
  YAML::Node c;
};

std::vector<Container> containers(const Manifests& m) {
  std::vector<Container> out;
  for (const auto& d : m.docs) {
    const std::string kind = str(d["kind"]);
    if (kind != "Deployment" && kind != "DaemonSet" && kind != "StatefulSet" && kind != "Job")
      continue;
    const YAML::Node pod = d["spec"]["template"]["spec"];
    for (const char* list : {"initContainers", "containers"}) {
      if (!pod[list]) continue;
      for (const auto& c : pod[list]) {
        out.push_back({kind + "/" + str(d["metadata"]["name"]) + "/" + str(c["name"]), pod, c});
      }
    }
  }
  return out;
}

const Container* container(const std::vector<Container>& cs, const std::string& where) {
  for (const auto& c : cs) {
    if (c.where == where) return &c;
  }
  return nullptr;
}

std::vector<std::string> args_of(const YAML::Node& c) {
  std::vector<std::string> out;
  for (const char* k : {"command", "args"}) {
    if (c[k]) {
      for (const auto& a : c[k]) out.push_back(str(a));
    }
  }
  return out;
}

// The value after `flag` (as "--flag value" or "--flag=value"), or "".
std::string flag_value(const std::vector<std::string>& args, const std::string& flag) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == flag && i + 1 < args.size()) return args[i + 1];
    if (args[i].rfind(flag + "=", 0) == 0) return args[i].substr(flag.size() + 1);
  }
  return "";
}

bool has_flag(const std::vector<std::string>& args, const std::string& flag) {
  for (const auto& a : args) {
    if (a == flag || a.rfind(flag + "=", 0) == 0) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Images and versions

struct Version {
  int major = -1, minor = 0, patch = 0;
  bool valid() const { return major >= 0; }
  bool operator<(const Version& o) const {
    return std::tie(major, minor, patch) < std::tie(o.major, o.minor, o.patch);
  }
  std::string text() const {
    return "v" + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
  }
};

// "v5.3.0" or "5.3.0" (no std::regex: GCC 12 warns inside it under the sanitizers).
Version parse_version(const std::string& tag) {
  const std::string t = !tag.empty() && tag[0] == 'v' ? tag.substr(1) : tag;
  int parts[3] = {0, 0, 0};
  size_t start = 0;
  for (int i = 0; i < 3; ++i) {
    const size_t end = i < 2 ? t.find('.', start) : t.size();
    if (end == std::string::npos || end == start || end > t.size()) return {};
    const std::string digits = t.substr(start, end - start);
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return {};
    }
    parts[i] = std::stoi(digits);
    start = end + 1;
  }
  return {parts[0], parts[1], parts[2]};
}

// "registry.k8s.io/sig-storage/csi-provisioner:v5.3.0" -> {"csi-provisioner", "v5.3.0"}.
std::pair<std::string, std::string> split_image(const std::string& image) {
  const size_t slash = image.rfind('/');
  const size_t colon = image.rfind(':');
  const bool tagged = colon != std::string::npos && (slash == std::string::npos || colon > slash);
  const std::string repo = tagged ? image.substr(0, colon) : image;
  const std::string tag = tagged ? image.substr(colon + 1) : "";
  const size_t s = repo.rfind('/');
  return {s == std::string::npos ? repo : repo.substr(s + 1), tag};
}

Problems check_images(const Manifests& m) {
  Problems p;
  for (const auto& c : containers(m)) {
    const std::string image = str(c.c["image"]);
    const auto [name, tag] = split_image(image);
    if (image.empty()) {
      p.push_back(c.where + ": no image");
    } else if (tag.empty()) {
      p.push_back(c.where + ": image " + image + " has no tag");
    } else if (tag == "latest") {
      p.push_back(c.where + ": image " + image + " uses :latest");
    }
  }
  return p;
}

// The pinned version of each sidecar image in the manifests (by image name).
std::map<std::string, Version> pinned_versions(const Manifests& m) {
  std::map<std::string, Version> out;
  for (const auto& c : containers(m)) {
    const auto [name, tag] = split_image(str(c.c["image"]));
    out[name] = parse_version(tag);
  }
  return out;
}

Problems check_resources(const Manifests& m) {
  Problems p;
  for (const auto& c : containers(m)) {
    const YAML::Node r = at(c.c, {"resources"});
    for (const char* k : {"cpu", "memory"}) {
      if (str(at(r, {"requests", k})).empty())
        p.push_back(c.where + ": no resources.requests." + k);
    }
    if (str(at(r, {"limits", "memory"})).empty())
      p.push_back(c.where + ": no resources.limits.memory");
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Secret templates and the sidecar versions that resolve them.
//
// Support table from the kubernetes-csi documentation, "StorageClass Secrets"
// (kubernetes-csi.github.io/docs/secrets-and-credentials-storage-class.html) and
// "VolumeSnapshotClass Secrets" (.../secrets-and-credentials-volume-snapshot-class.html).
// csi-provisioner resolves every StorageClass secret template when it provisions the PV (the
// attacher, resizer and kubelet read the resolved references from the PV); csi-snapshotter
// resolves the VolumeSnapshotClass ones. Each entry: the parameter kind and field, the
// sidecar, the template (ANNOTATION = ${pvc.annotations['<key>']}), and the first sidecar
// version that supports it. A kind absent from the table is refused: look it up first.

struct KindSupport {
  std::string kind;     // e.g. "provisioner" for csi.storage.k8s.io/provisioner-secret-*
  std::string sidecar;  // the image that resolves it
  Version key_since;    // the parameter key itself
};

const std::vector<KindSupport>& kind_support() {
  static const std::vector<KindSupport> t = {
      {"provisioner", "csi-provisioner", {1, 0, 1}},
      {"controller-publish", "csi-provisioner", {1, 0, 1}},
      {"node-stage", "csi-provisioner", {1, 0, 1}},
      {"node-publish", "csi-provisioner", {1, 0, 1}},
      {"controller-expand", "csi-provisioner", {1, 2, 0}},
      {"snapshotter", "csi-snapshotter", {1, 0, 1}},
  };
  return t;
}

struct TemplateSupport {
  std::string kind;
  std::string field;  // "name" | "namespace"
  std::string tmpl;   // the text between ${ and }, or "ANNOTATION"
  Version since;
};

const std::vector<TemplateSupport>& template_support() {
  static const std::vector<TemplateSupport> t = [] {
    std::vector<TemplateSupport> v = {
        // Create/Delete Volume secret: pvc.namespace and pvc.name from v1.2.0, annotations
        // from v5.0.0 ("Support added in CSI external-provisioner v5.0.0+").
        {"provisioner", "name", "pv.name", {1, 0, 1}},
        {"provisioner", "name", "pvc.namespace", {1, 2, 0}},
        {"provisioner", "name", "pvc.name", {1, 2, 0}},
        {"provisioner", "name", "ANNOTATION", {5, 0, 0}},
        {"provisioner", "namespace", "pv.name", {1, 0, 1}},
        {"provisioner", "namespace", "pvc.namespace", {1, 0, 1}},
        // VolumeSnapshotClass secret.
        {"snapshotter", "name", "volumesnapshotcontent.name", {1, 0, 1}},
        {"snapshotter", "name", "volumesnapshot.namespace", {1, 0, 1}},
        {"snapshotter", "name", "volumesnapshot.name", {1, 0, 1}},
        {"snapshotter", "namespace", "volumesnapshotcontent.name", {1, 0, 1}},
        {"snapshotter", "namespace", "volumesnapshot.namespace", {1, 0, 1}},
    };
    // Controller publish, node stage, node publish and controller expand secrets: the same
    // templates, all supported since the key itself.
    for (const auto& [kind, since] :
         std::vector<std::pair<std::string, Version>>{{"controller-publish", {1, 0, 1}},
                                                      {"node-stage", {1, 0, 1}},
                                                      {"node-publish", {1, 0, 1}},
                                                      {"controller-expand", {1, 2, 0}}}) {
      for (const char* t2 : {"pv.name", "pvc.namespace", "pvc.name", "ANNOTATION"}) {
        v.push_back({kind, "name", t2, since});
      }
      for (const char* t2 : {"pv.name", "pvc.namespace"})
        v.push_back({kind, "namespace", t2, since});
    }
    return v;
  }();
  return t;
}

// The ${...} bodies in a value.
std::vector<std::string> templates_in(const std::string& value) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = value.find("${", pos)) != std::string::npos) {
    const size_t end = value.find('}', pos);
    if (end == std::string::npos) {
      out.push_back(value.substr(pos + 2));  // unterminated: reported as unknown
      break;
    }
    out.push_back(value.substr(pos + 2, end - pos - 2));
    pos = end + 1;
  }
  return out;
}

// pvc.annotations['<key>'] (a non-empty key without quotes) is one class of template.
std::string template_class(const std::string& body) {
  const std::string open = "pvc.annotations['", close = "']";
  if (body.size() > open.size() + close.size() && body.rfind(open, 0) == 0 &&
      body.compare(body.size() - close.size(), close.size(), close) == 0) {
    const std::string key = body.substr(open.size(), body.size() - open.size() - close.size());
    if (key.find('\'') == std::string::npos) return "ANNOTATION";
  }
  return body;
}

// "csi.storage.k8s.io/node-stage-secret-namespace" -> {"node-stage", "namespace"}.
bool parse_secret_key(const std::string& key, std::string* kind, std::string* field) {
  const std::string prefix = "csi.storage.k8s.io/";
  if (key.rfind(prefix, 0) != 0) return false;
  for (const char* f : {"name", "namespace"}) {
    const std::string suffix = std::string("-secret-") + f;
    if (key.size() > prefix.size() + suffix.size() &&
        key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0) {
      *kind = key.substr(prefix.size(), key.size() - prefix.size() - suffix.size());
      *field = f;
      return true;
    }
  }
  return false;
}

// Every csi.storage.k8s.io/ parameter of every StorageClass and VolumeSnapshotClass of our
// driver: a known secret kind, resolved by a sidecar the manifests pin at a version that
// supports the key and each template in it.
Problems check_templates(const Manifests& m, const std::map<std::string, Version>& pinned) {
  Problems p;
  for (const char* kind_name : {"StorageClass", "VolumeSnapshotClass"}) {
    for (const auto& obj : m.of_kind(kind_name)) {
      const bool sc = std::string(kind_name) == "StorageClass";
      if (str(sc ? obj["provisioner"] : obj["driver"]) != kDriver) continue;
      const std::string where = std::string(kind_name) + "/" + str(obj["metadata"]["name"]);
      if (!obj["parameters"]) continue;
      for (const auto& kv : obj["parameters"]) {
        const std::string key = str(kv.first), value = str(kv.second);
        if (key.rfind("csi.storage.k8s.io/", 0) != 0) continue;
        std::string kind, field;
        if (!parse_secret_key(key, &kind, &field)) {
          p.push_back(where + ": " + key + " is not a secret parameter this check knows");
          continue;
        }
        const auto ks = std::find_if(kind_support().begin(), kind_support().end(),
                                     [&](const KindSupport& k) { return k.kind == kind; });
        if (ks == kind_support().end()) {
          p.push_back(where + ": " + key + ": secret kind '" + kind +
                      "' is not in the support table");
          continue;
        }
        if ((kind == "snapshotter") == sc) {
          p.push_back(where + ": " + key + " does not belong in a " + kind_name);
          continue;
        }
        const auto pin = pinned.find(ks->sidecar);
        if (pin == pinned.end() || !pin->second.valid()) {
          p.push_back(where + ": " + key + " is resolved by " + ks->sidecar +
                      ", which the manifests do not pin to a version");
          continue;
        }
        const Version have = pin->second;
        if (have < ks->key_since) {
          p.push_back(where + ": " + key + " needs " + ks->sidecar + " >= " + ks->key_since.text() +
                      ", pinned " + have.text());
        }
        for (const auto& body : templates_in(value)) {
          const std::string cls = template_class(body);
          const auto ts = std::find_if(template_support().begin(), template_support().end(),
                                       [&](const TemplateSupport& t) {
                                         return t.kind == kind && t.field == field && t.tmpl == cls;
                                       });
          if (ts == template_support().end()) {
            p.push_back(where + ": " + key + ": ${" + body + "} is not a template " + ks->sidecar +
                        " resolves for " + kind + " secret " + field + "s");
          } else if (have < ts->since) {
            p.push_back(where + ": " + key + ": ${" + body + "} needs " + ks->sidecar +
                        " >= " + ts->since.text() + ", pinned " + have.text());
          }
        }
      }
    }
  }
  return p;
}

// Each StorageClass of our driver names all five secret kinds, each in the PVC's own namespace;
// its other parameters are the ones CreateVolume accepts.
const std::array<const char*, 5> kStorageClassSecrets = {
    "provisioner", "controller-publish", "node-stage", "node-publish", "controller-expand"};

Problems check_storage_classes(const Manifests& m) {
  Problems p;
  int ours = 0;
  for (const auto& sc : m.of_kind("StorageClass")) {
    if (str(sc["provisioner"]) != kDriver) continue;
    ++ours;
    const std::string where = "StorageClass/" + str(sc["metadata"]["name"]);
    const YAML::Node params = sc["parameters"];
    for (const char* kind : kStorageClassSecrets) {
      const std::string prefix = std::string("csi.storage.k8s.io/") + kind + "-secret-";
      if (str(params[prefix + "name"]).empty()) p.push_back(where + ": no " + prefix + "name");
      if (str(params[prefix + "namespace"]) != "${pvc.namespace}") {
        p.push_back(where + ": " + prefix + "namespace is '" + str(params[prefix + "namespace"]) +
                    "', not ${pvc.namespace}");
      }
    }
    if (!params) continue;
    for (const auto& kv : params) {
      const std::string key = str(kv.first);
      if (key.rfind("csi.storage.k8s.io/", 0) == 0) continue;
      // CreateVolume's parameters (src/csi/controller.cc parse_params).
      if (key != "fs" && key != "labels" && key != "public" && key != "group" && key != "secure" &&
          key != "secret_key") {
        p.push_back(where + ": parameter '" + key + "' is refused by CreateVolume");
      }
    }
  }
  if (ours == 0) p.push_back("no StorageClass with provisioner " + kDriver);
  return p;
}

// ---------------------------------------------------------------------------------------------
// RBAC: what the controller's service account may do, from every (Cluster)Role bound to it.

struct Grant {
  std::string group, resource, verb, ns;  // ns "" = cluster-wide
};

std::vector<Grant> grants_of(const Manifests& m, const std::string& sa, const std::string& sa_ns) {
  std::vector<Grant> out;
  auto add_rules = [&](const YAML::Node& role, const std::string& ns) {
    if (!role["rules"]) return;
    for (const auto& r : role["rules"]) {
      for (const auto& g : r["apiGroups"]) {
        for (const auto& res : r["resources"]) {
          for (const auto& v : r["verbs"]) out.push_back({str(g), str(res), str(v), ns});
        }
      }
    }
  };
  for (const char* binding_kind : {"ClusterRoleBinding", "RoleBinding"}) {
    for (const auto& b : m.of_kind(binding_kind)) {
      bool bound = false;
      for (const auto& s : b["subjects"]) {
        if (str(s["kind"]) == "ServiceAccount" && str(s["name"]) == sa &&
            str(s["namespace"]) == sa_ns) {
          bound = true;
        }
      }
      if (!bound) continue;
      const std::string role_kind = str(b["roleRef"]["kind"]);
      const std::string ns =
          std::string(binding_kind) == "RoleBinding" ? str(b["metadata"]["namespace"]) : "";
      const YAML::Node* role = m.find(role_kind, str(b["roleRef"]["name"]));
      if (role && (role_kind == "ClusterRole" || str((*role)["metadata"]["namespace"]) == ns)) {
        add_rules(*role, ns);
      }
    }
  }
  return out;
}

bool granted(const std::vector<Grant>& gs, const std::string& group, const std::string& resource,
             const std::string& verb, const std::string& ns = "") {
  for (const auto& g : gs) {
    if (g.group == group && g.resource == resource && (g.verb == verb || g.verb == "*") &&
        (g.ns.empty() || g.ns == ns)) {
      return true;
    }
  }
  return false;
}

struct Need {
  std::string group, resource;
  std::vector<std::string> verbs;
};

// What each sidecar needs for this driver (upstream's RBAC for that sidecar, less what is
// unused here); the secrets because every class of ours names secrets.
const std::map<std::string, std::vector<Need>>& sidecar_needs() {
  static const std::map<std::string, std::vector<Need>> t = {
      {"csi-provisioner",
       {{"", "secrets", {"get"}},
        {"", "persistentvolumes", {"get", "list", "watch", "create", "delete"}},
        {"", "persistentvolumeclaims", {"get", "list", "watch", "update"}},
        {"storage.k8s.io", "storageclasses", {"get", "list", "watch"}},
        {"", "events", {"create", "patch"}},
        {"storage.k8s.io", "csinodes", {"get", "list", "watch"}},
        {"", "nodes", {"get", "list", "watch"}},
        {"storage.k8s.io", "volumeattachments", {"get", "list", "watch"}},
        {"snapshot.storage.k8s.io", "volumesnapshots", {"get", "list"}},
        {"snapshot.storage.k8s.io", "volumesnapshotcontents", {"get", "list"}}}},
      {"csi-attacher",
       {{"", "secrets", {"get"}},
        {"", "persistentvolumes", {"get", "list", "watch", "patch"}},
        {"storage.k8s.io", "csinodes", {"get", "list", "watch"}},
        {"storage.k8s.io", "volumeattachments", {"get", "list", "watch", "patch"}},
        {"storage.k8s.io", "volumeattachments/status", {"patch"}}}},
      {"csi-resizer",
       {{"", "secrets", {"get"}},
        {"", "persistentvolumes", {"get", "list", "watch", "patch"}},
        {"", "persistentvolumeclaims", {"get", "list", "watch"}},
        {"", "persistentvolumeclaims/status", {"patch"}},
        {"", "pods", {"get", "list", "watch"}},
        {"", "events", {"create", "patch"}}}},
      {"csi-snapshotter",
       {{"", "secrets", {"get"}},
        {"", "events", {"create", "patch"}},
        {"snapshot.storage.k8s.io", "volumesnapshotclasses", {"get", "list", "watch"}},
        {"snapshot.storage.k8s.io",
         "volumesnapshotcontents",
         {"get", "list", "watch", "update", "patch"}},
        {"snapshot.storage.k8s.io", "volumesnapshotcontents/status", {"update", "patch"}}}},
  };
  return t;
}

Problems check_rbac(const Manifests& m) {
  Problems p;
  for (const auto& d : m.of_kind("Deployment")) {
    const YAML::Node pod = d["spec"]["template"]["spec"];
    const std::string sa = str(pod["serviceAccountName"]);
    const std::string ns = str(d["metadata"]["namespace"]);
    const auto gs = grants_of(m, sa, ns);
    for (const auto& c : pod["containers"]) {
      const auto [image, tag] = split_image(str(c["image"]));
      const auto needs = sidecar_needs().find(image);
      if (needs == sidecar_needs().end()) continue;
      for (const auto& n : needs->second) {
        for (const auto& v : n.verbs) {
          if (!granted(gs, n.group, n.resource, v)) {
            p.push_back(image + " (service account " + sa + "): no '" + v + "' on " +
                        (n.group.empty() ? "" : n.group + "/") + n.resource);
          }
        }
      }
      const auto args = args_of(c);
      if (has_flag(args, "--leader-election")) {
        std::string le_ns = flag_value(args, "--leader-election-namespace");
        if (le_ns.empty()) le_ns = ns;
        for (const char* v : {"get", "watch", "list", "delete", "update", "create"}) {
          if (!granted(gs, "coordination.k8s.io", "leases", v, le_ns)) {
            p.push_back(image + ": --leader-election but no '" + v + "' on leases in " + le_ns);
          }
        }
      }
    }
  }
  // Tenant tokens are read one Secret at a time: nothing may enumerate Secrets.
  for (const char* kind : {"ClusterRole", "Role"}) {
    for (const auto& r : m.of_kind(kind)) {
      if (!r["rules"]) continue;
      for (const auto& rule : r["rules"]) {
        if (!contains(rule["resources"], "secrets")) continue;
        for (const auto& v : rule["verbs"]) {
          if (str(v) != "get") {
            p.push_back(std::string(kind) + "/" + str(r["metadata"]["name"]) + ": '" + str(v) +
                        "' on secrets");
          }
        }
      }
    }
  }
  return p;
}

// The resizer's own ClusterRole (named after upstream's external-resizer-runner) grants pods.
Problems check_resizer_role(const Manifests& m) {
  Problems p;
  int found = 0;
  for (const auto& r : m.of_kind("ClusterRole")) {
    if (str(r["metadata"]["name"]).find("external-resizer-runner") == std::string::npos) continue;
    ++found;
    for (const char* v : {"get", "list", "watch"}) {
      bool ok = false;
      for (const auto& rule : r["rules"]) {
        if (contains(rule["apiGroups"], "") && contains(rule["resources"], "pods") &&
            contains(rule["verbs"], v))
          ok = true;
      }
      if (!ok)
        p.push_back("ClusterRole/" + str(r["metadata"]["name"]) + ": no '" + v + "' on pods");
    }
  }
  if (found != 1)
    p.push_back("expected one *external-resizer-runner ClusterRole, found " +
                std::to_string(found));
  return p;
}

// ---------------------------------------------------------------------------------------------
// Probes: each CSI plugin container has a livenessProbe served by the livenessprobe sidecar of
// its pod (same port), and every long-running container of ours is probed.

int resolve_port(const YAML::Node& c, const YAML::Node& port) {
  if (port.IsScalar()) {
    const std::string s = str(port);
    if (!s.empty() && std::all_of(s.begin(), s.end(), ::isdigit)) return std::stoi(s);
    for (const auto& cp : c["ports"]) {
      if (str(cp["name"]) == s) return cp["containerPort"].as<int>();
    }
  }
  return -1;
}

Problems check_probes(const Manifests& m) {
  Problems p;
  const auto cs = containers(m);
  for (const auto& c : cs) {
    const auto [image, tag] = split_image(str(c.c["image"]));
    const auto args = args_of(c.c);
    const bool plugin = image == "volguard" && !args.empty() && args[0] == "csi";
    const bool server = image == "volguard" && !args.empty() && args[0] == "server";
    if (!plugin && !server) continue;
    const YAML::Node get = at(c.c, {"livenessProbe", "httpGet"});
    if (!get) {
      p.push_back(c.where + ": no livenessProbe.httpGet");
      continue;
    }
    const int port = resolve_port(c.c, get["port"]);
    if (server) {
      // The server's REST /healthz on its loopback address (config api.rest).
      if (str(get["path"]) != "/healthz" || str(get["host"]) != "127.0.0.1" || port != 9021) {
        p.push_back(c.where + ": the server's probe is not GET 127.0.0.1:9021/healthz");
      }
      continue;
    }
    bool served = false;
    for (const auto& side : c.pod["containers"]) {
      if (split_image(str(side["image"])).first != "livenessprobe") continue;
      const auto sargs = args_of(side);
      const std::string ep = flag_value(sargs, "--http-endpoint");
      const std::string hp = flag_value(sargs, "--health-port");
      const std::string listen =
          !ep.empty() ? ep.substr(ep.rfind(':') + 1) : (hp.empty() ? "9808" : hp);
      if (listen == std::to_string(port) && flag_value(sargs, "--csi-address") == "/csi/csi.sock") {
        served = true;
      }
    }
    if (!served)
      p.push_back(c.where + ": no livenessprobe sidecar serves its probe port " +
                  std::to_string(port));
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// The server config each node renders, and the node and controller credentials.

const std::string kNodePlaceholder = "@NODE_NAME@";

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
  return s;
}

// The volume mounted at the directory of `path` in container c, and that mount (const: a
// non-const yaml-cpp operator[] would add the keys it looks up).
const std::pair<YAML::Node, YAML::Node> volume_for(const Container& c, const std::string& path) {
  const std::string dir = fs::path(path).parent_path().string();
  for (const auto& vm : c.c["volumeMounts"]) {
    if (str(vm["mountPath"]) != dir) continue;
    for (const auto& v : c.pod["volumes"]) {
      if (str(v["name"]) == str(vm["name"])) return {v, vm};
    }
  }
  return {YAML::Node(), YAML::Node()};
}

std::string env_field_path(const YAML::Node& c, const std::string& name) {
  for (const auto& e : c["env"]) {
    if (str(e["name"]) == name) return str(at(e, {"valueFrom", "fieldRef", "fieldPath"}));
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// Topology: each volume is pinned to the volguard node holding its data (volguard.io/node).

Problems check_topology(const Manifests& m) {
  Problems p;
  for (const auto& sc : m.of_kind("StorageClass")) {
    if (str(sc["provisioner"]) != kDriver) continue;
    // Immediate would provision before the pod is scheduled, on any node; the pod would follow.
    const std::string mode = str(sc["volumeBindingMode"]);
    if (mode != "WaitForFirstConsumer") {
      p.push_back("StorageClass/" + str(sc["metadata"]["name"]) + ": volumeBindingMode is '" +
                  mode + "', not WaitForFirstConsumer");
    }
  }
  for (const auto& c : containers(m)) {
    const auto [image, tag] = split_image(str(c.c["image"]));
    const auto args = args_of(c.c);
    if (image == "csi-provisioner") {
      // Topology (GA) is on by default from v5.0.0 (for drivers advertising
      // VOLUME_ACCESSIBILITY_CONSTRAINTS); before, only with the feature gate.
      std::string gates = flag_value(args, "--feature-gates");
      std::transform(gates.begin(), gates.end(), gates.begin(), ::tolower);
      if (gates.find("topology=false") != std::string::npos) {
        p.push_back(c.where + ": --feature-gates turns Topology off");
      } else if (parse_version(tag) < Version{5, 0, 0} &&
                 gates.find("topology=true") == std::string::npos) {
        p.push_back(c.where + ": csi-provisioner " + tag +
                    " needs --feature-gates=Topology=true (the default from v5.0.0)");
      }
    }
    // The node plugin reports the volguard node its server serves: the pod's own node.
    if (image == "volguard" && !args.empty() && args[0] == "csi" &&
        c.where.rfind("DaemonSet/", 0) == 0) {
      const std::string node = flag_value(args, "--volguard-node");
      if (node != "$(NODE_NAME)" || env_field_path(c.c, "NODE_NAME") != "spec.nodeName") {
        p.push_back(c.where + ": --volguard-node is '" + node +
                    "', not $(NODE_NAME) from spec.nodeName");
      }
    }
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Tests on the shipped manifests.

TEST(ManifestsTest, ParseWithTheExpectedKinds) {
  Manifests m;
  ASSERT_NO_THROW(m = load_all());
  std::map<std::string, int> kinds;
  for (const auto& d : m.docs) {
    ASSERT_TRUE(d["apiVersion"] && d["kind"] && d["metadata"]["name"]);
    kinds[str(d["kind"])]++;
  }
  for (const char* k : {"CSIDriver", "StorageClass", "VolumeSnapshotClass", "DaemonSet",
                        "Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                        "RoleBinding", "ConfigMap"}) {
    EXPECT_GE(kinds[k], 1) << "no " << k;
  }
  const YAML::Node* driver = m.find("CSIDriver", kDriver);
  ASSERT_NE(driver, nullptr);
  EXPECT_TRUE((*driver)["spec"]["attachRequired"].as<bool>());
  std::set<std::string> names;
  const YAML::Node* ctl = m.find("Deployment", "volguard-csi-controller");
  ASSERT_NE(ctl, nullptr);
  for (const auto& c : (*ctl)["spec"]["template"]["spec"]["containers"])
    names.insert(str(c["name"]));
  for (const char* s : {"csi-plugin", "csi-provisioner", "csi-attacher", "csi-snapshotter",
                        "csi-resizer", "liveness-probe"}) {
    EXPECT_TRUE(names.count(s)) << s;
  }
}

TEST(ManifestsTest, ApplyingTheDirectoryNeedsNoCrd) {
  // `kubectl apply -f deploy/kubernetes/` must not depend on the snapshot CRDs: only built-in
  // API groups there; the VolumeSnapshotClass is in snapshots/, applied after the CRDs.
  const Manifests top = load_dir(kDeploy);
  const std::set<std::string> builtin = {"v1", "apps/v1", "rbac.authorization.k8s.io/v1",
                                         "storage.k8s.io/v1"};
  for (const auto& d : top.docs) {
    EXPECT_TRUE(builtin.count(str(d["apiVersion"])))
        << str(d["kind"]) << "/" << str(d["metadata"]["name"]) << ": " << str(d["apiVersion"]);
  }
  EXPECT_TRUE(top.of_kind("VolumeSnapshotClass").empty());
  const Manifests snaps = load_dir(kDeploy + "/snapshots");
  ASSERT_EQ(snaps.of_kind("VolumeSnapshotClass").size(), 1u);
  const YAML::Node vsc = snaps.of_kind("VolumeSnapshotClass")[0];
  EXPECT_EQ(str(vsc["apiVersion"]), "snapshot.storage.k8s.io/v1");
  EXPECT_EQ(str(vsc["driver"]), kDriver);
  EXPECT_EQ(str(vsc["parameters"]["csi.storage.k8s.io/snapshotter-secret-namespace"]),
            "${volumesnapshot.namespace}");
}

TEST(ManifestsTest, SnapshotPrerequisitesMatchThePinnedSnapshotter) {
  // The CRDs and snapshot-controller come from the external-snapshotter release of the pinned
  // csi-snapshotter sidecar.
  const Version sidecar = pinned_versions(load_dir(kDeploy))["csi-snapshotter"];
  ASSERT_TRUE(sidecar.valid());
  const YAML::Node k = YAML::LoadFile(kDeploy + "/snapshots/prerequisites/kustomization.yaml");
  int refs = 0;
  for (const auto& r : k["resources"]) {
    const std::string url = str(r);
    EXPECT_NE(url.find("github.com/kubernetes-csi/external-snapshotter"), std::string::npos) << url;
    EXPECT_NE(url.find("?ref=" + sidecar.text()), std::string::npos)
        << url << " vs csi-snapshotter " << sidecar.text();
    ++refs;
  }
  EXPECT_EQ(refs, 2);  // client/config/crd and deploy/kubernetes/snapshot-controller
  ASSERT_TRUE(k["images"] && k["images"].size() == 1);
  EXPECT_EQ(str(k["images"][0]["name"]), "registry.k8s.io/sig-storage/snapshot-controller");
  EXPECT_EQ(str(k["images"][0]["newTag"]), sidecar.text());
  // The docs name the same release.
  const std::string docs = read_text(kSource + "/docs/kubernetes.md");
  EXPECT_NE(docs.find("external-snapshotter " + sidecar.text()), std::string::npos);
}

TEST(ManifestsTest, StorageClassesNameAllFiveSecretsInThePvcNamespace) {
  const Manifests m = load_all();
  const Problems p = check_storage_classes(m);
  EXPECT_TRUE(p.empty()) << join(p);
  // Per-PVC secret names come from the annotation, never the namespace.
  const YAML::Node* per_pvc = m.find("StorageClass", "volguard-secure-per-pvc");
  ASSERT_NE(per_pvc, nullptr);
  for (const auto& kv : (*per_pvc)["parameters"]) {
    const std::string key = str(kv.first);
    if (key.size() > 11 && key.compare(key.size() - 11, 11, "secret-name") == 0) {
      EXPECT_EQ(str(kv.second), "${pvc.annotations['volguard.io/auth-secret-name']}") << key;
    }
  }
}

TEST(ManifestsTest, EveryTemplateIsSupportedByThePinnedSidecar) {
  const Manifests m = load_all();
  const auto pinned = pinned_versions(m);
  ASSERT_TRUE(pinned.at("csi-provisioner").valid());
  EXPECT_FALSE(pinned.at("csi-provisioner") <
               (Version{5, 0, 0}));  // annotations in provisioner secrets
  const Problems p = check_templates(m, pinned);
  EXPECT_TRUE(p.empty()) << join(p);
}

TEST(ManifestsTest, ImagesArePinnedAndOursMatchesTheVersion) {
  const Manifests m = load_all();
  const Problems p = check_images(m);
  EXPECT_TRUE(p.empty()) << join(p);
  // volguard's own image carries the server's version (kVersion), as does the Dockerfile.
  const std::string header = read_text(kSource + "/src/common/version.h");
  const std::string decl = "kVersion[] = \"";
  const size_t at = header.find(decl);
  ASSERT_NE(at, std::string::npos);
  const size_t from = at + decl.size();
  const std::string version = header.substr(from, header.find('"', from) - from);
  ASSERT_TRUE(parse_version(version).valid()) << version;
  int ours = 0;
  for (const auto& c : containers(m)) {
    const auto [name, tag] = split_image(str(c.c["image"]));
    if (name != "volguard") continue;
    ++ours;
    EXPECT_EQ(tag, version) << c.where;
  }
  EXPECT_GE(ours, 5);
  const std::string dockerfile = read_text(kSource + "/Dockerfile");
  EXPECT_NE(dockerfile.find("org.opencontainers.image.version=\"" + version + "\""),
            std::string::npos);
  EXPECT_NE(dockerfile.find("ENTRYPOINT [\"volguard\"]"), std::string::npos);
  EXPECT_NE(
      read_text(kSource + "/docs/kubernetes.md").find("docker build -t volguard:" + version + " ."),
      std::string::npos);
}

TEST(ManifestsTest, EveryContainerHasResources) {
  const Problems p = check_resources(load_all());
  EXPECT_TRUE(p.empty()) << join(p);
}

TEST(ManifestsTest, SidecarRbacIsComplete) {
  const Manifests m = load_all();
  Problems p = check_rbac(m);
  EXPECT_TRUE(p.empty()) << join(p);
  p = check_resizer_role(m);
  EXPECT_TRUE(p.empty()) << join(p);
}

TEST(ManifestsTest, PluginsAreProbed) {
  const Problems p = check_probes(load_all());
  EXPECT_TRUE(p.empty()) << join(p);
  // Both plugin pods use the host network: their probe ports must differ.
  const auto cs = containers(load_all());
  const Container* node = container(cs, "DaemonSet/volguard/csi-plugin");
  const Container* ctl = container(cs, "Deployment/volguard-csi-controller/csi-plugin");
  ASSERT_TRUE(node && ctl);
  EXPECT_NE(resolve_port(node->c, node->c["livenessProbe"]["httpGet"]["port"]),
            resolve_port(ctl->c, ctl->c["livenessProbe"]["httpGet"]["port"]));
}

TEST(ManifestsTest, EachNodeRendersAValidServerConfigForItself) {
  const Manifests m = load_all();
  const YAML::Node* cm = m.find("ConfigMap", "volguard-config");
  ASSERT_NE(cm, nullptr);
  const std::string tmpl = str((*cm)["data"]["volguard.yaml"]);
  ASSERT_NE(tmpl.find(kNodePlaceholder), std::string::npos);
  // Unrendered, the server refuses it (never a config that silently serves no node).
  EXPECT_FALSE(volguard::config::parse_config(tmpl, "volguard.yaml").is_ok());
  auto cfg = volguard::config::parse_config(replace_all(tmpl, kNodePlaceholder, "worker-1.example"),
                                            "volguard.yaml");
  ASSERT_TRUE(cfg.is_ok()) << cfg.status().message();
  EXPECT_EQ(cfg->nodes, std::vector<std::string>{"worker-1.example"});
  // Its volguard node name too, dots and all: the name its node plugin reports and CreateVolume
  // asks for (the host-name default would be cut at the first dot).
  EXPECT_EQ(cfg->node.name, "worker-1.example");
  EXPECT_TRUE(cfg->security.enabled);
  EXPECT_FALSE(cfg->security.guest_access);
  ASSERT_EQ(cfg->security.issuers.size(), 1u);
  EXPECT_EQ(cfg->api.grpc, "127.0.0.1:9020");

  // render-config writes it where the server reads it, substituting spec.nodeName.
  const auto cs = containers(m);
  const Container* render = container(cs, "DaemonSet/volguard/render-config");
  const Container* server = container(cs, "DaemonSet/volguard/volguard-server");
  ASSERT_TRUE(render && server);
  const auto rargs = args_of(render->c);
  ASSERT_EQ(rargs.size(), 3u);
  EXPECT_EQ(rargs[2], "sed \"s/" + kNodePlaceholder +
                          "/${NODE_NAME}/g\" /etc/volguard-template/volguard.yaml > " +
                          flag_value(args_of(server->c), "--config"));
  EXPECT_EQ(env_field_path(render->c, "NODE_NAME"), "spec.nodeName");
  EXPECT_TRUE(volume_for(*render, "/etc/volguard-template/volguard.yaml").first["configMap"]);
  const auto [out_vol, out_mount] = volume_for(*render, flag_value(args_of(server->c), "--config"));
  ASSERT_TRUE(out_vol["emptyDir"]);
  EXPECT_EQ(str(volume_for(*server, flag_value(args_of(server->c), "--config")).first["name"]),
            str(out_vol["name"]));
  // The server's issuer secret comes from the env the config names.
  bool env_ok = false;
  for (const auto& e : server->c["env"]) {
    if (str(e["name"]) == cfg->security.issuers[0].shared_secret_env) {
      env_ok = str(at(e, {"valueFrom", "secretKeyRef", "name"})) == "volguard-shared-secret";
    }
  }
  EXPECT_TRUE(env_ok);
  // So does the KEK of encrypted volumes (StorageClass volguard-encrypted), from the Secret
  // make-secrets.sh creates.
  ASSERT_EQ(cfg->encryption.keys.size(), 1u);
  bool kek_ok = false;
  for (const auto& e : server->c["env"]) {
    if (str(e["name"]) == cfg->encryption.keys[0].env) {
      kek_ok = str(at(e, {"valueFrom", "secretKeyRef", "name"})) == "volguard-kek" &&
               str(at(e, {"valueFrom", "secretKeyRef", "key"})) == "kek";
    }
  }
  EXPECT_TRUE(kek_ok);
}

TEST(ManifestsTest, NodePluginHasItsOwnNodeCredential) {
  const Manifests m = load_all();
  const auto cs = containers(m);
  const Container* plugin = container(cs, "DaemonSet/volguard/csi-plugin");
  const Container* mint = container(cs, "DaemonSet/volguard/node-credential");
  const Container* refresh = container(cs, "DaemonSet/volguard/node-credential-refresher");
  ASSERT_TRUE(plugin && mint && refresh);
  const auto pargs = args_of(plugin->c);
  EXPECT_EQ(flag_value(pargs, "--node-id"), "$(NODE_NAME)");
  EXPECT_EQ(env_field_path(plugin->c, "NODE_NAME"), "spec.nodeName");
  const std::string token_file = flag_value(pargs, "--node-token-file");
  ASSERT_FALSE(token_file.empty());
  const auto [pvol, pmount] = volume_for(*plugin, token_file);
  ASSERT_TRUE(pvol["emptyDir"]) << "the node token lives in an emptyDir";
  EXPECT_EQ(str(at(pvol, {"emptyDir", "medium"})), "Memory");
  EXPECT_TRUE(pmount["readOnly"] && pmount["readOnly"].as<bool>());

  // Minted for this node's name, role system.node, by the issuer the server trusts, from the
  // secret the server uses, into the file the plugin reads.
  const YAML::Node* cm = m.find("ConfigMap", "volguard-config");
  auto cfg = volguard::config::parse_config(
      replace_all(str((*cm)["data"]["volguard.yaml"]), kNodePlaceholder, "n1"), "x");
  ASSERT_TRUE(cfg.is_ok());
  const auto margs = args_of(mint->c);
  ASSERT_GE(margs.size(), 2u);
  EXPECT_EQ(margs[0], "token");
  EXPECT_EQ(margs[1], "generate");
  EXPECT_EQ(flag_value(margs, "--subject"), "$(NODE_NAME)");
  EXPECT_EQ(env_field_path(mint->c, "NODE_NAME"), "spec.nodeName");
  EXPECT_EQ(flag_value(margs, "--roles"), "system.node");
  EXPECT_EQ(flag_value(margs, "--issuer"), cfg->security.issuers[0].issuer);
  EXPECT_EQ(flag_value(margs, "--output"), token_file);
  EXPECT_EQ(str(volume_for(*mint, token_file).first["name"]), str(pvol["name"]));
  const std::string secret_file = flag_value(margs, "--shared-secret-file");
  const auto [svol, smount] = volume_for(*mint, secret_file);
  EXPECT_EQ(str(at(svol, {"secret", "secretName"})), "volguard-shared-secret");
  EXPECT_EQ(fs::path(secret_file).filename().string(), "shared-secret");  // the Secret's key

  // The refresher re-mints the same token and renames it over the file.
  const std::string script = args_of(refresh->c).back();
  for (const std::string& want :
       {"--issuer " + cfg->security.issuers[0].issuer, "--shared-secret-file " + secret_file,
        std::string("--subject \"${NODE_NAME}\""), std::string("--roles system.node"),
        "--output " + token_file + ".next", "mv -f " + token_file + ".next " + token_file}) {
    EXPECT_NE(script.find(want), std::string::npos) << want;
  }
  EXPECT_EQ(env_field_path(refresh->c, "NODE_NAME"), "spec.nodeName");
  EXPECT_EQ(str(volume_for(*refresh, token_file).first["name"]), str(pvol["name"]));
  EXPECT_EQ(flag_value(margs, "--duration"), "30d");
  EXPECT_NE(script.find("--duration 30d"), std::string::npos);
  EXPECT_NE(script.find("sleep 86400"), std::string::npos);  // renewed well before it expires

  // The node pod never talks to the API server.
  const YAML::Node* ds = m.find("DaemonSet", "volguard");
  EXPECT_FALSE((*ds)["spec"]["template"]["spec"]["automountServiceAccountToken"].as<bool>());
}

TEST(ManifestsTest, VolumesArePinnedToTheirNodeByTopology) {
  const Manifests m = load_all();
  const Problems p = check_topology(m);
  EXPECT_TRUE(p.empty()) << join(p);
  // The name the node plugin reports is the one its server serves (nodes: [spec.nodeName]) and
  // the server's own node name (node.name: spec.nodeName), which is all it makes volumes on.
  const auto cs = containers(m);
  const Container* plugin = container(cs, "DaemonSet/volguard/csi-plugin");
  ASSERT_NE(plugin, nullptr);
  EXPECT_EQ(flag_value(args_of(plugin->c), "--volguard-node"),
            flag_value(args_of(plugin->c), "--node-id"));
  EXPECT_EQ(flag_value(args_of(plugin->c), "--volguard-node"), "$(NODE_NAME)");
  EXPECT_EQ(env_field_path(plugin->c, "NODE_NAME"), "spec.nodeName");
  const YAML::Node* cm = m.find("ConfigMap", "volguard-config");
  ASSERT_NE(cm, nullptr);
  auto cfg = volguard::config::parse_config(
      replace_all(str((*cm)["data"]["volguard.yaml"]), kNodePlaceholder, "worker-1"), "x");
  ASSERT_TRUE(cfg.is_ok()) << cfg.status().message();
  EXPECT_EQ(cfg->node.name, "worker-1");
  EXPECT_EQ(cfg->nodes, std::vector<std::string>{"worker-1"});
  const std::string docs = read_text(kSource + "/docs/kubernetes.md");
  EXPECT_NE(docs.find("## Topology"), std::string::npos);
}

TEST(ManifestsTest, ControllerUsesTheReadOnlyControllerCredentialAsNonRoot) {
  const Manifests m = load_all();
  const auto cs = containers(m);
  const Container* plugin = container(cs, "Deployment/volguard-csi-controller/csi-plugin");
  ASSERT_NE(plugin, nullptr);
  const std::string token_file = flag_value(args_of(plugin->c), "--controller-token-file");
  ASSERT_FALSE(token_file.empty());
  const auto [vol, mount] = volume_for(*plugin, token_file);
  EXPECT_EQ(str(at(vol, {"secret", "secretName"})), "volguard-csi-controller-token");
  // make-secrets.sh makes that Secret, with that key, for role system.csi-controller.
  const std::string script = read_text(kDeploy + "/make-secrets.sh");
  EXPECT_NE(script.find("apply_secret kube-system volguard-csi-controller-token " +
                        fs::path(token_file).filename().string() + " "),
            std::string::npos);
  EXPECT_NE(script.find("--roles system.csi-controller"), std::string::npos);
  // Non-root, nothing privileged, in the controller pod.
  const YAML::Node pod = plugin->pod;
  EXPECT_TRUE(pod["securityContext"]["runAsNonRoot"].as<bool>());
  EXPECT_NE(pod["securityContext"]["runAsUser"].as<int>(), 0);
  for (const auto& c : pod["containers"]) {
    const YAML::Node sc = c["securityContext"];
    EXPECT_FALSE(sc["privileged"] && sc["privileged"].as<bool>()) << str(c["name"]);
    EXPECT_FALSE(sc["runAsUser"] && sc["runAsUser"].as<int>() == 0) << str(c["name"]);
    EXPECT_FALSE(sc["allowPrivilegeEscalation"].as<bool>()) << str(c["name"]);
  }
  // The snapshotter sends no parameters CreateSnapshot would refuse.
  for (const auto& c : pod["containers"]) {
    if (split_image(str(c["image"])).first == "csi-snapshotter") {
      EXPECT_FALSE(has_flag(args_of(c), "--extra-create-metadata"));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The checks catch what they are for.

const char* kController = R"(
apiVersion: apps/v1
kind: Deployment
metadata: {name: ctl, namespace: kube-system}
spec:
  template:
    spec:
      serviceAccountName: ctl
      containers:
        - name: csi-provisioner
          image: registry.k8s.io/sig-storage/csi-provisioner:v4.0.0
          args: [--csi-address=/csi/csi.sock, --leader-election]
          resources: {requests: {cpu: 10m, memory: 10Mi}, limits: {memory: 20Mi}}
        - name: csi-snapshotter
          image: registry.k8s.io/sig-storage/csi-snapshotter:v8.2.1
        - name: plugin
          image: volguard:latest
          args: [csi]
        - name: other
          image: volguard
          resources: {requests: {cpu: 10m}}
)";

TEST(ManifestsCheckTest, CatchesTemplatesTheSidecarDoesNotSupport) {
  const Manifests m = load_text(std::string(kController) + R"(
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: bad}
provisioner: csi.volguard.io
parameters:
  csi.storage.k8s.io/provisioner-secret-name: ${pvc.annotations['a/b']}
  csi.storage.k8s.io/provisioner-secret-namespace: ${pvc.annotations['ns']}
  csi.storage.k8s.io/node-publish-secret-name: ${pvc.labels['x']}
  csi.storage.k8s.io/node-publish-secret-namespace: ${pvc.namespace}
  csi.storage.k8s.io/node-expand-secret-name: x
  csi.storage.k8s.io/snapshotter-secret-name: x
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: badsnap}
driver: csi.volguard.io
parameters:
  csi.storage.k8s.io/snapshotter-secret-namespace: ${pvc.namespace}
)");
  const Problems p = check_templates(m, pinned_versions(m));
  const std::string all = join(p);
  EXPECT_NE(all.find("${pvc.annotations['a/b']} needs csi-provisioner >= v5.0.0, pinned v4.0.0"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("provisioner-secret-namespace: ${pvc.annotations['ns']} is not a template"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("${pvc.labels['x']} is not a template"), std::string::npos) << all;
  EXPECT_NE(all.find("secret kind 'node-expand' is not in the support table"), std::string::npos)
      << all;
  EXPECT_NE(all.find("snapshotter-secret-name does not belong in a StorageClass"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("VolumeSnapshotClass/badsnap: "
                     "csi.storage.k8s.io/snapshotter-secret-namespace: ${pvc.namespace}"),
            std::string::npos)
      << all;
  EXPECT_EQ(p.size(), 6u) << all;

  // Pinned at v5.0.0, the annotation is fine.
  auto pinned = pinned_versions(m);
  pinned["csi-provisioner"] = {5, 0, 0};
  EXPECT_EQ(join(check_templates(m, pinned)).find("needs csi-provisioner"), std::string::npos);
  // A sidecar that is not pinned at all cannot be trusted with any template.
  pinned.erase("csi-provisioner");
  EXPECT_NE(join(check_templates(m, pinned)).find("which the manifests do not pin"),
            std::string::npos);
}

TEST(ManifestsCheckTest, CatchesMissingSecretsAndForeignNamespaces) {
  const Manifests m = load_text(R"(
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: partial}
provisioner: csi.volguard.io
parameters:
  fs: ext4
  repl: "1"
  csi.storage.k8s.io/provisioner-secret-name: t
  csi.storage.k8s.io/provisioner-secret-namespace: ${pvc.namespace}
  csi.storage.k8s.io/controller-publish-secret-name: t
  csi.storage.k8s.io/controller-publish-secret-namespace: kube-system
  csi.storage.k8s.io/node-publish-secret-name: t
  csi.storage.k8s.io/node-publish-secret-namespace: ${pvc.namespace}
  csi.storage.k8s.io/controller-expand-secret-name: t
  csi.storage.k8s.io/controller-expand-secret-namespace: ${pvc.namespace}
)");
  const std::string all = join(check_storage_classes(m));
  EXPECT_NE(all.find("no csi.storage.k8s.io/node-stage-secret-name"), std::string::npos) << all;
  EXPECT_NE(all.find("node-stage-secret-namespace is '', not ${pvc.namespace}"), std::string::npos)
      << all;
  EXPECT_NE(all.find("controller-publish-secret-namespace is 'kube-system'"), std::string::npos)
      << all;
  EXPECT_NE(all.find("parameter 'repl' is refused by CreateVolume"), std::string::npos) << all;
  EXPECT_NE(join(check_storage_classes(Manifests{})).find("no StorageClass"), std::string::npos);
}

TEST(ManifestsCheckTest, CatchesUnpinnedImagesAndMissingResources) {
  const Manifests m = load_text(kController);
  const std::string images = join(check_images(m));
  EXPECT_NE(images.find("image volguard:latest uses :latest"), std::string::npos) << images;
  EXPECT_NE(images.find("image volguard has no tag"), std::string::npos) << images;
  const std::string res = join(check_resources(m));
  EXPECT_NE(res.find("Deployment/ctl/csi-snapshotter: no resources.requests.cpu"),
            std::string::npos)
      << res;
  EXPECT_NE(res.find("Deployment/ctl/other: no resources.requests.memory"), std::string::npos)
      << res;
  EXPECT_NE(res.find("Deployment/ctl/other: no resources.limits.memory"), std::string::npos) << res;
  EXPECT_EQ(res.find("csi-provisioner"), std::string::npos) << res;
  EXPECT_NE(join(check_probes(m)).find("Deployment/ctl/plugin: no livenessProbe"),
            std::string::npos);
}

TEST(ManifestsCheckTest, CatchesTopologyThatIsNotWired) {
  const Manifests m = load_text(std::string(kController) + R"(
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ctl2, namespace: kube-system}
spec:
  template:
    spec:
      containers:
        - name: csi-provisioner
          image: registry.k8s.io/sig-storage/csi-provisioner:v5.3.0
          args: [--csi-address=/csi/csi.sock, --feature-gates=Topology=False]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds, namespace: kube-system}
spec:
  template:
    spec:
      containers:
        - name: csi-plugin
          image: volguard:0.2.0
          args: [csi, --node-id, $(NODE_NAME)]
          env: [{name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: now}
provisioner: csi.volguard.io
volumeBindingMode: Immediate
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: unset}
provisioner: csi.volguard.io
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: others}
provisioner: other.example.com
volumeBindingMode: Immediate
)");
  const Problems p = check_topology(m);
  const std::string all = join(p);
  EXPECT_NE(all.find("StorageClass/now: volumeBindingMode is 'Immediate'"), std::string::npos)
      << all;
  EXPECT_NE(all.find("StorageClass/unset: volumeBindingMode is ''"), std::string::npos) << all;
  EXPECT_NE(all.find("Deployment/ctl/csi-provisioner: csi-provisioner v4.0.0 needs "
                     "--feature-gates=Topology=true"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("Deployment/ctl2/csi-provisioner: --feature-gates turns Topology off"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("DaemonSet/ds/csi-plugin: --volguard-node is ''"), std::string::npos) << all;
  EXPECT_EQ(p.size(), 5u) << all;  // not the other driver's class, nor the controller's plugin
}

TEST(ManifestsCheckTest, CatchesMissingSidecarRbac) {
  const Manifests m = load_text(std::string(kController) + R"(
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: my-external-resizer-runner}
rules:
  - {apiGroups: [""], resources: [pods], verbs: [get, list]}
  - {apiGroups: [""], resources: [secrets], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: b}
subjects: [{kind: ServiceAccount, name: ctl, namespace: kube-system}]
roleRef: {kind: ClusterRole, name: my-external-resizer-runner, apiGroup: rbac.authorization.k8s.io}
)");
  const std::string resizer = join(check_resizer_role(m));
  EXPECT_NE(resizer.find("no 'watch' on pods"), std::string::npos) << resizer;
  EXPECT_EQ(resizer.find("'get' on pods"), std::string::npos) << resizer;
  const std::string rbac = join(check_rbac(m));
  EXPECT_NE(rbac.find("csi-provisioner (service account ctl): no 'create' on persistentvolumes"),
            std::string::npos)
      << rbac;
  EXPECT_NE(rbac.find("csi-provisioner: --leader-election but no 'get' on leases in kube-system"),
            std::string::npos)
      << rbac;
  EXPECT_NE(rbac.find("csi-snapshotter (service account ctl): no 'get' on "
                      "snapshot.storage.k8s.io/volumesnapshotclasses"),
            std::string::npos)
      << rbac;
  EXPECT_NE(rbac.find("ClusterRole/my-external-resizer-runner: 'list' on secrets"),
            std::string::npos)
      << rbac;
}

}  // namespace
