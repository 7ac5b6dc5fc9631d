#include "sync/fake_transport.hpp"

#include <gtest/gtest.h>

#include "sync/topics.hpp"

namespace flotilla::sync {
namespace {

TEST(FakeBroker, RoutesByFilterAndTracksConnection) {
  FakeBroker broker;
  auto hub = broker.connect("hub");
  auto agent = broker.connect("agent");
  std::vector<Message> got;
  std::vector<bool> agent_conn;
  hub->set_handlers([&](Message m) { got.push_back(std::move(m)); }, [](bool) {});
  agent->set_handlers([](Message) {}, [&](bool c) { agent_conn.push_back(c); });
  ASSERT_TRUE(hub->subscribe(shard_up_filter(shard_of("a", 16)), 1).ok());
  agent->set_will({up_topic("a", 16, "will"), "gone"});
  ASSERT_TRUE(hub->start().ok());
  ASSERT_TRUE(agent->start().ok());
  ASSERT_TRUE(agent->publish(up_topic("a", 16, "hello"), "hi", 1).ok());
  ASSERT_TRUE(agent->publish(down_topic("a", 16, "desired"), "not for hub", 1).ok());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "hi");

  agent->drop();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].payload, "gone");
  EXPECT_FALSE(agent->publish(up_topic("a", 16, "hello"), "lost", 1).ok());

  broker.set_up(false);
  EXPECT_FALSE(hub->connected());
  broker.set_up(true);
  EXPECT_TRUE(hub->connected());
  EXPECT_EQ(agent_conn, (std::vector<bool>{true, false}));
}

}  // namespace
}  // namespace flotilla::sync
