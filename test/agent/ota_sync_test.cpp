// OTA at the agent: UpdateAssignment on down/ota runs the updater (a file:// payload into image
// slots in the test folder), and UpdateReport on up/ota follows every saved step.
#include "agent/ota_sync.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "common/fs.hpp"
#include "common/sha256.hpp"
#include "ota/manifest.hpp"
#include "ota/signing.hpp"
#include "test/agent/agent_fixture.hpp"

namespace flotilla::agent {
namespace {

class OtaSyncTest : public testing::AgentFixture {
 protected:
  void SetUp() override {
    AgentFixture::SetUp();
    auto key = ota::generate_key();
    ASSERT_TRUE(key);
    key_ = *key;
    config_.ota.public_key_pem = key_.public_pem;
    config_.ota.image_slots_dir = dir_ / "slots";
    payload_ = std::string(200'000, 'p');
    ASSERT_TRUE(fs::write_atomic(dir_ / "payload.img", payload_));
  }

  v1::UpdateAssignment assignment(uint64_t generation, const std::string& version = "2.0") {
    ota::Manifest m;
    m.name = "fw";
    m.version = version;
    m.target = "image";
    m.sha256 = sha256_hex(payload_);
    m.size = payload_.size();
    v1::UpdateAssignment a;
    a.set_node(kNode);
    a.set_rollout("r1");
    a.set_generation(generation);
    a.set_manifest(ota::manifest_json(m));
    a.set_signature(*ota::sign(key_.private_pem, a.manifest()));
    a.set_payload_url("file://" + (dir_ / "payload.img"));
    return a;
  }

  // Runs the loop until the hub got a report in a final phase (at most ~10 s).
  std::vector<v1::UpdateReport> run_until_final() {
    for (int i = 0; i < 5000; ++i) {
      auto reports = got<v1::UpdateReport>("ota");
      if (!reports.empty() && reports.back().phase() >= v1::UPDATE_COMMITTED) return reports;
      step(20);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ADD_FAILURE() << "no final report";
    return got<v1::UpdateReport>("ota");
  }

  ota::KeyPair key_;
  std::string payload_;
};

TEST_F(OtaSyncTest, AnAssignmentRunsAndEveryStepIsReportedWithIncreasingSeq) {
  start_agent();
  send("ota", sync::encode(assignment(1)));
  auto reports = run_until_final();
  ASSERT_FALSE(reports.empty());
  std::vector<v1::UpdatePhase> phases;
  uint64_t seq = 0;
  for (const auto& r : reports) {
    EXPECT_GT(r.seq(), seq);
    seq = r.seq();
    EXPECT_EQ(r.node(), kNode);
    EXPECT_EQ(r.rollout(), "r1");
    EXPECT_EQ(r.generation(), 1u);
    if (phases.empty() || phases.back() != r.phase()) phases.push_back(r.phase());
  }
  std::vector<v1::UpdatePhase> want = {v1::UPDATE_DOWNLOADING,  v1::UPDATE_VERIFYING,
                                       v1::UPDATE_INSTALLING,   v1::UPDATE_SWITCHING,
                                       v1::UPDATE_HEALTH_CHECK, v1::UPDATE_COMMITTED};
  EXPECT_EQ(phases, want);
  EXPECT_EQ(reports.back().version(), "2.0");
  EXPECT_EQ(reports.back().running_version(), "2.0");
  EXPECT_EQ(reports.back().bytes_total(), payload_.size());
  EXPECT_EQ(*fs::read_file(dir_ / "slots/slot-b"), payload_);
}

// The current generation again changes nothing but is answered with the current state (a hub
// instance that took over the rollouts asks so); an older one is ignored silently.
TEST_F(OtaSyncTest, DuplicateAndOlderGenerationsChangeNothingAndTheDuplicateIsAnswered) {
  start_agent();
  send("ota", sync::encode(assignment(3)));
  run_until_final();
  const size_t before = got<v1::UpdateReport>("ota").size();
  send("ota", sync::encode(assignment(3, "9.0")));
  send("ota", sync::encode(assignment(2, "9.0")));
  for (int i = 0; i < 20; ++i) step(20);
  EXPECT_EQ(agent_->updater()->ignored_assignments(), 2u);
  const auto reports = got<v1::UpdateReport>("ota");
  ASSERT_EQ(reports.size(), before + 1);
  EXPECT_EQ(reports.back().generation(), 3u);
  EXPECT_EQ(reports.back().phase(), v1::UPDATE_COMMITTED);
  EXPECT_GT(reports.back().seq(), reports[before - 1].seq());
  EXPECT_EQ(agent_->updater()->state().version, "2.0");
}

TEST_F(OtaSyncTest, GarbageAndMisaddressedAssignmentsAreDroppedAndCounted) {
  start_agent();
  send("ota", "not a protobuf \xff\xff\xff");
  auto other = assignment(1);
  other.set_node("edge-2");
  send("ota", sync::encode(other));
  for (int i = 0; i < 10; ++i) step(20);
  EXPECT_EQ(agent_->ota()->counters().rejected_messages, 2u);
  EXPECT_EQ(agent_->updater()->state().phase, ota::Phase::kIdle);
  EXPECT_TRUE(got<v1::UpdateReport>("ota").empty());
}

TEST_F(OtaSyncTest, ABadSignatureIsReportedAsFailedAndNothingIsInstalled) {
  start_agent();
  auto a = assignment(1);
  auto other = ota::generate_key();
  a.set_signature(*ota::sign(other->private_pem, a.manifest()));
  send("ota", sync::encode(a));
  auto reports = run_until_final();
  ASSERT_FALSE(reports.empty());
  EXPECT_EQ(reports.back().phase(), v1::UPDATE_FAILED);
  EXPECT_NE(reports.back().message().find("signature"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "slots/active"));
}

TEST_F(OtaSyncTest, AReconnectSendsTheCurrentStateAgainWithANewerSeq) {
  start_agent();
  send("ota", sync::encode(assignment(1)));
  auto reports = run_until_final();
  const uint64_t last_seq = reports.back().seq();
  received_.clear();
  transport_->inner().drop();
  step(20);
  transport_->inner().reconnect();
  for (int i = 0; i < 5; ++i) step(20);
  auto again = got<v1::UpdateReport>("ota");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].phase(), v1::UPDATE_COMMITTED);
  EXPECT_GT(again[0].seq(), last_seq);
}

TEST_F(OtaSyncTest, TheUpdaterStateSurvivesAnAgentRestart) {
  start_agent();
  send("ota", sync::encode(assignment(1)));
  auto reports = run_until_final();
  agent_->shutdown();
  agent_.reset();
  received_.clear();
  start_agent();
  for (int i = 0; i < 5; ++i) step(20);
  auto again = got<v1::UpdateReport>("ota");
  ASSERT_FALSE(again.empty());
  EXPECT_EQ(again.back().phase(), v1::UPDATE_COMMITTED);
  EXPECT_EQ(again.back().attempts(), 0u);
  EXPECT_GT(again.back().seq(), reports.back().seq());
}

}  // namespace
}  // namespace flotilla::agent
