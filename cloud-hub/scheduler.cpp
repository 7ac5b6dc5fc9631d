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

constexpr const char* kPool = "flotilla.io/pool";  // manifest.hpp kPoolLabel

bool arch_matches(const SchedWorkload& w, const SchedNode& n) {
  return w.arch.empty() || w.arch.count(n.arch) > 0;
}

bool pool_matches(const SchedWorkload& w, const SchedNode& n) {
  if (w.pool.empty()) return true;
  auto it = n.labels.find(kPool);
  return it != n.labels.end() && it->second == w.pool;
}

bool has_spread_label(const SchedWorkload& w, const SchedNode& n) {
  return w.spread_key.empty() || n.labels.count(w.spread_key) > 0;
}

// May run `w` (kept placements stay).
bool eligible(const SchedWorkload& w, const SchedNode& n) {
  return selector_matches(w, n) && n.runtimes.count(w.type) > 0 && arch_matches(w, n) &&
         pool_matches(w, n) && has_spread_label(w, n) &&
         untolerated_taint(w, n, kNoExecute) == nullptr;
}

std::string domain_of(const SchedWorkload& w, const SchedNode& n) {
  auto it = n.labels.find(w.spread_key);
  return it == n.labels.end() ? "" : it->second;
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
  if (!arch_matches(w, *l.node)) return "arch mismatch";
  if (!pool_matches(w, *l.node)) return "not in pool " + w.pool;
  if (!has_spread_label(w, *l.node)) return "no label " + w.spread_key;
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

// Places up to `want` instances of a spread workload from `candidates` (sorted least loaded
// first): each into the domain with the fewest of its instances among those with a candidate.
void place_spread(const SchedWorkload& w, const std::vector<NodeLoad*>& candidates, int64_t want,
                  const std::map<std::string, NodeLoad>& loads, WorkloadPlacement& p) {
  std::map<std::string, int64_t> per_domain;  // instances of w per domain, kept ones included
  for (const auto& n : p.nodes) per_domain[domain_of(w, *loads.at(n).node)] += 1;
  std::map<std::string, std::vector<NodeLoad*>> room;  // domain -> candidates, least loaded first
  for (NodeLoad* c : candidates) {
    if (fits_cpu(w, *c) && fits_memory(w, *c)) room[domain_of(w, *c->node)].push_back(c);
  }
  for (auto& [domain, nodes] : room) std::reverse(nodes.begin(), nodes.end());  // pop_back order
  while (want > 0 && !room.empty()) {
    std::string best;
    int64_t least = INT64_MAX;
    for (const auto& [domain, nodes] : room) {
      int64_t n = per_domain[domain];
      if (n < least) {
        least = n;
        best = domain;
      }
    }
    // `best` has the least count among domains with room, so the skew rule holds; kept here in
    // case the selection above ever changes.
    if (per_domain[best] + 1 - least > w.max_skew) break;
    auto& nodes = room[best];
    NodeLoad* chosen = nodes.back();
    nodes.pop_back();
    if (nodes.empty()) room.erase(best);
    add(w, *chosen);
    p.nodes.insert(chosen->node->name);
    per_domain[best] += 1;
    --want;
  }
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
        // Remove from NotReady nodes first, then (spread) the most populated domain, then the
        // most loaded node, then the last by name.
        std::map<std::string, int64_t> per_domain;
        if (!w->spread_key.empty()) {
          for (const auto& n : p.nodes) per_domain[domain_of(*w, *loads[n].node)] += 1;
        }
        auto victim = std::max_element(p.nodes.begin(), p.nodes.end(),
                                       [&](const std::string& a, const std::string& b) {
                                         const NodeLoad& la = loads[a];
                                         const NodeLoad& lb = loads[b];
                                         if (la.node->ready != lb.node->ready)
                                           return la.node->ready;
                                         if (!w->spread_key.empty()) {
                                           int64_t da = per_domain[domain_of(*w, *la.node)];
                                           int64_t db = per_domain[domain_of(*w, *lb.node)];
                                           if (da != db) return da < db;
                                         }
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
    if (!w->spread_key.empty()) {
      place_spread(*w, candidates, want, loads, p);
      want = 0;
    }
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
