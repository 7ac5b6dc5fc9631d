// What the agent tells the hub about its node: CPU and memory capacity, CPU architecture, and a
// random boot id that changes with every agent process start.
#pragma once

#include <cstdint>
#include <string>

namespace flotilla::agent {

// 1000 x online CPUs.
int64_t detect_cpu_millis();
// MemTotal from /proc/meminfo in bytes; 0 when unreadable.
int64_t detect_memory_bytes();
// Parses /proc/meminfo text; 0 when MemTotal is missing.
int64_t parse_meminfo_total(const std::string& meminfo);
// amd64 | arm64 | arm (from uname); other machines are reported as uname says.
std::string detect_arch();
std::string arch_from_machine(const std::string& machine);
// 32 random hex characters.
std::string make_boot_id();

}  // namespace flotilla::agent
