// Admission policies: the parser's error shapes and each rule's verdict on workloads.
#include <gtest/gtest.h>

#include <fstream>

#include "cloud-hub/admission.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::hub {
namespace {

const std::string kDigest = "sha256:" + std::string(64, 'a');

std::string policy(const std::string& rules) {
  return "apiVersion: flotilla/v1\nkind: AdmissionPolicy\nrules:\n" + rules;
}

// The parse error of `text` ("" when it parses).
std::string error_of(const std::string& text) {
  auto p = parse_admission_policy(text, "policy.yaml");
  return p ? "" : p.error().message();
}

WorkloadManifest workload(const std::string& yaml) {
  auto w = parse_manifests(yaml, "w.yaml");
  EXPECT_TRUE(w.ok()) << (w ? "" : w.error().message());
  return w ? w->front() : WorkloadManifest{};
}

std::string container(const std::string& image, const std::string& extra = "") {
  return "apiVersion: flotilla/v1\nkind: Workload\nmetadata: {name: web, labels: {tier: "
         "prod}}\nspec:\n  type: container\n  replicas: 2\n  container:\n    image: " +
         image + "\n" + extra;
}

std::string vm(const std::string& section) {
  return "apiVersion: flotilla/v1\nkind: Workload\nmetadata: {name: box}\nspec:\n  type: vm\n"
         "  replicas: 1\n  vm:\n" +
         section;
}

// The reasons `rule` gives against `yaml`, joined ("" when it passes).
std::string verdict(const std::string& rule, const std::string& yaml) {
  auto p = parse_admission_policy(policy(rule), "policy.yaml");
  EXPECT_TRUE(p.ok()) << (p ? "" : p.error().message());
  if (!p) return "";
  auto v = admit(*p, workload(yaml));
  return v.empty() ? "" : admission_error(v);
}

TEST(AdmissionPolicyParse, AWholePolicyParses) {
  auto p = parse_admission_policy(policy("  - name: no-host-network\n"
                                         "    denyHostNetwork: true\n"
                                         "  - name: regs\n"
                                         "    allowedRegistries: [Registry.Example.com, "
                                         "127.0.0.1:5000]\n"
                                         "    match: {labels: {tier: prod}, names: [web]}\n"
                                         "  - name: few\n"
                                         "    maxReplicas: 3\n"
                                         "  - name: no-mounts\n"
                                         "    allowedHostPaths: []\n"),
                                  "policy.yaml");
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_EQ(p->rules.size(), 4u);
  EXPECT_TRUE(p->rules[0].deny_host_network);
  EXPECT_EQ(p->rules[0].line, 4);
  EXPECT_EQ(p->rules[1].allowed_registries,
            (std::vector<std::string>{"registry.example.com", "127.0.0.1:5000"}));
  EXPECT_EQ(p->rules[1].match_labels, (StringMap{{"tier", "prod"}}));
  EXPECT_EQ(p->rules[1].match_names, std::vector<std::string>{"web"});
  EXPECT_EQ(p->rules[2].max_replicas, 3);
  ASSERT_TRUE(p->rules[3].allowed_host_paths.has_value());
  EXPECT_TRUE(p->rules[3].allowed_host_paths->empty());
}

TEST(AdmissionPolicyParse, EachErrorNamesFileLineRuleAndKey) {
  struct Case {
    std::string text;
    std::string want;
  };
  const std::vector<Case> cases = {
      {policy("  - name: a\n    denyHostNetwrk: true\n"),
       "policy.yaml:5: rule 'a'.denyHostNetwrk: unknown field (did you mean 'denyHostNetwork'?)"},
      {policy("  - name: a\n    maxReplicas: ten\n"),
       "policy.yaml:5: rule 'a'.maxReplicas: want a whole number ≥ 0, got 'ten'"},
      {policy("  - name: a\n    denyHostNetwork: yes please\n"),
       "policy.yaml:5: rule 'a'.denyHostNetwork: want true or false, got 'yes please'"},
      {policy("  - name: a\n    denyHostNetwork: false\n"),
       "policy.yaml:5: rule 'a'.denyHostNetwork: want true (delete the rule"},
      {policy("  - name: a\n    denyHostNetwork: true\n  - name: a\n    maxReplicas: 1\n"),
       "policy.yaml:6: rules[1].name: duplicate rule name 'a'"},
      {policy("  - name: a\n    match: {names: [web]}\n"), "policy.yaml:4: rule 'a': has no check"},
      {policy("  - name: a\n    maxReplicas: 1\n    denyHostNetwork: true\n"),
       "rule 'a': has 2 checks (maxReplicas, denyHostNetwork); want exactly one"},
      {policy("  - name: a\n    allowedRegistries: [https://reg.example]\n"),
       "policy.yaml:5: rule 'a'.allowedRegistries[0]: want a registry HOST[:PORT]"},
      {policy("  - name: a\n    allowedRegistries: []\n"),
       "rule 'a'.allowedRegistries: must not be empty"},
      {policy("  - name: a\n    allowedTypes: [container, docker]\n"),
       "rule 'a'.allowedTypes[1]: want container, vm or process, got 'docker'"},
      {policy("  - name: a\n    allowedHostPaths: [data]\n"),
       "rule 'a'.allowedHostPaths[0]: want an absolute path without '..', got 'data'"},
      {policy("  - name: a\n    denyPrivileged: true\n"),
       "policy.yaml:5: rule 'a'.denyPrivileged: Flotilla has no privileged containers"},
      {policy("  - name: a\n    maxReplicas: 1\n    match: {labels: {}}\n"),
       "rule 'a'.match.labels: must not be empty"},
      {policy("  - name: a\n    maxReplicas: 1\n    match: {nams: [web]}\n"),
       "rule 'a'.match.nams: unknown field (did you mean 'names'?)"},
      {policy("  - name: Bad_Name\n    maxReplicas: 1\n"), "policy.yaml:4: rules[0].name:"},
      {policy("  - maxReplicas: 1\n"), "rules[0].name: required"},
      {policy("  - just text\n"), "policy.yaml:4: rules[0]: want a mapping, got text"},
      {"apiVersion: flotilla/v1\nkind: Workload\nrules: []\n",
       "policy.yaml:2: kind: want AdmissionPolicy, got 'Workload'"},
      {"apiVersion: flotilla/v1\nkind: AdmissionPolicy\nrulez: []\n",
       "policy.yaml:3: rulez: unknown field (did you mean 'rules'?)"},
      {"apiVersion: flotilla/v1\nkind: AdmissionPolicy\n", "rules: required"},
      {"apiVersion: flotilla/v1\nkind: AdmissionPolicy\nrules: {a: 1}\n",
       "policy.yaml:3: rules: want a list, got a mapping"},
      {"apiVersion: flotilla/v1\nkind: AdmissionPolicy\nrules: [\n", "policy.yaml:"},
      {policy("  - name: a\n    maxReplicas: 1\n") + "---\n" + policy(""),
       "policy.yaml: want one AdmissionPolicy document, got 2"},
  };
  for (const auto& c : cases) {
    std::string err = error_of(c.text);
    EXPECT_NE(err.find(c.want), std::string::npos)
        << "want '" << c.want << "' in '" << err << "' for:\n"
        << c.text;
  }
}

TEST(AdmissionPolicyParse, SyntaxErrorsNameTheLine) {
  std::string err = error_of(policy("  - name: a\n    maxReplicas: [1\n"));
  EXPECT_EQ(err.rfind("policy.yaml:", 0), 0u) << err;
  EXPECT_NE(err.find(':', 12), std::string::npos) << err;
  EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(err[12]))) << err;
}

TEST(AdmissionPolicyParse, LoadNamesTheFile) {
  testing::TempDir dir;
  std::string missing = dir / "missing.yaml";
  auto p = load_admission_policy(missing);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("missing.yaml"), std::string::npos) << p.error().message();
  std::string bad = dir / "bad.yaml";
  std::ofstream(bad) << policy("  - name: a\n    maxReplicas: -1\n");
  p = load_admission_policy(bad);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find(bad + ":5: rule 'a'.maxReplicas"), std::string::npos)
      << p.error().message();
}

TEST(AdmissionRules, DenyHostNetwork) {
  const std::string rule = "  - name: own-net\n    denyHostNetwork: true\n";
  EXPECT_NE(verdict(rule, container("app:1"))
                .find("rule 'own-net' denies workload 'web': "
                      "container uses the host's network"),
            std::string::npos);
  EXPECT_EQ(verdict(rule, container("app:1", "    hostNetwork: false\n")), "");
}

TEST(AdmissionRules, RequireImageDigest) {
  const std::string rule = "  - name: pinned\n    requireImageDigest: true\n";
  EXPECT_NE(verdict(rule, container("reg.example/app:1"))
                .find("container image "
                      "'reg.example/app:1' is not "
                      "pinned by digest"),
            std::string::npos);
  EXPECT_EQ(verdict(rule, container("reg.example/app:1@" + kDigest)), "");
  EXPECT_EQ(verdict(rule, container("reg.example/app@" + kDigest)), "");
  EXPECT_NE(verdict(rule, vm("    image: /var/lib/disk.qcow2\n")).find("has no sha256"),
            std::string::npos);
  EXPECT_EQ(verdict(rule, vm("    image: http://img.example/d.qcow2\n    sha256: " +
                             std::string(64, 'b') + "\n")),
            "");
  EXPECT_NE(verdict(rule, vm("    image: http://img.example/d.qcow2\n    sha256: " +
                             std::string(64, 'b') + "\n    kernel: /boot/vmlinuz\n"))
                .find("vm kernel '/boot/vmlinuz' cannot be pinned by digest"),
            std::string::npos);
}

TEST(AdmissionRules, AllowedRegistries) {
  const std::string rule =
      "  - name: regs\n    allowedRegistries: [registry.example.com, 127.0.0.1:5000]\n";
  EXPECT_EQ(verdict(rule, container("registry.example.com/team/app:1")), "");
  EXPECT_EQ(verdict(rule, container("127.0.0.1:5000/app:1")), "");
  // No registry named: Docker Hub, as the agent would pull it.
  EXPECT_NE(verdict(rule, container("busybox"))
                .find("comes from registry 'docker.io', not one "
                      "of registry.example.com, 127.0.0.1:5000"),
            std::string::npos);
  EXPECT_NE(verdict(rule, container("evil.example.com/app:1")).find("'evil.example.com'"),
            std::string::npos);
  EXPECT_NE(verdict(rule, container("UPPER/app")).find("is not a valid image reference"),
            std::string::npos);
  const std::string sha = "    sha256: " + std::string(64, 'c') + "\n";
  EXPECT_EQ(verdict(rule, vm("    image: https://registry.example.com/d.qcow2\n" + sha)), "");
  EXPECT_EQ(verdict(rule, vm("    image: oci://127.0.0.1:5000/disks/alpine:1\n" + sha)), "");
  EXPECT_NE(verdict(rule, vm("    image: http://other.example:8080/d.qcow2\n" + sha))
                .find("comes from registry 'other.example:8080'"),
            std::string::npos);
  EXPECT_NE(verdict(rule, vm("    image: /var/lib/d.qcow2\n"))
                .find("is a path on the node, not from an allowed registry"),
            std::string::npos);
}

TEST(AdmissionRules, RequireResourceLimits) {
  const std::string rule = "  - name: limits\n    requireResourceLimits: true\n";
  EXPECT_NE(verdict(rule, container("app")).find("spec.resources sets no cpu or memory (both are required)"),
            std::string::npos);
  EXPECT_NE(verdict(rule, container("app", "  resources: {cpu: 100m}\n"))
                .find("spec.resources sets no memory (it is required)"),
            std::string::npos);
  EXPECT_EQ(verdict(rule, container("app", "  resources: {cpu: 100m, memory: 16Mi}\n")), "");
}

TEST(AdmissionRules, AllowedTypesAndMaxReplicas) {
  const std::string types = "  - name: no-proc\n    allowedTypes: [container, vm]\n";
  EXPECT_EQ(verdict(types, container("app")), "");
  const std::string proc =
      "apiVersion: flotilla/v1\nkind: Workload\nmetadata: {name: p}\nspec:\n  type: process\n"
      "  placement: {everyNode: true}\n  process: {command: [/bin/true]}\n";
  EXPECT_NE(verdict(types, proc).find("type process is not allowed (allowed: container, vm)"),
            std::string::npos);
  const std::string few = "  - name: few\n    maxReplicas: 1\n";
  EXPECT_NE(verdict(few, container("app")).find("2 replicas, more than the 1 allowed"),
            std::string::npos);
  EXPECT_EQ(verdict(few, proc), "");  // everyNode is not a replica count
}

TEST(AdmissionRules, ContainerHardening) {
  const std::string non_root = "  - name: non-root\n    requireNonRootUser: true\n";
  EXPECT_NE(verdict(non_root, container("app")).find("container sets no user"), std::string::npos);
  EXPECT_NE(verdict(non_root, container("app", "    user: \"0:1000\"\n"))
                .find("container runs as root (user '0:1000')"),
            std::string::npos);
  EXPECT_EQ(verdict(non_root, container("app", "    user: \"1000\"\n")), "");

  const std::string ro = "  - name: ro-root\n    requireReadOnlyRootFilesystem: true\n";
  EXPECT_NE(verdict(ro, container("app")).find("root filesystem is writable"), std::string::npos);
  EXPECT_EQ(verdict(ro, container("app", "    readOnlyRootFilesystem: true\n")), "");

  const std::string paths = "  - name: paths\n    allowedHostPaths: [/srv/data/]\n";
  auto mount = [](const std::string& src, bool read_only) {
    return "    mounts: [{source: " + src +
           ", destination: /d, readOnly: " + (read_only ? "true" : "false") + "}]\n";
  };
  EXPECT_EQ(verdict(paths, container("app", mount("/srv/data", false))), "");
  EXPECT_EQ(verdict(paths, container("app", mount("/srv/data/web", false))), "");
  EXPECT_NE(verdict(paths, container("app", mount("/srv/database", false)))
                .find("container mounts host path '/srv/database', not under /srv/data"),
            std::string::npos);
  const std::string none = "  - name: no-mounts\n    allowedHostPaths: []\n";
  EXPECT_NE(
      verdict(none, container("app", mount("/srv/data", true))).find("(no host paths allowed)"),
      std::string::npos);
  EXPECT_EQ(verdict(none, container("app")), "");

  const std::string ro_mounts = "  - name: ro-mounts\n    requireReadOnlyMounts: true\n";
  EXPECT_NE(verdict(ro_mounts, container("app", mount("/srv/data", false)))
                .find("mounts host path '/srv/data' writable"),
            std::string::npos);
  EXPECT_EQ(verdict(ro_mounts, container("app", mount("/srv/data", true))), "");
}

TEST(AdmissionRules, MatchLimitsARuleToNamesAndLabels) {
  const std::string dev =
      "  - name: dev-one\n    maxReplicas: 1\n    match: {labels: {tier: "
      "dev}}\n";
  EXPECT_EQ(verdict(dev, container("app")), "");  // tier: prod
  std::string as_dev = container("app");
  as_dev.replace(as_dev.find("tier: prod"), 10, "tier: dev");
  EXPECT_NE(verdict(dev, as_dev).find("rule 'dev-one' denies workload 'web'"), std::string::npos);
  const std::string by_name =
      "  - name: only-other\n    maxReplicas: 1\n    match: {names: "
      "[other]}\n";
  EXPECT_EQ(verdict(by_name, container("app")), "");
}

TEST(AdmissionRules, EveryViolationIsReported) {
  auto p = parse_admission_policy(policy("  - name: own-net\n    denyHostNetwork: true\n"
                                         "  - name: pinned\n    requireImageDigest: true\n"
                                         "  - name: few\n    maxReplicas: 5\n"),
                                  "policy.yaml");
  ASSERT_TRUE(p.ok()) << p.error().message();
  auto v = admit(*p, workload(container("app:1")));
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].rule, "own-net");
  EXPECT_EQ(v[1].rule, "pinned");
  EXPECT_EQ(admission_error(v),
            "admission: rule 'own-net' denies workload 'web': container uses the host's network "
            "(hostNetwork is true by default; set hostNetwork: false); rule 'pinned' denies "
            "workload 'web': container image 'app:1' is not pinned by digest (want "
            "IMAGE@sha256:<64 hex digits>)");
}

}  // namespace
}  // namespace flotilla::hub
