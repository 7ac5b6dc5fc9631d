// ProcessDriver: the `process` runtime driver. Each instance runs under its own flotilla-shim
// (see shim_main.cpp), which leads the instance's session and process group, copies its output
// into size-capped logs and records how it ended -- so instances survive an agent restart and
// recover() finds them again.
//
// On-disk layout under `root` (the agent passes <data>/runtime/process):
//   instances/<id>/shim.pid, exit    runtime state; removed by cleanup()
//   logs/<id>/stdout.log[.1], stderr.log[.1]   kept after cleanup(); cleanup() deletes the log
//                                    folders of removed instances beyond the newest
//                                    kRetainedLogFolders (by last write)
//
// Instance ids may hold letters, digits and . _ - : @ + (not leading '.'), at most 128 chars.
//
// Thread-safety: like every Driver, used by one thread. launch() blocks until the shim reports
// ready (milliseconds; at most kReadyTimeout), and cleanup() for the moment a shim needs to exit
// once it has written its exit record; every other call returns at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "runtime/driver.hpp"

namespace flotilla::runtime {

class ProcessDriver final : public Driver {
 public:
  static constexpr size_t kRetainedLogFolders = 50;
  static constexpr std::chrono::milliseconds kReadyTimeout{2000};

  // `root`: the driver's folder (created on first launch). `shim_path`: the flotilla-shim
  // executable, usually default_shim_path(). Relative paths are made absolute here.
  ProcessDriver(std::string root, std::string shim_path);

  std::string type() const override { return "process"; }
  Expected<Handle> launch(const LaunchSpec& spec) override;
  Observation observe(const Handle& handle) override;
  Status terminate(const Handle& handle) override;
  Status kill(const Handle& handle) override;
  Status cleanup(const std::string& instance_id) override;
  std::vector<Handle> recover() override;
  std::string log_path(const std::string& instance_id, bool stderr_stream) const override;

 private:
  Status validate(const LaunchSpec& spec) const;
  std::string instance_dir(const std::string& instance_id) const;
  std::string log_dir(const std::string& instance_id) const;
  void prune_logs();

  std::string root_;
  std::string shim_path_;
};

// "<folder of the running executable>/flotilla-shim": where the agent's build and package put
// the shim, next to flotilla-agent.
std::string default_shim_path();

// Checks an instance id is safe as a single path component (see the rules above).
Status validate_instance_id(const std::string& instance_id);

}  // namespace flotilla::runtime
