// Admission policies through the REST API, flotctl and the flotilla-hub binary: each rule refuses
// its violation with 403 and the rule's name, and nothing of the request is applied.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cloud-hub/admission.hpp"
#include "cloud-hub/flotctl/commands.hpp"
#include "cloud-hub/hub.hpp"
#include "test/hub/api_server.hpp"
#include "test/support/process.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::hub {
namespace {

using json = nlohmann::json;
using testing::ApiServer;

const std::string kImage = "registry.example.com/app@sha256:" + std::string(64, 'a');

const char* kPolicy = R"(apiVersion: flotilla/v1
kind: AdmissionPolicy
rules:
  - name: no-host-network
    denyHostNetwork: true
  - name: pinned-images
    requireImageDigest: true
  - name: our-registries
    allowedRegistries: [registry.example.com, 127.0.0.1:5000]
  - name: limits
    requireResourceLimits: true
  - name: no-processes
    allowedTypes: [container, vm]
  - name: few-replicas
    maxReplicas: 3
  - name: non-root
    requireNonRootUser: true
  - name: read-only-root
    requireReadOnlyRootFilesystem: true
  - name: data-mounts-only
    allowedHostPaths: [/srv/data]
  - name: read-only-mounts
    requireReadOnlyMounts: true
  - name: dev-single
    maxReplicas: 1
    match: {labels: {tier: dev}}
)";

// A workload that passes every rule of kPolicy; `from` -> `to` edits it into a violation.
std::string workload(const std::string& name, const std::string& from = "",
                     const std::string& to = "") {
  std::string s = "apiVersion: flotilla/v1\nkind: Workload\nmetadata:\n  name: " + name +
                  "\n  labels: {tier: prod}\nspec:\n  type: container\n  replicas: 2\n"
                  "  resources: {cpu: 250m, memory: 64Mi}\n  container:\n    image: " +
                  kImage +
                  "\n    user: \"1000:1000\"\n    hostNetwork: false\n"
                  "    readOnlyRootFilesystem: true\n"
                  "    mounts: [{source: /srv/data/app, destination: /data, readOnly: true}]\n";
  if (!from.empty()) {
    auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) s.replace(at, from.size(), to);
  }
  return s;
}

std::shared_ptr<const AdmissionPolicy> the_policy() {
  auto p = parse_admission_policy(kPolicy, "policy.yaml");
  EXPECT_TRUE(p.ok()) << (p ? "" : p.error().message());
  return p ? std::make_shared<const AdmissionPolicy>(*p) : nullptr;
}

class AdmissionApiTest : public ::testing::Test {
 protected:
  AdmissionApiTest() { s_.api.set_admission(the_policy()); }

  int status_of(const std::string& path) {
    auto r = c_.Get(path);
    return r ? r->status : -1;
  }
  size_t workload_count() {
    auto r = c_.Get("/api/v1/workloads");
    if (!r) return SIZE_MAX;
    return json::parse(r->body)["items"].size();
  }

  ApiServer s_;
  httplib::Client c_ = s_.client();
};

TEST_F(AdmissionApiTest, ACompliantWorkloadIsApplied) {
  auto r = c_.Put("/api/v1/workloads", workload("good"), "application/yaml");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(status_of("/api/v1/workloads/good"), 200);
}

TEST_F(AdmissionApiTest, EachRuleRefusesItsViolationAndAppliesNothing) {
  struct Case {
    std::string rule;
    std::string from, to;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"no-host-network", "hostNetwork: false", "hostNetwork: true",
       "container uses the host's network"},
      {"pinned-images", kImage, "registry.example.com/app:1", "is not pinned by digest"},
      {"our-registries", kImage, "docker.io/library/app@sha256:" + std::string(64, 'b'),
       "comes from registry 'docker.io'"},
      {"limits", "{cpu: 250m, memory: 64Mi}", "{cpu: 250m}", "spec.resources sets no memory"},
      {"no-processes", "type: container\n", "type: process\n  process: {command: [/bin/true]}\n",
       "type process is not allowed"},
      {"few-replicas", "replicas: 2", "replicas: 4", "4 replicas, more than the 3 allowed"},
      {"non-root", "\"1000:1000\"", "\"0\"", "container runs as root"},
      {"read-only-root", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false",
       "root filesystem is writable"},
      {"data-mounts-only", "source: /srv/data/app", "source: /etc",
       "mounts host path '/etc', not under /srv/data"},
      {"read-only-mounts", "readOnly: true", "readOnly: false",
       "mounts host path '/srv/data/app' writable"},
      {"dev-single", "tier: prod", "tier: dev", "2 replicas, more than the 1 allowed"},
  };
  for (const auto& c : cases) {
    std::string yaml = workload("bad", c.from, c.to);
    if (c.rule == "no-processes") {
      // A process workload has no container section: drop it.
      yaml = yaml.substr(0, yaml.find("  container:"));
    }
    auto r = c_.Put("/api/v1/workloads", yaml, "application/yaml");
    ASSERT_TRUE(r) << c.rule;
    EXPECT_EQ(r->status, 403) << c.rule << ": " << r->body;
    const std::string error = json::parse(r->body).value("error", "");
    EXPECT_EQ(error.rfind("admission: rule '" + c.rule + "' denies workload 'bad': ", 0), 0u)
        << c.rule << ": " << error;
    EXPECT_NE(error.find(c.reason), std::string::npos) << c.rule << ": " << error;
    EXPECT_EQ(error.find("rule '", 12), std::string::npos)
        << c.rule << ": only its own rule should refuse it: " << error;
    EXPECT_EQ(status_of("/api/v1/workloads/bad"), 404) << c.rule;
    EXPECT_EQ(s_.harness.metrics.value(kAdmissionRejections, {{"rule", c.rule}}), 1u) << c.rule;
    // The named route is checked as well.
    r = c_.Put("/api/v1/workloads/bad", yaml, "application/yaml");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 403) << c.rule << ": " << r->body;
  }
  EXPECT_EQ(workload_count(), 0u);
}

TEST_F(AdmissionApiTest, OneViolationInAMultiDocumentApplyAppliesNone) {
  std::string body = workload("first") + "---\n" +
                     workload("second", "hostNetwork: false", "hostNetwork: true") + "---\n" +
                     workload("third") +
                     "---\napiVersion: flotilla/v1\nkind: Device\nmetadata: {name: dev1}\n"
                     "spec: {node: n1}\n";
  auto r = c_.Put("/api/v1/workloads", body, "application/yaml");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403) << r->body;
  EXPECT_NE(r->body.find("rule 'no-host-network' denies workload 'second'"), std::string::npos)
      << r->body;
  EXPECT_EQ(workload_count(), 0u);
  EXPECT_EQ(status_of("/api/v1/devices/dev1"), 404);
  // The same documents without the violation apply.
  body = workload("first") + "---\n" + workload("second") + "---\n" + workload("third");
  r = c_.Put("/api/v1/workloads", body, "application/yaml");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(workload_count(), 3u);
}

TEST_F(AdmissionApiTest, AnUpdateThatBreaksARuleLeavesTheWorkloadAsItWas) {
  ASSERT_EQ(c_.Put("/api/v1/workloads", workload("web"), "application/yaml")->status, 200);
  auto r = c_.Put("/api/v1/workloads", workload("web", "replicas: 2", "replicas: 9"),
                  "application/yaml");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403) << r->body;
  auto got = json::parse(c_.Get("/api/v1/workloads/web")->body);
  EXPECT_EQ(got["spec"]["replicas"], 2) << got.dump();
}

TEST_F(AdmissionApiTest, RejectionsAreCountedPerRuleInMetrics) {
  std::string metrics = c_.Get("/metrics")->body;
  // Every rule's series exists from the start, at 0.
  EXPECT_NE(metrics.find("flotilla_hub_admission_rejections_total{rule=\"limits\"} 0"),
            std::string::npos)
      << metrics;
  for (int i = 0; i < 2; ++i) {
    c_.Put("/api/v1/workloads", workload("w", "{cpu: 250m, memory: 64Mi}", "{memory: 64Mi}"),
           "application/yaml");
  }
  metrics = c_.Get("/metrics")->body;
  EXPECT_NE(metrics.find("flotilla_hub_admission_rejections_total{rule=\"limits\"} 2"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("flotilla_hub_admission_rejections_total{rule=\"non-root\"} 0"),
            std::string::npos)
      << metrics;
}

TEST_F(AdmissionApiTest, FlotctlApplyPrintsTheRefusalAndExitsNonZero) {
  flotilla::testing::TempDir dir;
  std::string file = dir / "bad.yaml";
  std::ofstream(file) << workload("bad", "\"1000:1000\"", "\"0:0\"");
  std::ostringstream out, err;
  flotctl::Context ctx;
  ctx.default_hub = s_.url();
  int code = flotctl::run({"apply", "-f", file}, ctx, out, err);
  EXPECT_NE(code, 0);
  EXPECT_NE(err.str().find("admission: rule 'non-root' denies workload 'bad': container runs as "
                           "root (user '0:0')"),
            std::string::npos)
      << err.str();
  EXPECT_EQ(out.str(), "");
  EXPECT_EQ(status_of("/api/v1/workloads/bad"), 404);
}

TEST(AdmissionOffTest, WithoutAPolicyNothingIsChecked) {
  ApiServer s;
  httplib::Client c = s.client();
  // Breaks most rules of kPolicy: unpinned Docker Hub image, root, host network, no limits.
  std::string yaml = workload("free", kImage, "busybox:latest");
  yaml = yaml.substr(0, yaml.find("  resources:")) + "  container: {image: busybox, user: \"0\"}\n";
  auto r = c.Put("/api/v1/workloads", yaml, "application/yaml");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(c.Get("/api/v1/workloads/free")->status, 200);
  EXPECT_EQ(c.Get("/metrics")->body.find("admission"), std::string::npos);
}

TEST(AdmissionHubTest, TheHubChecksThePolicyFromItsOptions) {
  flotilla::testing::TempDir dir;
  sync::FakeBroker broker;
  HubOptions o;
  o.listen_port = 0;
  o.data_dir = dir / "hub";
  o.admission = the_policy();
  auto hub = Hub::create(o, broker.connect("flotilla-hub"));
  ASSERT_TRUE(hub.ok()) << hub.error().message();
  ASSERT_TRUE((*hub)->start().ok());
  httplib::Client c("127.0.0.1", (*hub)->port());
  auto r =
      c.Put("/api/v1/workloads", workload("web", "replicas: 2", "replicas: 7"), "application/yaml");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403) << r->body;
  EXPECT_NE(r->body.find("rule 'few-replicas'"), std::string::npos) << r->body;
  EXPECT_EQ(c.Get("/api/v1/workloads/web")->status, 404);
  (*hub)->stop();
}

TEST(AdmissionHubTest, TheHubRefusesToStartWithABadPolicyFile) {
  flotilla::testing::TempDir dir;
  std::string file = dir / "policy.yaml";
  std::ofstream(file) << "apiVersion: flotilla/v1\nkind: AdmissionPolicy\nrules:\n"
                         "  - name: limits\n    requireResourceLimit: true\n";
  auto r = flotilla::testing::run_command({FLOTILLA_HUB_BIN, "--mqtt", "tcp://127.0.0.1:1",
                                           "--data", dir / "data", "--admission-policy", file},
                                          std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  const std::string first = r.err.substr(0, r.err.find('\n'));
  EXPECT_EQ(first, "flotilla-hub: flag '--admission-policy': " + file +
                       ":5: rule 'limits'.requireResourceLimit: unknown field (did you mean "
                       "'requireResourceLimits'?)");
  r = flotilla::testing::run_command({FLOTILLA_HUB_BIN, "--mqtt", "tcp://127.0.0.1:1", "--data",
                                      dir / "data", "--admission-policy", dir / "none.yaml"},
                                     std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("none.yaml"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace flotilla::hub
