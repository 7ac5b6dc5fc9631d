// The device bridge against a real mosquitto as the node's local broker (the hub stays a
// FakeBroker): a device client over MQTT gets desired state, reports, is rejected, and gets the
// cached desired state again after the agent and the local broker restarted without the hub.
#include <gtest/gtest.h>

#include <mutex>

#include "agent/twin_sync.hpp"
#include "test/agent/agent_fixture.hpp"
#include "test/agent/twin_messages.hpp"
#include "test/support/peers.hpp"

namespace flotilla::agent {
namespace {

using namespace std::chrono_literals;
using Json = twin::Json;

class TwinBridgeMqttTest : public testing::AgentFixture {
 protected:
  void SetUp() override {
    AgentFixture::SetUp();
    if (flotilla::testing::find_executable("mosquitto").empty())
      GTEST_SKIP() << "mosquitto not installed";
    local_ = std::make_unique<flotilla::testing::Mosquitto>(local_dir_.path(),
                                                            flotilla::testing::free_port());
    ASSERT_TRUE(local_->start()) << local_->log();
    config_.device_mqtt_uri = local_->uri();
    sync::TransportOptions o = make_device_transport_options(config_);
    o.client_id = "dev-1";
    o.min_backoff = 50ms;
    o.max_backoff = 200ms;
    device_ = sync::make_mqtt_transport(o);
    device_->set_handlers(
        [this](sync::Message m) {
          std::lock_guard<std::mutex> lock(mu_);
          device_got_.push_back(std::move(m));
        },
        [](bool) {});
    ASSERT_TRUE(device_->subscribe(local_twin_topic("dev-1", "+"), 1).ok());
    ASSERT_TRUE(device_->start().ok());
    ASSERT_TRUE(flotilla::testing::eventually([&] { return device_->connected(); }, 5s));
  }

  void TearDown() override {
    AgentFixture::TearDown();
    agent_.reset();
    if (device_) device_->stop();
  }

  void start_bridge() {
    sync::TransportOptions o = make_device_transport_options(config_);
    o.min_backoff = 50ms;
    o.max_backoff = 200ms;
    bridge_ = sync::make_mqtt_transport(o);
    device_transport_ = bridge_.get();
    start_agent();
  }

  // Runs the agent's loop until `pred` holds (events arrive on Paho's threads).
  template <typename Pred>
  bool until(Pred pred) {
    return flotilla::testing::eventually(
        [&] {
          agent_->run_once();
          return pred();
        },
        10s);
  }

  // The last document the device got on `leaf`, if any.
  std::optional<Json> device_doc(const std::string& leaf) {
    std::lock_guard<std::mutex> lock(mu_);
    std::optional<Json> out;
    for (const auto& m : device_got_) {
      if (m.topic == local_twin_topic("dev-1", leaf) && !m.payload.empty())
        out = Json::parse(m.payload);
    }
    return out;
  }

  void send_desired(const Json& doc, uint64_t version) {
    v1::TwinDesired msg;
    msg.set_node(kNode);
    auto* d = msg.add_devices();
    d->set_device("dev-1");
    d->set_desired(twin::canonical(doc));
    d->set_desired_version(version);
    send("twin", sync::encode(msg));
  }

  std::vector<v1::DeviceReported> hub_reported() {
    return testing::reported_to_hub(received_, kNode);
  }

  flotilla::testing::TempDir local_dir_;
  std::unique_ptr<flotilla::testing::Mosquitto> local_;
  std::unique_ptr<sync::Transport> bridge_;
  std::unique_ptr<sync::Transport> device_;
  std::mutex mu_;
  std::vector<sync::Message> device_got_;
};

TEST_F(TwinBridgeMqttTest, DeviceGetsDesiredReportsAndGetsItAgainFromTheCache) {
  start_bridge();
  ASSERT_TRUE(until([&] { return bridge_->connected(); }));
  send_desired({{"fan", "on"}}, 2);
  ASSERT_TRUE(until([&] { return device_doc("desired").has_value(); }));
  EXPECT_EQ(*device_doc("desired"), (Json{{"version", 2}, {"desired", {{"fan", "on"}}}}));
  ASSERT_TRUE(until([&] { return device_doc("delta").has_value(); }));
  EXPECT_EQ(*device_doc("delta"), (Json{{"version", 2}, {"delta", {{"fan", "on"}}}}));

  ASSERT_TRUE(device_
                  ->publish(local_twin_topic("dev-1", "reported"),
                            R"({"reported": {"fan": "on"}, "observedDesired": 2})", 1)
                  .ok());
  ASSERT_TRUE(until([&] {
    auto r = hub_reported();
    return !r.empty() && r.back().reported_version() == 1;
  }));
  EXPECT_EQ(hub_reported().back().reported(), R"({"fan":"on"})");
  EXPECT_EQ(hub_reported().back().observed_desired(), 2u);
  ASSERT_TRUE(until([&] {
    return device_doc("delta") == Json{{"version", 2}, {"delta", Json::object()}};
  }));

  ASSERT_TRUE(
      device_->publish(local_twin_topic("dev-1", "reported"), R"({"reported": 5})", 1).ok());
  ASSERT_TRUE(until([&] { return device_doc("rejected").has_value(); }));
  EXPECT_NE((*device_doc("rejected"))["error"].get<std::string>().find("not a JSON object"),
            std::string::npos);

  // The agent and the local broker restart (no retained documents left) while the hub is gone.
  agent_->shutdown();
  agent_.reset();
  broker_.set_up(false);
  ASSERT_TRUE(local_->restart()) << local_->log();
  {
    std::lock_guard<std::mutex> lock(mu_);
    device_got_.clear();
  }
  start_bridge();
  ASSERT_TRUE(until([&] { return device_doc("desired").has_value(); }))
      << "cached desired state not republished";
  EXPECT_EQ(*device_doc("desired"), (Json{{"version", 2}, {"desired", {{"fan", "on"}}}}));
}

}  // namespace
}  // namespace flotilla::agent
