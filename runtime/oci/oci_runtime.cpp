#include "runtime/oci/oci_runtime.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "common/fs.hpp"
#include "common/log.hpp"

namespace flotilla::runtime::oci {
namespace {

namespace stdfs = std::filesystem;

constexpr const char* kSearchPath[] = {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                                       "/usr/bin",        "/sbin",          "/bin"};

std::string find_in_path(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* path = ::getenv("PATH")) {
    std::string p = path;
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find(':', start);
      if (end == std::string::npos) end = p.size();
      if (end > start) dirs.push_back(p.substr(start, end - start));
      start = end + 1;
    }
  }
  for (const char* d : kSearchPath) dirs.emplace_back(d);
  for (const std::string& d : dirs) {
    std::string candidate = d + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// The runtime's own words from its stderr: runc logs `time=... level=error msg="..."`, crun
// prints "crun: ..."; the last non-empty line is the one that says why.
std::string runtime_message(const std::string& err) {
  std::string line;
  size_t end = err.size();
  while (end > 0 && line.empty()) {
    size_t start = err.rfind('\n', end - 1);
    start = start == std::string::npos ? 0 : start + 1;
    line = err.substr(start, end - start);
    end = start > 0 ? start - 1 : 0;
  }
  size_t msg = line.find("msg=\"");
  if (msg != std::string::npos) {
    size_t close = line.rfind('"');
    if (close > msg + 5) line = line.substr(msg + 5, close - msg - 5);
  }
  return line.empty() ? "no error message" : line;
}

}  // namespace

std::string crun_unsupported_reason() {
  // A hybrid layout: v1 hierarchies plus a cgroup2 mount at unified/. crun accepts it only while
  // the cgroup2 side has no controllers.
  auto controllers = fs::read_file("/sys/fs/cgroup/unified/cgroup.controllers");
  if (!controllers) return "";
  std::string list = *controllers;
  while (!list.empty() && (list.back() == '\n' || list.back() == ' ')) list.pop_back();
  if (list.empty()) return "";
  return "crun does not support hybrid cgroups with controllers on cgroup2 (" + list + ")";
}

Expected<std::string> detect_runtime(const std::string& configured) {
  if (!configured.empty()) {
    if (::access(configured.c_str(), X_OK) != 0) {
      return Error("Failed to use OCI runtime '" + configured + "': not an executable file");
    }
    return configured;
  }
  std::string crun = find_in_path("crun");
  if (!crun.empty()) {
    std::string why = crun_unsupported_reason();
    if (why.empty()) return crun;
    log::get("runtime")->info("not using crun path={} reason=\"{}\"", crun, why);
  }
  std::string runc = find_in_path("runc");
  if (!runc.empty()) return runc;
  return Error("Failed to find an OCI runtime: neither crun nor runc is installed");
}

std::string OciRuntime::name() const { return stdfs::path(binary_).filename().string(); }

std::vector<std::string> OciRuntime::run_detached_args(const std::string& bundle,
                                                       const std::string& id,
                                                       const std::string& pid_file) const {
  return {binary_,      "--root", state_root_, "run",  "--detach",
          "--pid-file", pid_file, "--bundle",  bundle, id};
}

Expected<CommandResult> OciRuntime::invoke(const std::vector<std::string>& args,
                                           std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {binary_, "--root", state_root_};
  argv.insert(argv.end(), args.begin(), args.end());
  return runner_.run(argv, timeout);
}

Status OciRuntime::kill(const std::string& id, const std::string& signal_name) {
  auto result = invoke({"kill", id, signal_name}, kCommandTimeout);
  if (!result) return Error("Failed to kill container '" + id + "': " + result.error().message());
  if (result->exit_code != 0) {
    return Error("Failed to kill container '" + id + "': " + runtime_message(result->err));
  }
  return Ok();
}

Status OciRuntime::remove(const std::string& id) {
  auto result = invoke({"delete", "--force", id}, kCommandTimeout);
  if (!result) {
    return Error("Failed to delete container '" + id + "': " + result.error().message());
  }
  if (result->exit_code != 0 && has_state(id)) {
    return Error("Failed to delete container '" + id + "': " + runtime_message(result->err));
  }
  return Ok();
}

Expected<int> OciRuntime::exec(const std::string& id, const std::vector<std::string>& argv,
                               std::chrono::milliseconds timeout, const std::string& pid_file) {
  auto fail = [&](const std::string& why) {
    return Error("Failed to exec in container '" + id + "': " + why);
  };
  if (argv.empty()) return fail("no command given");
  std::vector<std::string> args = {binary_,      "--root", state_root_, "exec",
                                   "--pid-file", pid_file, id};
  args.insert(args.end(), argv.begin(), argv.end());
  (void)fs::remove_all(pid_file);
  // At the deadline the command goes first, so that the runtime reaps it and exits by itself:
  // killed first, it would leave the command running (or a zombie in the container's pid
  // namespace, holding up the container's own exit).
  auto kill_command = [&] {
    if (auto text = fs::read_file(pid_file)) {
      long pid = std::atol(text->c_str());
      if (pid > 1) ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
  };
  auto result = runner_.run(args, timeout, kill_command);
  if (!result) {
    (void)fs::remove_all(pid_file);
    return fail(result.error().message());
  }
  bool started = fs::exists(pid_file);
  (void)fs::remove_all(pid_file);
  // The runtime reports its own failures (no such container, no such program) with 255 (runc)
  // or 1-127 (crun), before anything was started: no pid file then.
  if (!started && result->exit_code != 0) return fail(runtime_message(result->err));
  return result->exit_code;
}

std::vector<std::string> OciRuntime::list() const {
  std::vector<std::string> ids;
  std::error_code ec;
  stdfs::directory_iterator it(state_root_, ec);
  for (; !ec && it != stdfs::directory_iterator(); it.increment(ec)) {
    std::error_code ec2;
    if (it->is_directory(ec2)) ids.push_back(it->path().filename().string());
  }
  return ids;
}

bool OciRuntime::has_state(const std::string& id) const {
  std::error_code ec;
  return stdfs::is_directory(state_root_ + "/" + id, ec);
}

}  // namespace flotilla::runtime::oci
