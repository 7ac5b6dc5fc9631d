// Apply, update and delete a process workload across three real agents.
#include <gtest/gtest.h>

#include <set>

#include "test/integration/fleet.hpp"

namespace flotilla::testing {
namespace {

const std::vector<std::string> kNodes = {"n1", "n2", "n3"};

class WalkingSkeleton : public ::testing::Test {
 protected:
  void SetUp() override {
    fleet_.start_hub();
    for (const auto& n : kNodes) fleet_.start_agent(n, "site=lab,role=edge");
    ASSERT_TRUE(eventually([&] { return fleet_.all_ready(kNodes); }, 15s))
        << "nodes never became Ready";
  }
  Fleet fleet_;
};

TEST_F(WalkingSkeleton, ApplyRunsOneInstancePerNodeAndReportsItRunning) {
  RunResult r = fleet_.apply(sleeper_manifest("sleeper"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return fleet_.running_everywhere("sleeper", kNodes); }, 15s))
      << fleet_.get("workload", "sleeper").dump(2);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  std::cout << "apply -> 3 instances Running reported: " << took.count() << " ms\n";

  json w = fleet_.get("workload", "sleeper");
  EXPECT_EQ(w["status"]["desiredInstances"], 3);
  EXPECT_EQ(w["status"]["readyInstances"], 3);
  // The pids the hub reports are the real, live processes.
  for (const auto& [node, inst] : fleet_.instances("sleeper")) {
    auto pids = fleet_.workload_pids(node, "sleeper");
    ASSERT_EQ(pids.size(), 1u) << node;
    auto shims = fleet_.shim_pids(node, "sleeper");
    ASSERT_EQ(shims.size(), 1u) << node;
    int64_t reported = inst.value("pid", int64_t{0});
    EXPECT_TRUE(reported == pids[0] || reported == shims[0]) << node << " reported " << reported;
  }
  // The table form lists it too.
  RunResult table = fleet_.flotctl({"get", "workloads"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find("sleeper"), std::string::npos) << table.out;
  RunResult nodes = fleet_.flotctl({"get", "nodes"});
  EXPECT_NE(nodes.out.find("n3"), std::string::npos) << nodes.out;
}

TEST_F(WalkingSkeleton, SpecChangeReplacesInstancesAndDeleteStopsThemEverywhere) {
  ASSERT_EQ(fleet_.apply(sleeper_manifest("sleeper", "1")).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return fleet_.running_everywhere("sleeper", kNodes); }, 15s));
  std::set<pid_t> old_pids;
  for (const auto& n : kNodes) old_pids.insert(fleet_.workload_pids(n, "sleeper")[0]);
  std::string old_hash = fleet_.instances("sleeper").begin()->second.value("specHash", "");

  // A label-only change must not replace anything.
  std::string relabelled = sleeper_manifest("sleeper", "1");
  relabelled.replace(relabelled.find("metadata:\n"), 10, "metadata:\n  labels:\n    tier: gold\n");
  ASSERT_EQ(fleet_.apply(relabelled).exit_code, 0);

  // A spec change replaces all three running instances: the blast-radius guard holds it back
  // and nothing is replaced until it is forced.
  RunResult held = fleet_.apply(sleeper_manifest("sleeper", "2"));
  EXPECT_EQ(held.exit_code, 1);
  EXPECT_NE(held.err.find("refused: this apply stops 3 of 3 running instances (100%)"),
            std::string::npos)
      << held.err;
  EXPECT_EQ(fleet_.get("workload", "sleeper")["status"].value("specHash", ""), old_hash);
  ASSERT_EQ(fleet_.apply_forced(sleeper_manifest("sleeper", "2")).exit_code, 0);
  ASSERT_TRUE(eventually(
      [&] {
        if (!fleet_.running_everywhere("sleeper", kNodes)) return false;
        for (const auto& [node, inst] : fleet_.instances("sleeper"))
          if (inst.value("specHash", "") == old_hash) return false;
        return true;
      },
      20s))
      << fleet_.get("workload", "sleeper").dump(2);
  for (pid_t p : old_pids) EXPECT_FALSE(pid_alive(p)) << "old instance " << p << " still alive";
  for (const auto& n : kNodes) {
    auto pids = fleet_.workload_pids(n, "sleeper");
    ASSERT_EQ(pids.size(), 1u);
    EXPECT_EQ(old_pids.count(pids[0]), 0u) << "instance on " << n << " was not replaced";
  }

  RunResult del = fleet_.flotctl({"delete", "workload", "sleeper", "--force"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  EXPECT_TRUE(eventually(
      [&] {
        for (const auto& n : kNodes)
          if (!fleet_.workload_pids(n, "sleeper").empty() ||
              !fleet_.shim_pids(n, "sleeper").empty())
            return false;
        return true;
      },
      15s))
      << "instances still running after delete";
  EXPECT_NE(fleet_.flotctl({"get", "workload", "sleeper"}).exit_code, 0);
}

TEST_F(WalkingSkeleton, ReplicasLandOnSelectedNodesOnly) {
  fleet_.start_agent("gw1", "site=lab,role=gateway");
  ASSERT_TRUE(eventually([&] { return fleet_.node_state("gw1") == "Ready"; }, 15s));
  std::string m = sleeper_manifest(
      "picky", "1", "replicas: 2\n  selector:\n    matchLabels:\n      role: gateway");
  ASSERT_EQ(fleet_.apply(m).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return fleet_.running_everywhere("picky", {"gw1"}); }, 15s))
      << fleet_.get("workload", "picky").dump(2);
  json w = fleet_.get("workload", "picky");
  EXPECT_EQ(w["status"]["desiredInstances"], 2);
  EXPECT_EQ(w["status"]["readyInstances"], 1);
  EXPECT_EQ(w["status"]["pending"], 1);
  EXPECT_NE(w["status"].value("pendingReason", "").find("selector"), std::string::npos)
      << w["status"].dump();
  for (const auto& n : kNodes) EXPECT_TRUE(fleet_.workload_pids(n, "picky").empty()) << n;
}

}  // namespace
}  // namespace flotilla::testing
