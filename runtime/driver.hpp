// runtime::Driver: the one interface behind which every workload type runs (process now;
// oci and vm later), modelled on Mesos' containerizer: launch, observe, terminate, kill,
// cleanup, recover.
//
// A Handle is what the agent persists (in its SQLite store) to find an instance again after its
// own restart. Instances outlive the agent: they are never children that die with it, and
// recover() re-finds them so the agent adopts them instead of starting duplicates.
//
// All calls are non-blocking (the reconciler drives timeouts, e.g. SIGTERM then SIGKILL after
// the grace period). Thread-safety: one thread (the agent's loop) uses a Driver.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/expected.hpp"

namespace flotilla::runtime {

struct LaunchSpec {
  std::string instance_id;  // unique on the node; names the instance's folder
  std::string workload;
  std::vector<std::string> command;  // argv; command[0] is looked up in PATH if not absolute
  std::map<std::string, std::string> env;
  std::string workdir;                          // empty: the instance folder
  uint64_t log_limit_bytes = 4 * 1024 * 1024;   // per stream; the oldest half is rotated out
};

struct Handle {
  std::string instance_id;
  int64_t pid = 0;            // the supervising process (leader of the instance's process group)
  uint64_t start_ticks = 0;   // its start time (/proc/<pid>/stat field 22): guards pid reuse
};

enum class RunState {
  kRunning,  // the instance is alive
  kExited,   // it ended; exit_code / signal tell how
  kUnknown,  // no process and no exit record (e.g. lost across a reboot)
};

struct Observation {
  RunState state = RunState::kUnknown;
  int exit_code = 0;    // valid when kExited and signal == 0
  int signal = 0;       // the signal that ended it, if any
  std::string message;  // human text: "exited with code 3", "killed by signal 9"
};

class Driver {
 public:
  virtual ~Driver() = default;

  virtual std::string type() const = 0;  // "process"
  virtual Expected<Handle> launch(const LaunchSpec& spec) = 0;
  virtual Observation observe(const Handle& handle) = 0;
  virtual Status terminate(const Handle& handle) = 0;  // polite stop (SIGTERM)
  virtual Status kill(const Handle& handle) = 0;       // forced stop (SIGKILL, whole group)
  // Removes the instance's runtime state once it has stopped; logs are kept.
  virtual Status cleanup(const std::string& instance_id) = 0;
  // Every instance this driver finds on the node, alive or exited but not yet cleaned up.
  virtual std::vector<Handle> recover() = 0;
  // Where an instance's stdout and stderr logs live.
  virtual std::string log_path(const std::string& instance_id, bool stderr_stream) const = 0;
};

}  // namespace flotilla::runtime
