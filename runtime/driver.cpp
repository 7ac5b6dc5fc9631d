#include "runtime/driver.hpp"

#include "runtime/run_command.hpp"

namespace flotilla::runtime {

namespace {
constexpr const char* kExecPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}  // namespace

// The default: the command runs on the node, as exec probes of process workloads do.
Expected<int> Driver::exec(const Handle& handle, const std::vector<std::string>& argv,
                           std::chrono::milliseconds timeout) {
  CommandOptions options;
  options.timeout = timeout;
  options.env = std::vector<std::string>{kExecPath, "FLOTILLA_INSTANCE=" + handle.instance_id};
  auto result = run_command(argv, options);
  if (!result) return result.error();
  if (result->timed_out) {
    return Error("Failed to exec in instance '" + handle.instance_id + "': timed out after " +
                 std::to_string(timeout.count()) + " ms");
  }
  return result->exit_code;
}

}  // namespace flotilla::runtime
