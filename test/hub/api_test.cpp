// The REST API on a real HTTP server over a loopback port.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <thread>

#include <nlohmann/json.hpp>

#include "cloud-hub/api_forward.hpp"
#include "cloud-hub/hub.hpp"
#include "test/hub/api_server.hpp"
#include "test/hub/sse_client.hpp"
#include "test/support/process.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::hub {
namespace {

using json = nlohmann::json;
using flotilla::testing::eventually;
using testing::ApiServer;
using testing::FakeAgent;
using testing::instance;
using testing::process_workload;
using testing::SseEvent;
using testing::SseWatch;
namespace pb = flotilla::v1;
using Strings = std::vector<std::string>;

json body_of(const httplib::Result& r) {
  EXPECT_TRUE(r) << "no response";
  if (!r) return json();
  auto j = json::parse(r->body, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r->body;
  return j;
}

class ApiTest : public ::testing::Test {
 protected:
  ApiServer s_;
  httplib::Client c_ = s_.client();
};

// Several instances: which calls only the instance driving the rollouts answers.
TEST(ApiForward, RolloutCallsButWatchesAndArtifactDeletesGoToTheDriver) {
  auto call = [](const std::string& method, const std::string& path, bool watch = false) {
    httplib::Request req;
    req.method = method;
    req.path = path;
    if (watch) req.params.emplace("watch", "true");
    return is_rollout_call(req);
  };
  EXPECT_TRUE(call("GET", "/api/v1/rollouts"));
  EXPECT_TRUE(call("GET", "/api/v1/rollouts/fw-2"));
  EXPECT_TRUE(call("PUT", "/api/v1/rollouts/fw-2"));
  EXPECT_TRUE(call("POST", "/api/v1/rollouts/fw-2/pause"));
  EXPECT_TRUE(call("DELETE", "/api/v1/rollouts/fw-2"));
  EXPECT_TRUE(call("DELETE", "/api/v1/artifacts/fw/2.0"));
  EXPECT_FALSE(call("GET", "/api/v1/rollouts", true));  // served where it is made
  EXPECT_FALSE(call("GET", "/api/v1/rollouts/fw-2", true));
  EXPECT_FALSE(call("GET", "/api/v1/artifacts/fw/2.0"));
  EXPECT_FALSE(call("PUT", "/api/v1/artifacts/fw/2.0/payload"));  // into the shared folder
  EXPECT_FALSE(call("DELETE", "/api/v1/artifacts/fw/2.0/payload"));
  EXPECT_FALSE(call("GET", "/api/v1/rolloutsx"));
  EXPECT_FALSE(call("PUT", "/api/v1/workloads"));  // forwarded by apply() when it holds rollouts
}

TEST_F(ApiTest, ApplyGetAndDeleteAWorkload) {
  FakeAgent agent(s_.harness.broker, "n1");
  agent.hello(0, {{"zone", "east"}});
  auto r = c_.Put("/api/v1/workloads", process_workload("web", "replicas: 1"), "application/yaml");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r)["items"][0]["action"], "created");
  EXPECT_EQ(agent.desired.size(), 1u);
  agent.ack_last();
  agent.status({instance("web", "web-1", pb::PHASE_RUNNING, 1)});

  auto one = c_.Get("/api/v1/workloads/web");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->status, 200);
  json w = body_of(one);
  EXPECT_EQ(w["kind"], "Workload");
  EXPECT_EQ(w["spec"]["replicas"], 1);
  EXPECT_EQ(w["metadata"]["generation"], 1);
  EXPECT_EQ(w["status"]["desiredInstances"], 1);
  EXPECT_EQ(w["status"]["readyInstances"], 1);
  EXPECT_EQ(w["status"]["pending"], 0);
  ASSERT_EQ(w["status"]["instances"].size(), 1u);
  json inst = w["status"]["instances"][0];
  EXPECT_EQ(inst["node"], "n1");
  EXPECT_EQ(inst["instanceId"], "web-1");
  EXPECT_EQ(inst["phase"], "Running");
  EXPECT_EQ(inst["current"], false);  // reported without the spec hash
  EXPECT_FALSE(inst.contains("ready")) << "an agent that does not report readiness";

  // Running but failing its readiness probe: not counted ready, and the API says why.
  pb::InstanceStatus unready = instance("web", "web-1", pb::PHASE_RUNNING, 2);
  unready.set_ready(false);
  unready.set_reason("NotReady");
  unready.set_message("readiness probe failed 3 times: HTTP 503");
  agent.status({unready});
  w = body_of(c_.Get("/api/v1/workloads/web"));
  EXPECT_EQ(w["status"]["readyInstances"], 0);
  EXPECT_EQ(w["status"]["instances"][0]["ready"], false);
  EXPECT_EQ(w["status"]["instances"][0]["reason"], "NotReady");
  unready.set_ready(true);
  unready.clear_reason();
  unready.set_seq(3);
  agent.status({unready});
  w = body_of(c_.Get("/api/v1/workloads/web"));
  EXPECT_EQ(w["status"]["readyInstances"], 1);
  EXPECT_EQ(w["status"]["instances"][0]["ready"], true);

  json list = body_of(c_.Get("/api/v1/workloads"));
  ASSERT_EQ(list["items"].size(), 1u);
  json node = body_of(c_.Get("/api/v1/nodes/n1"));
  EXPECT_EQ(node["state"], "Ready");
  EXPECT_EQ(node["labels"]["zone"], "east");
  EXPECT_EQ(node["revision"], 1);
  EXPECT_EQ(node["ackedRevision"], 1);
  EXPECT_EQ(node["instances"], 1);
  EXPECT_EQ(node["lastSeenSecondsAgo"], 0);
  EXPECT_EQ(node["workloads"], json::array({"web"}));
  EXPECT_EQ(body_of(c_.Get("/api/v1/nodes"))["items"].size(), 1u);

  auto again =
      c_.Put("/api/v1/workloads/web", process_workload("web", "replicas: 1"), "application/yaml");
  EXPECT_EQ(body_of(again)["items"][0]["action"], "unchanged");
  auto del = c_.Delete("/api/v1/workloads/web");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200);
  EXPECT_EQ(agent.desired.back().deletes(0), "web");
  auto gone = c_.Delete("/api/v1/workloads/web");
  EXPECT_EQ(gone->status, 404);
  EXPECT_EQ(body_of(gone)["error"], "workload 'web' not found");
  EXPECT_EQ(c_.Get("/api/v1/workloads/web")->status, 404);
}

TEST_F(ApiTest, BadManifestIs400AndChangesNothing) {
  std::string good = process_workload("good", "replicas: 1");
  std::string bad = process_workload("bad", "replicas: three");
  auto r = c_.Put("/api/v1/workloads", good + "---\n" + bad, "application/yaml");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body_of(r)["error"],
            "request body:14: spec.replicas: want a whole number ≥ 0, got 'three'");
  EXPECT_TRUE(body_of(c_.Get("/api/v1/workloads"))["items"].empty());

  r = c_.Post("/api/v1/workloads", "{not json", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(body_of(r)["error"].get<std::string>().find("invalid JSON"), std::string::npos);

  r = c_.Put("/api/v1/workloads/other", good, "application/yaml");
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(body_of(c_.Get("/api/v1/workloads"))["items"].empty());
  auto events = body_of(c_.Get("/api/v1/events"));
  EXPECT_TRUE(events["items"].empty());
}

TEST_F(ApiTest, JsonManifestsAreAccepted) {
  std::string j = R"({"apiVersion": "flotilla/v1", "kind": "Workload", "metadata": {"name": "j"},
    "spec": {"type": "process", "placement": {"everyNode": true},
             "process": {"command": ["true"]}}})";
  auto r = c_.Post("/api/v1/workloads", j, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(c_.Get("/api/v1/workloads/j"))["spec"]["placement"]["everyNode"], true);
}

TEST_F(ApiTest, PendingWorkloadsSayWhy) {
  FakeAgent agent(s_.harness.broker, "n1");
  agent.hello(0, {{"zone", "west"}});
  ASSERT_EQ(
      c_.Put("/api/v1/workloads",
             process_workload("e", "replicas: 2", "  selector: {matchLabels: {zone: east}}\n"),
             "application/yaml")
          ->status,
      200);
  json w = body_of(c_.Get("/api/v1/workloads/e"));
  EXPECT_EQ(w["status"]["pending"], 2);
  EXPECT_EQ(w["status"]["pendingReason"], "0/1 nodes: 1 selector mismatch");
  json events = body_of(c_.Get("/api/v1/events?workload=e"));
  ASSERT_FALSE(events["items"].empty());
  EXPECT_EQ(events["items"].back()["reason"], "FailedScheduling");
}

// Four nodes run "web" everywhere and n1 runs "solo": five running instances.
class BlastRadiusTest : public ApiTest {
 protected:
  void SetUp() override {
    for (int i = 1; i <= 4; ++i) {
      agents_.push_back(std::make_unique<FakeAgent>(s_.harness.broker, "n" + std::to_string(i)));
      agents_.back()->hello(0, {{"zone", i == 1 ? "east" : "west"}});
    }
    ASSERT_EQ(put(process_workload("web", "placement: {everyNode: true}"))->status, 200);
    ASSERT_EQ(put(process_workload("solo", "replicas: 1"))->status, 200);
    for (auto& a : agents_) {
      a->ack_last();
      std::vector<pb::InstanceStatus> running = {instance("web", "web-1", pb::PHASE_RUNNING, 1)};
      if (a.get() == agents_[0].get()) {
        running.push_back(instance("solo", "solo-1", pb::PHASE_RUNNING, 2));
      }
      a->status(running);
    }
    ASSERT_EQ(body_of(c_.Get("/api/v1/workloads/solo"))["status"]["nodes"], json({"n1"}));
  }
  httplib::Result put(const std::string& yaml, const std::string& query = "") {
    return c_.Put("/api/v1/workloads" + query, yaml, "application/yaml");
  }
  size_t desired_sent() const {
    size_t n = 0;
    for (const auto& a : agents_) n += a->desired.size();
    return n;
  }
  std::vector<std::unique_ptr<FakeAgent>> agents_;
};

TEST_F(BlastRadiusTest, DeleteStoppingMostOfTheFleetIsRefusedUnlessForced) {
  const size_t sent = desired_sent();
  auto r = c_.Delete("/api/v1/workloads/web");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(body_of(r)["error"],
            "refused: this delete stops 4 of 5 running instances (80%), over the 50% limit; use "
            "--force");
  // Nothing changed: the workload is there, placed as before, and no agent heard anything.
  json w = body_of(c_.Get("/api/v1/workloads/web"));
  EXPECT_EQ(w["status"]["nodes"], json({"n1", "n2", "n3", "n4"}));
  EXPECT_EQ(desired_sent(), sent);
  json events = body_of(c_.Get("/api/v1/events?workload=web"));
  for (const auto& e : events["items"]) EXPECT_NE(e["reason"], "Deleted") << e.dump();

  EXPECT_EQ(c_.Delete("/api/v1/workloads/web?force=maybe")->status, 400);
  EXPECT_EQ(c_.Get("/api/v1/workloads/web")->status, 200);

  r = c_.Delete("/api/v1/workloads/web?force=true");
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(c_.Get("/api/v1/workloads/web")->status, 404);
  for (const auto& a : agents_) EXPECT_EQ(a->desired.back().deletes(0), "web");
}

TEST_F(BlastRadiusTest, ReplacingOrReschedulingTooMuchIsRefused) {
  const size_t sent = desired_sent();
  // A spec change replaces every instance of web.
  auto r =
      put(process_workload("web", "placement: {everyNode: true}", "  restartPolicy: OnFailure\n"));
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(body_of(r)["error"],
            "refused: this apply stops 4 of 5 running instances (80%), over the 50% limit; use "
            "--force");
  EXPECT_EQ(body_of(c_.Get("/api/v1/workloads/web"))["metadata"]["generation"], 1);
  // A selector change takes web off three nodes.
  r = put(process_workload("web", "placement: {everyNode: true}",
                           "  selector: {matchLabels: {zone: east}}\n"));
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(body_of(r)["error"],
            "refused: this apply stops 3 of 5 running instances (60%), over the 50% limit; use "
            "--force");
  // Several documents count together, and a refusal keeps back all of them.
  r = put(process_workload("fresh", "replicas: 1") + "---\n" +
          process_workload("web", "placement: {everyNode: true}", "  restartPolicy: Never\n"));
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(c_.Get("/api/v1/workloads/fresh")->status, 404);
  EXPECT_EQ(desired_sent(), sent);

  // What stops nothing goes through: labels, replicas, new workloads.
  std::string relabelled = process_workload("web", "placement: {everyNode: true}");
  relabelled.replace(relabelled.find("{name: web}"), 11, "{name: web, labels: {tier: gold}}");
  r = put(relabelled);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(put(process_workload("solo", "replicas: 3")))["items"][0]["action"],
            "configured");
  // Stopping one instance is always allowed, as is what stays within the limit.
  EXPECT_EQ(c_.Delete("/api/v1/workloads/solo")->status, 200);

  r = put(process_workload("web", "placement: {everyNode: true}", "  restartPolicy: OnFailure\n"),
          "?force=true");
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(c_.Get("/api/v1/workloads/web"))["spec"]["restartPolicy"], "OnFailure");
}

TEST_F(ApiTest, DeleteANode) {
  FakeAgent n1(s_.harness.broker, "n1");
  FakeAgent n2(s_.harness.broker, "n2");
  n1.hello(0);
  n2.hello(0);
  ASSERT_EQ(c_.Put("/api/v1/workloads", process_workload("one", "replicas: 1"), "application/yaml")
                ->status,
            200);
  EXPECT_EQ(body_of(c_.Get("/api/v1/workloads/one"))["status"]["nodes"], json({"n1"}));
  auto r = c_.Delete("/api/v1/nodes/n1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r)["action"], "deleted");
  EXPECT_EQ(c_.Get("/api/v1/nodes/n1")->status, 404);
  EXPECT_EQ(body_of(c_.Get("/api/v1/workloads/one"))["status"]["nodes"], json({"n2"}));
  r = c_.Delete("/api/v1/nodes/n1");
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(body_of(r)["error"], "node 'n1' not found");
}

TEST_F(ApiTest, ListsFilterByLabelsAndPage) {
  std::vector<std::unique_ptr<FakeAgent>> agents;
  for (const char* n : {"n1", "n2", "n3", "n4", "n5"}) {
    agents.push_back(std::make_unique<FakeAgent>(s_.harness.broker, n));
    agents.back()->hello(0, {{"site", n[1] % 2 ? "odd" : "even"}, {"tier", "edge"}});
  }
  auto names = [](const json& list) {
    std::vector<std::string> out;
    for (const auto& i : list["items"]) {
      out.push_back(i.contains("name") ? i["name"] : i["metadata"]["name"]);
    }
    return out;
  };
  json all = body_of(c_.Get("/api/v1/nodes"));
  EXPECT_EQ(names(all), (std::vector<std::string>{"n1", "n2", "n3", "n4", "n5"}));
  EXPECT_EQ(all["continue"], "");
  EXPECT_EQ(names(body_of(c_.Get("/api/v1/nodes?labelSelector=site=odd,tier=edge"))),
            (std::vector<std::string>{"n1", "n3", "n5"}));
  EXPECT_TRUE(body_of(c_.Get("/api/v1/nodes?labelSelector=site=odd,tier=core"))["items"].empty());

  // Pages of two, selector kept, until the token comes back empty.
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    std::string path = "/api/v1/nodes?limit=2&labelSelector=tier%3Dedge";
    if (!token.empty()) path += "&continue=" + token;
    json page = body_of(c_.Get(path));
    ASSERT_LE(page["items"].size(), 2u);
    for (const auto& n : names(page)) seen.push_back(n);
    token = page["continue"];
    ASSERT_LT(++pages, 10);
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, (std::vector<std::string>{"n1", "n2", "n3", "n4", "n5"}));

  // Workloads by their metadata.labels.
  std::string gold = process_workload("b-gold", "replicas: 0");
  gold.replace(gold.find("{name: b-gold}"), 14, "{name: b-gold, labels: {tier: gold}}");
  ASSERT_EQ(c_.Put("/api/v1/workloads", gold, "application/yaml")->status, 200);
  ASSERT_EQ(
      c_.Put("/api/v1/workloads", process_workload("a-plain", "replicas: 0"), "application/yaml")
          ->status,
      200);
  EXPECT_EQ(names(body_of(c_.Get("/api/v1/workloads?labelSelector=tier=gold"))),
            std::vector<std::string>{"b-gold"});
  json first = body_of(c_.Get("/api/v1/workloads?limit=1"));
  EXPECT_EQ(names(first), std::vector<std::string>{"a-plain"});
  json second =
      body_of(c_.Get("/api/v1/workloads?limit=1&continue=" + first["continue"].get<std::string>()));
  EXPECT_EQ(names(second), std::vector<std::string>{"b-gold"});
  EXPECT_EQ(second["continue"], "");

  // Bad parameters are 400 with the reason.
  auto r = c_.Get("/api/v1/nodes?limit=0");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body_of(r)["error"], "limit: want a whole number from 1 to 10000, got '0'");
  r = c_.Get("/api/v1/workloads?continue=bogus");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body_of(r)["error"], "continue: 'bogus' is not a token this hub gave out");
  r = c_.Get("/api/v1/nodes?labelSelector=novalue");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body_of(r)["error"],
            "labelSelector: want k=v,k2=v2: label 'novalue' is not of the form key=value");
}

TEST_F(ApiTest, HealthAndReadiness) {
  auto r = c_.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(body_of(c_.Get("/readyz"))["status"], "ready");  // no check set: ready
  std::string why = "MQTT broker not connected";
  s_.api.set_readiness([&why] { return why; });
  r = c_.Get("/readyz");
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(body_of(r)["reason"], "MQTT broker not connected");
  EXPECT_EQ(c_.Get("/healthz")->status, 200);
  why.clear();
  EXPECT_EQ(c_.Get("/readyz")->status, 200);
}

TEST_F(ApiTest, ErrorsAreJson) {
  auto r = c_.Get("/api/v1/nodes/nope");
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(body_of(r)["error"], "node 'nope' not found");
  r = c_.Get("/api/v1/nothing-here");
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(body_of(r)["error"], "no such path: GET /api/v1/nothing-here");
  for (const char* path : {"/api/v1/rollouts/r1", "/api/v1/artifacts"}) {
    r = c_.Get(path);
    EXPECT_EQ(r->status, 501) << path;
    EXPECT_NE(body_of(r)["error"].get<std::string>().find("not supported yet"), std::string::npos);
  }
  EXPECT_EQ(c_.Put("/api/v1/rollouts", "x", "text/plain")->status, 501);
  r = c_.Get("/api/v1/events?limit=zero");
  EXPECT_EQ(r->status, 400);
  r = c_.Put("/api/v1/workloads", std::string(2 * 1024 * 1024, 'a'), "application/yaml");
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(body_of(r)["error"], "request body is too large");
}

TEST_F(ApiTest, MetricsAndConsole) {
  FakeAgent agent(s_.harness.broker, "n1");
  agent.hello(0);
  agent.raw("ack", "garbage");
  ASSERT_EQ(c_.Put("/api/v1/workloads", process_workload("web", "placement: {everyNode: true}"),
                   "application/yaml")
                ->status,
            200);
  auto m = c_.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  for (const char* line :
       {"flotilla_hub_nodes{state=\"Ready\"} 1", "flotilla_hub_nodes{state=\"NotReady\"} 0",
        "flotilla_hub_workloads 1", "flotilla_hub_instances{phase=\"Running\"} 0",
        "flotilla_hub_messages_received_total{kind=\"hello\"} 1",
        "flotilla_hub_messages_dropped_total{kind=\"ack\",reason=\"malformed\"} 1",
        "flotilla_hub_desired_sent_total{type=\"snapshot\"} 1"}) {
    EXPECT_NE(m->body.find(line), std::string::npos) << line << "\n" << m->body;
  }
}

// The web console's files (docs/console.md): the page at / loads the script, each file has its
// content type, and a browser revalidating with the ETag gets 304.
TEST_F(ApiTest, ServesTheWebConsoleFiles) {
  auto page = c_.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page->body.find("<script src=\"/console/app.js\">"), std::string::npos) << page->body;
  auto script = c_.Get("/console/app.js");
  ASSERT_TRUE(script);
  EXPECT_EQ(script->status, 200);
  EXPECT_EQ(script->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_NE(script->body.find("/api/v1/nodes"), std::string::npos);
  EXPECT_EQ(script->get_header_value("Cache-Control"), "no-cache");
  const std::string etag = script->get_header_value("ETag");
  ASSERT_FALSE(etag.empty());
  auto again = c_.Get("/console/app.js", {{"If-None-Match", etag}});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 304);
  EXPECT_TRUE(again->body.empty());
  auto css = c_.Get("/console/style.css");
  ASSERT_TRUE(css);
  EXPECT_EQ(css->get_header_value("Content-Type"), "text/css; charset=utf-8");
  auto missing = c_.Get("/console/nope.js");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(ApiTest, ConcurrentAppliesAndAgentTrafficAreSerialised) {
  FakeAgent agent(s_.harness.broker, "n1");
  agent.hello(0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      httplib::Client c = s_.client();
      for (int i = 0; i < 5; ++i) {
        std::string name = "w" + std::to_string(t * 5 + i);
        auto r = c.Put("/api/v1/workloads", process_workload(name, "placement: {everyNode: true}"),
                       "application/yaml");
        EXPECT_TRUE(r && r->status == 200) << name;
      }
    });
  }
  for (int i = 0; i < 50; ++i) agent.heartbeat(0, 0);
  for (auto& th : threads) th.join();
  EXPECT_EQ(body_of(c_.Get("/api/v1/workloads"))["items"].size(), 20u);
  s_.settle();  // the watch feeder reads views through the controller: done before the store
  EXPECT_EQ(s_.harness.node("n1").revision, 20u);  // one revision per apply
  agent.desired.clear();
  agent.hello(0);
  ASSERT_EQ(agent.desired.size(), 1u);
  EXPECT_EQ(agent.desired[0].upserts_size(), 20);
}

// Watches: server-sent events over a real HTTP connection.

TEST_F(ApiTest, ListsCarryTheResourceVersionAWatchStartsFrom) {
  json list = body_of(c_.Get("/api/v1/workloads"));
  ASSERT_TRUE(list["resourceVersion"].is_string()) << list.dump();
  EXPECT_EQ(list["resourceVersion"], std::to_string(s_.watch.version()));
  FakeAgent agent(s_.harness.broker, "n1");
  agent.hello(0);
  s_.settle();
  json nodes = body_of(c_.Get("/api/v1/nodes"));
  EXPECT_EQ(nodes["resourceVersion"], std::to_string(s_.watch.version()));
  EXPECT_NE(nodes["resourceVersion"], list["resourceVersion"]);
}

TEST_F(ApiTest, AWatchSeesWorkloadsComeChangeAndGoInOrder) {
  FakeAgent agent(s_.harness.broker, "n1");
  agent.hello(0);
  const std::string rv = body_of(c_.Get("/api/v1/workloads"))["resourceVersion"];
  SseWatch watch(s_.port, "/api/v1/workloads?watch=true&resourceVersion=" + rv);
  ASSERT_EQ(c_.Put("/api/v1/workloads", process_workload("web", "replicas: 1"), "application/yaml")
                ->status,
            200);
  ASSERT_TRUE(watch.wait_events(1)) << watch.raw();
  EXPECT_EQ(watch.status(), 200);
  EXPECT_EQ(watch.content_type(), "text/event-stream");
  agent.ack_last();
  agent.status({instance("web", "web-1", pb::PHASE_RUNNING, 1)});
  s_.settle();
  ASSERT_TRUE(watch.wait_events(2)) << watch.raw();
  ASSERT_EQ(c_.Delete("/api/v1/workloads/web")->status, 200);
  ASSERT_TRUE(watch.wait_raw("event: DELETED")) << watch.raw();

  auto events = watch.events();
  Strings got = watch.summary();
  EXPECT_EQ(got.front(), "ADDED web");
  EXPECT_EQ(got.back(), "DELETED web");
  for (size_t i = 1; i + 1 < got.size(); ++i) EXPECT_EQ(got[i], "MODIFIED web");
  // Ids increase, and each event carries the object as it was then.
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_LT(std::stoull(events[i - 1].id), std::stoull(events[i].id));
  }
  EXPECT_EQ(events.front().data["type"], "ADDED");
  EXPECT_EQ(events.front().data["object"]["spec"]["replicas"], 1);
  bool saw_ready = false;
  for (const auto& e : events) {
    if (e.data["object"]["status"].value("readyInstances", 0) == 1) saw_ready = true;
  }
  EXPECT_TRUE(saw_ready) << watch.raw();
  EXPECT_EQ(events.back().data["object"]["metadata"]["name"], "web");
}

TEST_F(ApiTest, AWatchSeesNodesRegisterAndGoAndHonoursSelectors) {
  SseWatch all(s_.port, "/api/v1/nodes?watch=true");
  SseWatch lab(s_.port, "/api/v1/nodes?watch=true&labelSelector=site=lab");
  SseWatch one(s_.port, "/api/v1/nodes/n2?watch=true");
  ASSERT_TRUE(all.wait_status() && lab.wait_status() && one.wait_status());
  ASSERT_TRUE(eventually([&] { return s_.api.open_watches() == 3; }, std::chrono::seconds(10)));
  // One change at a time: changes made together may reach watchers as one (coalesced).
  FakeAgent n1(s_.harness.broker, "n1");
  n1.hello(0, {{"site", "lab"}});
  s_.settle();
  FakeAgent n2(s_.harness.broker, "n2");
  n2.hello(0, {{"site", "field"}});
  s_.settle();
  n1.will();
  s_.settle();
  ASSERT_EQ(c_.Delete("/api/v1/nodes/n2")->status, 200);
  ASSERT_TRUE(all.wait_raw("event: DELETED")) << all.raw();
  ASSERT_TRUE(one.wait_raw("event: DELETED")) << one.raw();
  EXPECT_EQ(all.summary(), (Strings{"ADDED n1", "ADDED n2", "MODIFIED n1", "DELETED n2"}));
  EXPECT_EQ(one.summary(), (Strings{"ADDED n2", "DELETED n2"}));
  ASSERT_TRUE(lab.wait_events(2)) << lab.raw();
  EXPECT_EQ(lab.summary(), (Strings{"ADDED n1", "MODIFIED n1"}));
  EXPECT_EQ(lab.events()[1].data["object"]["state"], "NotReady");
}

TEST_F(ApiTest, TheNodeListAndWatchFilterByState) {
  SseWatch down(s_.port, "/api/v1/nodes?watch=true&state=NotReady&labelSelector=site=lab");
  ASSERT_TRUE(down.wait_status());
  ASSERT_TRUE(eventually([&] { return s_.api.open_watches() == 1; }, std::chrono::seconds(10)));
  std::vector<std::unique_ptr<FakeAgent>> agents;
  for (const char* n : {"n1", "n2", "n3", "n4", "n5"}) {
    agents.push_back(std::make_unique<FakeAgent>(s_.harness.broker, n));
    agents.back()->hello(0, {{"site", n[1] % 2 ? "lab" : "field"}});
    s_.settle();
  }
  agents[0]->will();  // n1, lab
  s_.settle();
  agents[1]->will();  // n2, field
  s_.settle();
  agents[2]->will();  // n3, lab
  s_.settle();
  auto names = [](const json& list) {
    Strings out;
    for (const auto& i : list["items"]) out.push_back(i["name"]);
    return out;
  };
  EXPECT_EQ(names(body_of(c_.Get("/api/v1/nodes?state=NotReady"))), (Strings{"n1", "n2", "n3"}));
  EXPECT_EQ(names(body_of(c_.Get("/api/v1/nodes?state=Ready"))), (Strings{"n4", "n5"}));
  EXPECT_EQ(names(body_of(c_.Get("/api/v1/nodes?state=NotReady&labelSelector=site%3Dlab"))),
            (Strings{"n1", "n3"}));
  // Paged: one a page, the filter kept with the token.
  json first = body_of(c_.Get("/api/v1/nodes?state=NotReady&limit=2"));
  EXPECT_EQ(names(first), (Strings{"n1", "n2"}));
  json second = body_of(c_.Get("/api/v1/nodes?state=NotReady&limit=2&continue=" +
                               first["continue"].get<std::string>()));
  EXPECT_EQ(names(second), Strings{"n3"});
  EXPECT_EQ(second["continue"], "");

  // The watch: lab nodes as they come to NotReady (ADDED) and leave it (DELETED).
  agents[0]->hello(0, {{"site", "lab"}}, "boot-2");  // n1 is back
  s_.settle();
  ASSERT_TRUE(down.wait_events(3)) << down.raw();
  EXPECT_EQ(down.summary(), (Strings{"ADDED n1", "ADDED n3", "DELETED n1"}));
  EXPECT_EQ(down.events()[1].data["object"]["state"], "NotReady");
  EXPECT_EQ(down.events()[2].data["object"]["state"], "Ready");

  auto r = c_.Get("/api/v1/nodes?state=Sleepy");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body_of(r)["error"], "state: want Ready or NotReady, got 'Sleepy'");
  r = c_.Get("/api/v1/workloads?state=Ready");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body_of(r)["error"], "state: only the node list takes a state filter");
  r = c_.Get("/api/v1/nodes?watch=true&state=ready");
  EXPECT_EQ(r->status, 400);
}

TEST_F(ApiTest, AWatchResumesAfterTheLastIdItSaw) {
  FakeAgent agent(s_.harness.broker, "n1");
  std::string last_id;
  {
    SseWatch first(s_.port, "/api/v1/nodes?watch=true");
    ASSERT_TRUE(first.wait_status());
    agent.hello(0);
    ASSERT_TRUE(first.wait_events(1));
    last_id = first.events().back().id;
  }
  agent.will();  // while nobody watches
  SseWatch again(s_.port, "/api/v1/nodes?watch=true&resourceVersion=" + last_id);
  ASSERT_TRUE(again.wait_events(1)) << again.raw();
  EXPECT_EQ(again.summary(), Strings{"MODIFIED n1"});
  EXPECT_EQ(again.events()[0].data["object"]["state"], "NotReady");
  // A browser's EventSource reconnects to the URL it began with and says where it got to in
  // Last-Event-ID, which wins over the URL's resourceVersion.
  SseWatch browser(s_.port, "/api/v1/nodes?watch=true&resourceVersion=" + last_id,
                   {{"Last-Event-ID", again.events()[0].id}});
  agent.hello(0, {{"back", "yes"}});
  ASSERT_TRUE(browser.wait_events(1)) << browser.raw();
  EXPECT_EQ(browser.summary(), Strings{"MODIFIED n1"});
  EXPECT_EQ(browser.events()[0].data["object"]["labels"]["back"], "yes");
}

TEST(ApiWatchTest, AVersionTheLogNoLongerHoldsEndsWith410) {
  WatchLogOptions small;
  small.max_records = 2;
  ApiServer s({}, small);
  FakeAgent agent(s.harness.broker, "n1");
  const std::string rv = body_of(s.client().Get("/api/v1/nodes"))["resourceVersion"];
  for (int i = 0; i < 3; ++i) {
    agent.hello(0, {{"round", std::to_string(i)}});
    s.settle();
  }
  SseWatch old(s.port, "/api/v1/nodes?watch=true&resourceVersion=" + rv);
  ASSERT_TRUE(old.wait_end()) << old.raw();
  ASSERT_EQ(old.events().size(), 1u) << old.raw();
  SseEvent e = old.events()[0];
  EXPECT_EQ(e.event, "ERROR");
  EXPECT_EQ(e.data["type"], "ERROR");
  EXPECT_EQ(e.data["object"]["code"], 410);
  EXPECT_EQ(e.data["object"]["reason"], "Expired");
  EXPECT_NE(e.data["object"]["message"].get<std::string>().find("list again"), std::string::npos);
  // So does one from the future (an earlier hub process's).
  SseWatch future(s.port, "/api/v1/nodes?watch=true&resourceVersion=999999");
  ASSERT_TRUE(future.wait_end());
  EXPECT_EQ(future.summary(), Strings{"ERROR "});
  EXPECT_EQ(s.harness.metrics.value("flotilla_hub_watches_expired_total", {{"kind", "nodes"}}), 2u);
}

TEST_F(ApiTest, BadWatchParametersAre400) {
  auto r = c_.Get("/api/v1/nodes?watch=true&resourceVersion=abc");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body_of(r)["error"],
            "resourceVersion: want the resourceVersion of a list or the id of a watch event, got "
            "'abc'");
  r = c_.Get("/api/v1/workloads?watch=maybe");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body_of(r)["error"], "watch: want true or false, got 'maybe'");
  r = c_.Get("/api/v1/nodes?watch=true&labelSelector=novalue");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(s_.api.open_watches(), 0u);
  EXPECT_EQ(c_.Get("/api/v1/nodes?watch=false")->status, 200);
}

TEST(ApiWatchTest, IdleWatchesGetKeepalivesWithTheirProgress) {
  ApiOptions o;
  o.keepalive = std::chrono::milliseconds(20);
  o.watch_poll = std::chrono::milliseconds(10);
  ApiServer s(o);
  SseWatch lab(s.port, "/api/v1/nodes?watch=true&labelSelector=site=lab");
  ASSERT_TRUE(lab.wait_raw(": keepalive\n\n")) << lab.raw();
  FakeAgent agent(s.harness.broker, "n1");
  agent.hello(0, {{"site", "field"}});  // skipped by the selector: the keepalive says so
  s.settle();
  const std::string id = "id: " + std::to_string(s.watch.version()) + "\n";
  ASSERT_TRUE(lab.wait_raw(": keepalive\n" + id + "\n")) << lab.raw();
  EXPECT_TRUE(lab.events().empty());
}

TEST(ApiWatchTest, AWatchEndsWhenItsClientGoesAway) {
  ApiOptions o;
  o.keepalive = std::chrono::hours(1);  // no write to find out: the idle check must see it
  ApiServer s(o);
  auto watch = std::make_unique<SseWatch>(s.port, "/api/v1/workloads?watch=true");
  ASSERT_TRUE(watch->wait_status());
  ASSERT_TRUE(eventually([&] { return s.api.open_watches() == 1; }, std::chrono::seconds(10)));
  EXPECT_NE(s.client().Get("/metrics")->body.find("flotilla_hub_watches_open 1\n"),
            std::string::npos);
  watch.reset();  // closes the connection without a word
  EXPECT_TRUE(eventually([&] { return s.api.open_watches() == 0; }, std::chrono::seconds(10)));
}

TEST(ApiWatchTest, WatchesPastTheLimitAre503AndNeverStarveOtherRequests) {
  ApiOptions o;
  o.max_watches = 100;
  ApiServer s(o);
  std::vector<std::unique_ptr<SseWatch>> watches;
  // One after the other: httplib listens with a backlog of 5, and a burst of connects beyond it
  // waits for the client's SYN retry (a second or more).
  for (int i = 0; i < 100; ++i) {
    watches.push_back(std::make_unique<SseWatch>(s.port, "/api/v1/nodes?watch=true"));
    ASSERT_TRUE(watches.back()->wait_status());
  }
  ASSERT_TRUE(eventually([&] { return s.api.open_watches() == 100; }, std::chrono::seconds(10)))
      << s.api.open_watches();
  SseWatch extra(s.port, "/api/v1/nodes?watch=true");
  ASSERT_TRUE(extra.wait_end());
  EXPECT_EQ(extra.status(), 503);
  EXPECT_NE(extra.raw().find("too many open watches (limit 100)"), std::string::npos)
      << extra.raw();
  // Other requests are served while 100 watches are open, and every watcher hears a change.
  httplib::Client c = s.client();
  for (int i = 0; i < 20; ++i) {
    auto r = c.Get("/api/v1/nodes");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  FakeAgent agent(s.harness.broker, "n1");
  agent.hello(0);
  for (auto& w : watches) ASSERT_TRUE(w->wait_events(1));
  EXPECT_EQ(s.harness.metrics.value("flotilla_hub_watches_refused_total", {{"kind", "nodes"}}), 1u);
}

TEST(ApiWatchTest, StoppingTheServerEndsOpenWatches) {
  auto s = std::make_unique<ApiServer>();
  SseWatch watch(s->port, "/api/v1/nodes?watch=true");
  ASSERT_TRUE(watch.wait_status());
  ASSERT_TRUE(eventually([&] { return s->api.open_watches() == 1; }, std::chrono::seconds(10)));
  auto stopped = std::async(std::launch::async, [&] { s.reset(); });
  ASSERT_EQ(stopped.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "the server did not stop with a watch open";
  EXPECT_TRUE(watch.wait_end());
}

TEST(ApiWatchTest, HubStopEndsOpenWatches) {
  flotilla::testing::TempDir dir;
  sync::FakeBroker broker;
  HubOptions o;
  o.listen_port = 0;
  o.data_dir = dir / "hub";
  auto hub = Hub::create(o, broker.connect("flotilla-hub"));
  ASSERT_TRUE(hub.ok()) << hub.error().message();
  ASSERT_TRUE((*hub)->start().ok());
  httplib::Client c("127.0.0.1", (*hub)->port());
  const std::string rv = body_of(c.Get("/api/v1/nodes"))["resourceVersion"];
  SseWatch watch((*hub)->port(), "/api/v1/nodes?watch=true&resourceVersion=" + rv);
  FakeAgent agent(broker, "n1");
  agent.hello(0);
  ASSERT_TRUE(watch.wait_events(1)) << watch.raw();
  EXPECT_EQ(watch.summary(), Strings{"ADDED n1"});
  // Versions start at the wall clock (microseconds): past any earlier hub process's.
  EXPECT_GT(std::stoull(rv), 1'700'000'000'000'000ull);
  auto stopped = std::async(std::launch::async, [&] { (*hub)->stop(); });
  ASSERT_EQ(stopped.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "Hub::stop hung on an open watch";
  EXPECT_TRUE(watch.wait_end());
}

TEST(ApiConnectionTest, RequestsOnAReusedConnectionAreNotHeldBackByDelayedAcks) {
  ApiServer api;
  httplib::Client c = api.client();
  c.set_keep_alive(true);
  // Nagle's algorithm held each reply's body until the client's delayed ACK of its headers:
  // about 40 ms for every request after a connection's first.
  std::vector<double> ms;
  for (int i = 0; i < 15; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c.Get("/healthz");
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  std::sort(ms.begin(), ms.end());
  EXPECT_LT(ms[ms.size() / 2], 20.0) << "median of " << ms.size() << " requests";
}

}  // namespace
}  // namespace flotilla::hub
