// flotctl's commands against a real hub API on a loopback port.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "cloud-hub/flotctl/commands.hpp"
#include "cloud-hub/flotctl/printers.hpp"
#include "test/hub/api_server.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::flotctl {
namespace {

using hub::testing::ApiServer;
using hub::testing::FakeAgent;
using hub::testing::process_workload;
namespace pb = flotilla::v1;

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

class FlotctlTest : public ::testing::Test {
 protected:
  Outcome flotctl(std::vector<std::string> args) {
    std::ostringstream out, err;
    Context ctx;
    ctx.default_hub = server_.url();
    ctx.now_ms = server_.harness.clock.wall_ms();
    int code = flotctl::run(args, ctx, out, err);
    return {code, out.str(), err.str()};
  }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir_ / name;
    std::ofstream(path) << text;
    return path;
  }

  ApiServer server_;
  flotilla::testing::TempDir dir_;
};

TEST_F(FlotctlTest, ApplyGetDescribeDelete) {
  FakeAgent agent(server_.harness.broker, "edge-1");
  agent.hello(0, {{"zone", "east"}});
  std::string file = write("web.yaml", process_workload("web", "placement: {everyNode: true}"));
  Outcome r = flotctl({"apply", "-f", file});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "workload/web created\n");
  EXPECT_EQ(flotctl({"apply", "-f", file}).out, "workload/web unchanged\n");

  r = flotctl({"get", "workloads"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "NAME   TYPE      DESIRED   READY   PENDING   AGE\n"
            "web    process   1         0       0         0s\n");
  r = flotctl({"get", "nodes"});
  EXPECT_EQ(r.out,
            "NAME     STATUS   LABELS      ARCH    WORKLOADS\n"
            "edge-1   Ready    zone=east   amd64   1\n");
  r = flotctl({"get", "wl", "web", "-o", "json"});
  EXPECT_EQ(r.code, 0);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["metadata"]["name"], "web");
  r = flotctl({"get", "node", "edge-1", "-oyaml"});
  EXPECT_NE(r.out.find("name: edge-1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("state: Ready\n"), std::string::npos) << r.out;

  r = flotctl({"describe", "workload", "web"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("Name:           web\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Instances:      1 desired, 0 ready, 0 pending\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("edge-1   -          -"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Scheduled"), std::string::npos) << r.out;
  r = flotctl({"describe", "node", "edge-1"});
  EXPECT_NE(r.out.find("State:          Ready\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Registered"), std::string::npos) << r.out;
  r = flotctl({"get", "events"});
  EXPECT_NE(r.out.find("workload/web"), std::string::npos) << r.out;

  r = flotctl({"delete", "workload", "web"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "workload/web deleted\n");
  r = flotctl({"get", "workload", "web"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: workload 'web' not found\n");
}

TEST_F(FlotctlTest, ApplyValidatesLocallyAndSendsNothingWhenBad) {
  std::string file = write("bad.yaml", process_workload("web", "replicas: three"));
  Outcome r = flotctl({"apply", "-f", file});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: " + file + ":6: spec.replicas: want a whole number ≥ 0, got 'three'\n");
  EXPECT_TRUE((*server_.harness.controller->workloads_view())["items"].empty());
  r = flotctl({"apply", "-f", dir_ / "missing.yaml"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("missing.yaml"), std::string::npos) << r.err;
}

TEST_F(FlotctlTest, UnreachableHubIsOneClearLine) {
  int port = flotilla::testing::free_port();
  std::string url = "http://127.0.0.1:" + std::to_string(port);
  Outcome r = flotctl({"--hub", url, "get", "nodes"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: Failed to reach hub at " + url + ": Connection refused\n");
}

TEST_F(FlotctlTest, UsageAndNotYetSupported) {
  EXPECT_EQ(flotctl({}).code, 2);
  EXPECT_EQ(flotctl({"frobnicate"}).code, 2);
  EXPECT_EQ(flotctl({"get"}).code, 2);
  EXPECT_EQ(flotctl({"get", "nodes", "-o", "xml"}).code, 2);
  EXPECT_EQ(flotctl({"apply"}).code, 2);
  EXPECT_EQ(flotctl({"--bogus", "get", "nodes"}).code, 2);
  Outcome r = flotctl({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("Usage: flotctl"), std::string::npos);
  r = flotctl({"rollout", "status", "r1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: flotctl rollout is not supported yet\n");
  r = flotctl({"twin", "get", "d1"});
  EXPECT_EQ(r.err, "error: flotctl twin is not supported yet\n");
  r = flotctl({"get", "devices"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: devices are not supported yet\n");
  r = flotctl({"delete", "node", "n1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: node 'n1' not found\n");
}

TEST_F(FlotctlTest, GetNodesByLabel) {
  FakeAgent a(server_.harness.broker, "n1");
  a.hello(0, {{"site", "lab"}});
  FakeAgent b(server_.harness.broker, "n2");
  b.hello(0, {{"site", "field"}});
  Outcome r = flotctl({"get", "nodes", "-l", "site=lab"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("n1"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("n2"), std::string::npos) << r.out;
  r = flotctl({"get", "nodes", "--selector=site=field", "-o", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["items"].size(), 1u);
  EXPECT_EQ(j["items"][0]["name"], "n2");
  EXPECT_EQ(flotctl({"get", "nodes", "n1", "-l", "site=lab"}).code, 2);
  r = flotctl({"get", "nodes", "-l", "site"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("labelSelector"), std::string::npos) << r.err;
}

TEST_F(FlotctlTest, ForcePassesTheBlastRadiusGuard) {
  std::vector<std::unique_ptr<FakeAgent>> agents;
  for (const char* n : {"n1", "n2", "n3"}) {
    agents.push_back(std::make_unique<FakeAgent>(server_.harness.broker, n));
    agents.back()->hello(0);
  }
  std::string file = write("web.yaml", process_workload("web", "placement: {everyNode: true}"));
  ASSERT_EQ(flotctl({"apply", "-f", file}).code, 0);
  for (auto& a : agents) {
    a->ack_last();
    a->status({hub::testing::instance("web", "web-1", pb::PHASE_RUNNING, 1)});
  }
  Outcome r = flotctl({"delete", "workload", "web"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "error: refused: this delete stops 3 of 3 running instances (100%), over the 50% "
            "limit; use --force\n");
  std::string changed = write("web2.yaml", process_workload("web", "placement: {everyNode: true}",
                                                            "  restartPolicy: Never\n"));
  r = flotctl({"apply", "-f", changed});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("refused: this apply stops 3 of 3"), std::string::npos) << r.err;
  r = flotctl({"apply", "-f", changed, "--force"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "workload/web configured\n");
  r = flotctl({"delete", "workload", "web", "--force"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "workload/web deleted\n");
}

TEST(FlotctlPrinterTest, YamlQuotesWhatWouldChangeType) {
  nlohmann::json j = {{"a", "1"},    {"b", "yes"}, {"c", "plain text"},
                      {"d", 2},      {"e", ""},    {"f", nlohmann::json::array()},
                      {"g", "x: y"}, {"h", "500m"}};
  EXPECT_EQ(to_yaml(j),
            "a: \"1\"\nb: \"yes\"\nc: plain text\nd: 2\ne: \"\"\nf: []\ng: \"x: y\"\nh: 500m\n");
}

TEST(FlotctlPrinterTest, Ages) {
  const int64_t t0 = 1'700'000'000'000;  // 2023-11-14T22:13:20Z
  EXPECT_EQ(age("2023-11-14T22:13:20Z", t0 + 5'000), "5s");
  EXPECT_EQ(age("2023-11-14T22:13:20Z", t0 + 600'000), "10m");
  EXPECT_EQ(age("2023-11-14T22:13:20Z", t0 + 3 * 3'600'000), "3h");
  EXPECT_EQ(age("2023-11-14T22:13:20Z", t0 + 3 * 86'400'000LL), "3d");
  EXPECT_EQ(age("yesterday", t0), "<unknown>");
}

}  // namespace
}  // namespace flotilla::flotctl
