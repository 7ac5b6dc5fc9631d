// Where a container's memory cgroup lives on this node, and what it says about OOM kills.
//
// The runtime creates the cgroup from the spec's cgroupsPath: an absolute path is taken from the
// root of each hierarchy, a relative one from the cgroup the runtime itself runs in (the
// agent's, which the runtime inherits). Works on cgroup v1 (and hybrid: the memory controller
// is a v1 hierarchy) and on v2. The cgroup outlives the container's processes until the runtime
// deletes it, so the OOM-kill count can be read after the container has exited.
//
// Thread-safety: stateless functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace flotilla::runtime::oci {

struct MemoryCgroup {
  std::string dir;  // e.g. /sys/fs/cgroup/memory/flotilla/web-1
  bool v2 = false;
};

// nullopt when no memory controller is mounted.
std::optional<MemoryCgroup> memory_cgroup(const std::string& cgroups_path);

// The "oom_kill N" count of a memory cgroup (v1 memory.oom_control, v2 memory.events); nullopt
// when the cgroup is gone or says nothing.
std::optional<uint64_t> oom_kill_count(const MemoryCgroup& cgroup);
// The same count from the text of one of those files.
std::optional<uint64_t> parse_oom_kill(const std::string& text);

// True when a memory+swap limit can be set (v1 with swap accounting; not attempted on v2).
bool swap_limit_supported();

}  // namespace flotilla::runtime::oci
