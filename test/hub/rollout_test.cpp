#include "cloud-hub/rollout.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace flotilla::hub {
namespace {

using Names = std::set<std::string>;

RolloutNode old_node(const std::string& name, bool ready = true) {
  return {name, false, ready, false};
}
RolloutNode updated_node(const std::string& name, bool ready) { return {name, true, ready, false}; }
RolloutNode fresh_node(const std::string& name) { return {name, false, false, true}; }

// Nodes n00, n01, ... all old and ready.
std::vector<RolloutNode> old_fleet(int count) {
  std::vector<RolloutNode> out;
  for (int i = 0; i < count; ++i) {
    out.push_back(old_node((i < 10 ? "n0" : "n") + std::to_string(i)));
  }
  return out;
}

// Marks `names` updated with readiness `ready`.
void set_updated(std::vector<RolloutNode>& nodes, const Names& names, bool ready) {
  for (auto& n : nodes) {
    if (names.count(n.node) > 0) {
      n.updated = true;
      n.ready = ready;
    }
  }
}

RolloutPolicy policy(CountOrPercent max_unavailable, int64_t partition = 0,
                     std::vector<CountOrPercent> waves = {}) {
  return {max_unavailable, partition, std::move(waves)};
}
constexpr CountOrPercent kAll{100, true};

TEST(RolloutTest, ResolvesCountsAndPercentages) {
  EXPECT_EQ(resolve_max_unavailable({25, true}, 10), 2);  // rounded down
  EXPECT_EQ(resolve_max_unavailable({25, true}, 3), 1);   // at least 1
  EXPECT_EQ(resolve_max_unavailable({25, true}, 0), 1);
  EXPECT_EQ(resolve_max_unavailable({3, false}, 10), 3);
  EXPECT_EQ(resolve_wave({10, true}, 5), 1);  // rounded up
  EXPECT_EQ(resolve_wave({100, true}, 7), 7);
  EXPECT_EQ(resolve_wave({50, false}, 10), 10);  // at most the whole
  EXPECT_EQ(resolve_wave({1, true}, 0), 0);
}

TEST(RolloutTest, DefaultPolicyReplacesAQuarterAtATimeInNameOrder) {
  auto nodes = old_fleet(8);
  std::reverse(nodes.begin(), nodes.end());
  RolloutPlan plan = plan_rollout(RolloutPolicy{}, nodes);
  EXPECT_EQ(plan.update_now, (Names{"n00", "n01"}));
  EXPECT_EQ(plan.max_unavailable, 2);
  EXPECT_FALSE(plan.complete);
  EXPECT_EQ(plan.status, "rolling: 2/8 updated, 0 ready, updating 2");
}

TEST(RolloutTest, NeverMoreUnavailableThanMaxUnavailable) {
  auto nodes = old_fleet(8);
  set_updated(nodes, {"n00", "n01"}, false);
  RolloutPlan plan = plan_rollout(RolloutPolicy{}, nodes);
  EXPECT_TRUE(plan.update_now.empty());
  EXPECT_EQ(plan.unavailable, 2);
  EXPECT_EQ(plan.status,
            "rolling: 2/8 updated, 0 ready, waiting for readiness: 2 unavailable, "
            "maxUnavailable 2");
  // One becomes ready: one more may go.
  set_updated(nodes, {"n00"}, true);
  plan = plan_rollout(RolloutPolicy{}, nodes);
  EXPECT_EQ(plan.update_now, (Names{"n02"}));
  EXPECT_EQ(plan.status, "rolling: 3/8 updated, 1 ready, updating 1");
}

TEST(RolloutTest, NotReadyOldInstancesUseTheBudgetButCostNothingToReplace) {
  auto nodes = old_fleet(6);
  nodes[5].ready = false;  // n05: down on the old spec
  RolloutPlan plan = plan_rollout(policy({2, false}), nodes);
  // Budget 2 - 1 unavailable = 1 ready instance; n05 is replaced on top, for free.
  EXPECT_EQ(plan.update_now, (Names{"n00", "n05"}));
  EXPECT_EQ(plan.unavailable, 1);
}

TEST(RolloutTest, AFixForACrashingSpecRollsOutWhenEverythingIsDown) {
  auto nodes = old_fleet(4);
  for (auto& n : nodes) n.ready = false;
  RolloutPlan plan = plan_rollout(policy({1, false}), nodes);
  EXPECT_EQ(plan.update_now, (Names{"n00", "n01", "n02", "n03"}));
  // With a canary wave, only the canary goes first.
  plan = plan_rollout(policy({1, false}, 0, {{1, false}}), nodes);
  EXPECT_EQ(plan.update_now, (Names{"n00"}));
}

TEST(RolloutTest, FreshPlacementsAreNotGatedButCountAsUnavailable) {
  auto nodes = old_fleet(3);
  nodes.push_back(fresh_node("n08"));
  nodes.push_back(fresh_node("n09"));
  // Held by the partition, beyond the first wave and the budget: they start anyway.
  RolloutPlan plan = plan_rollout(policy({1, false}, 5, {{1, false}}), nodes);
  EXPECT_EQ(plan.update_now, (Names{"n08", "n09"}));
  EXPECT_EQ(plan.held, 3);
  // Without a partition: they use up the budget, so no old instance is replaced yet.
  plan = plan_rollout(policy({1, false}), nodes);
  EXPECT_EQ(plan.update_now, (Names{"n08", "n09"}));
  EXPECT_EQ(plan.unavailable, 2);
  EXPECT_EQ(plan.status, "rolling: 2/5 updated, 0 ready, updating 2");
  // A node both updated and flagged fresh is simply updated.
  plan = plan_rollout(RolloutPolicy{}, {{"a", true, true, true}});
  EXPECT_TRUE(plan.update_now.empty());
  EXPECT_TRUE(plan.complete);
}

TEST(RolloutTest, PartitionKeepsTheLastNodesInNameOrder) {
  auto nodes = old_fleet(5);
  std::swap(nodes[0], nodes[4]);
  RolloutPlan plan = plan_rollout(policy(kAll, 2), nodes);
  EXPECT_EQ(plan.update_now, (Names{"n00", "n01", "n02"}));
  EXPECT_EQ(plan.held, 2);
  set_updated(nodes, {"n00", "n01", "n02"}, true);
  plan = plan_rollout(policy(kAll, 2), nodes);
  EXPECT_TRUE(plan.update_now.empty());
  EXPECT_TRUE(plan.complete);
  EXPECT_EQ(plan.status, "complete: 3/5 updated, 3 ready, 2 held by partition");
  // Lowering the partition releases the next one from the end.
  plan = plan_rollout(policy(kAll, 1), nodes);
  EXPECT_EQ(plan.update_now, (Names{"n03"}));
}

TEST(RolloutTest, RaisingThePartitionNeverRollsBack) {
  auto nodes = old_fleet(5);
  set_updated(nodes, {"n03", "n04"}, true);
  RolloutPlan plan = plan_rollout(policy(kAll, 3), nodes);
  EXPECT_EQ(plan.update_now, (Names{"n00", "n01"}));  // n02 held, n03/n04 stay updated
  EXPECT_EQ(plan.held, 1);
  EXPECT_EQ(plan.updated, 4);
}

TEST(RolloutTest, APartitionOverTheFleetHoldsEverything) {
  RolloutPlan plan = plan_rollout(policy(kAll, 10), old_fleet(3));
  EXPECT_TRUE(plan.update_now.empty());
  EXPECT_TRUE(plan.complete);
  EXPECT_EQ(plan.waves, 0);
  EXPECT_EQ(plan.status, "complete: 0/3 updated, 0 ready, 3 held by partition");
}

TEST(RolloutTest, EachWaveWaitsForTheEarlierOnesToBeReady) {
  const RolloutPolicy p = policy(kAll, 0, {{1, false}, {50, true}, {100, true}});
  auto nodes = old_fleet(10);
  RolloutPlan plan = plan_rollout(p, nodes);
  EXPECT_EQ(plan.update_now, (Names{"n00"}));
  EXPECT_EQ(plan.status, "wave 1/3: 1/10 updated, 0 ready, updating 1");

  set_updated(nodes, {"n00"}, false);
  plan = plan_rollout(p, nodes);
  EXPECT_TRUE(plan.update_now.empty());
  EXPECT_EQ(plan.status, "wave 1/3: 1/10 updated, 0 ready, waiting for readiness");

  set_updated(nodes, {"n00"}, true);
  plan = plan_rollout(p, nodes);
  EXPECT_EQ(plan.update_now, (Names{"n01", "n02", "n03", "n04"}));
  EXPECT_EQ(plan.status, "wave 2/3: 5/10 updated, 1 ready, updating 4");

  set_updated(nodes, {"n01", "n02", "n03"}, true);
  set_updated(nodes, {"n04"}, false);
  plan = plan_rollout(p, nodes);
  EXPECT_TRUE(plan.update_now.empty());
  EXPECT_EQ(plan.wave, 2);
  EXPECT_EQ(plan.status, "wave 2/3: 5/10 updated, 4 ready, waiting for readiness");

  set_updated(nodes, {"n04"}, true);
  plan = plan_rollout(p, nodes);
  EXPECT_EQ(plan.update_now.size(), 5u);
  EXPECT_EQ(plan.wave, 3);

  set_updated(nodes, plan.update_now, true);
  plan = plan_rollout(p, nodes);
  EXPECT_TRUE(plan.complete);
  EXPECT_EQ(plan.status, "complete: 10/10 updated, 10 ready");
}

TEST(RolloutTest, AFallenCanaryHoldsTheNextWaveBackButNotTheCurrentOne) {
  const RolloutPolicy p = policy(kAll, 0, {{2, false}, {4, false}});
  auto nodes = old_fleet(8);
  // Wave 2 under way: two ready instances on the new spec release it, whichever they are.
  set_updated(nodes, {"n00", "n01", "n02"}, true);
  set_updated(nodes, {"n00"}, false);
  RolloutPlan plan = plan_rollout(p, nodes);
  EXPECT_EQ(plan.update_now, (Names{"n03"}));
  EXPECT_EQ(plan.wave, 2);
  // Only one ready left: not even wave 2 may grow.
  set_updated(nodes, {"n01"}, false);
  plan = plan_rollout(p, nodes);
  EXPECT_TRUE(plan.update_now.empty());
  EXPECT_EQ(plan.status, "wave 1/3: 3/8 updated, 1 ready, waiting for readiness");
}

TEST(RolloutTest, TheBudgetPacesAReleasedWave) {
  RolloutPlan plan = plan_rollout(policy({2, false}, 0, {{50, true}}), old_fleet(10));
  EXPECT_EQ(plan.update_now, (Names{"n00", "n01"}));
  EXPECT_EQ(plan.waves, 2);  // the final wave of all is implied
  EXPECT_EQ(plan.status, "wave 1/2: 2/10 updated, 0 ready, updating 2");
}

TEST(RolloutTest, WavesMixCountsAndPercentagesAndSkipEmptyOnes) {
  // 5, then 10% of 20 = 2 (taken as 5), then all: two waves.
  const RolloutPolicy p = policy(kAll, 0, {{5, false}, {10, true}, {100, true}});
  RolloutPlan plan = plan_rollout(p, old_fleet(20));
  EXPECT_EQ(plan.update_now.size(), 5u);
  EXPECT_EQ(plan.waves, 2);
  // The partition caps the waves: 1, then 50% of 10 = 5 = all it leaves updatable.
  plan = plan_rollout(policy(kAll, 5, {{1, false}, {50, true}, {100, true}}), old_fleet(10));
  EXPECT_EQ(plan.waves, 2);
  EXPECT_EQ(plan.status, "wave 1/2: 1/10 updated, 0 ready, 5 held by partition, updating 1");
}

TEST(RolloutTest, FreshPlacementsAreCanariesToo) {
  auto nodes = old_fleet(8);
  nodes.push_back(fresh_node("x1"));
  nodes.push_back(fresh_node("x2"));
  const RolloutPolicy p = policy(kAll, 0, {{1, false}});
  RolloutPlan plan = plan_rollout(p, nodes);
  EXPECT_EQ(plan.update_now, (Names{"x1", "x2"}));  // already past wave 1: no old one goes
  EXPECT_EQ(plan.status, "wave 1/2: 2/10 updated, 0 ready, updating 2");
  nodes[8] = updated_node("x1", true);
  nodes[9] = updated_node("x2", false);
  plan = plan_rollout(p, nodes);
  EXPECT_EQ(plan.update_now.size(), 8u);
}

TEST(RolloutTest, ACanaryIsPickedAmongReadyInstancesFirst) {
  std::vector<RolloutNode> nodes = {old_node("a", false), old_node("b"), old_node("c")};
  RolloutPlan plan = plan_rollout(policy(kAll, 0, {{1, false}}), nodes);
  EXPECT_EQ(plan.update_now, (Names{"b"}));
}

TEST(RolloutTest, DeterministicWhateverTheInputOrderAndRepeats) {
  auto nodes = old_fleet(12);
  set_updated(nodes, {"n03", "n07"}, true);
  RolloutPlan first = plan_rollout(RolloutPolicy{}, nodes);
  std::reverse(nodes.begin(), nodes.end());
  nodes.push_back(old_node("n03"));  // a repeated name counts once (its first entry)
  RolloutPlan again = plan_rollout(RolloutPolicy{}, nodes);
  EXPECT_EQ(first.update_now, again.update_now);
  EXPECT_EQ(first.status, again.status);
  EXPECT_EQ(again.total, 12);
  EXPECT_EQ(first.update_now, (Names{"n00", "n01", "n02"}));
}

TEST(RolloutTest, CompleteOnlyWhenEveryUpdatedInstanceIsReady) {
  std::vector<RolloutNode> nodes = {updated_node("a", true), updated_node("b", false)};
  RolloutPlan plan = plan_rollout(RolloutPolicy{}, nodes);
  EXPECT_FALSE(plan.complete);
  EXPECT_EQ(plan.status, "rolling: 2/2 updated, 1 ready, waiting for readiness");
  plan = plan_rollout(RolloutPolicy{}, {});
  EXPECT_TRUE(plan.complete);
  EXPECT_EQ(plan.status, "complete: 0/0 updated, 0 ready");
}

}  // namespace
}  // namespace flotilla::hub
