#include "cloud-hub/scheduler.hpp"

#include <gtest/gtest.h>

#include <functional>

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

TEST(SchedulerTest, EveryNodeIsPendingOnReadyNodesWithoutRoom) {
  ScheduleInput in;
  in.nodes = {node("a"), node("b"), node("c"), node("d", {}, false)};
  in.nodes[1].memory_bytes = 10;
  in.nodes[2].cpu_millis = 10;
  SchedWorkload w = every_node("w");
  w.cpu_millis = 100;
  w.memory_bytes = 100;
  in.workloads = {w};
  auto out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"a"}));
  EXPECT_EQ(out["w"].pending, 2);  // b and c; the NotReady d is not counted
  EXPECT_EQ(out["w"].reason, "1/4 nodes: 1 insufficient cpu, 1 insufficient memory, 1 not ready");
}

TEST(SchedulerTest, KeptPlacementsCountAgainstCapacityButAreNeverEvicted) {
  ScheduleInput in;
  in.nodes = {node("a"), node("b")};
  in.nodes[0].memory_bytes = 100;  // shrank: what runs there now needs 120
  SchedWorkload w1 = replicas("w1", 1);
  w1.memory_bytes = 60;
  SchedWorkload w2 = w1;
  w2.name = "w2";
  SchedWorkload small = replicas("small", 2);
  small.memory_bytes = 1;
  in.workloads = {w1, w2, small};
  in.current = {{"w1", {"a"}}, {"w2", {"a"}}};
  auto out = schedule(in);
  EXPECT_EQ(out["w1"].nodes, (Nodes{"a"}));
  EXPECT_EQ(out["w2"].nodes, (Nodes{"a"}));
  EXPECT_EQ(out["small"].nodes, (Nodes{"b"}));  // a has no room left, not even for 1 byte
  EXPECT_EQ(out["small"].reason, "1/2 nodes: 1 insufficient memory");
}

TEST(SchedulerTest, ShrinkingTakesTheLastByNameWhenAllElseIsEqual) {
  ScheduleInput in;
  in.nodes = {node("c"), node("a"), node("b")};
  in.workloads = {replicas("w", 1)};
  in.current = {{"w", {"a", "b", "c"}}};
  EXPECT_EQ(schedule(in)["w"].nodes, (Nodes{"a"}));
}

TEST(SchedulerTest, UnrelatedChangesMoveNothing) {
  ScheduleInput in;
  in.nodes = {node("a"), node("b"), node("c")};
  in.workloads = {replicas("w", 2), replicas("x", 1)};
  in.current = {{"w", {"b", "c"}}, {"x", {"a"}}};
  // An empty node joins, first by name; another workload grows; a node gets new labels; b
  // is NotReady for an hour (w has no evict_after_ms). w stays on b and c.
  in.workloads[1].replicas = 3;
  in.nodes.push_back(node("0"));
  in.nodes[0].labels = {{"zone", "east"}};
  in.nodes[1].ready = false;
  in.nodes[1].not_ready_ms = 3600000;
  auto out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"b", "c"}));
  EXPECT_EQ(out["x"].nodes, (Nodes{"0", "a", "c"}));
}

TEST(SchedulerTest, PendingReasonForAMixOfCausesIsExact) {
  ScheduleInput in;
  for (int i = 0; i < 40; ++i) {
    std::string name = "n" + std::to_string(i);
    in.nodes.push_back(i < 25 ? node(name, {{"zone", "west"}}) : node(name, {{"zone", "east"}}));
    if (i >= 25) in.nodes.back().memory_bytes = 50;
  }
  SchedWorkload w = replicas("w", 5);
  w.selector = {{"zone", "east"}};
  w.memory_bytes = 100;
  in.workloads = {w};
  auto out = schedule(in);
  EXPECT_EQ(out["w"].pending, 5);
  EXPECT_EQ(out["w"].reason, "0/40 nodes: 25 selector mismatch, 15 insufficient memory");
}

// One node per cause at least; a node that breaks several rules counts under the first one
// checked (selector, runtime, arch, pool, spread label, NoExecute, NoSchedule, readiness,
// cpu, memory). Most common first, ties by text.
TEST(SchedulerTest, PendingReasonNamesEveryCauseInOrder) {
  ScheduleInput in;
  auto add = [&](int count, const std::function<void(SchedNode&)>& change) {
    for (int i = 0; i < count; ++i) {
      SchedNode n = node("n" + std::to_string(in.nodes.size()),
                         {{"zone", "east"}, {"site", "s1"}, {"flotilla.io/pool", "gpu"}});
      n.arch = "amd64";
      change(n);
      in.nodes.push_back(n);
    }
  };
  add(1, [](SchedNode&) {});  // takes the one instance that fits
  add(5, [](SchedNode& n) { n.labels["zone"] = "west"; });
  add(1, [](SchedNode& n) {  // selector first, though it also lacks the runtime
    n.labels.erase("zone");
    n.runtimes.clear();
  });
  add(5, [](SchedNode& n) { n.runtimes = {"container"}; });
  add(4, [](SchedNode& n) { n.arch = "arm64"; });
  add(3, [](SchedNode& n) { n.labels["flotilla.io/pool"] = "edge"; });
  add(2, [](SchedNode& n) { n.labels.erase("site"); });
  add(2, [](SchedNode& n) { n.taints = {{"maint", "", kNoExecute}}; });
  add(1, [](SchedNode& n) { n.taints = {{"dedicated", "gpu", kNoSchedule}}; });
  add(1, [](SchedNode& n) { n.ready = false; });
  add(1, [](SchedNode& n) { n.cpu_millis = 10; });
  add(1, [](SchedNode& n) { n.memory_bytes = 10; });
  SchedWorkload w = replicas("w", 3);
  w.selector = {{"zone", "east"}};
  w.arch = {"amd64"};
  w.pool = "gpu";
  w.spread_key = "site";
  w.cpu_millis = 100;
  w.memory_bytes = 100;
  in.workloads = {w};
  auto out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"n0"}));
  EXPECT_EQ(out["w"].pending, 2);
  EXPECT_EQ(out["w"].reason,
            "1/27 nodes: 6 selector mismatch, 5 no process runtime, 4 arch mismatch, 3 not in "
            "pool gpu, 2 no label site, 2 taint maint:NoExecute not tolerated, 1 insufficient "
            "cpu, 1 insufficient memory, 1 not ready, 1 taint dedicated=gpu:NoSchedule not "
            "tolerated");
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

TEST(SchedulerTaintTest, ATolerationOfNoExecuteKeepsAndPlaces) {
  ScheduleInput in;
  in.nodes = {tainted("a", {{"maintenance", "", kNoExecute}}),
              tainted("b", {{"maintenance", "", kNoExecute}})};
  SchedWorkload w = replicas("w", 2);
  w.tolerations = {{"maintenance", "Exists", "", kNoExecute}};
  in.workloads = {w};
  in.current = {{"w", {"a"}}};
  EXPECT_EQ(schedule(in)["w"].nodes, (Nodes{"a", "b"}));
  // Tolerating only NoSchedule does not help against NoExecute.
  in.workloads[0].tolerations = {{"maintenance", "Exists", "", kNoSchedule}};
  auto out = schedule(in);
  EXPECT_TRUE(out["w"].nodes.empty());
  EXPECT_EQ(out["w"].reason, "0/2 nodes: 2 taint maintenance:NoExecute not tolerated");
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

TEST(SchedulerSpreadTest, SkewCountsOnlyDomainsThatCanTakeAnInstance) {
  ScheduleInput in;
  // Site c's only node is NotReady and site d's is full: neither holds a and b back.
  in.nodes = {at_site("a1", "a"), at_site("a2", "a"), at_site("b1", "b"),
              at_site("b2", "b"), at_site("c1", "c"), at_site("d1", "d")};
  in.nodes[4].ready = false;
  in.nodes[5].memory_bytes = 10;
  SchedWorkload w = spread("w", 4);
  w.memory_bytes = 100;
  in.workloads = {w};
  auto out = schedule(in);
  EXPECT_EQ(out["w"].nodes, (Nodes{"a1", "a2", "b1", "b2"}));
  EXPECT_EQ(out["w"].pending, 0);
}

TEST(SchedulerSpreadTest, NewInstancesEvenOutDomainsWhateverTheMaxSkew) {
  ScheduleInput in;
  for (const char* site : {"a", "b", "c"}) {
    for (int i = 1; i <= 3; ++i) in.nodes.push_back(at_site(site + std::to_string(i), site));
  }
  // Each instance goes to the emptiest domain, so a max skew of 2 still gives 2-2-2, not
  // 3-2-1 or 3-3-0.
  in.workloads = {spread("w", 6, 2)};
  EXPECT_EQ(schedule(in)["w"].nodes, (Nodes{"a1", "a2", "b1", "b2", "c1", "c2"}));
  // Kept placements never move, even when skewed: the new ones go to the emptiest sites.
  in.current = {{"w", {"a1", "a2", "a3"}}};
  in.workloads = {spread("w", 5, 1)};
  EXPECT_EQ(schedule(in)["w"].nodes, (Nodes{"a1", "a2", "a3", "b1", "c1"}));
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
