#include "cloud-hub/scheduler.hpp"

#include <gtest/gtest.h>

namespace flotilla::hub {
namespace {

using Nodes = std::set<std::string>;

SchedNode node(const std::string& name, std::map<std::string, std::string> labels = {},
               bool ready = true) {
  SchedNode n;
  n.name = name;
  n.labels = std::move(labels);
  n.runtimes = {"process"};
  n.ready = ready;
  return n;
}

SchedWorkload replicas(const std::string& name, int64_t n) {
  SchedWorkload w;
  w.name = name;
  w.type = "process";
  w.replicas = n;
  return w;
}

SchedWorkload every_node(const std::string& name) {
  SchedWorkload w;
  w.name = name;
  w.type = "process";
  w.every_node = true;
  return w;
}

TEST(SchedulerTest, EveryNodeTakesEveryEligibleReadyNode) {
  ScheduleInput in;
  in.nodes = {node("a"), node("b"), node("c", {}, false)};
  in.workloads = {every_node("w")};
  auto out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"a", "b"}));
  EXPECT_EQ(out["w"].pending, 0);  // a NotReady node is not a scheduling failure
}

TEST(SchedulerTest, SelectorAndRuntimeDecideEligibility) {
  ScheduleInput in;
  in.nodes = {node("a", {{"zone", "east"}}), node("b", {{"zone", "west"}}), node("c")};
  in.nodes[2].labels = {{"zone", "east"}};
  in.nodes[2].runtimes = {"container"};
  SchedWorkload w = every_node("w");
  w.selector = {{"zone", "east"}};
  in.workloads = {w};
  auto out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"a"}));

  in.workloads = {replicas("r", 3)};
  in.workloads[0].selector = {{"zone", "east"}};
  out = schedule(in);
  EXPECT_EQ(out["r"].nodes, (Nodes{"a"}));
  EXPECT_EQ(out["r"].pending, 2);
  EXPECT_EQ(out["r"].reason, "1/3 nodes: 1 no process runtime, 1 selector mismatch");
}

TEST(SchedulerTest, ReplicasGoToLeastLoadedNodesTiesByName) {
  ScheduleInput in;
  in.nodes = {node("c"), node("a"), node("b")};
  in.workloads = {replicas("busy", 1), replicas("w", 2)};
  in.current = {{"busy", {"a"}}};
  auto out = schedule(in);
  EXPECT_EQ(out["busy"].nodes, (Nodes{"a"}));
  EXPECT_EQ(out["w"].nodes, (Nodes{"b", "c"}));  // a already runs one instance
}

TEST(SchedulerTest, AtMostOneInstancePerNode) {
  ScheduleInput in;
  in.nodes = {node("a"), node("b")};
  in.workloads = {replicas("w", 3)};
  auto out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"a", "b"}));
  EXPECT_EQ(out["w"].pending, 1);
  EXPECT_EQ(out["w"].reason, "2/2 nodes: at most one instance per node");
}

TEST(SchedulerTest, ExistingPlacementsAreStable) {
  ScheduleInput in;
  in.nodes = {node("a"), node("b"), node("c")};
  in.workloads = {replicas("w", 1), replicas("other", 1)};
  in.current = {{"w", {"c"}}};
  auto out = schedule(in);
  // "a" is emptier and first by name, but the running instance stays where it is.
  EXPECT_EQ(out["w"].nodes, (Nodes{"c"}));
  EXPECT_EQ(out["other"].nodes, (Nodes{"a"}));
  // A new node arriving moves nothing.
  in.nodes.push_back(node("0-new"));
  in.current = {{"w", {"c"}}, {"other", {"a"}}};
  out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"c"}));
  EXPECT_EQ(out["other"].nodes, (Nodes{"a"}));
}

TEST(SchedulerTest, NotReadyNodesKeepTheirWorkloadsButGetNoNewOnes) {
  ScheduleInput in;
  in.nodes = {node("a", {}, false), node("b"), node("c")};
  in.workloads = {replicas("w", 2), every_node("e")};
  in.current = {{"w", {"a"}}, {"e", {"a"}}};
  auto out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"a", "b"}));  // kept on a; one more on a Ready node
  EXPECT_EQ(out["e"].nodes, (Nodes{"a", "b", "c"}));
  // Growing never picks the NotReady node.
  in.current = {};
  out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"b", "c"}));
  in.workloads = {replicas("w", 3)};
  out = schedule(in);
  EXPECT_EQ(out["w"].pending, 1);
  EXPECT_EQ(out["w"].reason, "2/3 nodes: 1 not ready");
}

TEST(SchedulerTest, ShrinkingRemovesNotReadyThenMostLoaded) {
  ScheduleInput in;
  in.nodes = {node("a"), node("b", {}, false), node("c"), node("d")};
  in.workloads = {replicas("w", 2), replicas("x", 1)};
  in.current = {{"w", {"a", "b", "c", "d"}}, {"x", {"c"}}};
  auto out = schedule(in);
  // b goes first (NotReady), then c (it also runs x).
  EXPECT_EQ(out["w"].nodes, (Nodes{"a", "d"}));
  EXPECT_EQ(out["x"].nodes, (Nodes{"c"}));
}

TEST(SchedulerTest, ResourcesMustFit) {
  ScheduleInput in;
  in.nodes = {node("big"), node("small"), node("tiny"), node("west", {{"zone", "west"}}),
              node("far", {{"zone", "west"}})};
  in.nodes[0].memory_bytes = 1000;
  in.nodes[0].cpu_millis = 4000;
  in.nodes[1].memory_bytes = 100;
  in.nodes[1].cpu_millis = 4000;
  in.nodes[2].memory_bytes = 1000;
  in.nodes[2].cpu_millis = 100;
  SchedWorkload w = replicas("w", 3);
  w.selector = {};
  w.memory_bytes = 600;
  w.cpu_millis = 500;
  in.workloads = {w};
  in.nodes.pop_back();
  in.nodes.pop_back();
  auto out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"big"}));
  EXPECT_EQ(out["w"].pending, 2);
  EXPECT_EQ(out["w"].reason, "1/3 nodes: 1 insufficient cpu, 1 insufficient memory");

  // Requests add up per node: two workloads of 600 do not fit in 1000.
  SchedWorkload v = w;
  v.name = "v";
  v.replicas = 1;
  w.replicas = 1;
  in.nodes = {in.nodes[0]};
  in.workloads = {w, v};
  out = schedule(in);
  EXPECT_EQ(out["v"].nodes, (Nodes{"big"}));  // v sorts first
  EXPECT_TRUE(out["w"].nodes.empty());
  EXPECT_EQ(out["w"].reason, "0/1 nodes: 1 insufficient memory");
}

TEST(SchedulerTest, PendingReasonCountsEveryCause) {
  ScheduleInput in;
  in.nodes = {node("a", {{"zone", "west"}}), node("b", {{"zone", "west"}}),
              node("c", {{"zone", "east"}})};
  in.nodes[2].memory_bytes = 10;
  SchedWorkload w = replicas("w", 3);
  w.selector = {{"zone", "east"}};
  w.memory_bytes = 100;
  in.workloads = {w};
  auto out = schedule(in);
  EXPECT_EQ(out["w"].pending, 3);
  EXPECT_EQ(out["w"].reason, "0/3 nodes: 2 selector mismatch, 1 insufficient memory");

  in.nodes.clear();
  out = schedule(in);
  EXPECT_EQ(out["w"].reason, "0/0 nodes: no nodes registered");
}

TEST(SchedulerTest, ZeroCapacityMeansNotLimited) {
  ScheduleInput in;
  in.nodes = {node("a")};
  SchedWorkload w = replicas("w", 1);
  w.cpu_millis = 100000;
  w.memory_bytes = int64_t{1} << 40;
  in.workloads = {w};
  EXPECT_EQ(schedule(in)["w"].nodes, (Nodes{"a"}));
}

TEST(SchedulerTest, PlacementOnANoLongerEligibleNodeIsDropped) {
  ScheduleInput in;
  in.nodes = {node("a", {{"zone", "west"}}), node("b", {{"zone", "east"}})};
  SchedWorkload w = replicas("w", 1);
  w.selector = {{"zone", "east"}};
  in.workloads = {w};
  in.current = {{"w", {"a"}}};  // a's labels changed
  auto out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"b"}));
  // Placements of unknown nodes or deleted workloads vanish.
  in.current = {{"w", {"gone"}}, {"deleted", {"a"}}};
  out = schedule(in);
  EXPECT_EQ(out.count("deleted"), 0u);
  EXPECT_EQ(out["w"].nodes, (Nodes{"b"}));
}

TEST(SchedulerTest, ZeroReplicasPlacesNothing) {
  ScheduleInput in;
  in.nodes = {node("a")};
  in.workloads = {replicas("w", 0)};
  in.current = {{"w", {"a"}}};
  auto out = schedule(in);
  EXPECT_TRUE(out["w"].nodes.empty());
  EXPECT_EQ(out["w"].pending, 0);
  EXPECT_EQ(out["w"].reason, "");
}

}  // namespace
}  // namespace flotilla::hub

namespace flotilla::hub {
namespace {

SchedNode tainted(const std::string& name, std::vector<Taint> taints) {
  SchedNode n = node(name);
  n.taints = std::move(taints);
  return n;
}

TEST(SchedulerTaintTest, NoScheduleTaintKeepsNewInstancesAwayAndSaysWhy) {
  ScheduleInput in;
  in.nodes = {tainted("a", {{"dedicated", "gpu", kNoSchedule}}), node("b"),
              tainted("c", {{"maintenance", "", kNoSchedule}})};
  in.workloads = {replicas("w", 3), every_node("e")};
  auto out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"b"}));
  EXPECT_EQ(out["w"].pending, 2);
  EXPECT_EQ(out["w"].reason,
            "1/3 nodes: 1 taint dedicated=gpu:NoSchedule not tolerated, 1 taint "
            "maintenance:NoSchedule not tolerated");
  // An everyNode workload is not short of nodes it may not use.
  EXPECT_EQ(out["e"].nodes, (Nodes{"b"}));
  EXPECT_EQ(out["e"].pending, 0);

  // What already runs on a NoSchedule node stays there.
  in.current = {{"w", {"a"}}, {"e", {"a"}}};
  out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"a", "b"}));
  EXPECT_EQ(out["e"].nodes, (Nodes{"a", "b"}));
}

TEST(SchedulerTaintTest, NoExecuteTaintAlsoRemovesWhatRunsThere) {
  ScheduleInput in;
  in.nodes = {tainted("a", {{"maintenance", "", kNoExecute}}), node("b"), node("c")};
  in.workloads = {replicas("w", 1), every_node("e")};
  in.current = {{"w", {"a"}}, {"e", {"a", "b", "c"}}};
  auto out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"b"}));  // moved off a
  EXPECT_EQ(out["e"].nodes, (Nodes{"b", "c"}));
  in.workloads = {replicas("w", 3)};
  out = schedule(in);
  EXPECT_EQ(out["w"].reason, "2/3 nodes: 1 taint maintenance:NoExecute not tolerated");
}

TEST(SchedulerTest, EvictAfterMovesOnlyWorkloadsThatAskForIt) {
  ScheduleInput in;
  in.nodes = {node("a", {}, false), node("b"), node("c")};
  in.nodes[0].not_ready_ms = 60000;
  SchedWorkload moves = replicas("moves", 1);
  moves.evict_after_ms = 30000;
  SchedWorkload patient = replicas("patient", 1);
  patient.evict_after_ms = 120000;
  in.workloads = {moves, patient, replicas("stays", 1), every_node("e")};
  in.workloads[3].evict_after_ms = 0;
  in.current = {{"moves", {"a"}}, {"patient", {"a"}}, {"stays", {"a"}}, {"e", {"a", "b"}}};
  auto out = schedule(in);
  EXPECT_EQ(out["moves"].nodes, (Nodes{"b"}));
  EXPECT_EQ(out["patient"].nodes, (Nodes{"a"}));
  EXPECT_EQ(out["stays"].nodes, (Nodes{"a"}));
  EXPECT_EQ(out["e"].nodes, (Nodes{"b", "c"}));
  // Exactly at the limit it stays.
  in.nodes[0].not_ready_ms = 30000;
  EXPECT_EQ(schedule(in)["moves"].nodes, (Nodes{"a"}));
}

TEST(SchedulerTaintTest, TolerationsMatchKeyValueAndEffect) {
  auto place = [](std::vector<Toleration> tolerations, std::vector<Taint> taints) {
    ScheduleInput in;
    in.nodes = {tainted("a", std::move(taints))};
    SchedWorkload w = replicas("w", 1);
    w.tolerations = std::move(tolerations);
    in.workloads = {w};
    return schedule(in)["w"].nodes.size() == 1;
  };
  const Taint gpu{"dedicated", "gpu", kNoSchedule};
  EXPECT_FALSE(place({}, {gpu}));
  EXPECT_TRUE(place({{"dedicated", "Equal", "gpu", kNoSchedule}}, {gpu}));
  EXPECT_TRUE(place({{"dedicated", "Equal", "gpu", ""}}, {gpu}));  // any effect
  EXPECT_FALSE(place({{"dedicated", "Equal", "tpu", ""}}, {gpu}));
  EXPECT_FALSE(place({{"dedicated", "Equal", "gpu", kNoExecute}}, {gpu}));
  EXPECT_TRUE(place({{"dedicated", "Exists", "", ""}}, {gpu}));
  EXPECT_FALSE(place({{"other", "Exists", "", ""}}, {gpu}));
  EXPECT_TRUE(place({{"", "Exists", "", ""}}, {gpu, {"x", "", kNoExecute}}));  // tolerates all
  // Every taint must be tolerated.
  EXPECT_FALSE(place({{"dedicated", "Exists", "", ""}}, {gpu, {"x", "", kNoExecute}}));
  EXPECT_TRUE(place({{"dedicated", "Exists", "", ""}, {"x", "Exists", "", kNoExecute}},
                    {gpu, {"x", "", kNoExecute}}));
}

}  // namespace
}  // namespace flotilla::hub

namespace flotilla::hub {
namespace {

SchedNode at_site(const std::string& name, const std::string& site) {
  return node(name, {{"site", site}});
}

SchedWorkload spread(const std::string& name, int64_t n, int64_t max_skew = 1) {
  SchedWorkload w = replicas(name, n);
  w.spread_key = "site";
  w.max_skew = max_skew;
  return w;
}

TEST(SchedulerSpreadTest, NewInstancesGoToTheLeastPopulatedDomain) {
  ScheduleInput in;
  // Site a has three nodes, b two, c one; by load alone a would take the first three.
  in.nodes = {at_site("a1", "a"), at_site("a2", "a"), at_site("a3", "a"), at_site("b1", "b"),
              at_site("b2", "b"), at_site("c1", "c"), node("nolabel")};
  in.workloads = {spread("w", 5)};
  auto out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"a1", "a2", "b1", "b2", "c1"}));
  // More than the domains can hold evenly: c is full, so a and b continue.
  in.workloads = {spread("w", 6)};
  out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"a1", "a2", "a3", "b1", "b2", "c1"}));
  in.workloads = {spread("w", 7)};
  out = schedule(in);
  EXPECT_EQ(out["w"].pending, 1);
  EXPECT_EQ(out["w"].reason, "6/7 nodes: 1 no label site");
}

TEST(SchedulerSpreadTest, LoadBreaksTiesInsideADomainAndKeptPlacementsCount) {
  ScheduleInput in;
  in.nodes = {at_site("a1", "a"), at_site("a2", "a"), at_site("b1", "b"), at_site("b2", "b")};
  in.workloads = {replicas("busy", 1), spread("w", 3)};
  in.current = {{"busy", {"a1"}}, {"w", {"b1", "b2"}}};  // b already holds two
  auto out = schedule(in);
  // Kept where they run; the new one goes to site a, on its less loaded node.
  EXPECT_EQ(out["w"].nodes, (Nodes{"a2", "b1", "b2"}));
}

TEST(SchedulerSpreadTest, PlacementIsStableAndShrinkingTakesFromTheFullestDomain) {
  ScheduleInput in;
  in.nodes = {at_site("a1", "a"), at_site("a2", "a"), at_site("b1", "b"), at_site("b2", "b")};
  in.workloads = {spread("w", 2), replicas("other", 1)};
  auto out = schedule(in);
  EXPECT_EQ(out["other"].nodes, (Nodes{"a1"}));  // placed first: "other" sorts before "w"
  EXPECT_EQ(out["w"].nodes, (Nodes{"a2", "b1"}));
  // An unrelated change (a new node in a new site, another workload) moves nothing.
  in.current = {{"w", {"a2", "b1"}}, {"other", out["other"].nodes}};
  in.nodes.push_back(at_site("c1", "c"));
  in.workloads.push_back(replicas("third", 2));
  auto again = schedule(in);
  EXPECT_EQ(again["w"].nodes, (Nodes{"a2", "b1"}));
  EXPECT_EQ(again["other"].nodes, out["other"].nodes);
  // Shrinking: from a domain with two first.
  in.current = {{"w", {"a1", "a2", "b1"}}};
  in.workloads = {spread("w", 2)};
  EXPECT_EQ(schedule(in)["w"].nodes, (Nodes{"a1", "b1"}));
}

TEST(SchedulerTest, ArchAndNodePoolNarrowTheNodes) {
  ScheduleInput in;
  in.nodes = {node("x86"), node("pi"), node("gpu", {{"flotilla.io/pool", "gpu"}}),
              node("other", {{"flotilla.io/pool", "edge"}})};
  for (auto& n : in.nodes) n.arch = "amd64";
  in.nodes[1].arch = "arm64";
  SchedWorkload arm = replicas("arm", 2);
  arm.arch = {"arm64"};
  SchedWorkload pooled = every_node("pooled");
  pooled.pool = "gpu";
  in.workloads = {arm, pooled};
  auto out = schedule(in);
  EXPECT_EQ(out["arm"].nodes, (Nodes{"pi"}));
  EXPECT_EQ(out["arm"].reason, "1/4 nodes: 3 arch mismatch");
  EXPECT_EQ(out["pooled"].nodes, (Nodes{"gpu"}));
  in.workloads = {replicas("p", 2)};
  in.workloads[0].pool = "gpu";
  out = schedule(in);
  EXPECT_EQ(out["p"].reason, "1/4 nodes: 3 not in pool gpu");
  // A node whose arch no longer fits loses the placement.
  in.workloads = {arm};
  in.current = {{"arm", {"x86"}}};
  EXPECT_EQ(schedule(in)["arm"].nodes, (Nodes{"pi"}));
}

}  // namespace
}  // namespace flotilla::hub
