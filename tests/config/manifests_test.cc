// The Kubernetes manifests parse as YAML and hold the objects a deployment needs.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <set>

namespace {

TEST(ManifestsTest, ParseWithTheExpectedKinds) {
  std::map<std::string, int> kinds;
  std::map<std::string, YAML::Node> by_name;
  for (const auto& entry : std::filesystem::directory_iterator(VOLGUARD_SOURCE_DIR "/deploy/kubernetes")) {
    if (entry.path().extension() != ".yaml") continue;
    std::vector<YAML::Node> docs;
    ASSERT_NO_THROW(docs = YAML::LoadAllFromFile(entry.path().string())) << entry.path();
    for (const auto& d : docs) {
      ASSERT_TRUE(d["apiVersion"] && d["kind"] && d["metadata"]["name"]) << entry.path();
      kinds[d["kind"].as<std::string>()]++;
      by_name[d["kind"].as<std::string>() + "/" + d["metadata"]["name"].as<std::string>()] = d;
    }
  }
  for (const char* k : {"CSIDriver", "StorageClass", "VolumeSnapshotClass", "DaemonSet", "Deployment",
                        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap"}) {
    EXPECT_GE(kinds[k], 1) << "no " << k;
  }
  EXPECT_EQ(by_name["CSIDriver/csi.volguard.io"]["spec"]["attachRequired"].as<bool>(), true);
  // The sidecars the controller needs.
  std::set<std::string> images;
  for (const auto& c : by_name["Deployment/volguard-csi-controller"]["spec"]["template"]["spec"]["containers"]) {
    images.insert(c["name"].as<std::string>());
  }
  for (const char* s : {"csi-provisioner", "csi-attacher", "csi-snapshotter", "csi-resizer", "csi-plugin"}) {
    EXPECT_TRUE(images.count(s)) << s;
  }
  // Per-namespace secrets; and per-PVC secret names never choose the namespace.
  auto sc = by_name["StorageClass/volguard-secure"]["parameters"];
  EXPECT_EQ(sc["csi.storage.k8s.io/provisioner-secret-namespace"].as<std::string>(), "${pvc.namespace}");
  EXPECT_EQ(sc["csi.storage.k8s.io/node-publish-secret-namespace"].as<std::string>(), "${pvc.namespace}");
  auto per_pvc = by_name["StorageClass/volguard-secure-per-pvc"]["parameters"];
  for (const auto& kv : per_pvc) {
    std::string key = kv.first.as<std::string>();
    if (key.find("secret-namespace") != std::string::npos) {
      EXPECT_EQ(kv.second.as<std::string>(), "${pvc.namespace}") << key;
    }
    if (key.size() > 11 && key.compare(key.size() - 11, 11, "secret-name") == 0) {
      EXPECT_NE(kv.second.as<std::string>().find("pvc.annotations['volguard.io/auth-secret-name']"),
                std::string::npos) << key;
    }
  }
  // The server's config in the ConfigMap is a valid volguard config.
  auto cfg = by_name["ConfigMap/volguard-config"]["data"]["volguard.yaml"].as<std::string>();
  EXPECT_NE(cfg.find("guest_access"), std::string::npos);
}

}  // namespace
