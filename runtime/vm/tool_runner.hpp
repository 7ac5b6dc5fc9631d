// run_tool: runs a short-lived helper program (qemu-img) to completion and captures its output,
// killing it if it outlives its timeout. Uses posix_spawn, so it is safe in a threaded process.
//
// Thread-safety: reentrant.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/expected.hpp"

namespace flotilla::runtime::vm {

struct ToolResult {
  int exit_code = -1;  // 128 + signal when killed by one
  std::string output;  // stdout and stderr together, at most 64 KiB
};

// argv[0] is looked up in PATH when it has no slash. An Error only when it could not be run or
// timed out; a non-zero exit is a result.
Expected<ToolResult> run_tool(const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout);

}  // namespace flotilla::runtime::vm
