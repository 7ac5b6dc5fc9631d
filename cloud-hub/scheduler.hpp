// The scheduler: decides which nodes run which workloads. A pure function of its inputs, so it
// is tested without a store, a clock or a network.
//
// Rules:
//  - a node is eligible for a workload when it matches selector.matchLabels, offers the
//    workload's runtime type and has no NoExecute taint the workload does not tolerate
//    (taints.hpp); a node with a NoSchedule taint it does not tolerate keeps what it runs but
//    gets no new instance of it; when the workload names architectures (spec.arch) the node's
//    must be one of them, and when it names a node pool (spec.nodePool) the node's label
//    flotilla.io/pool must equal it; a spread workload needs its topology label on the node;
//  - requests (cpu, memory) summed per node stay within its capacity (a node that reports 0
//    for a resource is not limited on it); at most one instance of a workload per node;
//  - existing placements on still-eligible nodes are kept, also on NotReady nodes (edge
//    autonomy: a disconnected node keeps running its workloads), so an unrelated change never
//    moves a running instance; kept placements count against capacity but are never evicted --
//    except that a workload with evict_after_ms drops its placements on nodes NotReady for
//    longer than that (they are placed anew elsewhere);
//  - new placements go only to Ready nodes: everyNode takes every eligible Ready node that has
//    room; replicas: n adds on the least-loaded eligible nodes (fewest instances, then name)
//    and, when n shrinks, removes extras (NotReady nodes first, then the most loaded, then the
//    last by name);
//  - spread (replicas with spread_key): new instances go to the domain (value of that node
//    label) with the fewest instances of the workload among domains that have a candidate node,
//    then the least-loaded node there; a placement that would make the count of its domain
//    exceed that of the least-loaded such domain by more than max_skew is not made (each goes
//    to a least-populated domain, so with max_skew >= 1, the manifest's minimum, this never
//    holds one back); shrinking removes from the most populated domain first. Kept placements
//    never move for spread;
//  - a workload short of its target gets a pending count and a reason such as
//    "1/3 nodes: 1 selector mismatch, 1 insufficient memory": each node not running it counted
//    under the first rule it breaks (selector, runtime, arch, pool, spread label, NoExecute,
//    NoSchedule, not ready, cpu, memory), most common first, ties by text.
//
// Workloads are placed in name order, so the outcome is deterministic.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cloud-hub/taints.hpp"

namespace flotilla::hub {

struct SchedWorkload {
  std::string name;
  std::string type;  // runtime the node must offer
  bool every_node = false;
  int64_t replicas = 0;  // when !every_node
  std::map<std::string, std::string> selector;
  int64_t cpu_millis = 0;
  int64_t memory_bytes = 0;
  std::vector<Toleration> tolerations;
  int64_t evict_after_ms = -1;  // < 0: never
  std::set<std::string> arch;   // allowed node architectures; empty: any
  std::string pool;             // required value of the node label flotilla.io/pool; empty: any
  std::string spread_key;       // topology label to spread replicas over; empty: none
  int64_t max_skew = 1;
};

struct SchedNode {
  std::string name;
  std::map<std::string, std::string> labels;
  std::set<std::string> runtimes;
  int64_t cpu_millis = 0;    // capacity; 0 = not limited
  int64_t memory_bytes = 0;  // capacity; 0 = not limited
  bool ready = false;
  int64_t not_ready_ms = 0;  // how long the node has been NotReady
  std::string arch;
  std::vector<Taint> taints;
};

struct ScheduleInput {
  std::vector<SchedWorkload> workloads;
  std::vector<SchedNode> nodes;
  std::map<std::string, std::set<std::string>> current;  // workload -> nodes running it
};

struct WorkloadPlacement {
  std::set<std::string> nodes;
  int64_t pending = 0;  // instances wanted but not placed
  std::string reason;   // why, when pending > 0
};

// workload name -> where it runs. Every input workload has an entry.
std::map<std::string, WorkloadPlacement> schedule(const ScheduleInput& input);

}  // namespace flotilla::hub
