// Reader of spec.update, the rolling-update policy of a workload (rollout.hpp has its rules).
#include <algorithm>
#include <optional>

#include "cloud-hub/manifest_sections.hpp"

namespace flotilla::hub {
namespace {

using Kind = DocNode::Kind;

// Counts and partitions above this are typing mistakes (replicas stop at 10000).
constexpr int64_t kMaxInstances = 1000000;
constexpr size_t kMaxWaves = 100;

// "25%" -> 25; nullopt unless digits and a '%'.
std::optional<int64_t> percentage(const std::string& s) {
  if (s.size() < 2 || s.size() > 10 || s.back() != '%') return std::nullopt;
  if (!std::all_of(s.begin(), s.end() - 1, [](char ch) { return ch >= '0' && ch <= '9'; })) {
    return std::nullopt;
  }
  return std::stoll(s.substr(0, s.size() - 1));
}

// A whole number ≥ 1 or a percentage from 1% to 100%.
CountOrPercent count_or_percent(Checker& c, const DocNode& n, const std::string& path) {
  if (n.kind == Kind::kInt) return {c.whole(n, path, 1, kMaxInstances), false};
  std::optional<int64_t> pct = n.kind == Kind::kString ? percentage(n.text) : std::nullopt;
  if (pct && *pct >= 1 && *pct <= 100) return {*pct, true};
  std::string got =
      n.is_scalar() && n.kind != Kind::kNull ? "'" + n.text + "'" : describe_kind(n.kind);
  c.fail(n, path,
         pct ? "want a percentage from 1% to 100%, got " + got
             : "want a whole number ≥ 1 or a percentage such as 25%, got " + got);
  return {1, false};
}

std::vector<CountOrPercent> read_waves(Checker& c, const DocNode& n, const std::string& path) {
  std::vector<CountOrPercent> out;
  if (n.kind != Kind::kList) {
    c.fail(n, path, "want a list of cumulative counts or percentages, e.g. [1, 10%, 50%]");
    return out;
  }
  if (n.items.empty() || n.items.size() > kMaxWaves) {
    c.fail(n, path,
           "want 1 to " + std::to_string(kMaxWaves) + " waves, got " +
               std::to_string(n.items.size()) + " (leave waves out for a single one)");
    return out;
  }
  std::optional<CountOrPercent> last_count, last_percent;
  for (size_t i = 0; i < n.items.size() && !c.failed(); ++i) {
    std::string at = path + "[" + std::to_string(i) + "]";
    CountOrPercent w = count_or_percent(c, n.items[i], at);
    if (c.failed()) break;
    // Waves are cumulative: counts must grow, and so must percentages. A count and a percentage
    // compare only once the number of instances is known; the planner then takes the larger.
    std::optional<CountOrPercent>& last = w.percent ? last_percent : last_count;
    if (last && w.value <= last->value) {
      std::string unit = w.percent ? "%" : "";
      c.fail(n.items[i], at,
             "waves are cumulative: want more than the earlier " + std::to_string(last->value) +
                 unit + ", got " + std::to_string(w.value) + unit);
      break;
    }
    last = w;
    out.push_back(w);
  }
  return out;
}

}  // namespace

void read_update(Checker& c, const DocNode& n, const std::string& path, WorkloadManifest& m) {
  if (n.kind == Kind::kNull || !c.want_map(n, path)) return;
  if (const DocNode* surge = n.find("maxSurge")) {
    c.fail(*surge, join_path(path, "maxSurge"),
           "a node runs one instance of a workload, replaced in place, so there is no surge "
           "(use maxUnavailable)");
    return;
  }
  c.only_fields(n, path, {"maxUnavailable", "partition", "waves"});
  RolloutPolicy policy;
  if (const DocNode* mu = n.find("maxUnavailable")) {
    policy.max_unavailable = count_or_percent(c, *mu, join_path(path, "maxUnavailable"));
  }
  if (const DocNode* p = n.find("partition")) {
    policy.partition = c.whole(*p, join_path(path, "partition"), 0, kMaxInstances);
  }
  if (const DocNode* w = n.find("waves"); w != nullptr && w->kind != Kind::kNull)
    policy.waves = read_waves(c, *w, join_path(path, "waves"));
  if (!c.failed()) m.update = std::move(policy);
}

}  // namespace flotilla::hub
