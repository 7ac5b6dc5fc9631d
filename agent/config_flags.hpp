// The agent's command-line flags and their translation into an AgentConfig, validated with a
// clear one-line error (main prints it with the usage and exits 2).
#pragma once

#include <string>

#include "agent/config.hpp"
#include "common/expected.hpp"
#include "common/flags.hpp"

namespace flotilla::agent {

// Flags for running the agent (`flotilla-agent --node ... --mqtt ... --data ...`).
Flags make_agent_flags();
Expected<AgentConfig> config_from_flags(const Flags& flags);

// Flags for `flotilla-agent status --data DIR`.
Flags make_status_flags();

}  // namespace flotilla::agent
