// The blast-radius guard (docs/hub.md "Blast radius"): how many of the fleet's running instances
// a change would stop, and whether that is more than the hub allows at once.
//
// An instance is a (workload, node) placement whose node reports it Running. A change stops it
// when the placement goes away (its workload deleted, or rescheduled elsewhere) or when its
// workload's spec hash changes (the agent replaces it). Pure functions, tested without a store.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>

namespace flotilla::hub {

using Placements = std::map<std::string, std::set<std::string>>;  // workload -> nodes
using InstanceKey = std::pair<std::string, std::string>;          // (workload, node)

struct Disruption {
  int64_t running = 0;  // running instances before the change
  int64_t stopped = 0;  // of those, how many the change stops or replaces
};

// `running`: the (workload, node) pairs running now. `replaced`: workloads whose spec hash the
// change alters.
Disruption count_disruption(const std::set<InstanceKey>& running, const Placements& after,
                            const std::set<std::string>& replaced);

// Empty when the change may go ahead; otherwise why not, e.g. "refused: this delete stops 8 of
// 10 running instances (80%), over the 50% limit; use --force". A change that stops at most one
// instance is always allowed (a fleet of one or two could not change otherwise). `max_share`:
// 0..1.
std::string disruption_refusal(const std::string& verb, const Disruption& d, double max_share);

}  // namespace flotilla::hub
