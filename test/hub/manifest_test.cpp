#include "cloud-hub/manifest.hpp"

#include <gtest/gtest.h>

#include "common/fs.hpp"

namespace flotilla::hub {
namespace {

const char* kProcess = R"(apiVersion: flotilla/v1
kind: Workload
metadata:
  name: web
  labels: {app: web, tier: "1"}
spec:
  type: process
  replicas: 2
  selector:
    matchLabels:
      zone: east
  tolerations:
    - key: flaky
      operator: Exists
  resources:
    cpu: 500m
    memory: 64Mi
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 10
  process:
    command: [/bin/sleep, 100]
    env:
      PORT: 8080
      MODE: fast
    workdir: /tmp
)";

// Replaces the first occurrence of `from` in `s`.
std::string replaced(std::string s, const std::string& from, const std::string& to) {
  auto pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos) s.replace(pos, from.size(), to);
  return s;
}

// kProcess with the first `from` replaced by `to`.
std::string variant(const std::string& from, const std::string& to) {
  return replaced(kProcess, from, to);
}

std::string error_of(const std::string& text, const std::string& source = "web.yaml") {
  auto r = parse_manifests(text, source);
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? "" : r.error().message();
}

TEST(ManifestTest, ParsesFullProcessWorkload) {
  auto r = parse_manifests(kProcess, "web.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 1u);
  const WorkloadManifest& m = r->front();
  EXPECT_EQ(m.name, "web");
  EXPECT_EQ(m.labels.at("tier"), "1");
  EXPECT_EQ(m.type, "process");
  EXPECT_EQ(m.replicas, 2);
  EXPECT_FALSE(m.every_node);
  EXPECT_EQ(m.selector.at("zone"), "east");
  EXPECT_EQ(m.tolerations, (std::vector<Toleration>{{"flaky", "Exists", "", ""}}));
  EXPECT_EQ(m.cpu_millis, 500);
  EXPECT_EQ(m.memory_bytes, 64 << 20);
  EXPECT_EQ(m.restart_policy, "OnFailure");
  EXPECT_EQ(m.grace_seconds, 10);
  ASSERT_TRUE(m.process.has_value());
  EXPECT_EQ(m.process->command, (std::vector<std::string>{"/bin/sleep", "100"}));
  EXPECT_EQ(m.process->env.at("PORT"), "8080");
  EXPECT_EQ(m.process->workdir, "/tmp");
}

TEST(ManifestTest, ParsesTheShippedExample) {
  auto text = fs::read_file(std::string(FLOTILLA_SOURCE_DIR) + "/examples/hello.yaml");
  ASSERT_TRUE(text.ok()) << text.error().message();
  auto r = parse_manifests(*text, "hello.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->front().every_node);
  EXPECT_EQ(r->front().process->command.size(), 3u);
}

TEST(ManifestTest, ParsesTheCanaryExample) {
  auto text = fs::read_file(std::string(FLOTILLA_SOURCE_DIR) + "/examples/canary.yaml");
  ASSERT_TRUE(text.ok()) << text.error().message();
  auto r = parse_manifests(*text, "canary.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_TRUE(r->front().update.has_value());
  EXPECT_EQ(r->front().update->max_unavailable, (CountOrPercent{1, false}));
  EXPECT_EQ(r->front().update->waves.size(), 3u);
}

TEST(ManifestTest, ParsesContainerAndVm) {
  auto r = parse_manifests(R"(
apiVersion: flotilla/v1
kind: Workload
metadata: {name: cam}
spec:
  type: container
  placement: {everyNode: true}
  container: {image: "reg.local/cam:1", command: [run], env: {A: b}}
---
apiVersion: flotilla/v1
kind: Workload
metadata: {name: win}
spec:
  type: vm
  replicas: 1
  restartPolicy: Never
  vm:
    image: /img/win.qcow2
    sha256: ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789
    cpus: 2
    memory: 2Gi
)",
                           "two.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].container->image, "reg.local/cam:1");
  EXPECT_EQ((*r)[1].vm->cpus, 2);
  EXPECT_EQ((*r)[1].vm->memory_bytes, 2LL << 30);
  EXPECT_EQ((*r)[1].vm->sha256.substr(0, 6), "abcdef");  // normalised to lowercase
}

TEST(ManifestTest, AcceptsJson) {
  auto r = parse_manifests(
      R"({"apiVersion": "flotilla/v1", "kind": "Workload", "metadata": {"name": "j"},
          "spec": {"type": "process", "replicas": 1, "resources": {"cpu": 0.25, "memory": 1000},
                   "process": {"command": ["true"]}}})",
      "j.json");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->front().cpu_millis, 250);
  EXPECT_EQ(r->front().memory_bytes, 1000);
}

TEST(ManifestTest, BadJsonNamesFileAndLine) {
  std::string e = error_of("{\"apiVersion\": \"flotilla/v1\",\n \"kind\": }", "bad.json");
  EXPECT_EQ(e.rfind("bad.json:2: invalid JSON", 0), 0u) << e;
}

TEST(ManifestTest, BadYamlNamesFileAndLine) {
  std::string e = error_of("apiVersion: flotilla/v1\nkind: Workload\nmetadata:\n  name: [x\n");
  EXPECT_EQ(e.rfind("web.yaml:", 0), 0u) << e;
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
}

TEST(ManifestTest, ReplicasNotANumber) {
  EXPECT_EQ(error_of(variant("replicas: 2", "replicas: three")),
            "web.yaml:8: spec.replicas: want a whole number ≥ 0, got 'three'");
  EXPECT_EQ(error_of(variant("replicas: 2", "replicas: \"2\"")),
            "web.yaml:8: spec.replicas: want a whole number ≥ 0, got '2'");
  EXPECT_EQ(error_of(variant("replicas: 2", "replicas: -1")),
            "web.yaml:8: spec.replicas: want a whole number from 0 to 10000, got -1");
}

TEST(ManifestTest, UnknownKindAndNotYetKinds) {
  EXPECT_EQ(error_of(variant("kind: Workload", "kind: Pod")),
            "web.yaml:2: kind: unknown kind 'Pod' (want Workload, Device or Rollout)");
  // A Rollout is read as one (docs/hub.md "Rollouts"): a workload's fields are unknown to it.
  EXPECT_EQ(error_of(variant("kind: Workload", "kind: Rollout")),
            "web.yaml:7: spec.type: unknown field");
  EXPECT_EQ(error_of(variant("apiVersion: flotilla/v1", "apiVersion: v1")),
            "web.yaml:1: apiVersion: want 'flotilla/v1', got 'v1'");
}

const char* kDevice = R"(apiVersion: flotilla/v1
kind: Device
metadata:
  name: thermo-1
  labels: {room: lab}
spec:
  node: edge-1
  desired:
    setpoint: 21.5
    fan: {mode: auto, speeds: [1, 2]}
)";

std::string device_variant(const std::string& from, const std::string& to) {
  return replaced(kDevice, from, to);
}

std::string device_error(const std::string& text) {
  auto r = parse_all_manifests(text, "dev.yaml");
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? "" : r.error().message();
}

TEST(ManifestTest, ParsesADeviceWithItsNodeLabelsAndDesired) {
  auto r = parse_all_manifests(std::string(kDevice) + "---\n" + kProcess, "all.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->devices.size(), 1u);
  ASSERT_EQ(r->workloads.size(), 1u);
  const DeviceManifest& d = r->devices.front();
  EXPECT_EQ(d.name, "thermo-1");
  EXPECT_EQ(d.line, 4);
  EXPECT_EQ(d.labels, (StringMap{{"room", "lab"}}));
  EXPECT_EQ(d.node, "edge-1");
  ASSERT_TRUE(d.desired.has_value());
  EXPECT_EQ(*d.desired, nlohmann::json::parse(
                            R"({"setpoint": 21.5, "fan": {"mode": "auto", "speeds": [1, 2]}})"));
  EXPECT_EQ(device_body(d), nlohmann::json::parse(R"({"node": "edge-1", "labels": {"room": "lab"},
              "desired": {"setpoint": 21.5, "fan": {"mode": "auto", "speeds": [1, 2]}}})"));
  // Without spec.desired the device's desired is left alone: the body has none.
  auto bare = parse_all_manifests(
      "{\"apiVersion\": \"flotilla/v1\", \"kind\": \"Device\", \"metadata\": {\"name\": \"d\"}, "
      "\"spec\": {\"node\": \"n1\"}}",
      "d.json");
  ASSERT_TRUE(bare.ok()) << bare.error().message();
  EXPECT_FALSE(bare->devices.front().desired.has_value());
  EXPECT_EQ(device_body(bare->devices.front()),
            nlohmann::json::parse(R"({"node": "n1", "labels": {}})"));
  // Input that may hold only workloads says where the device is.
  auto only = parse_manifests(kDevice, "dev.yaml");
  ASSERT_FALSE(only.ok());
  EXPECT_EQ(only.error().message().rfind("dev.yaml:4: kind Device: device 'thermo-1' is not a "
                                         "workload",
                                         0),
            0u)
      << only.error().message();
}

TEST(ManifestTest, TheDeviceExampleParses) {
  auto text = fs::read_file(std::string(FLOTILLA_SOURCE_DIR) + "/examples/thermostat.yaml");
  ASSERT_TRUE(text.ok());
  auto r = parse_all_manifests(*text, "thermostat.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->devices.size(), 1u);
  EXPECT_EQ(r->devices[0].name, "thermostat-1");
  EXPECT_EQ(r->devices[0].node, "edge-1");
  EXPECT_EQ((*r->devices[0].desired)["setpoint"], 21.5);
}

TEST(ManifestTest, BadDevicesAreRejectedWithWhereAndWhy) {
  EXPECT_EQ(device_error(device_variant("  node: edge-1\n", "")),
            "dev.yaml:6: spec.node: required (the node it is attached to)");
  EXPECT_EQ(device_error(device_variant("node: edge-1", "node: Edge_1")),
            "dev.yaml:7: spec.node: node name 'Edge_1' may hold only lowercase letters, digits, "
            "'-', '.' and '_'");
  EXPECT_EQ(device_error(device_variant("name: thermo-1", "name: -t")),
            "dev.yaml:4: metadata.name: device name '-t' must start and end with a letter or "
            "digit");
  EXPECT_EQ(device_error(device_variant("  node: edge-1", "  node: edge-1\n  replicas: 2"))
                .rfind("dev.yaml:8: spec.replicas: unknown field", 0),
            0u);
  EXPECT_EQ(device_error(device_variant("  desired:\n    setpoint: 21.5\n    fan: {mode: auto, "
                                        "speeds: [1, 2]}\n",
                                        "  desired: [1]\n")),
            "dev.yaml:8: spec.desired: want a mapping, got a list");
  std::string deep = "  desired: ";
  for (int i = 0; i < 11; ++i) deep += "{a: ";
  deep += "1" + std::string(11, '}') + "\n";
  std::string e =
      device_error(std::string(kDevice).substr(0, std::string(kDevice).find("  desired:")) + deep);
  EXPECT_EQ(e.rfind("dev.yaml:8: spec.desired: ", 0), 0u) << e;
  EXPECT_NE(e.find("nest"), std::string::npos) << e;
  e = device_error(std::string(kDevice) + "---\n" + kDevice);
  EXPECT_EQ(e, "dev.yaml:15: metadata.name: device 'thermo-1' appears twice");
}

TEST(ManifestTest, MissingOrBadName) {
  EXPECT_EQ(error_of(variant("  name: web\n", "")), "web.yaml:3: metadata.name: required");
  std::string e = error_of(variant("name: web", "name: Web_1"));
  EXPECT_EQ(e.rfind("web.yaml:4: metadata.name: 'Web_1' is not a valid name", 0), 0u) << e;
  EXPECT_FALSE(validate_name(std::string(64, 'a')).ok());
  EXPECT_TRUE(validate_name(std::string(63, 'a')).ok());
  EXPECT_FALSE(validate_name("-a").ok());
  EXPECT_TRUE(validate_name("a-1").ok());
}

TEST(ManifestTest, BadQuantityNamesTheField) {
  EXPECT_EQ(error_of(variant("memory: 64Mi", "memory: 64MB")),
            "web.yaml:17: spec.resources.memory: bad memory quantity '64MB' (want e.g. 64Mi, "
            "1Gi, 1G or a byte count)");
  EXPECT_EQ(error_of(variant("cpu: 500m", "cpu: lots")),
            "web.yaml:16: spec.resources.cpu: bad cpu quantity 'lots' (want e.g. 500m, 0.5 or 2)");
}

TEST(ManifestTest, UnknownFieldWithSuggestion) {
  EXPECT_EQ(error_of(variant("  process:\n", "  proces:\n")),
            "web.yaml:20: spec.proces: unknown field (did you mean 'process'?)");
  EXPECT_EQ(error_of(variant("    workdir: /tmp", "    wrkdir: /tmp")),
            "web.yaml:25: spec.process.wrkdir: unknown field (did you mean 'workdir'?)");
  EXPECT_EQ(error_of(variant("kind: Workload\n", "kind: Workload\nextra: 1\n")),
            "web.yaml:3: extra: unknown field");
}

TEST(ManifestTest, KnownButUnsupportedFieldsAreRejected) {
  EXPECT_EQ(error_of(variant("  restartPolicy", "  probes: {liveness: {}}\n  restartPolicy")),
            "web.yaml:18: spec.probes.liveness: want exactly one of exec, httpGet or tcpSocket");
  EXPECT_EQ(error_of(variant("    matchLabels:\n", "    matchExpressions: []\n    matchLabels:\n")),
            "web.yaml:10: spec.selector.matchExpressions is not supported yet");
}

TEST(ManifestTest, ReplicasAndEveryNodeAreExclusive) {
  std::string e = error_of(variant("replicas: 2", "replicas: 2\n  placement: {everyNode: true}"));
  EXPECT_EQ(e, "web.yaml:9: spec: set either replicas or placement.everyNode, not both");
  e = error_of(variant("  replicas: 2\n", ""));
  EXPECT_NE(e.find("spec: set replicas (a number) or placement: {everyNode: true}"),
            std::string::npos)
      << e;
  e = error_of(variant("replicas: 2", "placement: {everyNode: false}"));
  EXPECT_EQ(e, "web.yaml:8: spec.placement.everyNode: want true (or use spec.replicas instead)");
}

TEST(ManifestTest, MissingCommandOrImage) {
  EXPECT_EQ(error_of(variant("    command: [/bin/sleep, 100]\n", "")),
            "web.yaml:20: spec.process.command: required (the program and its arguments)");
  EXPECT_EQ(error_of(variant("command: [/bin/sleep, 100]", "command: []")),
            "web.yaml:21: spec.process.command: must not be empty");
  std::string e = error_of(R"(apiVersion: flotilla/v1
kind: Workload
metadata: {name: c}
spec:
  type: container
  replicas: 1
  container: {command: [x]}
)");
  EXPECT_EQ(e, "web.yaml:7: spec.container.image: required (e.g. registry.local/app:1)");
  EXPECT_EQ(error_of(variant("type: process", "type: container")),
            "web.yaml:20: spec.process: not allowed for type container");
  EXPECT_EQ(error_of("apiVersion: flotilla/v1\nkind: Workload\nmetadata: {name: c}\nspec:\n"
                     "  type: process\n  replicas: 1\n"),
            "web.yaml:4: spec.process: required for type process");
}

TEST(ManifestTest, OtherBadValues) {
  EXPECT_EQ(error_of(variant("type: process", "type: wasm")),
            "web.yaml:7: spec.type: want process, container or vm, got 'wasm'");
  EXPECT_EQ(error_of(variant("restartPolicy: OnFailure", "restartPolicy: Sometimes")),
            "web.yaml:18: spec.restartPolicy: want Always, OnFailure or Never, got 'Sometimes'");
  EXPECT_EQ(error_of(variant("MODE: fast", "9MODE: fast")),
            "web.yaml:24: spec.process.env.9MODE: bad key '9MODE' (letters, digits and '_', not "
            "starting with a digit)");
  EXPECT_EQ(error_of(variant("zone: east", "zone: [east]")),
            "web.yaml:11: spec.selector.matchLabels.zone: want text, got a list");
  EXPECT_EQ(error_of("- just\n- a list\n"),
            "web.yaml:1: want a mapping with apiVersion, kind, metadata and spec, got a list");
  EXPECT_EQ(error_of(variant("spec:\n", "spec:\n  type: vm\n")),
            "web.yaml:8: duplicate key 'type'");
  EXPECT_EQ(error_of("", "empty.yaml"), "empty.yaml: no manifest found (the input is empty)");
}

TEST(ManifestTest, MultiDocumentIsAllOrNothing) {
  std::string two = std::string(kProcess) + "---\n" + variant("name: web", "name: api");
  auto ok = parse_manifests(two, "two.yaml");
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(ok->size(), 2u);
  // A bad second document fails the lot, with its line in the whole file.
  std::string bad = std::string(kProcess) + "---\n" + variant("replicas: 2", "replicas: x");
  EXPECT_EQ(error_of(bad, "two.yaml"),
            "two.yaml:34: spec.replicas: want a whole number ≥ 0, got 'x'");
  EXPECT_EQ(error_of(std::string(kProcess) + "---\n" + kProcess, "two.yaml"),
            "two.yaml:30: metadata.name: workload 'web' appears twice");
}

TEST(ManifestTest, StatusAndReadOnlyMetadataAreIgnored) {
  std::string s =
      variant("  name: web\n", "  name: web\n  generation: 7\n  creationTimestamp: x\n");
  s += "status:\n  readyInstances: 3\n";
  auto r = parse_manifests(s, "web.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(to_json(r->front()), to_json(*parse_manifests(kProcess, "web.yaml")->begin()));
}

TEST(ManifestTest, TolerationsAreChecked) {
  const std::string tol = "    - key: flaky\n      operator: Exists\n";
  auto with = [&](const std::string& items) { return variant(tol, items); };
  auto r = parse_manifests(with("    - {key: dedicated, value: gpu, effect: NoSchedule}\n"
                                "    - {operator: Exists, effect: NoExecute}\n"),
                           "web.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->front().tolerations,
            (std::vector<Toleration>{{"dedicated", "Equal", "gpu", "NoSchedule"},
                                     {"", "Exists", "", "NoExecute"}}));
  nlohmann::json j = to_json(r->front());
  EXPECT_EQ(j["spec"]["tolerations"][0], (nlohmann::json{{"key", "dedicated"},
                                                         {"operator", "Equal"},
                                                         {"value", "gpu"},
                                                         {"effect", "NoSchedule"}}));
  EXPECT_EQ(error_of(with("    - {key: a, operator: Maybe}\n")),
            "web.yaml:13: spec.tolerations[0].operator: want Equal or Exists, got 'Maybe'");
  EXPECT_EQ(error_of(with("    - {key: a, effect: PreferNoSchedule}\n")),
            "web.yaml:13: spec.tolerations[0].effect: want NoSchedule or NoExecute (or none for "
            "both), got 'PreferNoSchedule'");
  EXPECT_EQ(error_of(with("    - {key: a, operator: Exists, value: b}\n")),
            "web.yaml:13: spec.tolerations[0].value: must be empty with operator Exists");
  EXPECT_EQ(error_of(with("    - {value: b}\n")),
            "web.yaml:13: spec.tolerations[0].key: required with operator Equal (Exists alone "
            "matches all)");
  EXPECT_EQ(error_of(with("    - {key: 'a b'}\n")),
            "web.yaml:13: spec.tolerations[0].key: 'a b' is not a label key (letters, digits, "
            "'-', '_', '.', '/')");
  EXPECT_EQ(error_of(with("    - {key: a, tolerationSeconds: 30}\n")),
            "web.yaml:13: spec.tolerations[0].tolerationSeconds is not supported yet");
  EXPECT_EQ(error_of(with("    - {key: a, valu: b}\n")).substr(0, 50),
            "web.yaml:13: spec.tolerations[0].valu: unknown fie");
  EXPECT_EQ(error_of(with("    - dedicated\n")),
            "web.yaml:13: spec.tolerations[0]: want a mapping, got text");
  EXPECT_EQ(error_of(variant("  tolerations:\n" + tol, "  tolerations: yes\n")),
            "web.yaml:12: spec.tolerations: want a list, got text");
}

TEST(ManifestTest, EvictAfterSeconds) {
  EXPECT_FALSE(parse_manifests(kProcess, "web.yaml")->front().evict_after_seconds.has_value());
  auto r = parse_manifests(variant("  restartPolicy", "  evictAfterSeconds: 300\n  restartPolicy"),
                           "web.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->front().evict_after_seconds, 300);
  EXPECT_EQ(to_json(r->front())["spec"]["evictAfterSeconds"], 300);
  EXPECT_EQ(error_of(variant("  restartPolicy", "  evictAfterSeconds: soon\n  restartPolicy")),
            "web.yaml:18: spec.evictAfterSeconds: want a whole number ≥ 0, got 'soon'");
}

// kProcess with `lines` (indented under spec) before restartPolicy, at line 18.
std::string with_spec_lines(const std::string& lines) {
  return variant("  restartPolicy", lines + "\n  restartPolicy");
}

TEST(ManifestTest, UpdatePolicyIsParsedAndStoredCanonically) {
  auto r = parse_manifests(with_spec_lines("  update:\n    maxUnavailable: 25%\n    partition: 2\n"
                                           "    waves: [1, \"10%\", 50%, 100%]"),
                           "web.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message();
  const WorkloadManifest& m = r->front();
  ASSERT_TRUE(m.update.has_value());
  EXPECT_EQ(m.update->max_unavailable, (CountOrPercent{25, true}));
  EXPECT_EQ(m.update->partition, 2);
  EXPECT_EQ(m.update->waves,
            (std::vector<CountOrPercent>{{1, false}, {10, true}, {50, true}, {100, true}}));
  nlohmann::json j = to_json(m);
  EXPECT_EQ(j["spec"]["update"], nlohmann::json::parse(R"({"maxUnavailable": "25%",
      "partition": 2, "waves": [1, "10%", "50%", "100%"]})"));
  auto again = parse_manifests(j.dump(), "stored");
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(again->front().update, m.update);
  EXPECT_EQ(to_json(again->front()), j);

  // Absent or null: no policy (RolloutPolicy's defaults apply), nothing stored.
  const WorkloadManifest plain = parse_manifests(kProcess, "web.yaml")->front();
  EXPECT_FALSE(plain.update.has_value());
  EXPECT_FALSE(to_json(plain)["spec"].contains("update"));
  EXPECT_FALSE(parse_manifests(with_spec_lines("  update: ~"), "web.yaml")->front().update);
  // Empty: the defaults, stored in full.
  auto empty = parse_manifests(with_spec_lines("  update: {}"), "web.yaml");
  ASSERT_TRUE(empty.ok()) << empty.error().message();
  EXPECT_EQ(empty->front().update, RolloutPolicy{});
  EXPECT_EQ(to_json(empty->front())["spec"]["update"],
            (nlohmann::json{{"maxUnavailable", "25%"}, {"partition", 0}}));
  auto count = parse_manifests(with_spec_lines("  update: {maxUnavailable: 3}"), "web.yaml");
  ASSERT_TRUE(count.ok()) << count.error().message();
  EXPECT_EQ(to_json(count->front())["spec"]["update"]["maxUnavailable"], 3);
}

TEST(ManifestTest, UpdatePolicyChangesNeitherSpecHashNorWhatAgentsGet) {
  const WorkloadManifest plain = parse_manifests(kProcess, "web.yaml")->front();
  auto r = parse_manifests(
      with_spec_lines("  update: {maxUnavailable: 1, partition: 3, waves: [1, 50%]}"), "web.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(spec_hash(r->front()), spec_hash(plain));
  // Byte for byte on a workload without maps (they serialize in no fixed order).
  const std::string bare =
      "apiVersion: flotilla/v1\nkind: Workload\nmetadata: {name: b}\nspec:\n  type: process\n"
      "  replicas: 1\n  process: {command: [x]}\n";
  auto without = parse_manifests(bare, "b.yaml");
  auto with = parse_manifests(bare + "  update: {maxUnavailable: 50%, waves: [2]}\n", "b.yaml");
  ASSERT_TRUE(without.ok() && with.ok());
  EXPECT_EQ(to_workload_spec(with->front(), 1).SerializeAsString(),
            to_workload_spec(without->front(), 1).SerializeAsString());
}

TEST(ManifestTest, BadUpdatePolicyNamesTheField) {
  auto bad = [](const std::string& update) {
    return error_of(with_spec_lines("  update: " + update));
  };
  EXPECT_EQ(bad("fast"), "web.yaml:18: spec.update: want a mapping, got text");
  EXPECT_EQ(
      bad("{maxUnavailable: 0}"),
      "web.yaml:18: spec.update.maxUnavailable: want a whole number from 1 to 1000000, got 0");
  EXPECT_EQ(bad("{maxUnavailable: 0%}"),
            "web.yaml:18: spec.update.maxUnavailable: want a percentage from 1% to 100%, got '0%'");
  EXPECT_EQ(bad("{maxUnavailable: 150%}"),
            "web.yaml:18: spec.update.maxUnavailable: want a percentage from 1% to 100%, got "
            "'150%'");
  for (const char* v : {"half", "\"2\"", "0.5", "25 %", "-5%"}) {
    std::string e = bad(std::string("{maxUnavailable: ") + v + "}");
    EXPECT_EQ(e.rfind("web.yaml:18: spec.update.maxUnavailable: want a whole number ≥ 1 or a "
                      "percentage such as 25%, got '",
                      0),
              0u)
        << e;
  }
  EXPECT_EQ(bad("{maxUnavailable: [1]}"),
            "web.yaml:18: spec.update.maxUnavailable: want a whole number ≥ 1 or a percentage "
            "such as 25%, got a list");
  EXPECT_EQ(bad("{partition: -1}"),
            "web.yaml:18: spec.update.partition: want a whole number from 0 to 1000000, got -1");
  EXPECT_EQ(bad("{partition: 10%}"),
            "web.yaml:18: spec.update.partition: want a whole number ≥ 0, got '10%'");
  EXPECT_EQ(bad("{waves: 3}"),
            "web.yaml:18: spec.update.waves: want a list of cumulative counts or percentages, "
            "e.g. [1, 10%, 50%]");
  EXPECT_EQ(bad("{waves: []}"),
            "web.yaml:18: spec.update.waves: want 1 to 100 waves, got 0 (leave waves out for a "
            "single one)");
  EXPECT_EQ(bad("{waves: [1, 10%, 5%]}"),
            "web.yaml:18: spec.update.waves[2]: waves are cumulative: want more than the earlier "
            "10%, got 5%");
  EXPECT_EQ(bad("{waves: [1, 0%]}"),
            "web.yaml:18: spec.update.waves[1]: want a percentage from 1% to 100%, got '0%'");
  EXPECT_EQ(bad("{maxSurge: 1}"),
            "web.yaml:18: spec.update.maxSurge: a node runs one instance of a workload, replaced "
            "in place, so there is no surge (use maxUnavailable)");
  EXPECT_EQ(bad("{maxUnavailabel: 1}"),
            "web.yaml:18: spec.update.maxUnavailabel: unknown field (did you mean "
            "'maxUnavailable'?)");
  // In block style the error points at the wave's own line.
  EXPECT_EQ(error_of(with_spec_lines("  update:\n    maxUnavailable: 1\n    waves:\n      - 2\n"
                                     "      - 2")),
            "web.yaml:22: spec.update.waves[1]: waves are cumulative: want more than the earlier "
            "2, got 2");
}

TEST(ManifestTest, ArchNodePoolAndSpread) {
  const std::string extra =
      "  arch: [amd64, arm64]\n  nodePool: gpu\n  spread: {topologyKey: site, maxSkew: 2}\n"
      "  restartPolicy";
  auto r = parse_manifests(variant("  restartPolicy", extra), "web.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message();
  const WorkloadManifest& m = r->front();
  EXPECT_EQ(m.arch, (std::vector<std::string>{"amd64", "arm64"}));
  EXPECT_EQ(m.node_pool, "gpu");
  EXPECT_EQ(m.spread_key, "site");
  EXPECT_EQ(m.spread_max_skew, 2);
  nlohmann::json j = to_json(m);
  EXPECT_EQ(j["spec"]["spread"], (nlohmann::json{{"topologyKey", "site"}, {"maxSkew", 2}}));
  EXPECT_EQ(to_json(parse_manifests(j.dump(), "stored")->front()), j);
  EXPECT_EQ(spec_hash(m), spec_hash(parse_manifests(kProcess, "web.yaml")->front()));
  auto bad = [&](const std::string& field) {
    return error_of(variant("  restartPolicy", field + "\n  restartPolicy"));
  };
  EXPECT_EQ(bad("  arch: [sparc]"),
            "web.yaml:18: spec.arch: want amd64, arm64, arm or riscv64, got 'sparc'");
  EXPECT_EQ(
      bad("  nodePool: 'a b'"),
      "web.yaml:18: spec.nodePool: 'a b' is not a label value (letters, digits, '-', '_', '.')");
  EXPECT_EQ(bad("  spread: {maxSkew: 1}").substr(0, 45),
            "web.yaml:18: spec.spread.topologyKey: require");
  EXPECT_EQ(bad("  spread: {topologyKey: site, maxSkew: 0}").substr(0, 45),
            "web.yaml:18: spec.spread.maxSkew: want a whol");
  EXPECT_EQ(error_of(variant("replicas: 2",
                             "placement: {everyNode: true}\n  spread: {topologyKey: site}")),
            "web.yaml:9: spec.spread: applies to replicas, not to placement.everyNode");
}

TEST(ManifestTest, CanonicalJsonRoundTrips) {
  auto m = parse_manifests(kProcess, "web.yaml")->front();
  nlohmann::json j = to_json(m);
  EXPECT_EQ(j["spec"]["resources"]["memory"], "64Mi");
  EXPECT_EQ(j["spec"]["process"]["env"]["PORT"], "8080");
  auto again = parse_manifests(j.dump(), "stored");
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(to_json(again->front()), j);
  EXPECT_EQ(spec_hash(again->front()), spec_hash(m));
}

TEST(ManifestTest, SpecHashCoversOnlyTheRunnablePart) {
  auto hash = [](const std::string& text) {
    auto r = parse_manifests(text, "x.yaml");
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() ? spec_hash(r->front()) : "";
  };
  const std::string base = hash(kProcess);
  EXPECT_EQ(base.size(), 64u);
  // Same content, other spelling and order: same hash.
  EXPECT_EQ(hash(variant("memory: 64Mi", "memory: 67108864")), base);
  EXPECT_EQ(
      hash(variant("      PORT: 8080\n      MODE: fast\n", "      MODE: fast\n      PORT: 8080\n")),
      base);
  // Placement, labels and selector do not replace instances.
  EXPECT_EQ(hash(variant("replicas: 2", "replicas: 5")), base);
  EXPECT_EQ(hash(variant("app: web", "app: other")), base);
  EXPECT_EQ(hash(variant("zone: east", "zone: west")), base);
  EXPECT_EQ(hash(variant("key: flaky", "key: other")), base);
  EXPECT_EQ(hash(variant("  restartPolicy", "  evictAfterSeconds: 60\n  restartPolicy")), base);
  EXPECT_EQ(hash(variant("  restartPolicy", "  update: {partition: 1}\n  restartPolicy")), base);
  // What an instance runs from does.
  EXPECT_NE(hash(variant("100]", "101]")), base);
  EXPECT_NE(hash(variant("MODE: fast", "MODE: slow")), base);
  EXPECT_NE(hash(variant("cpu: 500m", "cpu: 1")), base);
  EXPECT_NE(hash(variant("restartPolicy: OnFailure", "restartPolicy: Always")), base);
  EXPECT_NE(hash(variant("terminationGracePeriodSeconds: 10", "terminationGracePeriodSeconds: 3")),
            base);
}

TEST(ManifestTest, WorkloadSpecForAgents) {
  auto m = parse_manifests(kProcess, "web.yaml")->front();
  auto spec = to_workload_spec(m, 4);
  EXPECT_EQ(spec.name(), "web");
  EXPECT_EQ(spec.type(), "process");
  EXPECT_EQ(spec.generation(), 4);
  EXPECT_EQ(spec.spec_hash(), spec_hash(m));
  EXPECT_EQ(spec.restart_policy(), flotilla::v1::RESTART_ON_FAILURE);
  EXPECT_EQ(spec.resources().cpu_millis(), 500);
  EXPECT_EQ(spec.termination_grace_ms(), 10000);
  EXPECT_EQ(spec.process().command_size(), 2);
  EXPECT_EQ(spec.process().env().at("MODE"), "fast");
  EXPECT_EQ(spec.labels().at("app"), "web");
}

const char* kFullContainer = R"(apiVersion: flotilla/v1
kind: Workload
metadata: {name: cam}
spec:
  type: container
  placement: {everyNode: true}
  resources: {memory: 64Mi}
  container:
    image: "127.0.0.1:5000/cam:1"
    command: [/bin/cam]
    args: [--fast]
    env: {A: b}
    workdir: /srv
    user: "1000:100"
    mounts:
      - {source: /var/cam, destination: /data, readOnly: true}
    readOnlyRootFilesystem: true
    hostNetwork: false
    pidsLimit: 64
  probes:
    liveness:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 2
      failureThreshold: 2
    readiness:
      exec: {command: [cat, /tmp/ready]}
)";

const char* kFullVm = R"(apiVersion: flotilla/v1
kind: Workload
metadata: {name: appliance}
spec:
  type: vm
  replicas: 1
  vm:
    image: http://127.0.0.1:8000/disk.qcow2
    sha256: abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789
    cpus: 2
    memory: 512Mi
    ports: [{host: 2222, guest: 22}]
    kernel: /boot/vmlinuz
    initrd: /boot/initrd.img
    kernelArgs: console=ttyS0
  probes:
    readiness: {tcpSocket: {port: 2222}}
)";

TEST(ManifestTest, ContainerSectionAndProbesReachTheAgent) {
  auto r = parse_manifests(kFullContainer, "cam.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message();
  const WorkloadManifest& m = r->front();
  auto spec = to_workload_spec(m, 1);
  const auto& c = spec.container();
  EXPECT_EQ(c.image(), "127.0.0.1:5000/cam:1");
  EXPECT_EQ(c.command(0), "/bin/cam");
  EXPECT_EQ(c.args(0), "--fast");
  EXPECT_EQ(c.env().at("A"), "b");
  EXPECT_EQ(c.workdir(), "/srv");
  EXPECT_EQ(c.user(), "1000:100");
  ASSERT_EQ(c.mounts_size(), 1);
  EXPECT_EQ(c.mounts(0).destination(), "/data");
  EXPECT_TRUE(c.mounts(0).read_only());
  EXPECT_TRUE(c.read_only_root());
  EXPECT_TRUE(c.private_network());
  EXPECT_EQ(c.pids_limit(), 64);
  EXPECT_EQ(spec.liveness().http_path(), "/healthz");
  EXPECT_EQ(spec.liveness().http_port(), 8080u);
  EXPECT_EQ(spec.liveness().period_ms(), 2000);
  EXPECT_EQ(spec.liveness().failure_threshold(), 2u);
  EXPECT_EQ(spec.readiness().exec_size(), 2);
  EXPECT_EQ(spec.readiness().timeout_ms(), 1000);  // the default
  // Stored as canonical JSON and parsed back to the same workload.
  auto again = parse_manifests(to_json(m).dump(), "stored");
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(to_json(again->front()), to_json(m));
  EXPECT_EQ(to_workload_spec(again->front(), 1).SerializeAsString(), spec.SerializeAsString());
}

TEST(ManifestTest, VmSectionAndItsMemoryRequest) {
  auto r = parse_manifests(kFullVm, "vm.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message();
  const WorkloadManifest& m = r->front();
  auto spec = to_workload_spec(m, 1);
  EXPECT_EQ(spec.vm().cpus(), 2);
  EXPECT_EQ(spec.vm().memory_bytes(), 512LL << 20);
  ASSERT_EQ(spec.vm().ports_size(), 1);
  EXPECT_EQ(spec.vm().ports(0).host_port(), 2222u);
  EXPECT_EQ(spec.vm().ports(0).protocol(), "tcp");
  EXPECT_EQ(spec.vm().kernel_args(), "console=ttyS0");
  EXPECT_EQ(spec.readiness().tcp_port(), 2222u);
  // The scheduler reserves the guest's memory plus QEMU's own.
  EXPECT_EQ(memory_request(m), (512LL << 20) + kVmMemoryOverheadBytes);
  auto again = parse_manifests(to_json(m).dump(), "stored");
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(to_json(again->front()), to_json(m));
}

TEST(ManifestTest, ProbeChangesDoNotReplaceInstancesButImageChangesDo) {
  auto hash = [](const std::string& text) {
    auto r = parse_manifests(text, "x.yaml");
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() ? spec_hash(r->front()) : "";
  };
  auto change = [](std::string s, const std::string& from, const std::string& to) {
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  std::string base = hash(kFullContainer);
  EXPECT_EQ(hash(change(kFullContainer, "failureThreshold: 2", "failureThreshold: 5")), base);
  EXPECT_NE(hash(change(kFullContainer, "cam:1", "cam:2")), base);
  EXPECT_NE(hash(change(kFullContainer, "pidsLimit: 64", "pidsLimit: 65")), base);
  EXPECT_NE(hash(change(kFullContainer, "readOnly: true", "readOnly: false")), base);
}

TEST(ManifestTest, BadContainerVmAndProbeFields) {
  auto error = [](std::string text, const std::string& from, const std::string& to) {
    text.replace(text.find(from), from.size(), to);
    auto r = parse_manifests(text, "x.yaml");
    return r.ok() ? std::string("accepted") : r.error().message();
  };
  EXPECT_EQ(error(kFullContainer, "user: \"1000:100\"", "user: root"),
            "x.yaml:14: spec.container.user: want a numeric uid or uid:gid, got 'root'");
  EXPECT_EQ(error(kFullContainer, "destination: /data", "destination: data"),
            "x.yaml:16: spec.container.mounts[0].destination: want an absolute path without "
            "'..', got 'data'");
  EXPECT_EQ(error(kFullContainer, "source: /var/cam", "source: /var/../etc"),
            "x.yaml:16: spec.container.mounts[0].source: want an absolute path without '..', "
            "got '/var/../etc'");
  EXPECT_EQ(error(kFullContainer, "hostNetwork: false", "hostNetwork: maybe"),
            "x.yaml:18: spec.container.hostNetwork: want true or false, got 'maybe'");
  EXPECT_EQ(error(kFullContainer, "port: 8080}", "port: 80800}"),
            "x.yaml:22: spec.probes.liveness.httpGet.port: want a whole number from 1 to 65535, "
            "got 80800");
  EXPECT_EQ(error(kFullContainer, "      periodSeconds: 2\n",
                  "      periodSeconds: 2\n      tcpSocket: {port: 1}\n"),
            "x.yaml:21: spec.probes.liveness: want exactly one of exec, httpGet or tcpSocket");
  EXPECT_EQ(
      error(kFullVm,
            "    sha256: abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789\n", ""),
      "x.yaml:7: spec.vm.sha256: required for an image fetched over http(s) or oci://");
  EXPECT_EQ(error(kFullVm, "    kernel: /boot/vmlinuz\n", ""),
            "x.yaml:7: spec.vm.kernel: required with initrd or kernelArgs");
  EXPECT_EQ(error(kFullVm, "{host: 2222, guest: 22}", "{host: 2222, guest: 22, protocol: sctp}"),
            "x.yaml:12: spec.vm.ports[0].protocol: want tcp or udp, got 'sctp'");
  EXPECT_EQ(error(kFullVm, "tcpSocket: {port: 2222}", "exec: {command: [true]}"),
            "x.yaml:16: spec.probes: exec probes are not available for vm workloads");
}

}  // namespace
}  // namespace flotilla::hub
