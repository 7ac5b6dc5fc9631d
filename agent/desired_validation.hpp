// Checks a DesiredState from the hub before anything of it is applied: a message with one bad
// part is rejected whole.
#pragma once

#include <string>
#include <string_view>

#include "common/expected.hpp"
#include "sync/flotilla.pb.h"

namespace flotilla::agent {

// Workload names: 1..63 characters of [A-Za-z0-9._-], starting alphanumeric (they name
// instance folders on disk).
Status validate_workload_name(std::string_view name);

// Empty when `msg` is addressed to `node` and every spec in it is sane; otherwise why not.
Status validate_desired(const v1::DesiredState& msg, const std::string& node);

}  // namespace flotilla::agent
