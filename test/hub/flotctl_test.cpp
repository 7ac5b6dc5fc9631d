// flotctl's commands against a real hub API on a loopback port.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <future>
#include <sstream>

#include "cloud-hub/flotctl/commands.hpp"
#include "cloud-hub/flotctl/printers.hpp"
#include "cloud-hub/flotctl/watch.hpp"
#include "test/hub/api_server.hpp"
#include "test/support/tcp_proxy.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::flotctl {
namespace {

using hub::WatchLogOptions;
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
  r = flotctl({"rollout", "status", "r1"});  // this hub has no OTA (see artifacts_test.cpp)
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: rollouts are not supported yet\n");
  EXPECT_EQ(flotctl({"rollout", "frobnicate", "r1"}).code, 2);
  r = flotctl({"twin", "get", "d1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: device 'd1' not found\n");
  r = flotctl({"get", "rollouts"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: rollouts are not supported yet\n");
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

// Output that flotctl writes on its own thread while the test reads it, with bounded waits.
class LiveOutput : public std::streambuf {
 public:
  bool wait_for(const std::string& text,
                std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return text_.find(text) != std::string::npos; });
  }
  std::string text() const {
    std::lock_guard lock(mu_);
    return text_;
  }

 protected:
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) append(std::string(1, static_cast<char>(c)));
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    append(std::string(s, static_cast<size_t>(n)));
    return n;
  }

 private:
  void append(const std::string& s) {
    std::lock_guard lock(mu_);
    text_ += s;
    cv_.notify_all();
  }
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
};

// `flotctl get ... --watch` running on its own thread until stop().
class WatchRun {
 public:
  WatchRun(std::vector<std::string> args, std::string hub, int64_t now_ms) {
    Context ctx;
    ctx.default_hub = std::move(hub);
    ctx.now_ms = now_ms;
    ctx.interrupted = [this] { return stop_.load(); };
    ctx.retry_ms = 20;
    code_ = std::async(std::launch::async, [this, args = std::move(args), ctx] {
      std::ostream out(&out_), err(&err_);
      return run(args, ctx, out, err);
    });
  }
  ~WatchRun() { stop(); }
  // Interrupts it (as Ctrl-C does) and returns its exit code.
  int stop() {
    stop_ = true;
    if (!done_) {
      EXPECT_EQ(code_.wait_for(std::chrono::seconds(10)), std::future_status::ready)
          << "flotctl did not stop when interrupted";
      result_ = code_.get();
      done_ = true;
    }
    return result_;
  }
  LiveOutput& out() { return out_; }
  LiveOutput& err() { return err_; }

 private:
  LiveOutput out_, err_;
  std::atomic<bool> stop_{false};
  std::future<int> code_;
  bool done_ = false;
  int result_ = -1;
};

TEST_F(FlotctlTest, GetWatchPrintsTheTableThenEachChange) {
  FakeAgent one(server_.harness.broker, "edge-1");
  one.hello(0, {{"zone", "east"}});
  server_.settle();
  WatchRun w({"get", "nodes", "--watch"}, server_.url(), server_.harness.clock.wall_ms());
  ASSERT_TRUE(w.out().wait_for("edge-1   Ready    zone=east   amd64   0\n")) << w.out().text();
  FakeAgent two(server_.harness.broker, "edge-2");
  two.hello(0, {{"zone", "west"}});
  ASSERT_TRUE(w.out().wait_for("edge-2   Ready    zone=west   amd64   0\n")) << w.out().text();
  one.will();
  ASSERT_TRUE(w.out().wait_for("edge-1   NotReady   zone=east")) << w.out().text();
  EXPECT_EQ(w.stop(), 0);
  EXPECT_EQ(w.out().text(),
            "NAME     STATUS   LABELS      ARCH    WORKLOADS\n"
            "edge-1   Ready    zone=east   amd64   0\n"
            "edge-2   Ready    zone=west   amd64   0\n"
            "edge-1   NotReady   zone=east   amd64   0\n");
  EXPECT_EQ(w.err().text(), "");
}

TEST_F(FlotctlTest, GetWatchShowsTheEventsOfAWorkload) {
  FakeAgent agent(server_.harness.broker, "edge-1");
  agent.hello(0);
  server_.settle();
  WatchRun w({"get", "workloads", "-w", "--output-watch-events"}, server_.url(),
             server_.harness.clock.wall_ms());
  ASSERT_TRUE(w.out().wait_for("EVENT   NAME   TYPE   DESIRED   READY   PENDING   AGE\n"))
      << w.out().text();
  std::string file = write("web.yaml", process_workload("web", "replicas: 1"));
  ASSERT_EQ(flotctl({"apply", "-f", file}).code, 0);
  ASSERT_TRUE(w.out().wait_for("ADDED   web    process   1         0       0         0s\n"))
      << w.out().text();
  ASSERT_EQ(flotctl({"delete", "workload", "web"}).code, 0);
  ASSERT_TRUE(w.out().wait_for("DELETED   web")) << w.out().text();
  EXPECT_EQ(w.stop(), 0);
  // One object, from ADDED through the MODIFIED rows the scheduling made, to DELETED.
  std::istringstream lines(w.out().text());
  std::vector<std::string> events;
  for (std::string line; std::getline(lines, line);)
    events.push_back(line.substr(0, line.find(' ')));
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.front(), "EVENT");
  EXPECT_EQ(events[1], "ADDED");
  EXPECT_EQ(events.back(), "DELETED");
  for (size_t i = 2; i + 1 < events.size(); ++i) EXPECT_EQ(events[i], "MODIFIED");
}

TEST_F(FlotctlTest, ApplyOfADeviceManifestCreatesAndUpdatesTheDeviceAsPutDoes) {
  FakeAgent agent(server_.harness.broker, "edge-1");
  agent.hello(0);
  auto manifest = [](const std::string& labels, const std::string& desired,
                     const std::string& node = "edge-1") {
    return "apiVersion: flotilla/v1\nkind: Device\nmetadata: {name: thermo-1, labels: " + labels +
           "}\nspec:\n  node: " + node + "\n" + desired + "---\n" +
           process_workload("web", "replicas: 1");
  };
  std::string file = write("dev.yaml", manifest("{room: lab}", "  desired: {setpoint: 21}\n"));
  Outcome r = flotctl({"apply", "-f", file});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "workload/web created\ndevice/thermo-1 created\n");
  auto view = [&] { return **server_.harness.controller->device_view("thermo-1"); };
  EXPECT_EQ(view()["labels"], nlohmann::json({{"room", "lab"}}));
  EXPECT_EQ(view()["desired"], nlohmann::json({{"setpoint", 21}}));
  EXPECT_EQ(view()["desiredVersion"], 1);
  ASSERT_FALSE(agent.twins.empty());
  EXPECT_EQ(agent.twins.back().devices(0).device(), "thermo-1");
  EXPECT_EQ(agent.twins.back().devices(0).desired(), R"({"setpoint":21})");

  // Again: nothing changes. New labels and desired: configured, one desired version more.
  r = flotctl({"apply", "-f", file});
  EXPECT_EQ(r.out, "workload/web unchanged\ndevice/thermo-1 unchanged\n");
  EXPECT_EQ(view()["desiredVersion"], 1);
  file = write("dev.yaml", manifest("{room: hall}", "  desired: {setpoint: 22}\n"));
  r = flotctl({"apply", "-f", file});
  EXPECT_EQ(r.out, "workload/web unchanged\ndevice/thermo-1 configured\n") << r.err;
  EXPECT_EQ(view()["labels"], nlohmann::json({{"room", "hall"}}));
  EXPECT_EQ(view()["desiredVersion"], 2);
  // Without spec.desired the device keeps its desired document.
  file = write("dev.yaml", manifest("{room: hall}", ""));
  EXPECT_EQ(flotctl({"apply", "-f", file}).out,
            "workload/web unchanged\ndevice/thermo-1 unchanged\n");
  EXPECT_EQ(view()["desired"], nlohmann::json({{"setpoint", 22}}));
  // Lists select devices by label.
  EXPECT_NE(flotctl({"get", "devices", "-l", "room=hall"}).out.find("thermo-1"), std::string::npos);
  EXPECT_EQ(flotctl({"get", "devices", "-l", "room=lab"}).out.find("thermo-1"), std::string::npos);

  // Another node: refused before anything is applied (the workload's change too).
  file = write("dev.yaml",
               "apiVersion: flotilla/v1\nkind: Device\nmetadata: {name: thermo-1}\n"
               "spec: {node: edge-2}\n---\n" +
                   process_workload("web", "replicas: 2"));
  r = flotctl({"apply", "-f", file});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("device 'thermo-1' is attached to node 'edge-1'"), std::string::npos)
      << r.err;
  EXPECT_EQ((**server_.harness.controller->workload_view("web"))["spec"]["replicas"], 1);
  EXPECT_EQ(view()["node"], "edge-1");
  // A bad device document: file:line, nothing sent.
  file = write("bad.yaml", manifest("{room: hall}", "  desired: [1]\n"));
  r = flotctl({"apply", "-f", file});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("bad.yaml:6: spec.desired: want a mapping, got a list"), std::string::npos)
      << r.err;
}

TEST_F(FlotctlTest, GetDevicesWatchAndTwinGetWatchFollowTheTwin) {
  FakeAgent agent(server_.harness.broker, "edge-1");
  agent.hello(0);
  ASSERT_TRUE(server_.harness.controller->put_device(
      "dev-1", {{"node", "edge-1"}, {"desired", {{"rate", 5}}}}));
  server_.settle();
  WatchRun all({"get", "devices", "-w", "--output-watch-events"}, server_.url(),
               server_.harness.clock.wall_ms());
  WatchRun one({"twin", "get", "dev-1", "-w"}, server_.url(), server_.harness.clock.wall_ms());
  ASSERT_TRUE(all.out().wait_for("ADDED   dev-1   edge-1   v1        v0         0          rate\n"))
      << all.out().text();
  ASSERT_TRUE(one.out().wait_for("dev-1   edge-1   v1        v0         0          rate\n"))
      << one.out().text();
  ASSERT_EQ(flotctl({"twin", "set", "dev-1", "rate=6"}).code, 0);
  ASSERT_TRUE(all.out().wait_for("MODIFIED   dev-1   edge-1   v2")) << all.out().text();
  agent.report("dev-1", R"({"rate":6})", 1, 2, 2);
  ASSERT_TRUE(all.out().wait_for("MODIFIED   dev-1   edge-1   v2        v1         2          -\n"))
      << all.out().text();
  ASSERT_TRUE(one.out().wait_for("dev-1   edge-1   v2        v1         2          -\n"))
      << one.out().text();
  ASSERT_EQ(flotctl({"delete", "device", "dev-1"}).code, 0);
  ASSERT_TRUE(all.out().wait_for("DELETED   dev-1")) << all.out().text();
  EXPECT_EQ(all.stop(), 0);
  EXPECT_EQ(one.stop(), 0);
  EXPECT_EQ(all.err().text(), "");
  Outcome r = flotctl({"twin", "get", "nope", "-w"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: device 'nope' not found\n");
  EXPECT_EQ(flotctl({"twin", "set", "dev-1", "a=1", "-w"}).code, 2);
  EXPECT_EQ(flotctl({"twin", "get", "dev-1", "-w", "-l", "a=b"}).code, 2);
}

TEST_F(FlotctlTest, GetWatchOfOneObjectInJson) {
  FakeAgent agent(server_.harness.broker, "edge-1");
  agent.hello(0);
  FakeAgent other(server_.harness.broker, "edge-2");
  other.hello(0);
  server_.settle();
  WatchRun w({"get", "node", "edge-1", "-w", "-o", "json"}, server_.url(),
             server_.harness.clock.wall_ms());
  ASSERT_TRUE(w.out().wait_for("\"state\": \"Ready\"")) << w.out().text();
  other.will();  // not this node
  agent.will();
  ASSERT_TRUE(w.out().wait_for("\"state\": \"NotReady\"")) << w.out().text();
  EXPECT_EQ(w.stop(), 0);
  EXPECT_EQ(w.out().text().find("edge-2"), std::string::npos) << w.out().text();
  Outcome r = flotctl({"get", "node", "nope", "--watch"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: node 'nope' not found\n");
  EXPECT_EQ(flotctl({"get", "events", "-w"}).code, 2);
  EXPECT_EQ(flotctl({"get", "nodes", "--output-watch-events"}).code, 2);
}

TEST_F(FlotctlTest, GetWatchReconnectsFromTheLastEventItSaw) {
  flotilla::testing::TcpProxy proxy(server_.port);
  FakeAgent one(server_.harness.broker, "edge-1");
  one.hello(0);
  server_.settle();
  WatchRun w({"--hub", "http://127.0.0.1:" + std::to_string(proxy.port()), "get", "nodes", "-w",
              "--output-watch-events"},
             "", server_.harness.clock.wall_ms());
  ASSERT_TRUE(w.out().wait_for("ADDED   edge-1")) << w.out().text();
  proxy.drop();
  ASSERT_TRUE(w.err().wait_for("warning: lost the watch: Failed to reach hub at"))
      << w.err().text();
  FakeAgent two(server_.harness.broker, "edge-2");
  two.hello(0);  // while flotctl is cut off
  proxy.resume();
  ASSERT_TRUE(w.out().wait_for("ADDED   edge-2")) << w.out().text();
  EXPECT_EQ(w.stop(), 0);
}

TEST(FlotctlWatchTest, AfterA410ItListsAgainAndPrintsWhatChanged) {
  WatchLogOptions small;
  small.max_records = 2;
  ApiServer server({}, small);
  flotilla::testing::TcpProxy proxy(server.port);
  FakeAgent one(server.harness.broker, "edge-1");
  one.hello(0);
  FakeAgent two(server.harness.broker, "edge-2");
  two.hello(0);
  server.settle();
  WatchRun w({"--hub", "http://127.0.0.1:" + std::to_string(proxy.port()), "get", "nodes", "-w",
              "--output-watch-events"},
             "", server.harness.clock.wall_ms());
  ASSERT_TRUE(w.out().wait_for("ADDED   edge-2")) << w.out().text();
  proxy.drop();
  ASSERT_TRUE(w.err().wait_for("warning: lost the watch")) << w.err().text();
  // More changes than the hub keeps, while flotctl is cut off.
  one.will();
  ASSERT_EQ(server.client().Delete("/api/v1/nodes/edge-2")->status, 200);
  FakeAgent three(server.harness.broker, "edge-3");
  three.hello(0);
  server.settle();
  proxy.resume();
  ASSERT_TRUE(w.out().wait_for("DELETED   edge-2")) << w.out().text();
  EXPECT_EQ(w.stop(), 0);
  EXPECT_EQ(server.harness.metrics.value("flotilla_hub_watches_expired_total", {{"kind", "nodes"}}),
            1u);
  // Listed again: what changed meanwhile, by name, then what is gone.
  EXPECT_EQ(w.out().text(),
            "EVENT   NAME     STATUS   LABELS   ARCH    WORKLOADS\n"
            "ADDED   edge-1   Ready    <none>   amd64   0\n"
            "ADDED   edge-2   Ready    <none>   amd64   0\n"
            "MODIFIED   edge-1   NotReady   <none>   amd64   0\n"
            "ADDED   edge-3   Ready    <none>   amd64   0\n"
            "DELETED   edge-2   Ready    <none>   amd64   0\n");
}

TEST(FlotctlWatchTest, SseParserHandlesSplitFramesCommentsAndIdOnlyBlocks) {
  SseParser p;
  std::vector<SseParser::Message> got;
  auto keep = [&](const SseParser::Message& m) { got.push_back(m); };
  p.feed("event: ADDED\nid: 7\nda", keep);
  EXPECT_TRUE(got.empty());
  p.feed("ta: {\"a\":1}\n\n: keepalive\r\n\r\n: keepalive\nid: 9\n\n", keep);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].event, "ADDED");
  EXPECT_EQ(got[0].id, "7");
  EXPECT_EQ(got[0].data, "{\"a\":1}");
  EXPECT_EQ(got[1].event, "");
  EXPECT_EQ(got[1].id, "9");
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
