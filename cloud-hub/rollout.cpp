#include "cloud-hub/rollout.hpp"

#include <algorithm>

namespace flotilla::hub {
namespace {

// The cumulative targets of the waves that add instances, the last one `updatable` (the nodes
// on the new spec plus those the partition lets update); empty when nothing is updatable.
std::vector<int64_t> wave_targets(const RolloutPolicy& policy, int64_t total, int64_t updatable) {
  std::vector<int64_t> out;
  auto add = [&](int64_t target) {
    target = std::min(target, updatable);
    if (target > (out.empty() ? 0 : out.back())) out.push_back(target);
  };
  for (const auto& w : policy.waves) add(resolve_wave(w, total));
  add(updatable);
  return out;
}

std::string describe(const RolloutPlan& plan, int64_t picked, bool blocked_by_budget) {
  std::string s = plan.complete ? "complete"
                  : plan.waves > 1
                      ? "wave " + std::to_string(plan.wave) + "/" + std::to_string(plan.waves)
                      : "rolling";
  s += ": " + std::to_string(plan.updated) + "/" + std::to_string(plan.total) + " updated, " +
       std::to_string(plan.ready) + " ready";
  if (plan.held > 0) s += ", " + std::to_string(plan.held) + " held by partition";
  if (picked > 0) return s + ", updating " + std::to_string(picked);
  if (plan.complete) return s;
  s += ", waiting for readiness";
  if (blocked_by_budget) {
    s += ": " + std::to_string(plan.unavailable) + " unavailable, maxUnavailable " +
         std::to_string(plan.max_unavailable);
  }
  return s;
}

}  // namespace

int64_t resolve_max_unavailable(const CountOrPercent& c, int64_t total) {
  int64_t n = c.percent ? total * c.value / 100 : c.value;
  return std::max<int64_t>(n, 1);
}

int64_t resolve_wave(const CountOrPercent& c, int64_t total) {
  int64_t n = c.percent ? (total * c.value + 99) / 100 : c.value;
  return std::clamp<int64_t>(n, 0, std::max<int64_t>(total, 0));
}

RolloutPlan plan_rollout(const RolloutPolicy& policy, std::vector<RolloutNode> placed) {
  auto by_name = [](const RolloutNode& a, const RolloutNode& b) { return a.node < b.node; };
  std::stable_sort(placed.begin(), placed.end(), by_name);
  placed.erase(std::unique(placed.begin(), placed.end(),
                           [](const auto& a, const auto& b) { return a.node == b.node; }),
               placed.end());

  RolloutPlan plan;
  plan.total = static_cast<int64_t>(placed.size());
  plan.max_unavailable = resolve_max_unavailable(policy.max_unavailable, plan.total);
  const int64_t first_held = plan.total - std::clamp<int64_t>(policy.partition, 0, plan.total);
  std::vector<const RolloutNode*> ready_old, unready_old;
  int64_t updated = 0;
  for (int64_t i = 0; i < plan.total; ++i) {
    const RolloutNode& n = placed[static_cast<size_t>(i)];
    const bool fresh = n.fresh && !n.updated;
    if (fresh || !n.ready) ++plan.unavailable;
    if (n.updated || fresh) {
      ++updated;
      if (n.updated && n.ready) ++plan.ready;
      if (fresh) plan.update_now.insert(n.node);
    } else if (i >= first_held) {
      ++plan.held;
    } else {
      (n.ready ? ready_old : unready_old).push_back(&n);
    }
  }

  const int64_t candidates = static_cast<int64_t>(ready_old.size() + unready_old.size());
  const std::vector<int64_t> targets = wave_targets(policy, plan.total, updated + candidates);
  plan.waves = static_cast<int64_t>(targets.size());
  int64_t allowance = 0;
  if (!targets.empty()) {
    // Wave k+1 is released once as many instances on the new spec are ready as wave k holds.
    auto passed = std::upper_bound(targets.begin(), targets.end(), plan.ready) - targets.begin();
    plan.wave = std::min<int64_t>(passed, plan.waves - 1) + 1;
    allowance = std::max<int64_t>(targets[static_cast<size_t>(plan.wave - 1)] - updated, 0);
  }
  int64_t budget = plan.max_unavailable - plan.unavailable;
  int64_t picked = 0;
  for (const RolloutNode* n : ready_old) {
    if (picked == allowance || budget <= 0) break;
    plan.update_now.insert(n->node);
    --budget;
    ++picked;
  }
  const bool blocked_by_budget = picked < allowance && picked < std::ssize(ready_old);
  for (const RolloutNode* n : unready_old) {
    if (picked == allowance) break;
    plan.update_now.insert(n->node);  // already unavailable: costs no budget
    ++picked;
  }
  plan.updated = updated + picked;
  plan.complete = plan.update_now.empty() && candidates == 0 && plan.ready == updated;
  plan.status = describe(plan, static_cast<int64_t>(plan.update_now.size()), blocked_by_budget);
  return plan;
}

}  // namespace flotilla::hub
