// The whole hub binary's wiring (Hub: store file, Paho transport, REST) against a real
// mosquitto on a free loopback port, with a simulated agent on its own MQTT connection.
#include <gtest/gtest.h>

#include <mutex>

#include "cloud-hub/flotctl/commands.hpp"
#include "cloud-hub/hub.hpp"
#include "sync/codec.hpp"
#include "sync/topics.hpp"
#include "test/support/peers.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::hub {
namespace {

using namespace std::chrono_literals;
namespace pb = flotilla::v1;
using flotilla::testing::eventually;

class HubMqttTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (flotilla::testing::find_executable("mosquitto").empty()) {
      GTEST_SKIP() << "mosquitto not installed";
    }
    broker_ =
        std::make_unique<flotilla::testing::Mosquitto>(dir_.path(), flotilla::testing::free_port());
    ASSERT_TRUE(broker_->start()) << broker_->log();
  }

  std::unique_ptr<Hub> start_hub() {
    HubOptions o;
    o.mqtt_uri = broker_->uri();
    o.listen_port = 0;
    o.data_dir = dir_ / "hub";
    auto hub = Hub::create(o);
    EXPECT_TRUE(hub.ok()) << hub.error().message();
    if (!hub) return nullptr;
    auto st = (*hub)->start();
    EXPECT_TRUE(st.ok()) << st.error().message();
    return std::move(*hub);
  }

  std::unique_ptr<sync::Transport> agent_transport(const std::string& node) {
    sync::TransportOptions o;
    o.server_uri = broker_->uri();
    o.client_id = "flotilla-agent-" + node;
    o.min_backoff = 50ms;
    o.max_backoff = 200ms;
    auto t = sync::make_mqtt_transport(o);
    const std::string online = sync::hub_online_topic(sync::shard_of(node, sync::kDefaultShards));
    t->set_handlers(
        [this, online](sync::Message m) {
          std::lock_guard<std::mutex> lock(mu_);
          if (m.topic == online) {
            hub_online_ = true;
            return;
          }
          // Other kinds (twin: TwinDesired after each hello) are not DesiredState.
          auto topic = sync::parse_topic(m.topic);
          if (!topic || topic->kind != "desired") return;
          auto d = sync::decode<pb::DesiredState>(m.payload);
          if (d) desired_.push_back(*d);
        },
        [](bool) {});
    EXPECT_TRUE(t->subscribe(sync::node_down_filter(node, sync::kDefaultShards), 1).ok());
    EXPECT_TRUE(t->subscribe(online, 1).ok());
    EXPECT_TRUE(t->start().ok());
    EXPECT_TRUE(eventually([&] { return t->connected(); }, 5s));
    // As a real agent: talk once the hub has announced itself (it subscribes before that), or
    // a hello sent while the hub is still connecting reaches nobody.
    EXPECT_TRUE(eventually(
        [&] {
          std::lock_guard<std::mutex> lock(mu_);
          return hub_online_;
        },
        10s));
    return t;
  }

  size_t desired_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return desired_.size();
  }

  int flotctl(const std::vector<std::string>& args, int port, std::string* out) {
    std::ostringstream o, e;
    flotctl::Context ctx;
    ctx.default_hub = "http://127.0.0.1:" + std::to_string(port);
    int rc = flotctl::run(args, ctx, o, e);
    *out = o.str() + e.str();
    return rc;
  }

  flotilla::testing::TempDir dir_;
  std::unique_ptr<flotilla::testing::Mosquitto> broker_;
  std::mutex mu_;
  std::vector<pb::DesiredState> desired_;
  bool hub_online_ = false;
};

TEST_F(HubMqttTest, AgentHelloGetsTheAppliedWorkloadOverMqtt) {
  auto hub = start_hub();
  ASSERT_NE(hub, nullptr);
  std::string out;
  ASSERT_EQ(flotctl({"apply", "-f", std::string(FLOTILLA_SOURCE_DIR) + "/examples/hello.yaml"},
                    hub->port(), &out),
            0)
      << out;
  auto agent = agent_transport("edge-1");
  pb::Hello h;
  h.set_node("edge-1");
  h.set_protocol_version(sync::kProtocolVersion);
  h.add_runtimes("process");
  h.set_boot_id("b1");
  ASSERT_TRUE(
      agent->publish(sync::up_topic("edge-1", sync::kDefaultShards, "hello"), sync::encode(h), 1)
          .ok());
  ASSERT_TRUE(eventually([&] { return desired_count() == 1; }, 10s));
  {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_TRUE(desired_[0].snapshot());
    ASSERT_EQ(desired_[0].upserts_size(), 1);
    EXPECT_EQ(desired_[0].upserts(0).name(), "hello");
  }
  pb::Ack a;
  a.set_node("edge-1");
  a.set_revision(1);
  ASSERT_TRUE(
      agent->publish(sync::up_topic("edge-1", sync::kDefaultShards, "ack"), sync::encode(a), 1)
          .ok());
  ASSERT_TRUE(eventually(
      [&] {
        flotctl({"get", "node", "edge-1", "-o", "json"}, hub->port(), &out);
        return out.find("\"ackedRevision\": 1") != std::string::npos;
      },
      10s))
      << out;
  EXPECT_EQ(flotctl({"get", "nodes"}, hub->port(), &out), 0);
  EXPECT_NE(out.find("edge-1   Ready"), std::string::npos) << out;
  agent->stop();
  hub->stop();

  // Restarted on the same data folder, the hub still knows both.
  auto again = start_hub();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(flotctl({"get", "workloads"}, again->port(), &out), 0);
  EXPECT_NE(out.find("hello"), std::string::npos) << out;
  EXPECT_EQ(flotctl({"get", "nodes"}, again->port(), &out), 0);
  EXPECT_NE(out.find("edge-1"), std::string::npos) << out;
}

TEST_F(HubMqttTest, BusyPortIsAClearError) {
  auto first = start_hub();
  ASSERT_NE(first, nullptr);
  HubOptions o;
  o.mqtt_uri = broker_->uri();
  o.listen_port = first->port();
  o.data_dir = dir_ / "hub2";
  auto second = Hub::create(o);
  ASSERT_TRUE(second.ok());
  auto st = (*second)->start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(),
            "Failed to listen on '127.0.0.1:" + std::to_string(first->port()) +
                "': address in use or not available");
}

}  // namespace
}  // namespace flotilla::hub
