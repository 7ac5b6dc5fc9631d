// kill -9 of the hub in the middle of an apply leaves a consistent store; repeating works.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "test/integration/fleet.hpp"

namespace flotilla::testing {
namespace {

const std::vector<std::string> kNodes = {"n1", "n2"};
constexpr int kWorkloads = 25;

std::string many_workloads() {
  std::string out;
  for (int i = 0; i < kWorkloads; ++i) {
    if (i > 0) out += "---\n";
    out += sleeper_manifest("w" + std::to_string(i));
  }
  return out;
}

TEST(HubCrash, Kill9DuringApplyLeavesAllOrNothingAndReapplyConverges) {
  Fleet fleet;
  fleet.start_hub();
  for (const auto& n : kNodes) fleet.start_agent(n);
  ASSERT_TRUE(eventually(
      [&] { return fleet.node_state("n1") == "Ready" && fleet.node_state("n2") == "Ready"; }, 15s));

  std::string path = fleet.dir() / "many.yaml";
  std::string text = many_workloads();
  for (size_t at; (at = text.find("__FLEET__")) != std::string::npos;)
    text.replace(at, 9, fleet.dir().path());
  std::ofstream(path) << text;

  for (int delay_ms : {0, 5, 20, 60}) {
    ChildProcess apply;
    apply.start({FLOTCTL_BIN, "--hub", fleet.hub_url(), "apply", "-f", path},
                fleet.dir() / ("apply-" + std::to_string(delay_ms) + ".log"));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    fleet.kill9_hub();
    apply.wait_exit(10s);
    fleet.start_hub();
    json list = fleet.get("workloads");
    ASSERT_TRUE(list.contains("items")) << list.dump();
    size_t n = list["items"].size();
    // One transaction per apply: never a part of the file.
    EXPECT_TRUE(n == 0 || n == static_cast<size_t>(kWorkloads))
        << "after kill at " << delay_ms << " ms the hub holds " << n << " of " << kWorkloads;
  }

  RunResult again = fleet.flotctl({"apply", "-f", path});
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  ASSERT_TRUE(eventually(
      [&] {
        for (int i = 0; i < kWorkloads; ++i)
          if (!fleet.running_everywhere("w" + std::to_string(i), kNodes)) return false;
        return true;
      },
      60s))
      << fleet.get("workloads").dump(1);
  for (const auto& node : kNodes) {
    for (int i = 0; i < kWorkloads; ++i) {
      EXPECT_EQ(fleet.workload_pids(node, "w" + std::to_string(i)).size(), 1u) << node << " w" << i;
    }
  }
  // The hub also reports what really runs (status of every instance current), every node acked.
  EXPECT_EQ(fleet.wait_converged(many_versions("w", kWorkloads), kNodes, 30s), "");
}

// After a kill -9 the hub recovers from its store alone (nothing is applied again): agents that
// were in the middle of a sync end at the desired state, and the hub shows what really runs.
TEST(HubCrash, Kill9DuringSyncConvergesWithoutReapply) {
  const std::vector<std::string> nodes = {"n1", "n2", "n3"};
  constexpr int kCount = 20;
  Fleet fleet;
  fleet.start_hub();
  for (const auto& n : nodes) fleet.start_agent(n);
  ASSERT_TRUE(eventually([&] { return fleet.all_ready(nodes); }, 15s));

  // 1. Killed as soon as the apply committed: its desired states may or may not have left.
  RunResult r = fleet.apply(many_sleepers("w", kCount, "1"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  fleet.kill9_hub();
  fleet.start_hub();
  EXPECT_EQ(fleet.wait_converged(many_versions("w", kCount, "1"), nodes, 45s), "");

  // 2. Killed while the agents replace every instance; they finish and report while the hub is
  //    down, and it must learn all of it after its restart (the broker holds the hub's session;
  //    agents send a full status when they see the new hub).
  r = fleet.apply_forced(many_sleepers("w", kCount, "2"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto count_new = [&] {
    size_t n = 0;
    for (const auto& p : fleet.processes()) n += !p.shim && p.version == "2";
    return n;
  };
  // Every node has the new desired state once it runs a first new instance.
  ASSERT_TRUE(eventually(
      [&] {
        std::set<std::string> started;
        for (const auto& p : fleet.processes())
          if (!p.shim && p.version == "2") started.insert(p.node);
        return started.size() == nodes.size();
      },
      20s))
      << "not every node started replacing its instances";
  fleet.kill9_hub();
  EXPECT_TRUE(eventually([&] { return count_new() == nodes.size() * kCount; }, 45s))
      << "agents did not finish the replacement while the hub was down: " << count_new();
  fleet.start_hub();
  EXPECT_EQ(fleet.wait_converged(many_versions("w", kCount, "2"), nodes, 45s), "");
}

// Node state is a cache the agents rebuild: a shard database lost while the hub was down comes
// back from its nodes' resync, and in the meantime no placement moves for want of a node the hub
// merely forgot (a replica on a forgotten node would otherwise be started elsewhere).
TEST(HubCrash, LostShardDatabaseRecoversFromItsNodes) {
  std::vector<std::string> nodes;
  for (int i = 1; i <= 8; ++i) nodes.push_back("n" + std::to_string(i));
  Fleet fleet;
  fleet.start_hub();
  for (const auto& n : nodes) fleet.start_agent(n);
  ASSERT_TRUE(eventually([&] { return fleet.all_ready(nodes); }, 15s));
  ASSERT_EQ(
      fleet.apply(sleeper_manifest("all") + "---\n" + sleeper_manifest("rep", "1", "replicas: 4"))
          .exit_code,
      0);
  auto rep_nodes = [&] {
    std::set<std::string> out;
    json w = fleet.get("workload", "rep");
    for (const auto& n : w["status"]["nodes"]) out.insert(n.get<std::string>());
    return out;
  };
  ASSERT_TRUE(eventually(
      [&] {
        if (!fleet.running_everywhere("all", nodes)) return false;
        size_t running = 0;
        for (const auto& n : nodes) running += fleet.workload_pids(n, "rep").size();
        return running == 4 && fleet.get("workload", "rep")["status"]["readyInstances"] == 4;
      },
      30s))
      << fleet.get("workloads").dump(1);

  // The shard holding most of the nodes (the hub names each node's shard).
  std::map<int, std::vector<std::string>> by_shard;
  for (const auto& n : nodes) by_shard[fleet.get("node", n)["shard"].get<int>()].push_back(n);
  auto lost = std::max_element(by_shard.begin(), by_shard.end(), [](const auto& a, const auto& b) {
    return a.second.size() < b.second.size();
  });
  const std::set<std::string> placed_before = rep_nodes();
  std::map<std::string, std::vector<pid_t>> pids_before;
  for (const auto& n : nodes) {
    for (const char* w : {"all", "rep"}) pids_before[n + "/" + w] = fleet.workload_pids(n, w);
  }

  fleet.kill9_hub();
  char name[32];
  std::snprintf(name, sizeof(name), "shard-%02d.db", lost->first);
  int removed = 0;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    removed += std::filesystem::remove(std::filesystem::path(fleet.dir() / "hub") /
                                       (name + std::string(suffix)));
  }
  ASSERT_GE(removed, 1) << "no " << name << " in the hub's data folder";
  fleet.start_hub();

  // Its nodes register again, with their workloads, and the hub sees them running.
  ASSERT_TRUE(eventually(
      [&] {
        if (!fleet.all_ready(nodes)) return false;
        for (const auto& n : lost->second) {
          json node = fleet.get("node", n);
          if (node["workloads"].empty() || node.value("instances", 0) == 0) return false;
        }
        return fleet.get("workload", "rep")["status"]["readyInstances"] == 4 &&
               fleet.get("workload", "all")["status"]["readyInstances"] == nodes.size();
      },
      30s))
      << fleet.get("nodes").dump(1) << fleet.get("workloads").dump(1);
  // Nothing moved and nothing restarted: every process is the one from before.
  EXPECT_EQ(rep_nodes(), placed_before);
  for (const auto& n : nodes) {
    for (const char* w : {"all", "rep"}) {
      EXPECT_EQ(fleet.workload_pids(n, w), pids_before[n + "/" + w]) << n << " " << w;
    }
  }
  for (const auto& n : lost->second) {
    json node = fleet.get("node", n);
    std::set<std::string> want = {"all"};
    if (placed_before.count(n) > 0) want.insert("rep");
    std::set<std::string> have;
    for (const auto& w : node["workloads"]) have.insert(w.get<std::string>());
    EXPECT_EQ(have, want) << node.dump(1);
  }
  std::ifstream log(fleet.dir() / "hub.log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("every node of the rebuilt shards resynced"), std::string::npos)
      << "the hub did not wait for the lost shard's nodes (shard " << lost->first << ": "
      << lost->second.size() << " nodes)";
}

}  // namespace
}  // namespace flotilla::testing
