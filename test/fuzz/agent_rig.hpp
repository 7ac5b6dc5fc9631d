// A whole agent for fuzzing: Agent with an in-memory store, FakeDriver and FakeClock, connected
// to a FakeBroker on which a "hub" client publishes down messages and records the agent's up
// messages. A second FakeBroker is the node's local device broker (the agent's device bridge),
// on which a "device" client publishes and records what the agent publishes to devices. One rig
// per fuzz input, so every input replays the same way.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/agent.hpp"
#include "sync/codec.hpp"
#include "sync/fake_transport.hpp"
#include "sync/topics.hpp"
#include "test/agent/fake_driver.hpp"
#include "test/fuzz/fuzz_check.hpp"

namespace flotilla::fuzz {

class AgentRig {
 public:
  static constexpr const char* kNode = "edge-1";
  static constexpr uint32_t kShards = sync::kDefaultShards;

  AgentRig() {
    config_.node = kNode;
    config_.mqtt_uri = "tcp://fake:1883";
    config_.data_dir = "/nonexistent/fuzz";  // only the real driver and main() use it
    config_.sync.cpu_millis = 4000;
    config_.sync.memory_bytes = 1 << 30;
    auto store = agent::Store::open(":memory:", kNode);
    FUZZ_CHECK(store.ok(), "cannot open the agent store: " + store.error().message());
    store_ = std::move(*store);
    hub_ = broker_.connect("flotilla-hub");
    hub_->set_handlers([this](sync::Message m) { up_.push_back(std::move(m)); }, [](bool) {});
    FUZZ_CHECK(hub_->subscribe(sync::shard_up_filter(sync::shard_of(kNode, kShards)), 1).ok(),
               "hub subscribe");
    FUZZ_CHECK(hub_->start().ok(), "hub start");
    device_ = local_broker_.connect("fuzz-device");
    device_->set_handlers([this](sync::Message m) { local_.push_back(std::move(m)); }, [](bool) {});
    FUZZ_CHECK(device_->subscribe("flotilla/local/devices/#", 1).ok(), "device subscribe");
    FUZZ_CHECK(device_->start().ok(), "device start");
    transport_ = broker_.connect("flotilla-agent-edge-1");
    devices_ = local_broker_.connect("flotilla-agent-edge-1-devices");
    agent_ = std::make_unique<agent::Agent>(config_, *store_, driver_, *transport_, clock_,
                                            "boot-1", devices_.get());
    auto started = agent_->start();
    FUZZ_CHECK(started.ok(), "agent start: " + (started ? "" : started.error().message()));
    agent_->run_once();
  }
  ~AgentRig() { agent_->shutdown(); }
  AgentRig(const AgentRig&) = delete;
  AgentRig& operator=(const AgentRig&) = delete;

  // Publishes as the hub; true when the broker took it (the agent gets it if subscribed).
  bool publish(const std::string& topic, std::string payload, bool retained = false) {
    auto st = retained ? hub_->publish_retained(topic, std::move(payload))
                       : hub_->publish(topic, std::move(payload), 1);
    return st.ok();
  }
  // Publishes as a device on the local broker; true when the broker took it.
  bool publish_local(const std::string& topic, std::string payload) {
    return device_->publish(topic, std::move(payload), 1).ok();
  }
  // What the agent published on the local broker since the last clear_up().
  const std::vector<sync::Message>& local_messages() const { return local_; }
  const agent::TwinSync& twins() const { return agent_->twins(); }

  void run_once() { agent_->run_once(); }
  void advance(Millis d) {
    clock_.advance(d);
    agent_->run_once();
  }
  void toggle_broker() {
    broker_.set_up(!broker_.up());
    agent_->run_once();
  }
  bool broker_up() const { return broker_.up(); }

  // Up messages of `kind` the agent published since the last take_up().
  template <typename M>
  std::vector<M> up(const std::string& kind) const {
    std::vector<M> out;
    for (const auto& m : up_) {
      auto t = sync::parse_topic(m.topic);
      FUZZ_CHECK(t.ok(), "the agent published on a bad topic '" + m.topic + "'");
      if (t->kind != kind) continue;
      auto msg = sync::decode<M>(m.payload);
      FUZZ_CHECK(msg.ok(), "the agent published an undecodable " + kind);
      out.push_back(*msg);
    }
    return out;
  }
  const std::vector<sync::Message>& up_messages() const { return up_; }
  void clear_up() {
    up_.clear();
    local_.clear();
  }

  agent::testing::FakeDriver& driver() { return driver_; }
  agent::Store& store() { return *store_; }
  const agent::SyncClient& sync() const { return agent_->sync_client(); }

 private:
  agent::AgentConfig config_;
  FakeClock clock_;
  agent::testing::FakeDriver driver_;
  sync::FakeBroker broker_;
  std::unique_ptr<sync::FakeTransport> hub_;
  std::vector<sync::Message> up_;
  std::unique_ptr<agent::Store> store_;
  sync::FakeBroker local_broker_;
  std::unique_ptr<sync::FakeTransport> device_;
  std::vector<sync::Message> local_;
  std::unique_ptr<sync::FakeTransport> transport_;
  std::unique_ptr<sync::FakeTransport> devices_;
  std::unique_ptr<agent::Agent> agent_;
};

}  // namespace flotilla::fuzz
