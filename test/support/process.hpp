// A real child process for integration tests: started in its own process group with stdout and
// stderr sent to a log file, killed (SIGKILL to the group) when the object goes away.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace flotilla::testing {

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts argv with this process's environment plus `extra_env` (which wins); output goes to
  // log_path. Throws std::runtime_error if fork/exec fails.
  void start(const std::vector<std::string>& argv, const std::string& log_path,
             const std::map<std::string, std::string>& extra_env = {});
  bool running();
  pid_t pid() const { return pid_; }
  // Sends `sig` to the process only (not its group) and, for SIGKILL, waits for it.
  void signal(int sig);
  // SIGKILL to the process (its own group is left alone: workloads it launched keep running,
  // exactly like a kill -9 in production).
  void kill9();
  // SIGTERM then wait up to `grace`, then SIGKILL. Returns the exit status if it exited.
  std::optional<int> stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
  // Waits for exit; returns exit code (or 128+signal).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  const std::string& log_path() const { return log_path_; }
  std::string log() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string log_path_;
};

// The whole file, "" when it cannot be read.
std::string slurp(const std::string& path);
// Replaces the file with `bytes`.
void write_file(const std::string& path, const std::string& bytes);

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs a command to completion (bounded by timeout) and captures its output.
RunResult run_command(const std::vector<std::string>& argv,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Polls `pred` every 50 ms until it holds or `timeout` passes; returns the last result.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    struct timespec ts {
      0, 50 * 1000 * 1000
    };
    nanosleep(&ts, nullptr);
  }
}

bool pid_alive(pid_t pid);  // alive and not a zombie

// Processes whose environment holds every key=value given (read from /proc/<pid>/environ),
// with their command names (/proc/<pid>/comm).
struct ProcInfo {
  pid_t pid;
  std::string comm;
};
std::vector<ProcInfo> find_processes_with_env(const std::map<std::string, std::string>& env);
// The environment of a process (/proc/<pid>/environ); empty when it is gone or unreadable.
std::map<std::string, std::string> process_environ(pid_t pid);

}  // namespace flotilla::testing
