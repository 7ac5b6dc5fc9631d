// Device twins at the agent: TwinDesired from the hub, the local device bridge, the twin outbox.
// The hub and the device bridge each run on their own FakeBroker; a "device" client records
// what the agent publishes under flotilla/local/devices/.
#include "agent/twin_sync.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>

#include "common/sqlite.hpp"
#include "test/agent/agent_fixture.hpp"
#include "test/agent/twin_messages.hpp"

namespace flotilla::agent {
namespace {

using Json = twin::Json;
using testing::FakeDriver;

struct DeviceDoc {
  uint64_t version = 0;
  Json doc;
};

class TwinTest : public testing::AgentFixture {
 protected:
  void SetUp() override {
    AgentFixture::SetUp();
    device_ = local_broker_.connect("dev-1");
    device_->set_handlers([this](sync::Message m) { on_device_message(m); }, [](bool) {});
    ASSERT_TRUE(device_->subscribe("flotilla/local/devices/#", 1).ok());
    ASSERT_TRUE(device_->start().ok());
  }

  void start_bridge() {
    bridge_ = local_broker_.connect("flotilla-agent-edge-1-devices");
    device_transport_ = bridge_.get();
    start_agent();
  }

  // The desired version of `device` in the database file, as a restarted agent would read it.
  int64_t persisted_desired_version(const std::string& device) {
    auto db = sql::Db::open(dir_ / "agent.db");
    auto q = db->prepare("SELECT desired_version FROM twins WHERE device = ?");
    q->bind(1, device);
    return *q->step() ? q->col_int(0) : -1;
  }

  void on_device_message(const sync::Message& m) {
    device_got_.push_back(m);
    if (m.topic.ends_with("/twin/desired") && !m.payload.empty())
      persisted_when_published_.push_back(persisted_desired_version("dev-1"));
  }

  // The last document the device got on `leaf` ("desired" or "delta").
  std::optional<DeviceDoc> device_doc(const std::string& leaf,
                                      const std::string& device = "dev-1") {
    std::optional<DeviceDoc> out;
    for (const auto& m : device_got_) {
      if (m.topic != local_twin_topic(device, leaf)) continue;
      Json j = Json::parse(m.payload);
      out = DeviceDoc{j["version"].get<uint64_t>(), j[leaf]};
    }
    return out;
  }
  size_t device_count(const std::string& leaf) {
    size_t n = 0;
    for (const auto& m : device_got_) n += m.topic == local_twin_topic("dev-1", leaf);
    return n;
  }

  void send_twin(const std::vector<v1::DeviceDesired>& devices, bool full = false) {
    v1::TwinDesired msg;
    msg.set_node(kNode);
    msg.set_full(full);
    for (const auto& d : devices) *msg.add_devices() = d;
    send("twin", sync::encode(msg));
  }
  static v1::DeviceDesired desired(const std::string& device, const Json& doc, uint64_t version,
                                   uint64_t reported_version = 0) {
    v1::DeviceDesired d;
    d.set_device(device);
    d.set_desired(twin::canonical(doc));
    d.set_desired_version(version);
    d.set_reported_version(reported_version);
    return d;
  }

  void device_reports(const std::string& payload, const std::string& device = "dev-1") {
    ASSERT_TRUE(device_->publish(local_twin_topic(device, "reported"), payload, 1).ok());
    agent_->run_once();
  }

  std::vector<v1::DeviceReported> hub_reported() {
    return testing::reported_to_hub(received_, kNode);
  }
  size_t hub_twin_messages() {
    size_t n = 0;
    for (const auto& m : received_) n += m.topic == sync::up_topic(kNode, 16, "twin");
    return n;
  }

  sync::FakeBroker local_broker_;
  std::unique_ptr<sync::FakeTransport> bridge_;
  std::unique_ptr<sync::FakeTransport> device_;
  std::vector<sync::Message> device_got_;
  std::vector<int64_t> persisted_when_published_;
};

// A whole agent in the death test's child process (re-executed: the fixture's folder there is
// not the parent's): stores one device report and dies by SIGKILL at the fail point.
// The parent names its store in FLOTILLA_TEST_TWIN_DB.
[[noreturn]] void report_then_die() {
  const char* db_path = std::getenv("FLOTILLA_TEST_TWIN_DB");
  if (db_path == nullptr) std::abort();
  auto store = Store::open(db_path, "edge-1");
  if (!store) std::abort();
  AgentConfig config;
  config.node = "edge-1";
  config.mqtt_uri = "tcp://fake:1883";
  sync::FakeBroker hub_broker, local_broker;
  hub_broker.set_up(false);  // offline: the report can only be in the store
  auto hub = hub_broker.connect("flotilla-agent-edge-1");
  auto bridge = local_broker.connect("flotilla-agent-edge-1-devices");
  auto device = local_broker.connect("dev-1");
  FakeDriver driver;
  FakeClock clock;
  Agent agent(config, **store, driver, *hub, clock, "boot-x", bridge.get());
  if (!agent.start()) std::abort();
  if (!device->start() ||
      !device->publish(local_twin_topic("dev-1", "reported"), R"({"reported": {"temp": 7}})", 1))
    std::abort();
  agent.run_once();
  std::abort();  // the fail point should have killed us
}

TEST_F(TwinTest, Kill9AfterAReportIsStoredLosesNothing) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string db = dir_ / "agent.db";
  store_.reset();
  setenv("FLOTILLA_FAILPOINT", "agent.twin_after_persist", 1);
  // Not overwritten in the child, which runs this test body again up to EXPECT_EXIT.
  setenv("FLOTILLA_TEST_TWIN_DB", db.c_str(), /*overwrite=*/0);
  EXPECT_EXIT(report_then_die(), ::testing::KilledBySignal(SIGKILL), "");
  unsetenv("FLOTILLA_FAILPOINT");
  unsetenv("FLOTILLA_TEST_TWIN_DB");
  auto reopened = Store::open(db, kNode);
  ASSERT_TRUE(reopened.ok()) << reopened.error().message();
  store_ = std::move(*reopened);
  auto twins = *store_->load_twins();
  ASSERT_EQ(twins.count("dev-1"), 1u) << "the report was lost";
  EXPECT_EQ(twins.at("dev-1").reported(), (Json{{"temp", 7}}));
  EXPECT_EQ(store_->outbox_twins()->size(), 1u);
  // The restarted agent sends it, and publishes the device's delta from the cache.
  start_bridge();
  step();
  auto reported = hub_reported();
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].reported(), R"({"temp":7})");
  EXPECT_EQ(reported[0].reported_version(), 1u);
}

TEST_F(TwinTest, DesiredIsPersistedThenPublishedToTheDeviceAndAcked) {
  start_bridge();
  send_twin({desired("dev-1", {{"fan", "on"}, {"rate", 5}}, 3)});
  auto twins = *store_->load_twins();
  ASSERT_EQ(twins.count("dev-1"), 1u);
  EXPECT_EQ(twins.at("dev-1").desired_version(), 3u);
  EXPECT_EQ(persisted_when_published_, std::vector<int64_t>{3}) << "published before stored";
  auto d = device_doc("desired");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->version, 3u);
  EXPECT_EQ(d->doc, (Json{{"fan", "on"}, {"rate", 5}}));
  auto delta = device_doc("delta");
  ASSERT_TRUE(delta);
  EXPECT_EQ(delta->version, 3u);
  EXPECT_EQ(delta->doc, (Json{{"fan", "on"}, {"rate", 5}}));
  // The report is the ack: the hub learns which desired version the agent holds.
  step();
  auto reported = hub_reported();
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].device(), "dev-1");
  EXPECT_EQ(reported[0].desired_version(), 3u);
  EXPECT_EQ(reported[0].reported(), "{}");
  EXPECT_TRUE(store_->outbox_twins()->empty());
  // The device reports what it did: the delta shrinks to what still differs.
  device_reports(R"({"reported": {"fan": "on", "rate": 4}, "observedDesired": 3})");
  delta = device_doc("delta");
  EXPECT_EQ(delta->doc, (Json{{"rate", 5}}));
}

TEST_F(TwinTest, StaleDesiredChangesNothing) {
  start_bridge();
  send_twin({desired("dev-1", {{"fan", "on"}}, 3)});
  size_t published = device_count("desired");
  send_twin({desired("dev-1", {{"fan", "off"}}, 2)});  // reordered, older
  send_twin({desired("dev-1", {{"fan", "off"}}, 3)});  // replayed version
  auto twins = *store_->load_twins();
  EXPECT_EQ(twins.at("dev-1").desired(), (Json{{"fan", "on"}}));
  EXPECT_EQ(twins.at("dev-1").desired_version(), 3u);
  EXPECT_EQ(device_count("desired"), published);
  EXPECT_EQ(device_doc("desired")->doc, (Json{{"fan", "on"}}));
  EXPECT_EQ(agent_->twins().counters().desired_adopted, 1u);
}

TEST_F(TwinTest, ReportsMadeOfflineAreSentAfterReconnectNewestOnly) {
  start_bridge();
  send_twin({desired("dev-1", {{"fan", "on"}}, 1)});
  step();
  broker_.set_up(false);  // the hub is unreachable; the local broker is not
  step();
  received_.clear();
  device_reports(R"({"reported": {"temp": 1}})");
  device_reports(R"({"reported": {"temp": 2}})");
  device_reports(R"({"reported": {"temp": 3, "fan": "on"}, "observedDesired": 1})");
  step();
  EXPECT_EQ(hub_twin_messages(), 0u);
  EXPECT_EQ(store_->outbox_twins()->size(), 1u) << "one row per device";
  broker_.set_up(true);
  step();
  step();
  auto reported = hub_reported();
  ASSERT_EQ(reported.size(), 1u) << "older offline reports were sent too";
  EXPECT_EQ(reported[0].reported(), R"({"fan":"on","temp":3})");
  EXPECT_EQ(reported[0].reported_version(), 3u);
  EXPECT_EQ(reported[0].observed_desired(), 1u);
  EXPECT_EQ(reported[0].desired_version(), 1u);
  EXPECT_TRUE(store_->outbox_twins()->empty());
}

TEST_F(TwinTest, ReportsOfOneLoopIterationAreStoredTogetherInOrder) {
  start_bridge();
  for (const char* r : {R"({"reported": {"temp": 1, "fan": "on"}})", R"({"reported": {"temp": 2}})",
                        R"({"reported": {"fan": null}})"}) {
    ASSERT_TRUE(device_->publish(local_twin_topic("dev-1", "reported"), r, 1).ok());
  }
  ASSERT_TRUE(
      device_->publish(local_twin_topic("dev-2", "reported"), R"({"reported": {"x": 1}})", 1).ok());
  agent_->run_once();
  auto twins = *store_->load_twins();
  ASSERT_EQ(twins.size(), 2u);
  EXPECT_EQ(twins.at("dev-1").reported(), (Json{{"temp", 2}}));
  EXPECT_EQ(twins.at("dev-1").reported_version(), 3u);
  EXPECT_EQ(device_count("delta"), 1u) << "the delta goes out once, after the store";
  EXPECT_EQ(agent_->twins().counters().reports_accepted, 2u);
  step();
  auto reported = hub_reported();
  ASSERT_EQ(reported.size(), 2u);
  EXPECT_EQ(hub_twin_messages(), 1u) << "not one message per device";
}

TEST_F(TwinTest, AReportQueuedAgainWhileInFlightStaysUntilSent) {
  start_bridge();
  transport_->held_kind = "/up/twin";
  transport_->hold = true;
  device_reports(R"({"reported": {"temp": 1}})");
  step();
  ASSERT_EQ(transport_->held.size(), 1u);
  device_reports(R"({"reported": {"temp": 2}})");  // replaces the row of the batch in flight
  transport_->release_all();
  step();
  ASSERT_EQ(store_->outbox_twins()->size(), 1u) << "the newer report left with the older ack";
  auto reported = hub_reported();
  ASSERT_EQ(reported.size(), 2u);
  EXPECT_EQ(reported.back().reported(), R"({"temp":2})");
  EXPECT_EQ(reported.back().reported_version(), 2u);
  ASSERT_EQ(transport_->held.size(), 1u);
  transport_->release_all();
  step();
  EXPECT_TRUE(store_->outbox_twins()->empty());
  EXPECT_EQ(hub_reported().size(), 2u);
}

TEST_F(TwinTest, InvalidReportIsRejectedAndChangesNothing) {
  start_bridge();
  device_reports(R"({"reported": {"temp": 1}})");
  step();
  received_.clear();
  Json deep = 1;
  for (int i = 0; i < 11; ++i) deep = Json{{"a", deep}};
  device_reports(Json{{"reported", deep}}.dump());
  device_reports("not json");
  device_reports(R"({"reported": {"temp": 2}, "observedDesired": -1})");
  std::vector<std::string> errors;
  for (const auto& m : device_got_) {
    if (m.topic == local_twin_topic("dev-1", "rejected"))
      errors.push_back(Json::parse(m.payload)["error"].get<std::string>());
  }
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_NE(errors[0].find("nesting deeper than 10"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("reported.a"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("not a JSON object"), std::string::npos) << errors[1];
  EXPECT_NE(errors[2].find("observedDesired"), std::string::npos) << errors[2];
  auto twins = *store_->load_twins();
  EXPECT_EQ(twins.at("dev-1").reported(), (Json{{"temp", 1}}));
  EXPECT_EQ(twins.at("dev-1").reported_version(), 1u);
  step();
  EXPECT_EQ(hub_twin_messages(), 0u);
  EXPECT_EQ(agent_->twins().counters().reports_rejected, 3u);
}

TEST_F(TwinTest, RestartRepublishesCachedDesiredWithoutTheHub) {
  start_bridge();
  send_twin({desired("dev-1", {{"fan", "on"}}, 4)});
  agent_->shutdown();
  agent_.reset();
  store_.reset();
  bridge_.reset();
  broker_.set_up(false);        // no hub
  local_broker_.set_up(false);  // the local broker restarted too: no retained documents
  local_broker_.set_up(true);
  device_got_.clear();
  auto reopened = Store::open(dir_ / "agent.db", kNode);
  ASSERT_TRUE(reopened.ok());
  store_ = std::move(*reopened);
  start_bridge();
  auto d = device_doc("desired");
  ASSERT_TRUE(d) << "cached desired not republished";
  EXPECT_EQ(d->version, 4u);
  EXPECT_EQ(d->doc, (Json{{"fan", "on"}}));
  // A device that restarts later gets the retained copies.
  device_got_.clear();
  auto late = local_broker_.connect("dev-1-again");
  std::vector<sync::Message> late_got;
  late->set_handlers([&](sync::Message m) { late_got.push_back(m); }, [](bool) {});
  ASSERT_TRUE(late->start().ok());
  ASSERT_TRUE(late->subscribe(local_twin_topic("dev-1", "+"), 1).ok());
  EXPECT_EQ(late_got.size(), 2u);  // desired and delta
}

TEST_F(TwinTest, GetRepublishesDesiredAndDelta) {
  start_bridge();
  send_twin({desired("dev-1", {{"fan", "on"}}, 2)});
  size_t before = device_count("desired");
  ASSERT_TRUE(device_->publish(local_twin_topic("dev-1", "get"), "", 1).ok());
  agent_->run_once();
  EXPECT_EQ(device_count("desired"), before + 1);
  EXPECT_EQ(device_count("delta"), before + 1);
}

TEST_F(TwinTest, FullDesiredForgetsUnlistedDevicesAndRemovedClearsThem) {
  start_bridge();
  send_twin({desired("dev-1", {{"a", 1}}, 1), desired("dev-2", {{"b", 1}}, 1),
             desired("dev-3", {{"c", 1}}, 1)});
  send_twin({desired("dev-1", {{"a", 1}}, 1), desired("dev-2", {{"b", 1}}, 1)}, /*full=*/true);
  auto twins = *store_->load_twins();
  EXPECT_EQ(twins.size(), 2u);
  EXPECT_EQ(twins.count("dev-3"), 0u);
  auto removed = desired("dev-2", {}, 0);
  removed.set_removed(true);
  send_twin({removed});
  twins = *store_->load_twins();
  EXPECT_EQ(twins.size(), 1u);
  EXPECT_EQ(twins.count("dev-1"), 1u);
  EXPECT_EQ(device_got_.back().payload, "") << "retained documents of a removed device cleared";
}

TEST_F(TwinTest, FullDesiredInPartsForgetsOnlyOnceWhole) {
  start_bridge();
  send_twin({desired("dev-1", {{"a", 1}}, 1), desired("dev-2", {{"b", 1}}, 1),
             desired("dev-3", {{"c", 1}}, 1)});
  auto part = [&](uint32_t i, const std::vector<v1::DeviceDesired>& devices) {
    v1::TwinDesired msg;
    msg.set_node(kNode);
    msg.set_full(true);
    msg.set_part(i);
    msg.set_parts(2);
    for (const auto& d : devices) *msg.add_devices() = d;
    send("twin", sync::encode(msg));
  };
  part(0, {desired("dev-1", {{"a", 1}}, 1)});
  EXPECT_EQ(store_->load_twins()->size(), 3u) << "forgot devices before the last part";
  part(1, {desired("dev-2", {{"b", 2}}, 2)});
  auto twins = *store_->load_twins();
  EXPECT_EQ(twins.size(), 2u);
  EXPECT_EQ(twins.count("dev-3"), 0u);
  EXPECT_EQ(twins.at("dev-2").desired_version(), 2u);
}

TEST_F(TwinTest, AHubBehindOnReportedGetsTheLatestAgain) {
  start_bridge();
  send_twin({desired("dev-1", {{"fan", "on"}}, 1)});
  device_reports(R"({"reported": {"temp": 1}})");
  device_reports(R"({"reported": {"temp": 2}})");
  step();
  ASSERT_TRUE(store_->outbox_twins()->empty());  // the broker took it; the hub may not have
  received_.clear();
  // After our Hello the hub lists what it holds: reported version 1, not our 2.
  send_twin({desired("dev-1", {{"fan", "on"}}, 1, /*reported_version=*/1)}, /*full=*/true);
  step();
  auto reported = hub_reported();
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].reported_version(), 2u);
  EXPECT_EQ(reported[0].reported(), R"({"temp":2})");
  // A listing that matches what we hold asks for nothing.
  received_.clear();
  send_twin({desired("dev-1", {{"fan", "on"}}, 1, /*reported_version=*/2)}, /*full=*/true);
  step();
  EXPECT_EQ(hub_twin_messages(), 0u);
}

TEST_F(TwinTest, LostStoreMovesReportedVersionPastTheHubs) {
  start_bridge();
  // The hub holds reported version 7 from before our store was lost.
  send_twin({desired("dev-1", {{"fan", "on"}}, 2, /*reported_version=*/7)}, /*full=*/true);
  step();
  auto reported = hub_reported();
  ASSERT_FALSE(reported.empty());
  EXPECT_EQ(reported.back().reported_version(), 8u);
}

TEST_F(TwinTest, WithoutABridgeTwinsAreStillCachedAndReported) {
  start_agent();
  send_twin({desired("dev-1", {{"fan", "on"}}, 1)});
  step();
  EXPECT_EQ(store_->load_twins()->size(), 1u);
  EXPECT_EQ(hub_reported().size(), 1u);
  EXPECT_TRUE(device_got_.empty());
}

}  // namespace
}  // namespace flotilla::agent
