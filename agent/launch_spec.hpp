// make_launch_spec: what the runtime driver is asked to run for an instance of a workload, from
// the workload's spec as the hub sent it.
//
// Every instance gets FLOTILLA_NODE, FLOTILLA_WORKLOAD and FLOTILLA_INSTANCE in its environment.
// Processes get exactly the spec's environment over a default PATH (never the agent's own);
// containers get the image's environment under the spec's (the driver merges them).
//
// Thread-safety: a pure function.
#pragma once

#include <string>

#include "runtime/driver.hpp"
#include "sync/flotilla.pb.h"

namespace flotilla::agent {

runtime::LaunchSpec make_launch_spec(const std::string& node, const v1::WorkloadSpec& spec,
                                     const std::string& instance_id);

}  // namespace flotilla::agent
