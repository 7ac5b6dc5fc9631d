// The Paho adapter against a real mosquitto on a free loopback port.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "sync/topics.hpp"
#include "sync/transport.hpp"
#include "test/support/peers.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::sync {
namespace {

using namespace std::chrono_literals;
using testing::eventually;

struct Inbox {
  std::mutex mu;
  std::vector<Message> messages;
  void add(Message m) {
    std::lock_guard<std::mutex> lock(mu);
    messages.push_back(std::move(m));
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu);
    return messages.size();
  }
};

class MqttTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::find_executable("mosquitto").empty()) GTEST_SKIP() << "mosquitto not installed";
    port_ = testing::free_port();
    broker_ = std::make_unique<testing::Mosquitto>(dir_.path(), port_);
    ASSERT_TRUE(broker_->start()) << broker_->log();
  }

  std::unique_ptr<Transport> make(const std::string& id) {
    TransportOptions o;
    o.server_uri = broker_->uri();
    o.client_id = id;
    o.min_backoff = 50ms;
    o.max_backoff = 200ms;
    o.keepalive = std::chrono::seconds(2);
    return make_mqtt_transport(o);
  }

  // A subscriber to shard 2's up topics collecting into `inbox`, and a publisher; both connected.
  void connect_pair(Inbox& inbox, std::unique_ptr<Transport>& sub,
                    std::unique_ptr<Transport>& pub) {
    sub = make("sub");
    pub = make("pub");
    sub->set_handlers([&inbox](Message m) { inbox.add(std::move(m)); }, [](bool) {});
    pub->set_handlers([](Message) {}, [](bool) {});
    ASSERT_TRUE(sub->subscribe(shard_up_filter(2), 1).ok());
    ASSERT_TRUE(sub->start().ok());
    ASSERT_TRUE(pub->start().ok());
    ASSERT_TRUE(eventually([&] { return sub->connected() && pub->connected(); }, 5s));
  }

  testing::TempDir dir_;
  int port_ = 0;
  std::unique_ptr<testing::Mosquitto> broker_;
};

TEST_F(MqttTransportTest, PublishesAndReceivesWithAcks) {
  Inbox inbox;
  std::unique_ptr<Transport> sub, pub;
  ASSERT_NO_FATAL_FAILURE(connect_pair(inbox, sub, pub));
  std::atomic<int> acked{0};
  std::string topic = make_topic({2, "n1", Direction::kUp, "status"});
  for (int i = 0; i < 200; ++i) {
    auto st = pub->publish(topic, "m" + std::to_string(i), 1, [&](Status done) {
      if (done.ok()) acked++;
    });
    ASSERT_TRUE(st.ok()) << "message " << i << ": " << st.error().message();
  }
  EXPECT_TRUE(eventually([&] { return acked == 200 && inbox.size() == 200; }, 10s))
      << "acked=" << acked << " received=" << inbox.size();
  EXPECT_EQ(inbox.messages.front().payload, "m0");
  EXPECT_EQ(inbox.messages.back().topic, topic);
}

// A burst far larger than what the adapter hands Paho at once (a hub applying to a whole fleet)
// is all delivered, in order, each acknowledged once.
TEST_F(MqttTransportTest, ABurstIsDeliveredInOrderAndEveryPublishCompletes) {
  Inbox inbox;
  std::unique_ptr<Transport> sub, pub;
  ASSERT_NO_FATAL_FAILURE(connect_pair(inbox, sub, pub));
  constexpr int kBurst = 20000;
  std::atomic<int> acked{0}, failed{0};
  std::string topic = make_topic({2, "n1", Direction::kUp, "status"});
  for (int i = 0; i < kBurst; ++i) {
    ASSERT_TRUE(pub->publish(topic, std::to_string(i), 1,
                             [&](Status done) { (done.ok() ? acked : failed)++; })
                    .ok());
  }
  EXPECT_TRUE(eventually([&] { return acked == kBurst && inbox.size() == kBurst; }, 60s))
      << "acked=" << acked << " failed=" << failed << " received=" << inbox.size();
  EXPECT_EQ(failed, 0);
  std::lock_guard<std::mutex> lock(inbox.mu);
  for (int i = 0; i < static_cast<int>(inbox.messages.size()); ++i) {
    ASSERT_EQ(inbox.messages[static_cast<size_t>(i)].payload, std::to_string(i));
  }
}

TEST_F(MqttTransportTest, StartsWhileBrokerIsDownAndReconnectsAfterRestart) {
  broker_->stop();
  Inbox inbox;
  std::atomic<int> connects{0};
  auto sub = make("sub");
  sub->set_handlers([&](Message m) { inbox.add(std::move(m)); },
                    [&](bool up) { connects += up ? 1 : 0; });
  ASSERT_TRUE(sub->subscribe("flotilla/#", 1).ok());
  ASSERT_TRUE(sub->start().ok());
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(sub->connected());
  EXPECT_FALSE(sub->publish("flotilla/x", "y", 1).ok());

  ASSERT_TRUE(broker_->start()) << broker_->log();
  ASSERT_TRUE(eventually([&] { return sub->connected(); }, 5s));
  broker_->kill9();
  ASSERT_TRUE(eventually([&] { return !sub->connected(); }, 10s));
  ASSERT_TRUE(broker_->start()) << broker_->log();
  ASSERT_TRUE(eventually([&] { return sub->connected(); }, 10s));
  EXPECT_EQ(connects, 2);

  // The subscription was renewed on reconnect.
  auto pub = make("pub");
  pub->set_handlers([](Message) {}, [](bool) {});
  ASSERT_TRUE(pub->start().ok());
  ASSERT_TRUE(eventually([&] { return pub->connected(); }, 5s));
  ASSERT_TRUE(pub->publish("flotilla/after", "restart", 1).ok());
  EXPECT_TRUE(eventually([&] { return inbox.size() == 1; }, 5s));
}

TEST_F(MqttTransportTest, WillIsPublishedWhenClientVanishes) {
  Inbox inbox;
  auto watcher = make("watcher");
  watcher->set_handlers([&](Message m) { inbox.add(std::move(m)); }, [](bool) {});
  ASSERT_TRUE(watcher->subscribe("flotilla/will", 1).ok());
  ASSERT_TRUE(watcher->start().ok());
  ASSERT_TRUE(eventually([&] { return watcher->connected(); }, 5s));
  // A separate process stands in for a node that dies without disconnecting.
  std::string pub = testing::find_executable("mosquitto_sub");
  if (pub.empty()) GTEST_SKIP() << "mosquitto-clients not installed";
  testing::ChildProcess victim;
  victim.start({pub, "-h", "127.0.0.1", "-p", std::to_string(port_), "-t", "x", "--will-topic",
                "flotilla/will", "--will-payload", "gone", "--will-qos", "1"},
               dir_ / "victim.log");
  std::this_thread::sleep_for(500ms);
  victim.kill9();
  ASSERT_TRUE(eventually([&] { return inbox.size() == 1; }, 5s));
  EXPECT_EQ(inbox.messages[0].payload, "gone");
}

}  // namespace
}  // namespace flotilla::sync
