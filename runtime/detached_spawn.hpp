// spawn_detached: starts a program that must outlive the caller, and waits for it to say it is
// ready.
//
// The program runs as a grandchild (fork, fork, exec; the intermediate child exits at once and
// is reaped here), so the caller never accumulates zombies and the program is re-parented away
// from it. It gets /dev/null on stdin/stdout/stderr, exactly `env` as its environment, no other
// inherited descriptor, an empty signal mask, and the write end of a pipe as descriptor
// `ready_fd`. spawn_detached returns what the program writes on that pipe before closing it (or
// exiting), waiting at most `timeout`; an Error only when the program could not be started. Safe to
// call from a multi-threaded process: the children run only async-signal-safe calls before exec.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/expected.hpp"

namespace flotilla::runtime {

struct SpawnReport {
  bool timed_out = false;  // the program kept the pipe open past the timeout
  std::string text;        // what it wrote on the pipe
};

// argv[0] must be a path to the program.
Expected<SpawnReport> spawn_detached(const std::vector<std::string>& argv,
                                     const std::vector<std::string>& env, int ready_fd,
                                     std::chrono::milliseconds timeout);

}  // namespace flotilla::runtime
