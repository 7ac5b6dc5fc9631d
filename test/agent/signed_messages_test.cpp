// The agent's check of hub signatures (--hub-public-key, sync/signed.hpp): what it drops and
// counts, what it applies, and a key rotation remembered across an agent restart.
#include <gtest/gtest.h>

#include "common/ed25519.hpp"
#include "sync/signed.hpp"
#include "test/agent/agent_fixture.hpp"

namespace flotilla::agent {
namespace {

using testing::process_spec;
using testing::snapshot;

ed25519::PrivateKey new_key() {
  auto pair = ed25519::generate();
  return *ed25519::PrivateKey::from_pem(pair->private_pem);
}

class SignedTest : public testing::AgentFixture {
 protected:
  void SetUp() override {
    AgentFixture::SetUp();
    config_.hub_public_keys = {hub_key_.public_key()};
  }
  void send_sealed(const ed25519::PrivateKey& key, const v1::DesiredState& d,
                   const ed25519::PrivateKey* previous = nullptr) {
    const std::string topic = sync::down_topic(kNode, 16, "desired");
    auto sealed = sync::Signer::make(key, previous)->seal(topic, sync::encode(d));
    ASSERT_TRUE(hub_->publish(topic, *sealed, 1).ok());
    agent_->run_once();
  }
  uint64_t rejected() { return agent_->sync_client().counters().signature_rejections; }

  ed25519::PrivateKey hub_key_ = new_key();
};

TEST_F(SignedTest, OnlyWhatTheHubSignedIsAppliedAndTheRestIsCountedAndReported) {
  start_agent();
  send_desired(snapshot(kNode, 5, {process_spec("evil")}));            // unsigned
  send_sealed(new_key(), snapshot(kNode, 6, {process_spec("evil")}));  // another key
  EXPECT_EQ(rejected(), 2u);
  EXPECT_EQ(store_->meta().desired_revision, 0u);
  EXPECT_TRUE(driver_.running().empty());

  send_sealed(hub_key_, snapshot(kNode, 7, {process_spec("web")}));
  EXPECT_EQ(store_->meta().desired_revision, 7u);
  EXPECT_EQ(driver_.running(), std::vector<std::string>{"web-1"});
  EXPECT_EQ(rejected(), 2u);

  // A resync asks for a hello; unsigned, it is dropped like anything else.
  const size_t hellos = got<v1::Hello>("hello").size();
  send("resync", sync::encode(v1::Resync()));
  EXPECT_EQ(got<v1::Hello>("hello").size(), hellos);
  EXPECT_EQ(rejected(), 3u);

  // Heartbeats tell the hub how many were dropped.
  step(config_.sync.heartbeat.count());
  auto beats = got<v1::Heartbeat>("heartbeat");
  ASSERT_FALSE(beats.empty());
  EXPECT_EQ(beats.back().rejected_messages(), 3u);
}

TEST_F(SignedTest, ARotatedKeyIsRememberedAcrossARestartAndTheOldOneRefused) {
  start_agent();
  auto next = new_key();
  send_sealed(next, snapshot(kNode, 3, {process_spec("web")}), &hub_key_);
  EXPECT_EQ(store_->meta().desired_revision, 3u);
  EXPECT_EQ(agent_->sync_client().counters().key_rotations, 1u);
  EXPECT_EQ(agent_->trusted_hub_keys(), std::vector<std::string>{next.public_key().id()});

  // A new agent process with the same --hub-public-key (still naming the old key).
  agent_->shutdown();
  agent_.reset();
  start_agent();
  EXPECT_EQ(agent_->trusted_hub_keys(), std::vector<std::string>{next.public_key().id()});
  // Its Hello tells the hub which key it trusts.
  auto hellos = got<v1::Hello>("hello");
  ASSERT_FALSE(hellos.empty());
  ASSERT_EQ(hellos.back().hub_keys_size(), 1);
  EXPECT_EQ(hellos.back().hub_keys(0), next.public_key().id());
  send_sealed(hub_key_, snapshot(kNode, 4, {process_spec("old")}));
  EXPECT_EQ(store_->meta().desired_revision, 3u);
  EXPECT_EQ(rejected(), 1u);
  send_sealed(next, snapshot(kNode, 5, {process_spec("web"), process_spec("api")}));
  EXPECT_EQ(store_->meta().desired_revision, 5u);
}

TEST_F(SignedTest, WithoutAPinnedKeyASigningHubsMessagesAreStillUnderstood) {
  config_.hub_public_keys.clear();
  start_agent();
  send_sealed(hub_key_, snapshot(kNode, 2, {process_spec("web")}));
  EXPECT_EQ(store_->meta().desired_revision, 2u);
  send_desired(snapshot(kNode, 3, {process_spec("web"), process_spec("api")}));  // unsigned too
  EXPECT_EQ(store_->meta().desired_revision, 3u);
  EXPECT_EQ(rejected(), 0u);
}

}  // namespace
}  // namespace flotilla::agent
