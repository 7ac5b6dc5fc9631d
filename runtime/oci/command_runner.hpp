// CommandRunner: runs a short-lived helper program (runc, crun) to completion and captures what
// it printed. It is the seam between the container driver and its subprocesses: tests and other
// callers may substitute their own.
//
// Thread-safety: SystemCommandRunner holds no state; run() may be called from any thread.
#pragma once

#include <chrono>
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
  // Runs argv (argv[0] a path) with stdin on /dev/null. Past `timeout` the program is killed
  // (SIGKILL) and the result is an Error saying so; an Error too when it cannot be started.
  virtual Expected<CommandResult> run(const std::vector<std::string>& argv,
                                      std::chrono::milliseconds timeout) = 0;
};

class SystemCommandRunner final : public CommandRunner {
 public:
  Expected<CommandResult> run(const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout) override;
};

}  // namespace flotilla::runtime::oci
