#include "cloud-hub/scheduler.hpp"

#include <algorithm>

namespace flotilla::hub {
namespace {

struct NodeLoad {
  const SchedNode* node = nullptr;
  int64_t cpu = 0;
  int64_t memory = 0;
  int64_t instances = 0;
};

bool selector_matches(const SchedWorkload& w, const SchedNode& n) {
  for (const auto& [k, v] : w.selector) {
    auto it = n.labels.find(k);
    if (it == n.labels.end() || it->second != v) return false;
  }
  return true;
}

const Taint* untolerated_taint(const SchedWorkload& w, const SchedNode& n, const char* effect) {
  return n.taints.empty() ? nullptr : untolerated(n.taints, w.tolerations, effect);
}

// May run `w` (kept placements stay).
bool eligible(const SchedWorkload& w, const SchedNode& n) {
  return selector_matches(w, n) && n.runtimes.count(w.type) > 0 &&
         untolerated_taint(w, n, kNoExecute) == nullptr;
}

// May take a new instance of `w`, readiness and room aside.
bool admits(const SchedWorkload& w, const SchedNode& n) {
  return eligible(w, n) && untolerated_taint(w, n, kNoSchedule) == nullptr;
}

bool fits_cpu(const SchedWorkload& w, const NodeLoad& l) {
  return l.node->cpu_millis == 0 || l.cpu + w.cpu_millis <= l.node->cpu_millis;
}

bool fits_memory(const SchedWorkload& w, const NodeLoad& l) {
  return l.node->memory_bytes == 0 || l.memory + w.memory_bytes <= l.node->memory_bytes;
}

void add(const SchedWorkload& w, NodeLoad& l) {
  l.cpu += w.cpu_millis;
  l.memory += w.memory_bytes;
  l.instances += 1;
}

void subtract(const SchedWorkload& w, NodeLoad& l) {
  l.cpu -= w.cpu_millis;
  l.memory -= w.memory_bytes;
  l.instances -= 1;
}

// Why `node` cannot take a new instance of `w`; empty when it can.
std::string unfit_reason(const SchedWorkload& w, const NodeLoad& l) {
  if (!selector_matches(w, *l.node)) return "selector mismatch";
  if (l.node->runtimes.count(w.type) == 0) return "no " + w.type + " runtime";
  for (const char* effect : {kNoExecute, kNoSchedule}) {
    if (const Taint* t = untolerated_taint(w, *l.node, effect)) {
      return "taint " + taint_text(*t) + " not tolerated";
    }
  }
  if (!l.node->ready) return "not ready";
  if (!fits_cpu(w, l)) return "insufficient cpu";
  if (!fits_memory(w, l)) return "insufficient memory";
  return "";
}

std::string pending_reason(const SchedWorkload& w, const std::set<std::string>& placed,
                           const std::map<std::string, NodeLoad>& loads) {
  std::map<std::string, int> counts;
  for (const auto& [name, load] : loads) {
    if (placed.count(name) > 0) continue;
    std::string why = unfit_reason(w, load);
    counts[why.empty() ? "free" : why] += 1;
  }
  std::string out = std::to_string(placed.size()) + "/" + std::to_string(loads.size()) + " nodes";
  std::string sep = ": ";
  // Most common reason first; ties by name.
  std::vector<std::pair<std::string, int>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  for (const auto& [why, n] : sorted) {
    if (why == "free") continue;
    out += sep + std::to_string(n) + " " + why;
    sep = ", ";
  }
  if (loads.empty()) {
    out += ": no nodes registered";
  } else if (sep == ": ") {
    out += ": at most one instance per node";  // every node already runs one
  }
  return out;
}

}  // namespace

std::map<std::string, WorkloadPlacement> schedule(const ScheduleInput& input) {
  std::map<std::string, NodeLoad> loads;
  for (const auto& n : input.nodes) loads[n.name].node = &n;

  std::vector<const SchedWorkload*> workloads;
  for (const auto& w : input.workloads) workloads.push_back(&w);
  std::sort(workloads.begin(), workloads.end(),
            [](const SchedWorkload* a, const SchedWorkload* b) { return a->name < b->name; });

  std::map<std::string, WorkloadPlacement> out;
  // Pass 1: keep what runs on still-eligible nodes, whatever their readiness and load.
  for (const SchedWorkload* w : workloads) {
    auto& placed = out[w->name].nodes;
    auto cur = input.current.find(w->name);
    if (cur == input.current.end()) continue;
    for (const auto& node : cur->second) {
      auto it = loads.find(node);
      if (it == loads.end() || !eligible(*w, *it->second.node)) continue;
      const SchedNode& n = *it->second.node;
      if (!n.ready && w->evict_after_ms >= 0 && n.not_ready_ms > w->evict_after_ms) continue;
      placed.insert(node);
      add(*w, it->second);
    }
  }
  // Pass 2: shrink to the target, then grow on Ready nodes with room.
  for (const SchedWorkload* w : workloads) {
    WorkloadPlacement& p = out[w->name];
    if (!w->every_node) {
      while (static_cast<int64_t>(p.nodes.size()) > w->replicas) {
        // Remove from NotReady nodes first, then the most loaded, then the last by name.
        auto victim = std::max_element(p.nodes.begin(), p.nodes.end(),
                                       [&](const std::string& a, const std::string& b) {
                                         const NodeLoad& la = loads[a];
                                         const NodeLoad& lb = loads[b];
                                         if (la.node->ready != lb.node->ready)
                                           return la.node->ready;
                                         if (la.instances != lb.instances) {
                                           return la.instances < lb.instances;
                                         }
                                         return a < b;
                                       });
        subtract(*w, loads[*victim]);
        p.nodes.erase(victim);
      }
    }
    std::vector<NodeLoad*> candidates;
    for (auto& [name, load] : loads) {
      if (p.nodes.count(name) == 0 && unfit_reason(*w, load).empty()) candidates.push_back(&load);
    }
    int64_t want = w->every_node ? static_cast<int64_t>(candidates.size())
                                 : w->replicas - static_cast<int64_t>(p.nodes.size());
    // Least loaded first. One sort is enough: a workload gets at most one instance per node,
    // so placing one changes the load of no other candidate (picking the minimum anew each
    // time was quadratic: minutes for an everyNode workload on 100k nodes).
    std::sort(candidates.begin(), candidates.end(), [](const NodeLoad* a, const NodeLoad* b) {
      if (a->instances != b->instances) return a->instances < b->instances;
      return a->node->name < b->node->name;
    });
    for (NodeLoad* chosen : candidates) {
      if (want <= 0) break;
      if (!fits_cpu(*w, *chosen) || !fits_memory(*w, *chosen)) continue;
      add(*w, *chosen);
      p.nodes.insert(chosen->node->name);
      --want;
    }
    if (w->every_node) {
      // Ready eligible nodes without room are what an everyNode workload is short of.
      for (auto& [name, load] : loads) {
        if (p.nodes.count(name) == 0 && load.node->ready && admits(*w, *load.node)) ++p.pending;
      }
    } else {
      p.pending = std::max<int64_t>(0, w->replicas - static_cast<int64_t>(p.nodes.size()));
    }
    if (p.pending > 0) p.reason = pending_reason(*w, p.nodes, loads);
  }
  return out;
}

}  // namespace flotilla::hub
