// Logging: one named spdlog logger per component ("agent", "hub", "sync", ...).
//
// Messages use key=value fields: log::get("agent")->info("instance started workload={} pid={}",
// ...). init() sets the level for all loggers from a flag value (trace|debug|info|warn|error).
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "common/expected.hpp"

namespace flotilla::log {

// Returns the logger named `component`, creating it (stderr, colour off) on first use.
std::shared_ptr<spdlog::logger> get(const std::string& component);

// Sets the global level; an unknown name is an error.
Status init(const std::string& level);

}  // namespace flotilla::log
