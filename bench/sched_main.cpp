// flotilla-sched-bench: times the hub's scheduler (cloud-hub/scheduler.hpp) on a synthetic
// fleet, by default 100,000 instances (1,000 workloads x 100 replicas) on 10,000 nodes with
// selectors, taints, tolerations, arch, node pools, NotReady nodes and spread over sites.
//
//   flotilla-sched-bench [--nodes 10000] [--workloads 1000] [--replicas 100] [--runs 5]
//
// Three cases, each timed over --runs calls of schedule() (input built beforehand):
//   initial  every instance placed from nothing;
//   steady   the same input with everything already placed (what the hub runs after every
//            change that moves nothing);
//   change   the steady state after one spread workload grew by half its replicas.
// Prints a Markdown table. Checks every result (all placed, constraints and spread skew held,
// nothing moved that should stay, same output on every run) and exits 1 when one is off.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cloud-hub/scheduler.hpp"
#include "common/flags.hpp"

namespace flotilla::hub {
// Results compare whole: where, how many pending and why.
bool operator==(const WorkloadPlacement& a, const WorkloadPlacement& b) {
  return a.nodes == b.nodes && a.pending == b.pending && a.reason == b.reason;
}
}  // namespace flotilla::hub

namespace {

using flotilla::hub::SchedNode;
using flotilla::hub::schedule;
using flotilla::hub::ScheduleInput;
using flotilla::hub::SchedWorkload;
using flotilla::hub::Taint;
using flotilla::hub::Toleration;
using flotilla::hub::WorkloadPlacement;
using Result = std::map<std::string, WorkloadPlacement>;
using Clock = std::chrono::steady_clock;

constexpr const char* kPool = "flotilla.io/pool";
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int kSites = 50;

std::string numbered(const char* prefix, int i, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%0*d", prefix, width, i);
  return buf;
}

// Node i: site s<i%50>, zone z<site/10>, pool gpu (10 %) / core (10 %) / edge, every node
// offers process, 90 % container, 20 % vm; a quarter arm64; 5 % tainted NoSchedule
// dedicated=gpu, 1 % NoExecute maintenance; 0.5 % NotReady for a minute; 2 % without limits.
SchedNode make_node(int i) {
  SchedNode n;
  n.name = numbered("node-", i, 5);
  int site = i % kSites;
  n.labels["site"] = "s" + std::to_string(site);
  n.labels["zone"] = "z" + std::to_string(site / 10);
  n.labels[kPool] = i % 10 == 0 ? "gpu" : i % 10 == 1 ? "core" : "edge";
  n.runtimes = {"process"};
  if (i % 10 != 9) n.runtimes.insert("container");
  if (i % 5 == 0) n.runtimes.insert("vm");
  n.arch = i % 4 == 3 ? "arm64" : "amd64";
  if (i % 20 == 7) n.taints.push_back({"dedicated", "gpu", flotilla::hub::kNoSchedule});
  if (i % 100 == 13) n.taints.push_back({"maintenance", "", flotilla::hub::kNoExecute});
  n.ready = i % 200 != 42;
  n.not_ready_ms = n.ready ? 0 : 60000;
  if (i % 50 != 17) {
    n.cpu_millis = 16000;
    n.memory_bytes = 32 * 1024 * kMiB;
  }
  return n;
}

// Workload j: 70 % container, 20 % process, 10 % vm; a fifth select a zone, a third spread
// over site (max skew 1 or 2), a tenth tolerate dedicated=gpu, some arm64-only or gpu-pool-only.
SchedWorkload make_workload(int j, int64_t replicas) {
  SchedWorkload w;
  w.name = numbered("wl-", j, 4);
  w.type = j % 10 < 7 ? "container" : j % 10 < 9 ? "process" : "vm";
  w.replicas = replicas;
  if (j % 5 == 1) w.selector["zone"] = "z" + std::to_string((j / 5) % 5);
  if (j % 3 == 0) {
    w.spread_key = "site";
    w.max_skew = j % 2 == 0 ? 1 : 2;
  }
  if (j % 10 == 2) w.tolerations.push_back({"dedicated", "Equal", "gpu", "NoSchedule"});
  if (j % 7 == 4) {
    w.arch = {"arm64"};
  } else if (j % 11 == 5) {
    w.pool = "gpu";
  }
  if (j % 4 == 0) w.evict_after_ms = 30000;
  w.cpu_millis = 50 + (j % 10) * 25;
  w.memory_bytes = (64 + (j % 8) * 32) * kMiB;
  return w;
}

// --- independent checks of a result -------------------------------------------------------

bool untolerated(const SchedWorkload& w, const SchedNode& n, const char* effect) {
  return flotilla::hub::untolerated(n.taints, w.tolerations, effect) != nullptr;
}

// May take a new instance of w (room aside).
bool admits(const SchedWorkload& w, const SchedNode& n) {
  for (const auto& [k, v] : w.selector) {
    auto it = n.labels.find(k);
    if (it == n.labels.end() || it->second != v) return false;
  }
  if (n.runtimes.count(w.type) == 0) return false;
  if (!w.arch.empty() && w.arch.count(n.arch) == 0) return false;
  if (!w.pool.empty() && (n.labels.count(kPool) == 0 || n.labels.at(kPool) != w.pool)) {
    return false;
  }
  if (!w.spread_key.empty() && n.labels.count(w.spread_key) == 0) return false;
  return n.ready && !untolerated(w, n, flotilla::hub::kNoExecute) &&
         !untolerated(w, n, flotilla::hub::kNoSchedule);
}

class Checker {
 public:
  explicit Checker(const ScheduleInput& in) : in_(in) {
    for (const auto& n : in.nodes) nodes_[n.name] = &n;
  }

  // Problems with `out`; placements not in input.current must be on nodes that admit them.
  std::vector<std::string> check(const Result& out) const {
    std::vector<std::string> problems;
    auto problem = [&](const std::string& p) {
      if (problems.size() < 10) problems.push_back(p);
    };
    std::map<std::string, Used> used;
    for (const auto& w : in_.workloads) {
      auto it = out.find(w.name);
      if (it == out.end()) {
        problem(w.name + ": no entry");
        continue;
      }
      const WorkloadPlacement& p = it->second;
      if (p.pending != 0 || static_cast<int64_t>(p.nodes.size()) != w.replicas) {
        problem(w.name + ": " + std::to_string(p.nodes.size()) + " of " +
                std::to_string(w.replicas) + " placed, reason '" + p.reason + "'");
      }
      auto cur = in_.current.find(w.name);
      for (const auto& name : p.nodes) {
        const SchedNode& n = *nodes_.at(name);
        bool kept = cur != in_.current.end() && cur->second.count(name) > 0;
        if (!kept && !admits(w, n)) problem(w.name + ": placed on " + name + " which may not");
        used[name].cpu += w.cpu_millis;
        used[name].memory += w.memory_bytes;
      }
    }
    for (const auto& [name, u] : used) {
      const SchedNode& n = *nodes_.at(name);
      if ((n.cpu_millis > 0 && u.cpu > n.cpu_millis) ||
          (n.memory_bytes > 0 && u.memory > n.memory_bytes)) {
        problem("node " + name + " over capacity");
      }
    }
    for (const auto& w : in_.workloads) {
      if (!w.spread_key.empty() && out.count(w.name) > 0) {
        check_spread(w, out.at(w.name), used, problem);
      }
    }
    return problems;
  }

 private:
  struct Used {
    int64_t cpu = 0;
    int64_t memory = 0;
  };

  // No domain holds more than max_skew above the least populated domain that could still take
  // an instance (a node admitting w, not running it, with room). Counts only grow while the
  // scheduler places, so this holds at the end when every single placement kept the rule.
  template <typename F>
  void check_spread(const SchedWorkload& w, const WorkloadPlacement& p,
                    const std::map<std::string, Used>& used, F& problem) const {
    std::map<std::string, int64_t> per_domain;
    for (const auto& name : p.nodes) per_domain[nodes_.at(name)->labels.at(w.spread_key)] += 1;
    int64_t least = INT64_MAX;
    for (const auto& n : in_.nodes) {
      if (p.nodes.count(n.name) > 0 || !admits(w, n)) continue;
      auto u = used.find(n.name);
      Used have = u == used.end() ? Used{} : u->second;
      if ((n.cpu_millis > 0 && have.cpu + w.cpu_millis > n.cpu_millis) ||
          (n.memory_bytes > 0 && have.memory + w.memory_bytes > n.memory_bytes)) {
        continue;
      }
      auto d = per_domain.find(n.labels.at(w.spread_key));
      least = std::min(least, d == per_domain.end() ? 0 : d->second);
    }
    for (const auto& [domain, count] : per_domain) {
      if (least != INT64_MAX && count - least > w.max_skew) {
        problem(w.name + ": " + domain + " holds " + std::to_string(count) + ", " +
                std::to_string(count - least) + " above a domain with room (max skew " +
                std::to_string(w.max_skew) + ")");
        return;
      }
    }
  }

  const ScheduleInput& in_;
  std::map<std::string, const SchedNode*> nodes_;
};

// --- timing -------------------------------------------------------------------------------

struct Timing {
  std::string name;
  std::string what;
  double min_ms = 0;
  double median_ms = 0;
  size_t instances = 0;
};

// Runs schedule(in) `runs` times; fails when two runs differ.
bool time_schedule(const ScheduleInput& in, int runs, Timing& t, Result& out) {
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
    auto t0 = Clock::now();
    Result res = schedule(in);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (r > 0 && res != out) {
      std::cerr << "flotilla-sched-bench: " << t.name << ": run " << r << " differs from run 0\n";
      return false;
    }
    if (r == 0) out = std::move(res);
  }
  std::sort(ms.begin(), ms.end());
  t.min_ms = ms.front();
  t.median_ms = ms[ms.size() / 2];
  for (const auto& [name, p] : out) t.instances += p.nodes.size();
  return true;
}

bool report_problems(const std::string& name, const std::vector<std::string>& problems) {
  for (const auto& p : problems) std::cerr << "flotilla-sched-bench: " << name << ": " << p << "\n";
  return problems.empty();
}

std::map<std::string, std::set<std::string>> placements(const Result& out) {
  std::map<std::string, std::set<std::string>> current;
  for (const auto& [name, p] : out) current[name] = p.nodes;
  return current;
}

int usage_error(const flotilla::Flags& flags, const std::string& message) {
  std::cerr << "flotilla-sched-bench: " << message << "\n\n" << flags.usage();
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  flotilla::Flags flags("flotilla-sched-bench",
                        "Times the hub's scheduler on a synthetic fleet and checks its results.");
  flags.add("nodes", "nodes in the fleet", "10000");
  flags.add("workloads", "workloads (with --replicas each)", "1000");
  flags.add("replicas", "replicas per workload", "100");
  flags.add("runs", "calls of schedule() per case (min and median are reported)", "5");
  if (auto st = flags.parse(argc, argv); !st) return usage_error(flags, st.error().message());
  if (flags.help_requested()) {
    std::cout << flags.usage();
    return 0;
  }
  auto nodes = flags.get_int("nodes", 1, 10'000'000);
  auto workloads = flags.get_int("workloads", 1, 100'000);
  auto replicas = flags.get_int("replicas", 1, 1'000'000);
  auto runs = flags.get_int("runs", 1, 1000);
  for (auto* v : {&nodes, &workloads, &replicas, &runs}) {
    if (!*v) return usage_error(flags, v->error().message());
  }

  ScheduleInput in;
  for (int i = 0; i < *nodes; ++i) in.nodes.push_back(make_node(static_cast<int>(i)));
  for (int j = 0; j < *workloads; ++j) in.workloads.push_back(make_workload(j, *replicas));

  std::vector<Timing> rows;
  bool ok = true;

  Timing initial{"initial", "every instance placed from nothing"};
  Result placed;
  ok = time_schedule(in, static_cast<int>(*runs), initial, placed) &&
       report_problems(initial.name, Checker(in).check(placed));
  rows.push_back(initial);

  Timing steady{"steady", "re-run with everything placed: nothing moves"};
  Result again;
  in.current = placements(placed);
  if (ok) {
    ok = time_schedule(in, static_cast<int>(*runs), steady, again) &&
         report_problems(steady.name, Checker(in).check(again));
    if (ok && again != placed) ok = report_problems(steady.name, {"placements moved"});
    rows.push_back(steady);
  }

  // wl-0000 spreads over site with max skew 1 (make_workload).
  const std::string grown = in.workloads.front().name;
  Timing change{"change", grown + " grows from " + std::to_string(*replicas) + " to " +
                              std::to_string(*replicas + *replicas / 2) + " replicas"};
  if (ok) {
    in.workloads.front().replicas = *replicas + *replicas / 2;
    Result changed;
    ok = time_schedule(in, static_cast<int>(*runs), change, changed) &&
         report_problems(change.name, Checker(in).check(changed));
    for (const auto& [name, p] : changed) {
      const auto& before = placed.at(name).nodes;
      bool kept = std::includes(p.nodes.begin(), p.nodes.end(), before.begin(), before.end());
      if (ok && (name == grown ? !kept : p.nodes != before)) {
        ok = report_problems(change.name, {name + ": placements moved"});
      }
    }
    rows.push_back(change);
  }

  std::cout << "| case | what | instances placed | schedule() min ms | median ms (" << *runs
            << " runs) |\n|---|---|---|---|---|\n";
  for (const auto& t : rows) {
    char line[512];
    std::snprintf(line, sizeof line, "| %s | %s | %zu | %.1f | %.1f |\n", t.name.c_str(),
                  t.what.c_str(), t.instances, t.min_ms, t.median_ms);
    std::cout << line;
  }
  std::cout << "\n"
            << *nodes << " nodes, " << *workloads << " workloads x " << *replicas
            << " replicas; results checked: " << (ok ? "ok" : "FAILED") << "\n";
  return ok ? 0 : 1;
}
