// OciRuntime: the OCI runtime binary (crun or runc) the container driver drives, with its state
// folder (`--root`) kept apart from any other user of the same binary, so Flotilla's containers
// are its own. Every call runs the binary once through the injected CommandRunner and turns its
// failures into Errors "Failed to <verb> container '<id>': <what the runtime said>".
//
// Which binary: an explicit path if configured; else crun when it is installed and can run
// containers under this node's cgroup layout (crun refuses a hybrid v1/v2 layout whose cgroup2
// mount has controllers), else runc.
//
// Ownership: borrows the CommandRunner, which must outlive it. Thread-safety: calls may come from
// any thread (no state changes after construction).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "runtime/oci/command_runner.hpp"

namespace flotilla::runtime::oci {

// Why crun cannot run containers on this node's cgroup layout; empty when it can.
std::string crun_unsupported_reason();

// Finds the runtime to use: `configured` when non-empty (must be executable), else crun or runc
// as described above; an Error when there is none.
Expected<std::string> detect_runtime(const std::string& configured);

class OciRuntime {
 public:
  static constexpr std::chrono::milliseconds kCommandTimeout{10000};

  OciRuntime(std::string binary, std::string state_root, CommandRunner& runner)
      : binary_(std::move(binary)), state_root_(std::move(state_root)), runner_(runner) {}

  const std::string& binary() const { return binary_; }
  const std::string& state_root() const { return state_root_; }
  // "crun" or "runc" (the binary's file name).
  std::string name() const;

  // The command that creates and starts a container in the background (detached) and writes
  // the host pid of its init to `pid_file`; flotilla-oci-monitor runs it.
  std::vector<std::string> run_detached_args(const std::string& bundle, const std::string& id,
                                             const std::string& pid_file) const;

  Status kill(const std::string& id, const std::string& signal_name);
  // `delete --force`: stops it if it runs, removes its state and cgroup.
  Status remove(const std::string& id);
  // Runs argv in the running container; its exit code. An Error when it could not be run (the
  // container is not running, the runtime failed) or ran past `timeout` (it is then killed).
  Expected<int> exec(const std::string& id, const std::vector<std::string>& argv,
                     std::chrono::milliseconds timeout, const std::string& pid_file);
  // Ids with state under the state root (a folder per container for runc and crun alike).
  std::vector<std::string> list() const;
  bool has_state(const std::string& id) const;

 private:
  Expected<CommandResult> invoke(const std::vector<std::string>& args,
                                 std::chrono::milliseconds timeout);

  std::string binary_;
  std::string state_root_;
  CommandRunner& runner_;
};

}  // namespace flotilla::runtime::oci
