#include "cloud-hub/scheduler.hpp"

#include <algorithm>
#include <functional>
#include <queue>
#include <string_view>
#include <tuple>
#include <unordered_map>

// The rules work on node numbers, not names: nodes are numbered in name order, so "then by
// name" is "then by number", and the labels, runtimes and arch the workloads ask about are
// turned into per-node columns of small integers once per call. Comparing strings in sets and
// maps for every (workload, node) pair took seconds for 1,000 workloads on 10,000 nodes
// (bench/sched_main.cpp).
namespace flotilla::hub {
namespace {

constexpr const char* kPool = "flotilla.io/pool";  // manifest.hpp kPoolLabel
constexpr int32_t kAbsent = -1;                    // node lacks the label
constexpr int32_t kNoSuchValue = -2;               // no node has the wanted value

// Why a node cannot take a new instance of a workload, in the order the rules are checked.
enum class Unfit : uint8_t {
  kNone,
  kSelector,
  kRuntime,
  kArch,
  kPool,
  kSpreadLabel,
  kNoExecute,
  kNoSchedule,
  kNotReady,
  kCpu,
  kMemory,
};

// A node label's values as numbers, numbered in value order (so domains compare by name).
struct Column {
  std::vector<int32_t> value;  // per node; kAbsent without the label
  std::map<std::string, int32_t, std::less<>> ids;
};

struct Load {
  int64_t cpu = 0;
  int64_t memory = 0;
  int64_t instances = 0;
};

// The input's nodes by name (of equal names the last counts), with the columns asked for.
class Fleet {
 public:
  explicit Fleet(const std::vector<SchedNode>& input) {
    for (const auto& n : input) nodes_.push_back(&n);
    std::stable_sort(nodes_.begin(), nodes_.end(),
                     [](const SchedNode* a, const SchedNode* b) { return a->name < b->name; });
    // Keep the last of each run of equal names.
    std::vector<const SchedNode*> unique;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (i + 1 < nodes_.size() && nodes_[i + 1]->name == nodes_[i]->name) continue;
      unique.push_back(nodes_[i]);
    }
    nodes_.swap(unique);
    by_name_.reserve(nodes_.size());
    for (size_t i = 0; i < nodes_.size(); ++i) by_name_[nodes_[i]->name] = static_cast<int>(i);
    std::map<std::string_view, int32_t> arch_ids;
    for (const SchedNode* n : nodes_) arch_ids.emplace(n->arch, 0);
    for (auto& [arch, id] : arch_ids) {
      id = static_cast<int32_t>(arch_names_.size());
      arch_names_.emplace_back(arch);
    }
    for (const SchedNode* n : nodes_) arch_.push_back(arch_ids[n->arch]);
  }

  int size() const { return static_cast<int>(nodes_.size()); }
  const SchedNode& node(int i) const { return *nodes_[i]; }
  int find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? -1 : it->second;
  }
  int32_t arch(int i) const { return arch_[i]; }
  const std::vector<std::string>& arch_names() const { return arch_names_; }

  const Column& column(const std::string& key) {
    auto [it, fresh] = columns_.try_emplace(key);
    Column& c = it->second;
    if (!fresh) return c;
    std::vector<const std::string*> values(nodes_.size(), nullptr);
    for (size_t i = 0; i < nodes_.size(); ++i) {
      auto label = nodes_[i]->labels.find(key);
      if (label == nodes_[i]->labels.end()) continue;
      values[i] = &label->second;
      c.ids.emplace(label->second, 0);
    }
    int32_t next = 0;
    for (auto& [value, id] : c.ids) id = next++;
    c.value.resize(nodes_.size(), kAbsent);
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (values[i] != nullptr) c.value[i] = c.ids.find(*values[i])->second;
    }
    return c;
  }

  // Per node: offers `type`.
  const std::vector<char>& offers(const std::string& type) {
    auto [it, fresh] = runtimes_.try_emplace(type);
    if (fresh) {
      for (const SchedNode* n : nodes_) it->second.push_back(n->runtimes.count(type) > 0);
    }
    return it->second;
  }

 private:
  std::vector<const SchedNode*> nodes_;
  std::unordered_map<std::string_view, int> by_name_;
  std::vector<int32_t> arch_;
  std::vector<std::string> arch_names_;
  std::map<std::string, Column> columns_;
  std::map<std::string, std::vector<char>> runtimes_;
};

int32_t value_id(const Column& c, const std::string& value) {
  auto it = c.ids.find(value);
  return it == c.ids.end() ? kNoSuchValue : it->second;
}

// One workload's rules, resolved against the fleet's columns.
class Rules {
 public:
  Rules(const SchedWorkload& w, Fleet& fleet)
      : w_(w), fleet_(fleet), offers_(fleet.offers(w.type)) {
    for (const auto& [key, value] : w.selector) {
      const Column& c = fleet.column(key);
      selector_.emplace_back(&c.value, value_id(c, value));
    }
    if (!w.arch.empty()) {
      for (const auto& name : fleet.arch_names()) arch_ok_.push_back(w.arch.count(name) > 0);
    }
    if (!w.pool.empty()) {
      const Column& c = fleet.column(kPool);
      pool_ = &c.value;
      pool_value_ = value_id(c, w.pool);
    }
    if (!w.spread_key.empty()) spread_ = &fleet.column(w.spread_key);
  }

  const SchedWorkload& workload() const { return w_; }
  const Column* spread() const { return spread_; }

  // The first rule node `i` breaks, leaving readiness and room aside; `taint` is set for the
  // taint codes.
  Unfit check_node(int i, const Taint** taint = nullptr) const {
    for (const auto& [column, value] : selector_) {
      if ((*column)[i] != value) return Unfit::kSelector;
    }
    if (!offers_[i]) return Unfit::kRuntime;
    if (!arch_ok_.empty() && !arch_ok_[fleet_.arch(i)]) return Unfit::kArch;
    if (pool_ != nullptr && (*pool_)[i] != pool_value_) return Unfit::kPool;
    if (spread_ != nullptr && spread_->value[i] == kAbsent) return Unfit::kSpreadLabel;
    const SchedNode& n = fleet_.node(i);
    if (n.taints.empty()) return Unfit::kNone;
    for (auto [effect, code] :
         {std::pair{kNoExecute, Unfit::kNoExecute}, std::pair{kNoSchedule, Unfit::kNoSchedule}}) {
      if (const Taint* t = untolerated(n.taints, w_.tolerations, effect)) {
        if (taint != nullptr) *taint = t;
        return code;
      }
    }
    return Unfit::kNone;
  }

  // May run the workload (kept placements stay).
  bool eligible(int i) const {
    Unfit u = check_node(i);
    return u == Unfit::kNone || u == Unfit::kNoSchedule;
  }

  bool fits(int i, const Load& l) const {
    const SchedNode& n = fleet_.node(i);
    return (n.cpu_millis == 0 || l.cpu + w_.cpu_millis <= n.cpu_millis) &&
           (n.memory_bytes == 0 || l.memory + w_.memory_bytes <= n.memory_bytes);
  }

  // Why node `i` cannot take a new instance; kNone when it can.
  Unfit unfit(int i, const Load& l, const Taint** taint = nullptr) const {
    Unfit u = check_node(i, taint);
    if (u != Unfit::kNone) return u;
    const SchedNode& n = fleet_.node(i);
    if (!n.ready) return Unfit::kNotReady;
    if (n.cpu_millis != 0 && l.cpu + w_.cpu_millis > n.cpu_millis) return Unfit::kCpu;
    if (n.memory_bytes != 0 && l.memory + w_.memory_bytes > n.memory_bytes) return Unfit::kMemory;
    return Unfit::kNone;
  }

  std::string text(Unfit u, const Taint* taint) const {
    switch (u) {
      case Unfit::kNone:
        return "";
      case Unfit::kSelector:
        return "selector mismatch";
      case Unfit::kRuntime:
        return "no " + w_.type + " runtime";
      case Unfit::kArch:
        return "arch mismatch";
      case Unfit::kPool:
        return "not in pool " + w_.pool;
      case Unfit::kSpreadLabel:
        return "no label " + w_.spread_key;
      case Unfit::kNoExecute:
      case Unfit::kNoSchedule:
        return "taint " + taint_text(*taint) + " not tolerated";
      case Unfit::kNotReady:
        return "not ready";
      case Unfit::kCpu:
        return "insufficient cpu";
      case Unfit::kMemory:
        return "insufficient memory";
    }
    return "";
  }

 private:
  const SchedWorkload& w_;
  const Fleet& fleet_;
  const std::vector<char>& offers_;
  std::vector<std::pair<const std::vector<int32_t>*, int32_t>> selector_;
  std::vector<char> arch_ok_;  // per arch id; empty: any
  const std::vector<int32_t>* pool_ = nullptr;
  int32_t pool_value_ = kNoSuchValue;
  const Column* spread_ = nullptr;
};

// The scheduler's working state: per-node load and, for the workload at hand, where it runs.
class Placer {
 public:
  explicit Placer(Fleet& fleet) : fleet_(fleet), loads_(fleet.size()), runs_(fleet.size(), 0) {}

  // Pass 1: what runs on still-eligible nodes stays (evict_after_ms aside).
  void keep(const Rules& r, const std::set<std::string>& current, std::vector<int>& placed) {
    const SchedWorkload& w = r.workload();
    for (const auto& name : current) {
      int i = fleet_.find(name);
      if (i < 0 || !r.eligible(i)) continue;
      const SchedNode& n = fleet_.node(i);
      if (!n.ready && w.evict_after_ms >= 0 && n.not_ready_ms > w.evict_after_ms) continue;
      placed.push_back(i);
      add(w, i);
    }
  }

  // Pass 2: shrink to the target, then grow on Ready nodes with room.
  void place(const Rules& r, std::vector<int>& placed, WorkloadPlacement& out) {
    const SchedWorkload& w = r.workload();
    if (!w.every_node && static_cast<int64_t>(placed.size()) > w.replicas) shrink(r, placed);
    for (int i : placed) runs_[i] = 1;
    int64_t want = w.every_node ? 0 : w.replicas - static_cast<int64_t>(placed.size());
    std::vector<int> candidates;  // in name order
    int64_t short_of_room = 0;    // everyNode: Ready nodes it may use but that lack room
    if (w.every_node || want > 0) {
      for (int i = 0; i < fleet_.size(); ++i) {
        if (runs_[i] || r.check_node(i) != Unfit::kNone || !fleet_.node(i).ready) continue;
        if (r.fits(i, loads_[i])) {
          candidates.push_back(i);
        } else {
          ++short_of_room;
        }
      }
    }
    if (w.every_node) want = static_cast<int64_t>(candidates.size());
    const size_t kept = placed.size();
    const auto offered = static_cast<int64_t>(candidates.size());
    if (r.spread() != nullptr) {
      place_spread(r, candidates, want, placed);
    } else {
      take_least_loaded(w, candidates, want, placed);
    }
    for (size_t k = kept; k < placed.size(); ++k) runs_[placed[k]] = 1;
    std::sort(placed.begin(), placed.end());
    if (w.every_node) {
      // Ready nodes it may use but did not get: those without room (and any a spread held
      // back).
      out.pending = short_of_room + offered - static_cast<int64_t>(placed.size() - kept);
    } else {
      out.pending = std::max<int64_t>(0, w.replicas - static_cast<int64_t>(placed.size()));
    }
    if (out.pending > 0) out.reason = pending_reason(r, placed);
    for (int i : placed) {
      runs_[i] = 0;
      out.nodes.insert(out.nodes.end(), fleet_.node(i).name);
    }
  }

 private:
  void add(const SchedWorkload& w, int i) {
    loads_[i].cpu += w.cpu_millis;
    loads_[i].memory += w.memory_bytes;
    loads_[i].instances += 1;
  }

  void subtract(const SchedWorkload& w, int i) {
    loads_[i].cpu -= w.cpu_millis;
    loads_[i].memory -= w.memory_bytes;
    loads_[i].instances -= 1;
  }

  // Least loaded first: fewest instances, then name.
  bool less_loaded(int a, int b) const {
    return std::tie(loads_[a].instances, a) < std::tie(loads_[b].instances, b);
  }

  // Removes extras: NotReady nodes first, then (spread) the most populated domain, then the
  // most loaded node, then the last by name. Removing one changes no other node's load, only
  // its domain's count, so each domain's nodes are ordered once and the domains kept in a heap.
  void shrink(const Rules& r, std::vector<int>& placed) {
    const SchedWorkload& w = r.workload();
    auto extra = static_cast<int64_t>(placed.size()) - w.replicas;
    using Key = std::tuple<bool, int64_t, int>;  // NotReady, instances, node
    auto key = [&](int i) { return Key{!fleet_.node(i).ready, loads_[i].instances, i}; };
    std::map<int32_t, std::vector<int>> domains;  // most removable last
    for (int i : placed) domains[r.spread() ? r.spread()->value[i] : 0].push_back(i);
    for (auto& [d, nodes] : domains) {
      std::sort(nodes.begin(), nodes.end(), [&](int a, int b) { return key(a) < key(b); });
    }
    using Pick = std::tuple<bool, int64_t, int64_t, int, int32_t>;  // + domain count, domain
    std::priority_queue<Pick> heap;
    auto push = [&](int32_t d) {
      const auto& nodes = domains[d];
      if (nodes.empty()) return;
      int i = nodes.back();
      heap.emplace(!fleet_.node(i).ready, static_cast<int64_t>(nodes.size()), loads_[i].instances,
                   i, d);
    };
    for (const auto& [d, nodes] : domains) push(d);
    std::vector<char> removed(fleet_.size(), 0);
    for (; extra > 0; --extra) {
      int32_t d = std::get<4>(heap.top());
      heap.pop();
      int victim = domains[d].back();
      domains[d].pop_back();
      subtract(w, victim);
      removed[victim] = 1;
      push(d);
    }
    std::erase_if(placed, [&](int i) { return removed[i] != 0; });
  }

  void take_least_loaded(const SchedWorkload& w, std::vector<int>& candidates, int64_t want,
                         std::vector<int>& placed) {
    if (want <= 0) return;
    if (want < static_cast<int64_t>(candidates.size())) {
      std::nth_element(candidates.begin(), candidates.begin() + want, candidates.end(),
                       [&](int a, int b) { return less_loaded(a, b); });
      candidates.resize(want);
    }
    for (int i : candidates) {
      add(w, i);
      placed.push_back(i);
    }
  }

  // Each new instance goes to the domain with the fewest instances among those with a
  // candidate (ties: first by name), onto its least-loaded candidate.
  void place_spread(const Rules& r, const std::vector<int>& candidates, int64_t want,
                    std::vector<int>& placed) {
    if (want <= 0) return;
    const SchedWorkload& w = r.workload();
    const Column& c = *r.spread();
    std::vector<int64_t> per_domain(c.ids.size(), 0);  // kept placements included
    for (int i : placed) per_domain[c.value[i]] += 1;
    std::vector<std::vector<int>> room(c.ids.size());  // min-heaps, least loaded on top
    for (int i : candidates) room[c.value[i]].push_back(i);
    auto more_loaded = [&](int a, int b) { return less_loaded(b, a); };
    using Domain = std::pair<int64_t, int32_t>;  // count, domain
    std::priority_queue<Domain, std::vector<Domain>, std::greater<>> domains;
    for (size_t d = 0; d < room.size(); ++d) {
      if (room[d].empty()) continue;
      std::make_heap(room[d].begin(), room[d].end(), more_loaded);
      domains.emplace(per_domain[d], static_cast<int32_t>(d));
    }
    while (want > 0 && !domains.empty()) {
      auto [least, best] = domains.top();
      // `best` has the least count among domains with room, so the skew rule holds; kept here
      // in case the selection above ever changes.
      if (per_domain[best] + 1 - least > w.max_skew) break;
      domains.pop();
      auto& nodes = room[best];
      std::pop_heap(nodes.begin(), nodes.end(), more_loaded);
      int chosen = nodes.back();
      nodes.pop_back();
      add(w, chosen);
      placed.push_back(chosen);
      per_domain[best] += 1;
      --want;
      if (!nodes.empty()) domains.emplace(per_domain[best], best);
    }
  }

  // "placed/total nodes: N reason, ..." over the nodes not running the workload.
  std::string pending_reason(const Rules& r, const std::vector<int>& placed) const {
    std::map<std::string, int> counts;
    std::vector<int> per_code(static_cast<size_t>(Unfit::kMemory) + 1, 0);
    for (int i = 0; i < fleet_.size(); ++i) {
      if (runs_[i]) continue;
      const Taint* taint = nullptr;
      Unfit u = r.unfit(i, loads_[i], &taint);
      if (taint != nullptr) {
        counts[r.text(u, taint)] += 1;
      } else if (u != Unfit::kNone) {
        per_code[static_cast<size_t>(u)] += 1;
      }
    }
    for (size_t u = 0; u < per_code.size(); ++u) {
      if (per_code[u] > 0) counts[r.text(static_cast<Unfit>(u), nullptr)] += per_code[u];
    }
    std::string out =
        std::to_string(placed.size()) + "/" + std::to_string(fleet_.size()) + " nodes";
    std::string sep = ": ";
    // Most common reason first; ties by name.
    std::vector<std::pair<std::string, int>> sorted(counts.begin(), counts.end());
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    for (const auto& [why, n] : sorted) {
      out += sep + std::to_string(n) + " " + why;
      sep = ", ";
    }
    if (fleet_.size() == 0) {
      out += ": no nodes registered";
    } else if (sep == ": ") {
      out += ": at most one instance per node";  // every node already runs one
    }
    return out;
  }

  Fleet& fleet_;
  std::vector<Load> loads_;
  std::vector<char> runs_;  // the workload at hand runs on node i
};

}  // namespace

std::map<std::string, WorkloadPlacement> schedule(const ScheduleInput& input) {
  Fleet fleet(input.nodes);
  std::vector<const SchedWorkload*> workloads;
  for (const auto& w : input.workloads) workloads.push_back(&w);
  std::stable_sort(
      workloads.begin(), workloads.end(),
      [](const SchedWorkload* a, const SchedWorkload* b) { return a->name < b->name; });
  std::vector<Rules> rules;
  rules.reserve(workloads.size());
  for (const SchedWorkload* w : workloads) rules.emplace_back(*w, fleet);

  Placer placer(fleet);
  std::vector<std::vector<int>> placed(workloads.size());
  for (size_t k = 0; k < workloads.size(); ++k) {
    auto cur = input.current.find(workloads[k]->name);
    if (cur != input.current.end()) placer.keep(rules[k], cur->second, placed[k]);
  }
  std::map<std::string, WorkloadPlacement> out;
  for (size_t k = 0; k < workloads.size(); ++k) {
    placer.place(rules[k], placed[k], out[workloads[k]->name]);
  }
  return out;
}

}  // namespace flotilla::hub
