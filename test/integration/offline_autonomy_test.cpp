// Edge autonomy: with the broker down, agents keep workloads running, restart crashed ones and,
// after their own kill -9, restore them from their SQLite cache -- no duplicates, no orphans.
#include <signal.h>

#include <gtest/gtest.h>

#include <map>

#include "test/integration/fleet.hpp"

namespace flotilla::testing {
namespace {

const std::vector<std::string> kNodes = {"n1", "n2", "n3"};
// The production default heartbeat (5 s): reconnecting through Paho C after an outage takes
// about a second by itself (its network thread sends CONNECT about a second after the TCP
// connection opens), so "Ready within one heartbeat of the broker's return" is checked at the
// real period, not the 300 ms other tests use.
constexpr auto kOfflineHeartbeat = 5000ms;
constexpr auto kOfflineNodeTimeout = 8000ms;

TEST(OfflineAutonomy, WorkloadsSurviveBrokerOutageCrashesAndAgentKill9) {
  Fleet fleet(kOfflineHeartbeat, kOfflineNodeTimeout);
  fleet.start_hub();
  for (const auto& n : kNodes) fleet.start_agent(n);
  ASSERT_TRUE(eventually([&] { return fleet.all_ready(kNodes); }, 15s));
  ASSERT_EQ(fleet.apply(sleeper_manifest("sleeper")).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return fleet.running_everywhere("sleeper", kNodes); }, 15s))
      << fleet.get("workload", "sleeper").dump(2);
  std::map<std::string, pid_t> pid;
  for (const auto& n : kNodes) pid[n] = fleet.workload_pids(n, "sleeper")[0];

  // 1. The broker goes away: nothing stops.
  fleet.broker().stop();
  std::this_thread::sleep_for(kOfflineHeartbeat);
  for (const auto& n : kNodes) EXPECT_TRUE(pid_alive(pid[n])) << n;

  // 2. An instance crashes while offline: its agent restarts it.
  ::kill(pid["n1"], SIGKILL);
  ASSERT_TRUE(eventually(
      [&] {
        auto now = fleet.workload_pids("n1", "sleeper");
        return now.size() == 1 && now[0] != pid["n1"];
      },
      10s))
      << "n1's instance was not restarted while offline";
  pid["n1"] = fleet.workload_pids("n1", "sleeper")[0];

  // 3. kill -9 an agent and start it again, broker still down: the running instance is adopted.
  fleet.kill9_agent("n2");
  std::this_thread::sleep_for(500ms);
  fleet.start_agent("n2");
  // 4. kill -9 another agent, and its instance while the agent is down: restored from cache.
  fleet.kill9_agent("n3");
  ::kill(pid["n3"], SIGKILL);
  fleet.start_agent("n3");
  ASSERT_TRUE(eventually(
      [&] {
        auto now = fleet.workload_pids("n3", "sleeper");
        return now.size() == 1 && now[0] != pid["n3"];
      },
      10s))
      << "n3's instance was not restored from the cache";
  // Give the restarted agents time to do anything wrong (a duplicate launch, a stray kill).
  std::this_thread::sleep_for(2s);
  ASSERT_TRUE(fleet.agent_running("n2"));
  ASSERT_TRUE(fleet.agent_running("n3"));
  EXPECT_EQ(fleet.workload_pids("n2", "sleeper"), std::vector<pid_t>{pid["n2"]})
      << "n2's instance was not adopted (duplicate or restarted)";
  for (const auto& n : kNodes) {
    EXPECT_EQ(fleet.workload_pids(n, "sleeper").size(), 1u) << n << ": duplicate or missing";
    EXPECT_EQ(fleet.shim_pids(n, "sleeper").size(), 1u) << n << ": orphaned supervisor";
  }
  pid["n3"] = fleet.workload_pids("n3", "sleeper")[0];

  // 5. The broker returns: every node Ready with fresh status within one heartbeat period
  //    (agents' reconnect backoff is capped at one heartbeat).
  ASSERT_TRUE(fleet.broker().start()) << fleet.broker().log();
  auto back = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually(
      [&] {
        if (!fleet.all_ready(kNodes)) return false;
        for (const auto& [node, inst] : fleet.instances("sleeper")) {
          int64_t reported = inst.value("pid", int64_t{0});
          auto shims = fleet.shim_pids(node, "sleeper");
          bool fresh = reported == pid[node] || (!shims.empty() && reported == shims[0]);
          if (inst.value("phase", "") != "Running" || !fresh) return false;
        }
        return fleet.instances("sleeper").size() == 3;
      },
      kOfflineHeartbeat))
      << fleet.get("workload", "sleeper")["status"].dump(2) << fleet.get("nodes").dump(2);
  std::cout << "broker back -> all Ready with fresh status: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - back)
                   .count()
            << " ms (heartbeat " << kOfflineHeartbeat.count() << " ms)\n";

  // 6. A node that stays away shows NotReady and keeps its workloads.
  fleet.stop_agent("n3");
  ASSERT_TRUE(
      eventually([&] { return fleet.node_state("n3") == "NotReady"; }, kOfflineNodeTimeout + 3s));
  std::this_thread::sleep_for(kOfflineHeartbeat);
  EXPECT_EQ(fleet.node_state("n1"), "Ready");
  EXPECT_EQ(fleet.instances("sleeper").count("n3"), 1u) << "n3's workload was moved or dropped";
  EXPECT_TRUE(pid_alive(pid["n3"])) << "n3's instance stopped with its agent";
  json w = fleet.get("workload", "sleeper");
  EXPECT_EQ(w["status"]["desiredInstances"], 3);
}

}  // namespace
}  // namespace flotilla::testing
