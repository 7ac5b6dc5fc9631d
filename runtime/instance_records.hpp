// The two small files flotilla-shim leaves in an instance's runtime folder, and their format.
//
//   shim.pid  "pid=<pid>\nstart=<start ticks>\n"       written once the shim leads its session
//   exit      "code=<n>\n" or "signal=<n>\n", then optionally "message=<one line>\n"
//
// Both are written atomically (temp, fsync, rename), so a reader sees all of a file or none.
// The shim writes `exit` before it exits: a dead shim without an exit record was killed.
//
// Depends only on libc and libstdc++ (flotilla-shim links it). Thread-safety: stateless.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace flotilla::runtime {

inline constexpr const char* kPidRecordFile = "shim.pid";
inline constexpr const char* kExitRecordFile = "exit";
inline constexpr const char* kStdoutLogFile = "stdout.log";
inline constexpr const char* kStderrLogFile = "stderr.log";

struct PidRecord {
  int64_t pid = 0;
  uint64_t start_ticks = 0;
};

struct ExitRecord {
  int exit_code = 0;  // meaningful when signal == 0
  int signal = 0;
  std::string message;  // optional detail, e.g. why the command could not be started
};

std::string format_pid_record(const PidRecord& record);
std::optional<PidRecord> parse_pid_record(const std::string& text);

std::string format_exit_record(const ExitRecord& record);
std::optional<ExitRecord> parse_exit_record(const std::string& text);

// "exited with code 3", "killed by signal 9 (SIGKILL)", plus ": <message>" when there is one.
std::string describe_exit(const ExitRecord& record);

}  // namespace flotilla::runtime
