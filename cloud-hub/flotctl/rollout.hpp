// flotctl's OTA rollout commands and views (docs/hub.md "Rollouts"):
//
//   flotctl rollout status NAME          the rollout's phase, waves, counts and nodes
//   flotctl rollout pause|resume|abort NAME
//   flotctl get rollouts [NAME]          (rollouts_table) and describe rollout NAME
//
// pause, resume and abort are idempotent at the hub: pausing a paused rollout succeeds and
// changes nothing; resuming or pausing a finished one fails (exit 1) with the hub's reason.
//
// Thread-safety: pure functions over their arguments.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cloud-hub/flotctl/client.hpp"

namespace flotilla::flotctl {

// NAME ARTIFACT PHASE WAVE NODES SUCCEEDED FAILED IN-PROGRESS PENDING AGE.
std::string rollouts_table(const nlohmann::json& rollouts, int64_t now_ms);
// The multi-line view of one rollout, with its events when given.
std::string describe_rollout(const nlohmann::json& rollout, const nlohmann::json& events,
                             int64_t now_ms);

// `args`: what follows "rollout". Returns the exit code (0 ok, 1 failed, 2 bad usage: the caller
// prints usage).
int rollout_command(Client& client, const std::vector<std::string>& args, int64_t now_ms,
                    std::ostream& out, std::ostream& err);

}  // namespace flotilla::flotctl
