// CommandRunner: runs a short-lived helper program (runc, crun) to completion and captures what
// it printed. It is the seam between the container driver and its subprocesses: tests and other
// callers may substitute their own.
//
// Thread-safety: SystemCommandRunner holds no state; run() may be called from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "common/expected.hpp"

namespace flotilla::runtime::oci {

struct CommandResult {
  int exit_code = 0;  // 128 + signal when the program was killed
  std::string out;    // stdout (capped at kMaxCapturedBytes)
  std::string err;    // stderr (capped at kMaxCapturedBytes)
};

class CommandRunner {
 public:
  static constexpr size_t kMaxCapturedBytes = 64 * 1024;
  virtual ~CommandRunner() = default;
  // Runs argv (argv[0] a path) with stdin on /dev/null. Past `timeout` it calls `on_timeout`
  // (when given: e.g. to stop what the program started, so the program ends on its own) and
  // allows a short grace, then kills the program (SIGKILL); the result is then an Error saying
  // it timed out. An Error too when the program cannot be started.
  virtual Expected<CommandResult> run(const std::vector<std::string>& argv,
                                      std::chrono::milliseconds timeout,
                                      const std::function<void()>& on_timeout) = 0;
  Expected<CommandResult> run(const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout) {
    return run(argv, timeout, nullptr);
  }
};

class SystemCommandRunner final : public CommandRunner {
 public:
  using CommandRunner::run;
  Expected<CommandResult> run(const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout,
                              const std::function<void()>& on_timeout) override;
};

}  // namespace flotilla::runtime::oci
