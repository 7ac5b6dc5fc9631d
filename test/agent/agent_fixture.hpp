// A whole agent (store in a temp folder, FakeDriver, FakeClock) wired to a FakeBroker, with a
// "hub" client that records everything the agent publishes. Status publish completions can be
// held back to play a slow broker.
#pragma once

#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "agent/agent.hpp"
#include "sync/codec.hpp"
#include "sync/fake_transport.hpp"
#include "sync/topics.hpp"
#include "test/agent/fake_driver.hpp"
#include "test/agent/specs.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::agent::testing {

// Forwards to a FakeTransport; while `hold` is set, completions of status publishes (or of
// `held_kind`) are kept until the test releases them.
class HoldingTransport final : public sync::Transport {
 public:
  explicit HoldingTransport(std::unique_ptr<sync::FakeTransport> inner)
      : inner_(std::move(inner)) {}
  void set_handlers(MessageHandler m, ConnectionHandler c) override {
    inner_->set_handlers(std::move(m), std::move(c));
  }
  Status start() override { return inner_->start(); }
  void stop() override { inner_->stop(); }
  bool connected() const override { return inner_->connected(); }
  Status subscribe(const std::string& f, int qos) override { return inner_->subscribe(f, qos); }
  Status unsubscribe(const std::string& f) override { return inner_->unsubscribe(f); }
  Status publish(const std::string& topic, std::string payload, int qos,
                 DoneHandler done) override {
    if (!hold || topic.find(held_kind) == std::string::npos) {
      return inner_->publish(topic, std::move(payload), qos, std::move(done));
    }
    return inner_->publish(topic, std::move(payload), qos,
                           [this, done](Status st) { held.emplace_back(done, std::move(st)); });
  }
  Status publish_retained(const std::string& topic, std::string payload) override {
    return inner_->publish_retained(topic, std::move(payload));
  }
  // Completes the oldest held publish (with its real outcome unless `fail`).
  void release_one(bool fail = false) {
    auto [done, st] = std::move(held.front());
    held.pop_front();
    if (done) done(fail ? Status(Error("connection lost")) : st);
  }
  void release_all(bool fail = false) {
    while (!held.empty()) release_one(fail);
  }
  sync::FakeTransport& inner() { return *inner_; }

  bool hold = false;
  std::string held_kind = "/up/status";  // which publishes `hold` holds
  std::deque<std::pair<DoneHandler, Status>> held;

 private:
  std::unique_ptr<sync::FakeTransport> inner_;
};

class AgentFixture : public ::testing::Test {
 protected:
  static constexpr const char* kNode = "edge-1";

  void SetUp() override {
    config_.node = kNode;
    config_.mqtt_uri = "tcp://fake:1883";
    config_.data_dir = dir_.path();
    config_.sync.labels = {{"zone", "north"}};
    config_.sync.taints = {{"dedicated", "gpu", "NoSchedule"}};
    config_.sync.cpu_millis = 4000;
    config_.sync.memory_bytes = 1 << 30;
    auto s = Store::open(dir_ / "agent.db", kNode);
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_ = std::move(*s);
    hub_ = broker_.connect("flotilla-hub");
    hub_->set_handlers([this](sync::Message m) { on_hub_message(m); }, [](bool) {});
    ASSERT_TRUE(hub_->subscribe(sync::shard_up_filter(sync::shard_of(kNode, 16)), 1).ok());
    ASSERT_TRUE(hub_->start().ok());
  }

  void TearDown() override {
    if (agent_) agent_->shutdown();
  }

  // Creates and starts the agent, and lets it handle its connection.
  void start_agent() {
    auto inner = broker_.connect("flotilla-agent-edge-1");
    inner->set_will(make_transport_options(config_, "boot-1").will.value());
    transport_ = std::make_unique<HoldingTransport>(std::move(inner));
    agent_ = std::make_unique<Agent>(config_, *store_, driver_, *transport_, clock_, "boot-1",
                                     device_transport_);
    ASSERT_TRUE(agent_->start().ok());
    agent_->run_once();
  }

  virtual void on_hub_message(const sync::Message& m) { received_.push_back(m); }

  void send(const std::string& kind, const std::string& payload) {
    ASSERT_TRUE(hub_->publish(sync::down_topic(kNode, 16, kind), payload, 1).ok());
    agent_->run_once();
  }
  void send_desired(const v1::DesiredState& d) { send("desired", sync::encode(d)); }

  // Advances the clock (by default one reconciler tick) and runs the agent's loop once.
  void step(int64_t ms = 200) {
    clock_.advance(Millis(ms));
    agent_->run_once();
  }

  // Everything of one kind the hub received, decoded.
  template <typename M>
  std::vector<M> got(const std::string& kind) {
    std::vector<M> out;
    for (const auto& m : received_) {
      auto t = sync::parse_topic(m.topic);
      if (t && t->kind == kind) out.push_back(*sync::decode<M>(m.payload));
    }
    return out;
  }
  std::vector<std::string> kinds() {
    std::vector<std::string> out;
    for (const auto& m : received_) out.push_back(sync::parse_topic(m.topic)->kind);
    return out;
  }

  flotilla::testing::TempDir dir_;
  AgentConfig config_;
  FakeClock clock_;
  FakeDriver driver_;
  sync::FakeBroker broker_;
  std::unique_ptr<sync::FakeTransport> hub_;
  std::vector<sync::Message> received_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<HoldingTransport> transport_;
  std::unique_ptr<Agent> agent_;
  sync::Transport* device_transport_ = nullptr;  // the device bridge's broker, if any
};

}  // namespace flotilla::agent::testing
