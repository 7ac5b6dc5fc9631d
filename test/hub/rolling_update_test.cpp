// Rolling updates end to end through the controller: spec.update decides which nodes get a new
// spec, and the next ones follow only as the updated instances report ready.
#include <gtest/gtest.h>

#include "test/hub/fake_agent.hpp"

namespace flotilla::hub {
namespace {

namespace pb = flotilla::v1;
using testing::FakeAgent;
using testing::HubHarness;

std::string web(const std::string& version, const std::string& update) {
  return "apiVersion: flotilla/v1\nkind: Workload\nmetadata: {name: web}\nspec:\n"
         "  type: process\n  placement: {everyNode: true}\n" +
         update + "  process: {command: [/bin/sleep, '1000'], env: {VERSION: '" + version + "'}}\n";
}

class RollingUpdateTest : public ::testing::Test {
 protected:
  void start(const std::string& update) {
    update_ = update;
    for (const char* n : {"n1", "n2", "n3", "n4"}) {
      agents_.push_back(std::make_unique<FakeAgent>(hub_.broker, n));
      agents_.back()->hello(0);
    }
    hub_.apply(web("1", update_));
    for (size_t i = 0; i < agents_.size(); ++i) report(i, /*ready=*/true);
  }
  // The spec hash the node is told to run now.
  std::string desired_hash(size_t i) {
    std::string hash;
    for (const auto& d : agents_[i]->desired) {
      if (d.snapshot()) hash.clear();
      for (const auto& u : d.upserts()) hash = u.spec_hash();
    }
    return hash;
  }
  // The agent acks what it got and reports its instance on the desired spec.
  void report(size_t i, bool ready) {
    agents_[i]->ack_last();
    pb::InstanceStatus s = testing::instance("web", "web-" + desired_hash(i).substr(0, 8),
                                             pb::PHASE_RUNNING, ++seq_[i]);
    s.set_spec_hash(desired_hash(i));
    s.set_ready(ready);
    agents_[i]->status({s}, /*full=*/true);
  }
  std::vector<size_t> on(const std::string& hash) {
    std::vector<size_t> out;
    for (size_t i = 0; i < agents_.size(); ++i)
      if (desired_hash(i) == hash) out.push_back(i);
    return out;
  }
  std::string new_hash() {
    auto w = hub_.controller->workload_view("web");
    return w && *w ? (**w)["status"]["specHash"].get<std::string>() : "";
  }
  std::string rollout() {
    auto w = hub_.controller->workload_view("web");
    return w && *w ? (**w)["status"].value("update", "") : "";
  }

  HubHarness hub_;
  std::vector<std::unique_ptr<FakeAgent>> agents_;
  std::map<size_t, uint64_t> seq_;
  std::string update_;
};

TEST_F(RollingUpdateTest, MaxUnavailableOneReplacesOneNodeAtATimeAsEachBecomesReady) {
  start("  update: {maxUnavailable: 1}\n");
  hub_.apply(web("2", update_));
  const std::string v2 = new_hash();
  ASSERT_EQ(on(v2), std::vector<size_t>{0}) << rollout();
  // Not ready yet: nothing more moves, however often it reports.
  report(0, false);
  report(0, false);
  EXPECT_EQ(on(v2).size(), 1u) << rollout();
  EXPECT_NE(rollout().find("1/4 updated"), std::string::npos) << rollout();
  report(0, true);
  EXPECT_EQ(on(v2), (std::vector<size_t>{0, 1})) << rollout();
  report(1, true);
  report(2, false);  // the old instance on n3 is not needed for the next step
  EXPECT_EQ(on(v2).size(), 3u) << rollout();
  report(2, true);
  report(3, true);
  EXPECT_EQ(on(v2).size(), 4u);
  report(3, true);
  EXPECT_EQ(rollout().rfind("complete", 0), 0u) << rollout();
}

TEST_F(RollingUpdateTest, PartitionKeepsTheLastNodesOnTheOldSpec) {
  start("  update: {maxUnavailable: 4, partition: 1}\n");
  const std::string v1 = new_hash();
  hub_.apply(web("2", update_));
  const std::string v2 = new_hash();
  EXPECT_EQ(on(v2), (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(on(v1), (std::vector<size_t>{3}));
  for (size_t i = 0; i < 4; ++i) report(i, true);
  EXPECT_EQ(on(v1), (std::vector<size_t>{3})) << rollout();
  EXPECT_NE(rollout().find("1 held by partition"), std::string::npos) << rollout();
}

TEST_F(RollingUpdateTest, ACanaryWaveWaitsForReadinessBeforeTheRest) {
  start("  update: {maxUnavailable: 4, waves: [1]}\n");
  hub_.apply(web("2", update_));
  const std::string v2 = new_hash();
  ASSERT_EQ(on(v2), std::vector<size_t>{0}) << rollout();
  report(0, false);
  EXPECT_EQ(on(v2).size(), 1u) << rollout();
  report(0, true);
  EXPECT_EQ(on(v2).size(), 4u) << rollout();
}

TEST_F(RollingUpdateTest, WithoutAnUpdatePolicyEveryNodeGetsTheNewSpecAtOnce) {
  start("");
  auto r = hub_.controller->apply(testing::manifests(web("2", "")), /*force=*/true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(on(new_hash()).size(), 4u);
  EXPECT_EQ(rollout(), "");
}

TEST_F(RollingUpdateTest, TheGuardLetsARollingUpdatePassThatAReplaceAllWouldNot) {
  start("  update: {maxUnavailable: 1}\n");
  auto rolling = hub_.controller->apply(testing::manifests(web("2", update_)));
  ASSERT_TRUE(rolling.ok());
  EXPECT_TRUE(rolling->refused.empty()) << rolling->refused;
  auto all_at_once = hub_.controller->apply(testing::manifests(web("3", "")));
  ASSERT_TRUE(all_at_once.ok());
  EXPECT_FALSE(all_at_once->refused.empty());
}

}  // namespace
}  // namespace flotilla::hub
