// The scheduler's rules end to end (docs/hub.md, "Scheduling"): eight real agents that differ in
// labels, taints, runtimes and pools; workloads applied with flotctl; the test checks where the
// hub places them (status.nodes), what it reports pending and why, and where the instances'
// processes really run.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "test/integration/fleet.hpp"

namespace flotilla::testing {
namespace {

using Nodes = std::set<std::string>;

constexpr auto kReady = 30s;   // eight agents starting on a loaded 2-core machine
constexpr auto kSettle = 20s;  // an apply (or a node change) until the instances run
// Lenient, so a node whose heartbeats a loaded machine delays does not drop out of a placement;
// the node this file stops is seen NotReady at once through its MQTT last will.
constexpr auto kNodeTimeout = 5s;

struct NodeSpec {
  std::string name;
  std::string labels;
  std::vector<std::string> args;  // --taints, --runtimes
};

std::string text(const Nodes& nodes) {
  std::string out;
  for (const auto& n : nodes) out += (out.empty() ? "" : ",") + n;
  return "{" + out + "}";
}

class Scheduling : public ::testing::Test {
 protected:
  void start(const std::vector<NodeSpec>& nodes) {
    fleet_.start_hub();
    for (const auto& n : nodes) {
      fleet_.start_agent(n.name, AgentOptions{.labels = n.labels, .args = n.args});
      all_.insert(n.name);
    }
    ASSERT_TRUE(eventually([&] { return ready_nodes() == all_; }, kReady))
        << "Ready: " << text(ready_nodes()) << " of " << text(all_);
  }

  // Nodes the hub shows Ready, from one node list.
  Nodes ready_nodes() {
    Nodes out;
    json list = fleet_.get("nodes");
    if (!list.contains("items")) return out;
    for (const auto& n : list["items"]) {
      if (n.value("state", "") == "Ready") out.insert(n.value("name", ""));
    }
    return out;
  }

  // Where the hub places `workload` (status.nodes).
  Nodes placed(const std::string& workload) {
    Nodes out;
    json w = fleet_.get("workload", workload);
    if (!w.is_object() || !w.contains("status")) return out;
    for (const auto& n : w["status"].value("nodes", json::array()))
      out.insert(n.get<std::string>());
    return out;
  }

  // The placement of `workload` once it spans `count` nodes (or, after kSettle, the last seen).
  Nodes wait_placed(const std::string& workload, size_t count) {
    Nodes nodes;
    eventually(
        [&] {
          nodes = placed(workload);
          return nodes.size() == count;
        },
        kSettle);
    return nodes;
  }

  // The pid of `workload`'s one process on `node`; 0 unless there is exactly one.
  pid_t pid_of(const std::string& node, const std::string& workload) {
    auto pids = fleet_.workload_pids(node, workload);
    return pids.size() == 1 ? pids[0] : 0;
  }

  json status(const std::string& workload) {
    json w = fleet_.get("workload", workload);
    return w.is_object() && w.contains("status") ? w["status"] : json::object();
  }

  // What differs between `want` and where `workload` runs: the hub's placement, the nodes whose
  // current instance the hub reports Running, and the live processes on every node of the fleet.
  std::string run_gaps(const std::string& workload, const Nodes& want) {
    std::string gaps;
    auto gap = [&](const std::string& what) { gaps += (gaps.empty() ? "" : "; ") + what; };
    json w = fleet_.get("workload", workload);
    if (!w.is_object() || !w.contains("status")) return "the hub does not list " + workload;
    Nodes hub_nodes, running;
    for (const auto& n : w["status"].value("nodes", json::array()))
      hub_nodes.insert(n.get<std::string>());
    for (const auto& inst : w["status"].value("instances", json::array())) {
      if (inst.value("phase", "") == "Running" && inst.value("current", false)) {
        running.insert(inst.value("node", ""));
      }
    }
    if (hub_nodes != want) gap("the hub places it on " + text(hub_nodes));
    if (running != want) gap("the hub reports it Running on " + text(running));
    std::map<std::string, int> procs;
    for (const auto& p : fleet_.processes()) {
      if (!p.shim && p.workload == workload) procs[p.node] += 1;
    }
    for (const auto& node : all_) {
      const int expected = want.count(node) > 0 ? 1 : 0;
      if (procs[node] != expected) {
        gap(node + " runs " + std::to_string(procs[node]) + " processes of it, want " +
            std::to_string(expected));
      }
    }
    return gaps.empty() ? "" : workload + " wanted on " + text(want) + ": " + gaps;
  }

  // Polls run_gaps() until it is empty or kSettle passes; returns its last answer.
  std::string wait_runs_on(const std::string& workload, const Nodes& want) {
    std::string gaps;
    eventually(
        [&] {
          gaps = run_gaps(workload, want);
          return gaps.empty();
        },
        kSettle);
    return gaps;
  }

  // Restarts `node`'s agent with other flags (its labels stay) and waits until the hub has
  // its hello: Ready, with the taints the flags give.
  void restart_with(const std::string& node, const std::vector<std::string>& args,
                    const std::string& taint_key) {
    fleet_.stop_agent(node);
    fleet_.start_agent(node, AgentOptions{.args = args});
    ASSERT_TRUE(eventually(
        [&] {
          json n = fleet_.get("node", node);
          if (!n.is_object() || n.value("state", "") != "Ready") return false;
          for (const auto& t : n.value("taints", json::array()))
            if (t.value("key", "") == taint_key) return true;
          return false;
        },
        kReady))
        << fleet_.get("node", node).dump(2);
  }

  Fleet fleet_{kHeartbeat, kNodeTimeout};
  Nodes all_;
};

// Sites for the spread test: three nodes in a, two in b, two in c (and one node without the
// label). Without spread, "least loaded, then by name" would crowd site a.
const std::map<std::string, std::string> kSite = {
    {"a1", "a"}, {"a2", "a"}, {"a3", "a"}, {"b1", "b"}, {"b2", "b"}, {"c1", "c"}, {"c2", "c"}};

std::map<std::string, int> per_site(const Nodes& nodes) {
  std::map<std::string, int> out;
  for (const auto& n : nodes) {
    auto it = kSite.find(n);
    out[it == kSite.end() ? "(no site)" : it->second] += 1;
  }
  return out;
}

std::string spread_sleeper(const std::string& name, int replicas) {
  return sleeper_manifest(
      name, "1",
      "replicas: " + std::to_string(replicas) + "\n  spread: {topologyKey: site, maxSkew: 1}");
}

TEST_F(Scheduling, SpreadPlacesReplicasEvenlyOverSites) {
  std::vector<NodeSpec> nodes;
  for (const auto& [name, site] : kSite) nodes.push_back({name, "site=" + site});
  nodes.push_back({"nosite", "role=edge"});
  ASSERT_NO_FATAL_FAILURE(start(nodes));

  // Six replicas over sites of 3, 2 and 2 nodes: two each, none on the unlabelled node.
  ASSERT_EQ(fleet_.apply(spread_sleeper("web", 6)).exit_code, 0);
  Nodes web = wait_placed("web", 6);
  ASSERT_EQ(web.size(), 6u) << text(web);
  EXPECT_EQ(wait_runs_on("web", web), "");
  EXPECT_EQ(per_site(web), (std::map<std::string, int>{{"a", 2}, {"b", 2}, {"c", 2}})) << text(web);
  EXPECT_EQ(status("web").value("pending", -1), 0) << status("web").dump();

  // A second spread workload, three replicas: one per site, whatever the first one uses.
  ASSERT_EQ(fleet_.apply(spread_sleeper("api", 3), "api.yaml").exit_code, 0);
  const Nodes api = wait_placed("api", 3);
  EXPECT_EQ(per_site(api), (std::map<std::string, int>{{"a", 1}, {"b", 1}, {"c", 1}})) << text(api);
  EXPECT_EQ(wait_runs_on("api", api), "");
  EXPECT_EQ(placed("web"), web) << "placing api moved web";

  // Eight replicas: b and c are full (one instance per node), so a takes its third; the node
  // without a site label is never used, and the eighth replica is pending for that reason.
  ASSERT_EQ(fleet_.apply(spread_sleeper("web", 8)).exit_code, 0);
  web = wait_placed("web", 7);
  EXPECT_EQ(per_site(web), (std::map<std::string, int>{{"a", 3}, {"b", 2}, {"c", 2}})) << text(web);
  json st = status("web");
  EXPECT_EQ(st.value("pending", -1), 1) << st.dump();
  EXPECT_NE(st.value("pendingReason", "").find("1 no label site"), std::string::npos) << st.dump();
  EXPECT_EQ(wait_runs_on("web", web), "");

  // Down to three: the most populated site loses one first, so one per site remains.
  RunResult shrink = fleet_.apply(spread_sleeper("web", 3));
  ASSERT_EQ(shrink.exit_code, 0) << shrink.err;
  web = wait_placed("web", 3);
  EXPECT_EQ(per_site(web), (std::map<std::string, int>{{"a", 1}, {"b", 1}, {"c", 1}})) << text(web);
  EXPECT_EQ(wait_runs_on("web", web), "");
  EXPECT_EQ(status("web").value("pending", -1), 0) << status("web").dump();
}

TEST_F(Scheduling, TaintsKeepAwayWorkloadsThatDoNotTolerateThem) {
  const std::vector<std::string> gpu = {"--taints", "dedicated=gpu:NoSchedule"};
  ASSERT_NO_FATAL_FAILURE(start({{"p1", ""},
                                 {"p2", ""},
                                 {"p3", ""},
                                 {"p4", ""},
                                 {"g1", "", gpu},
                                 {"g2", "", gpu},
                                 {"v1", "", {"--taints", "dedicated=video:NoSchedule"}},
                                 {"m1", "", {"--taints", "maintenance:NoExecute"}}}));
  json g1 = fleet_.get("node", "g1");
  ASSERT_EQ(g1["taints"].size(), 1u) << g1.dump();
  EXPECT_EQ(g1["taints"][0].value("value", ""), "gpu") << g1.dump();

  const std::string every = "placement:\n    everyNode: true";
  const Nodes plain_nodes = {"p1", "p2", "p3", "p4"};
  ASSERT_EQ(
      fleet_
          .apply(sleeper_manifest("plain", "1", every) + "---\n" +
                 sleeper_manifest("gpu-job", "1",
                                  every + "\n  tolerations:\n    - {key: dedicated, operator: "
                                          "Equal, value: gpu, effect: NoSchedule}") +
                 "---\n" +
                 sleeper_manifest("any", "1", every + "\n  tolerations: [{operator: Exists}]") +
                 "---\n" + sleeper_manifest("many", "1", "replicas: 6"))
          .exit_code,
      0);
  EXPECT_EQ(wait_runs_on("plain", plain_nodes), "");
  // Tolerates gpu (not video: Equal wants the same value; not maintenance: another key).
  EXPECT_EQ(wait_runs_on("gpu-job", {"p1", "p2", "p3", "p4", "g1", "g2"}), "");
  EXPECT_EQ(wait_runs_on("any", all_), "");
  // Six replicas, four untainted nodes: two pending, and the reason names each taint.
  EXPECT_EQ(wait_runs_on("many", plain_nodes), "");
  json many = status("many");
  EXPECT_EQ(many.value("pending", -1), 2) << many.dump();
  const std::string reason = many.value("pendingReason", "");
  for (const char* why : {"2 taint dedicated=gpu:NoSchedule not tolerated",
                          "1 taint dedicated=video:NoSchedule not tolerated",
                          "1 taint maintenance:NoExecute not tolerated"}) {
    EXPECT_NE(reason.find(why), std::string::npos) << "'" << why << "' not in: " << reason;
  }

  // p4 comes back with a NoSchedule taint: it keeps what it runs but gets nothing new.
  const pid_t plain_on_p4 = pid_of("p4", "plain");
  ASSERT_NE(plain_on_p4, 0);
  ASSERT_NO_FATAL_FAILURE(restart_with("p4", gpu, "dedicated"));
  ASSERT_EQ(fleet_.apply(sleeper_manifest("late", "1", every), "late.yaml").exit_code, 0);
  EXPECT_EQ(wait_runs_on("late", {"p1", "p2", "p3"}), "");
  // (Waits only for the restarted agent's status: a placement dropped from p4 would not return.)
  EXPECT_EQ(wait_runs_on("plain", plain_nodes), "");
  EXPECT_EQ(wait_runs_on("many", plain_nodes), "");
  EXPECT_EQ(fleet_.workload_pids("p4", "plain"), std::vector<pid_t>{plain_on_p4})
      << "the instance on p4 was replaced";

  // p4 comes back with a NoExecute taint: what does not tolerate it leaves p4.
  ASSERT_NO_FATAL_FAILURE(restart_with("p4", {"--taints", "maintenance:NoExecute"}, "maintenance"));
  EXPECT_EQ(wait_runs_on("plain", {"p1", "p2", "p3"}), "");
  EXPECT_EQ(wait_runs_on("many", {"p1", "p2", "p3"}), "");
  EXPECT_EQ(wait_runs_on("gpu-job", {"p1", "p2", "p3", "g1", "g2"}), "");
  EXPECT_EQ(wait_runs_on("any", all_), "");
  EXPECT_FALSE(pid_alive(plain_on_p4)) << "plain still runs on p4";
  EXPECT_EQ(status("many").value("pending", -1), 3) << status("many").dump();
}

std::string container_workload(const std::string& name, const std::string& image,
                               const std::string& placement) {
  return "apiVersion: flotilla/v1\nkind: Workload\nmetadata:\n  name: " + name +
         "\nspec:\n  type: container\n  " + placement + "\n  container:\n    image: " + image +
         "\n";
}

TEST_F(Scheduling, WorkloadsGoOnlyToNodesWithTheirRuntimePoolAndArch) {
  if (find_executable("crun").empty() && find_executable("runc").empty()) {
    GTEST_SKIP() << "neither crun nor runc is installed: no node can offer container";
  }
  const std::vector<std::string> process_only = {"--runtimes", "process"};
  const std::vector<std::string> with_container = {"--runtimes", "process,container"};
  const std::string pool = "flotilla.io/pool=edge";
  ASSERT_NO_FATAL_FAILURE(start({{"k1", "", with_container},
                                 {"k2", "", with_container},
                                 {"k3", pool, with_container},
                                 {"p1", "", process_only},
                                 {"p2", "", process_only},
                                 {"p3", "", process_only},
                                 {"p4", pool, process_only},
                                 {"p5", pool, process_only}}));
  json k1 = fleet_.get("node", "k1");
  json p1 = fleet_.get("node", "p1");
  ASSERT_EQ(p1["runtimes"], json::array({"process"})) << p1.dump();
  ASSERT_NE(std::find(k1["runtimes"].begin(), k1["runtimes"].end(), "container"),
            k1["runtimes"].end())
      << k1.dump();

  // Eight replicas of a container workload: only the three nodes offering containers get one.
  // The image cannot be pulled (nothing listens there); that does not matter for placement.
  const std::string image = "127.0.0.1:" + std::to_string(free_port()) + "/flotilla/absent:1";
  ASSERT_EQ(fleet_.apply(container_workload("boxed", image, "replicas: 8")).exit_code, 0);
  EXPECT_TRUE(eventually(
      [&] {
        return placed("boxed") == Nodes{"k1", "k2", "k3"};
      },
      kSettle))
      << text(placed("boxed"));
  json boxed = status("boxed");
  EXPECT_EQ(boxed.value("pending", -1), 5) << boxed.dump();
  EXPECT_NE(boxed.value("pendingReason", "").find("5 no container runtime"), std::string::npos)
      << boxed.dump();

  // nodePool: only nodes labelled flotilla.io/pool=edge, whatever their runtimes.
  ASSERT_EQ(
      fleet_.apply(sleeper_manifest("pooled", "1", "replicas: 4\n  nodePool: edge"), "pooled.yaml")
          .exit_code,
      0);
  EXPECT_EQ(wait_runs_on("pooled", {"k3", "p4", "p5"}), "");
  json pooled = status("pooled");
  EXPECT_EQ(pooled.value("pending", -1), 1) << pooled.dump();
  EXPECT_NE(pooled.value("pendingReason", "").find("5 not in pool edge"), std::string::npos)
      << pooled.dump();

  // arch: every agent reports the host's; a workload for another one is placed nowhere.
  const std::string own = k1.value("arch", "");
  ASSERT_FALSE(own.empty()) << k1.dump();
  const std::string other = own == "amd64" ? "arm64" : "amd64";
  ASSERT_EQ(fleet_
                .apply(sleeper_manifest("foreign", "1", "replicas: 2\n  arch: [" + other + "]") +
                           "---\n" +
                           sleeper_manifest("native", "1",
                                            "placement:\n    everyNode: true\n  arch: [" + other +
                                                ", " + own + "]"),
                       "arch.yaml")
                .exit_code,
            0);
  EXPECT_EQ(wait_runs_on("native", all_), "");
  EXPECT_EQ(run_gaps("foreign", {}), "");
  json foreign = status("foreign");
  EXPECT_EQ(foreign.value("pending", -1), 2) << foreign.dump();
  EXPECT_NE(foreign.value("pendingReason", "").find("8 arch mismatch"), std::string::npos)
      << foreign.dump();

  // Still no container placement on a process-only node after all that rescheduling.
  EXPECT_EQ(placed("boxed"), (Nodes{"k1", "k2", "k3"}));
}

TEST_F(Scheduling, NotReadyNodeKeepsItsInstancesUntilEvictAfterSeconds) {
  constexpr auto kEvictAfter = 4s;
  ASSERT_NO_FATAL_FAILURE(start({{"n1"}, {"n2"}, {"n3"}, {"n4"}, {"n5"}, {"n6"}, {"n7"}, {"n8"}}));
  ASSERT_EQ(fleet_
                .apply(sleeper_manifest("mobile", "1",
                                        "replicas: 3\n  evictAfterSeconds: " +
                                            std::to_string(kEvictAfter.count())) +
                       "---\n" + sleeper_manifest("stay"))
                .exit_code,
            0);
  const Nodes before = wait_placed("mobile", 3);
  ASSERT_EQ(before.size(), 3u) << text(before);
  EXPECT_EQ(wait_runs_on("mobile", before), "");
  EXPECT_EQ(wait_runs_on("stay", all_), "");
  const std::string victim = *before.begin();
  const pid_t mobile_pid = pid_of(victim, "mobile");
  const pid_t stay_pid = pid_of(victim, "stay");
  ASSERT_NE(mobile_pid, 0);
  ASSERT_NE(stay_pid, 0);

  fleet_.kill9_agent(victim);
  ASSERT_TRUE(eventually([&] { return fleet_.node_state(victim) == "NotReady"; }, 10s))
      << victim << " never became NotReady";
  const auto not_ready_at = std::chrono::steady_clock::now();
  // Until evictAfterSeconds has passed the placement stays on the NotReady node (1 s of the
  // window is left for the time the hub took to mark it and this test to see it).
  EXPECT_FALSE(eventually([&] { return placed("mobile") != before; }, kEvictAfter - 1s))
      << "mobile moved before evictAfterSeconds: " << text(placed("mobile"));
  EXPECT_EQ(fleet_.node_state(victim), "NotReady");

  // Then it is placed on another Ready node, where it runs.
  Nodes after;
  EXPECT_TRUE(eventually(
      [&] {
        after = placed("mobile");
        return after.size() == 3 && after.count(victim) == 0;
      },
      kSettle))
      << "mobile still placed on " << text(placed("mobile"));
  const auto moved_after = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - not_ready_at);
  std::cout << "NotReady -> mobile placed elsewhere: " << moved_after.count() << " ms\n";
  Nodes added;
  for (const auto& n : after)
    if (before.count(n) == 0) added.insert(n);
  ASSERT_EQ(added.size(), 1u) << text(before) << " -> " << text(after);
  EXPECT_TRUE(eventually([&] { return fleet_.workload_pids(*added.begin(), "mobile").size() == 1; },
                         kSettle))
      << "mobile does not run on " << *added.begin();
  // A workload without evictAfterSeconds keeps its placement on the NotReady node, and the node
  // (on its own, the agent is dead) keeps running both.
  EXPECT_EQ(placed("stay"), all_);
  EXPECT_EQ(status("mobile").value("pending", -1), 0) << status("mobile").dump();
  EXPECT_TRUE(pid_alive(mobile_pid));
  EXPECT_TRUE(pid_alive(stay_pid));

  // The node comes back: it stops its copy of mobile, which stays where it was moved to.
  fleet_.start_agent(victim);
  EXPECT_EQ(wait_runs_on("mobile", after), "");
  EXPECT_EQ(wait_runs_on("stay", all_), "");
  EXPECT_FALSE(pid_alive(mobile_pid)) << "the evicted instance still runs on " << victim;
  EXPECT_EQ(fleet_.workload_pids(victim, "stay"), std::vector<pid_t>{stay_pid})
      << "the agent did not adopt its instance of stay";
}

}  // namespace
}  // namespace flotilla::testing
