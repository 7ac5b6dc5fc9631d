// `flotilla-agent status`: a human-readable view of the agent's SQLite store (desired workloads,
// instances, outbox), read locally so it works while the node is offline.
#pragma once

#include <ostream>
#include <string>

#include "common/expected.hpp"

namespace flotilla::agent {

// The store file inside an agent's --data folder.
std::string store_path(const std::string& data_dir);

// Prints the report for the agent whose --data folder is `data_dir`.
Status print_status(const std::string& data_dir, std::ostream& out);

}  // namespace flotilla::agent
