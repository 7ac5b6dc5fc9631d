// Device twins end to end: real mosquitto for the fleet and as the node's local device broker,
// real hub, agent and flotctl, and a device that speaks MQTT on the local bridge topics
// (docs/protocol.md, "Device twins"). The node loses the hub (its link is cut by a TCP proxy)
// while desired and reported properties change on both sides.
#include <gtest/gtest.h>

#include <mutex>
#include <set>
#include <thread>

#include "sync/transport.hpp"
#include "test/integration/fleet.hpp"
#include "test/support/tcp_proxy.hpp"

namespace flotilla::testing {
namespace {

const std::string kTopic = "flotilla/local/devices/dev-1/twin/";

// A device on the node's local broker: every message it got, in order.
class Device {
 public:
  explicit Device(const std::string& uri) {
    sync::TransportOptions o;
    o.server_uri = uri;
    o.client_id = "dev-1";
    o.max_backoff = std::chrono::milliseconds(200);
    transport_ = sync::make_mqtt_transport(o);
    transport_->set_handlers(
        [this](sync::Message m) {
          std::lock_guard<std::mutex> lock(mu_);
          got_.push_back(std::move(m));
        },
        [](bool) {});
    EXPECT_TRUE(transport_->subscribe(kTopic + "+", 1).ok());
    EXPECT_TRUE(transport_->start().ok());
  }
  ~Device() { transport_->stop(); }
  bool connected() { return transport_->connected(); }
  // The versions of the desired documents it got, in order of arrival, and the last one.
  std::vector<int64_t> desired_versions() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int64_t> out;
    for (const auto& m : got_) {
      if (m.topic != kTopic + "desired" || m.payload.empty()) continue;
      out.push_back(json::parse(m.payload).value("version", int64_t{-1}));
    }
    return out;
  }
  json last(const std::string& leaf) {
    std::lock_guard<std::mutex> lock(mu_);
    json out;
    for (const auto& m : got_)
      if (m.topic == kTopic + leaf && !m.payload.empty()) out = json::parse(m.payload);
    return out;
  }
  void report(const json& patch, int64_t observed) {
    json msg = {{"reported", patch}, {"observedDesired", observed}};
    EXPECT_TRUE(transport_->publish(kTopic + "reported", msg.dump(), 1).ok());
  }

 private:
  std::unique_ptr<sync::Transport> transport_;
  std::mutex mu_;
  std::vector<sync::Message> got_;
};

// PUT /api/v1/devices/NAME with `body`.
RunResult put_device(Fleet& fleet, const std::string& name, const json& body) {
  return run_command({find_executable("curl"), "-sS", "-f", "-X", "PUT", "-H",
                      "Content-Type: application/json", "--data", body.dump(),
                      fleet.hub_url() + "/api/v1/devices/" + name});
}

TEST(TwinFleet, DesiredAndReportedChangesMadeWhileTheNodeIsOfflineMeetAfterReconnect) {
  Fleet fleet;
  TempDir local_dir;
  Mosquitto local(local_dir.path(), free_port());
  ASSERT_TRUE(local.start()) << local.log();
  fleet.start_hub();
  TcpProxy link(fleet.broker().port());
  fleet.start_agent(
      "n1", AgentOptions{.broker_port = link.port(), .args = {"--device-mqtt", local.uri()}});
  ASSERT_TRUE(eventually([&] { return fleet.node_state("n1") == "Ready"; }, 15s));
  Device device(local.uri());
  ASSERT_TRUE(eventually([&] { return device.connected(); }, 10s));

  // Created with a desired document: the device gets it (version 1).
  RunResult created =
      put_device(fleet, "dev-1", {{"node", "n1"}, {"desired", {{"fan", "off"}, {"rate", 1}}}});
  ASSERT_EQ(created.exit_code, 0) << created.out << created.err;
  ASSERT_TRUE(eventually([&] { return !device.desired_versions().empty(); }, 15s));
  const int64_t v1 = device.last("desired")["version"];
  EXPECT_EQ(device.last("desired")["desired"], (json{{"fan", "off"}, {"rate", 1}}));

  // The node loses the hub. The cloud sets desired twice; the device reports meanwhile.
  link.drop();
  ASSERT_TRUE(eventually([&] { return fleet.node_state("n1") == "NotReady"; }, 15s));
  ASSERT_EQ(fleet.flotctl({"twin", "set", "dev-1", "fan=on"}).exit_code, 0);
  RunResult second = fleet.flotctl({"twin", "set", "dev-1", "rate=5"});
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  device.report({{"temp", 20}}, v1);
  device.report({{"temp", 21}}, v1);  // the newest report wins
  std::this_thread::sleep_for(1s);
  // The device may be offered a version again (retained, republished): it acts on a version
  // once, so what counts is which versions it saw.
  for (int64_t v : device.desired_versions()) {
    EXPECT_EQ(v, v1) << "a new desired version reached the device while the node was offline";
  }

  // A stale version is refused (409) and changes nothing.
  RunResult stale = fleet.flotctl({"twin", "set", "dev-1", "fan=auto", "--if-version", "1"});
  EXPECT_NE(stale.exit_code, 0) << stale.out;

  // Back online: the device gets the newest desired document once, the hub the newest report.
  link.resume();
  ASSERT_TRUE(eventually([&] { return fleet.node_state("n1") == "Ready"; }, 20s));
  ASSERT_TRUE(eventually(
      [&] {
        return device.last("desired")["desired"] == json({{"fan", "on"}, {"rate", 5}});
      },
      20s))
      << device.last("desired").dump();
  const int64_t v3 = device.last("desired")["version"];
  EXPECT_EQ(v3, v1 + 2);
  // Exactly once as the device sees it: versions never go backwards, so a device that acts on
  // a version newer than the last it acted on acts once per change.
  auto versions = device.desired_versions();
  for (size_t i = 1; i < versions.size(); ++i) EXPECT_GE(versions[i], versions[i - 1]);
  ASSERT_TRUE(eventually(
      [&] {
        json twin = fleet.get("devices", "dev-1");
        return twin.contains("reported") && twin["reported"] == json({{"temp", 21}});
      },
      20s))
      << fleet.get("devices", "dev-1").dump(1);
  json twin = fleet.get("devices", "dev-1");
  EXPECT_EQ(twin["desired"], (json{{"fan", "on"}, {"rate", 5}}));
  EXPECT_EQ(twin["delta"], (json{{"fan", "on"}, {"rate", 5}}));

  // kill -9 of the agent: the twin is intact, and the device is offered the same version again
  // (retained), never an older one.
  fleet.kill9_agent("n1");
  fleet.start_agent(
      "n1", AgentOptions{.broker_port = link.port(), .args = {"--device-mqtt", local.uri()}});
  ASSERT_TRUE(eventually([&] { return fleet.node_state("n1") == "Ready"; }, 15s));
  device.report({{"fan", "on"}, {"rate", 5}}, v3);
  ASSERT_TRUE(eventually(
      [&] {
        json t = fleet.get("devices", "dev-1");
        return t["observedDesired"] == v3 && t["delta"].empty();
      },
      20s))
      << fleet.get("devices", "dev-1").dump(1);
  EXPECT_EQ(device.last("desired")["version"], v3);
}

TEST(TwinFleet, AKill9OfTheHubKeepsTheTwinAndTheDeviceGetsEachDesiredOnce) {
  Fleet fleet;
  TempDir local_dir;
  Mosquitto local(local_dir.path(), free_port());
  ASSERT_TRUE(local.start()) << local.log();
  fleet.start_hub();
  fleet.start_agent("n1", AgentOptions{.args = {"--device-mqtt", local.uri()}});
  ASSERT_TRUE(eventually([&] { return fleet.node_state("n1") == "Ready"; }, 15s));
  Device device(local.uri());
  ASSERT_TRUE(eventually([&] { return device.connected(); }, 10s));
  RunResult created = put_device(fleet, "dev-1", {{"node", "n1"}, {"desired", {{"rate", 1}}}});
  ASSERT_EQ(created.exit_code, 0) << created.out << created.err;
  ASSERT_TRUE(eventually([&] { return !device.desired_versions().empty(); }, 15s));
  const int64_t v1 = device.last("desired")["version"];

  // kill -9 of the hub while the device's reports stream in: what the hub had acknowledged
  // (shown) before the kill is kept, and the reports sent around the kill still arrive.
  device.report({{"temp", 0}}, v1);
  ASSERT_TRUE(
      eventually([&] { return fleet.get("devices", "dev-1")["reportedVersion"] > 0; }, 15s));
  json before_kill;
  for (int i = 1; i <= 40; ++i) {
    device.report({{"temp", i}}, v1);
    if (i == 20) {
      before_kill = fleet.get("devices", "dev-1");
      fleet.kill9_hub();
    }
    std::this_thread::sleep_for(20ms);
  }
  fleet.start_hub();
  json twin = fleet.get("devices", "dev-1");
  EXPECT_GE(twin["reportedVersion"], before_kill["reportedVersion"]) << twin.dump(1);
  EXPECT_EQ(twin["desired"], json({{"rate", 1}}));
  EXPECT_EQ(twin["desiredVersion"], v1);
  ASSERT_TRUE(eventually(
      [&] {
        return fleet.get("devices", "dev-1")["reported"] == json({{"temp", 40}});
      },
      20s))
      << fleet.get("devices", "dev-1").dump(1);

  // kill -9 of the hub right after it committed a desired set and before it published it
  // (fail point hub.twin_after_commit): the set was never answered, but it is in the store, so
  // it stands, and the device gets it from the next hub process, once.
  const int64_t reported_before = fleet.get("devices", "dev-1")["reportedVersion"];
  fleet.kill9_hub();
  fleet.start_hub({{"FLOTILLA_FAILPOINT", "hub.twin_after_commit"}});
  RunResult cut = fleet.flotctl({"twin", "set", "dev-1", "rate=5"});
  EXPECT_NE(cut.exit_code, 0) << cut.out;
  ASSERT_TRUE(fleet.wait_hub_exit(10s).has_value()) << "the fail point did not kill the hub";
  fleet.start_hub();
  twin = fleet.get("devices", "dev-1");
  EXPECT_EQ(twin["desired"], json({{"rate", 5}}));
  EXPECT_EQ(twin["desiredVersion"], v1 + 1);
  EXPECT_EQ(twin["reported"], json({{"temp", 40}}));
  EXPECT_EQ(twin["reportedVersion"], reported_before);
  // No report from the device is needed to get it there: the agent says hello to the new hub
  // (HubOnline), which answers with the full list of the node's devices.
  ASSERT_TRUE(eventually([&] { return device.last("desired")["version"] == v1 + 1; }, 20s))
      << device.last("desired").dump();
  EXPECT_EQ(device.last("desired")["desired"], json({{"rate", 5}}));
  // Exactly once as the device sees it: versions never go backwards, and each version it was
  // offered (again, when retained) is one document.
  auto versions = device.desired_versions();
  for (size_t i = 1; i < versions.size(); ++i) EXPECT_GE(versions[i], versions[i - 1]);
  EXPECT_EQ(std::set<int64_t>(versions.begin(), versions.end()), (std::set<int64_t>{v1, v1 + 1}));

  // A later report reaches the hub.
  device.report({{"rate", 5}}, v1 + 1);
  ASSERT_TRUE(eventually(
      [&] {
        json t = fleet.get("devices", "dev-1");
        return t["observedDesired"] == v1 + 1 && t["delta"].empty() &&
               t["reported"] == json({{"rate", 5}, {"temp", 40}});
      },
      20s))
      << fleet.get("devices", "dev-1").dump(1);
}

}  // namespace
}  // namespace flotilla::testing
