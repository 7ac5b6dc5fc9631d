// run_command: runs a program to completion with a deadline and captures what it printed
// (bounded), for the short helper commands drivers and probes run: runc/crun verbs, qemu-img,
// exec probes.
//
// The program gets /dev/null as stdin, exactly `env` as its environment when `env` is set (else
// the caller's), no other inherited descriptor, and its own process group, which is SIGKILLed
// whole when the deadline passes. Safe to call from several threads at once (children only run
// async-signal-safe calls before exec).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/expected.hpp"

namespace flotilla::runtime {

struct CommandResult {
  int exit_code = -1;      // 128 + signal when a signal ended it
  bool timed_out = false;  // killed at the deadline
  std::string out;         // stdout, at most max_output bytes (the rest dropped)
  std::string err;         // stderr, likewise
};

struct CommandOptions {
  std::chrono::milliseconds timeout{10000};
  std::optional<std::vector<std::string>> env;  // "KEY=value"; unset: inherit
  std::string workdir;                          // empty: the caller's
  size_t max_output = 64 * 1024;
  // Called once at the deadline (e.g. to stop what the program started, so that it ends by
  // itself); the program then has `timeout_grace` before its group is killed. Either way the
  // result says timed_out.
  std::function<void()> on_timeout;
  std::chrono::milliseconds timeout_grace{1000};
};

// An Error only when the program could not be started (argv[0] is looked up in PATH).
Expected<CommandResult> run_command(const std::vector<std::string>& argv,
                                    const CommandOptions& options = {});

// "runc: container not running" style text of a failed command: its stderr (or stdout) trimmed
// to one line, or "exit code N" when it printed nothing.
std::string command_failure(const CommandResult& result);

}  // namespace flotilla::runtime
