// Reads what the kernel says about a process from /proc/<pid>/stat: its parent, process group,
// session, state and start time. The start time (in clock ticks since boot) is what tells a
// process apart from a later one that reuses its pid.
//
// Depends only on libc and libstdc++ (flotilla-shim links it). Thread-safety: stateless.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace flotilla::runtime {

struct ProcStat {
  int64_t pid = 0;
  int64_t ppid = 0;
  int64_t pgid = 0;
  int64_t sid = 0;
  char state = '?';          // R, S, D, Z, ... (field 3)
  uint64_t start_ticks = 0;  // field 22

  bool zombie() const { return state == 'Z' || state == 'X' || state == 'x'; }
};

// nullopt when the process does not exist (or /proc cannot be read).
std::optional<ProcStat> read_proc_stat(int64_t pid);

// True when `pid` is a live (non-zombie) process that started at `start_ticks`.
bool is_same_live_process(int64_t pid, uint64_t start_ticks);

// Every live (non-zombie) process whose process group is `pgid`.
std::vector<ProcStat> live_group_members(int64_t pgid);

}  // namespace flotilla::runtime
