// Rolling updates of a workload (spec.update, docs/hub.md "Rolling updates"): which placed nodes
// are given the workload's new spec now. A pure function of its inputs (no store, clock or
// network): the controller calls it whenever the spec, the placement or an instance's readiness
// changes, and applies what it returns.
//
// Terms: the *new spec* is the one the workload's manifest holds now; an *old* instance runs on a
// node whose desired state still holds an earlier spec; a *fresh* placement is a node that has no
// desired spec of the workload yet. N is the number of placed nodes given. Nodes are always taken
// in node-name order.
//
// Rules:
//  - fresh placements get the new spec at once: there is no old instance to keep, so neither
//    the budget, the partition nor the waves hold them back (they count as updated, not ready);
//  - partition P keeps the last min(P, N) placed nodes in node-name order on their old spec;
//    only the first N - P are updated. It counts positions, not old instances: a fresh
//    placement among the last P still starts on the new spec, and raising P never rolls an
//    updated node back (this planner only moves nodes from the old spec to the new one);
//  - unavailability budget: maxUnavailable (a percentage of N rounded down, at least 1) bounds
//    the placed nodes that are not ready -- old, updated or fresh alike. Replacing a ready old
//    instance makes one more unavailable, so it needs a unit of the budget (maxUnavailable minus
//    those not ready now); replacing an old instance that is not ready costs none, since it is
//    already unavailable (so a fix for a crashing spec rolls out even when every instance is
//    down);
//  - waves are cumulative targets of instances on the new spec: a count as written, a
//    percentage of N rounded up; each is at least the one before it and at most what the
//    partition leaves updatable; a final wave of everything updatable is implied, and waves
//    adding no instance are skipped. No waves: one wave of everything. Wave k+1 is released
//    once at least as many instances on the new spec report ready as wave k's target (the
//    instances of the earlier waves are ready, or as many others in their stead); until then
//    the number on the new spec does not grow past wave k's target. Within a released wave only
//    the budget paces the update;
//  - among old instances allowed to update, ready ones are picked before not-ready ones (a
//    canary must be able to report ready), each group in node-name order;
//  - complete: nothing is left to update outside the partition and every instance on the new
//    spec is ready.
//
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace flotilla::hub {

// A number of instances, or a percentage (1-100) of a workload's placed instances.
struct CountOrPercent {
  int64_t value = 0;
  bool percent = false;

  bool operator==(const CountOrPercent&) const = default;
};

// spec.update. The defaults are what a workload without the section gets.
struct RolloutPolicy {
  CountOrPercent max_unavailable{25, true};  // maxUnavailable: 25%
  int64_t partition = 0;                     // partition
  std::vector<CountOrPercent> waves;         // waves; empty: a single wave of every instance

  bool operator==(const RolloutPolicy&) const = default;
};

// maxUnavailable of `total` placed instances: a percentage rounded down, at least 1.
int64_t resolve_max_unavailable(const CountOrPercent& c, int64_t total);
// A wave's target out of `total`: a percentage rounded up; at most `total`.
int64_t resolve_wave(const CountOrPercent& c, int64_t total);

struct RolloutNode {
  std::string node;
  bool updated = false;  // its desired state already holds the new spec
  // Its instance reports Running and ready on the spec it is desired to run. False when unknown
  // (e.g. a NotReady node).
  bool ready = false;
  bool fresh = false;  // nothing of the workload desired on it yet (ignored when updated)
};

struct RolloutPlan {
  std::set<std::string> update_now;  // give these nodes the new spec now (fresh ones included)
  bool complete = false;
  // E.g. "wave 2/4: 10/100 updated, 8 ready, waiting for readiness",
  // "rolling: 3/10 updated, 2 ready, updating 1", "complete: 6/10 updated, 6 ready, 4 held by
  // partition".
  std::string status;
  int64_t total = 0;            // placed nodes
  int64_t updated = 0;          // on the new spec once update_now is applied
  int64_t ready = 0;            // on the new spec and ready now
  int64_t held = 0;             // old instances the partition keeps
  int64_t unavailable = 0;      // placed nodes not ready now (fresh ones included)
  int64_t max_unavailable = 0;  // the resolved budget
  // The released wave, 1-based, of `waves` (those left after skipping the ones that add no
  // instance: 1 without spec.update.waves); both 0 when no node is updatable.
  int64_t wave = 0;
  int64_t waves = 0;
};

// `placed`: one entry per node the workload is placed on, in any order (a repeated name counts
// once). Deterministic.
RolloutPlan plan_rollout(const RolloutPolicy& policy, std::vector<RolloutNode> placed);

}  // namespace flotilla::hub
