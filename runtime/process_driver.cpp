#include "runtime/process_driver.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

#include "common/fs.hpp"
#include "common/log.hpp"
#include "runtime/detached_spawn.hpp"
#include "runtime/instance_records.hpp"
#include "runtime/proc_stat.hpp"

namespace flotilla::runtime {
namespace {

namespace stdfs = std::filesystem;

constexpr int kShimReadyFd = 3;
constexpr size_t kMaxInstanceIdLength = 128;
constexpr auto kShimExitWait = std::chrono::milliseconds(500);

std::shared_ptr<spdlog::logger> logger() { return log::get("runtime"); }

bool has_nul(const std::string& s) { return s.find('\0') != std::string::npos; }

std::optional<PidRecord> read_pid_record(const std::string& dir) {
  auto text = fs::read_file(dir + "/" + kPidRecordFile);
  if (!text) return std::nullopt;
  return parse_pid_record(*text);
}

// nullopt when there is no exit record; an unreadable one counts as exited (code 255).
std::optional<ExitRecord> read_exit_record(const std::string& dir) {
  std::string path = dir + "/" + kExitRecordFile;
  if (!fs::exists(path)) return std::nullopt;
  auto text = fs::read_file(path);
  auto record = text ? parse_exit_record(*text) : std::nullopt;
  if (!record) return ExitRecord{255, 0, "unreadable exit record '" + path + "'"};
  return record;
}

Observation exited(const ExitRecord& record) {
  return Observation{RunState::kExited, record.exit_code, record.signal, describe_exit(record)};
}

// SIGKILLs what is left of an instance's process group after its shim died (the shim alone was
// killed, say). The kernel never reuses a pid while a process group of that id exists, so once
// no other process holds the shim's pid, members of its group sharing its session can only be
// the instance's. A live process with that pid and another start time means the pid was
// reused, and its group is none of ours.
int kill_group_remnants(const Handle& handle) {
  auto leader = read_proc_stat(handle.pid);
  if (leader && !(leader->zombie() && leader->start_ticks == handle.start_ticks)) return 0;
  int killed = 0;
  for (const ProcStat& member : live_group_members(handle.pid)) {
    if (member.sid == handle.pid && member.start_ticks >= handle.start_ticks &&
        ::kill(static_cast<pid_t>(member.pid), SIGKILL) == 0) {
      ++killed;
    }
  }
  return killed;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : " ") + p;
  return out;
}

}  // namespace

Status validate_instance_id(const std::string& id) {
  if (id.empty()) return Error("instance id is empty");
  if (id.size() > kMaxInstanceIdLength) {
    return Error("instance id is longer than " + std::to_string(kMaxInstanceIdLength) + " chars");
  }
  if (id[0] == '.') return Error("instance id '" + id + "' starts with '.'");
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::strchr("._-:@+", c) != nullptr;
    if (!ok || c == '\0') {
      return Error("instance id '" + id + "' may hold only letters, digits and . _ - : @ +");
    }
  }
  return Ok();
}

std::string default_shim_path() {
  std::error_code ec;
  stdfs::path exe = stdfs::read_symlink("/proc/self/exe", ec);
  if (ec) return "flotilla-shim";
  return (exe.parent_path() / "flotilla-shim").string();
}

ProcessDriver::ProcessDriver(std::string root, std::string shim_path)
    : root_(fs::absolute_path(root)), shim_path_(fs::absolute_path(shim_path)) {}

std::string ProcessDriver::instance_dir(const std::string& id) const {
  return root_ + "/instances/" + id;
}

std::string ProcessDriver::log_dir(const std::string& id) const { return root_ + "/logs/" + id; }

std::string ProcessDriver::log_path(const std::string& id, bool stderr_stream) const {
  return log_dir(id) + "/" + (stderr_stream ? kStderrLogFile : kStdoutLogFile);
}

Status ProcessDriver::validate(const LaunchSpec& spec) const {
  if (Status s = validate_instance_id(spec.instance_id); !s) return s;
  if (spec.command.empty() || spec.command[0].empty()) return Error("command is empty");
  for (const std::string& arg : spec.command) {
    if (has_nul(arg)) return Error("command argument holds a NUL byte");
  }
  for (const auto& [key, value] : spec.env) {
    if (key.empty() || key.find('=') != std::string::npos || has_nul(key) || has_nul(value)) {
      return Error("bad environment variable name '" + key + "'");
    }
  }
  if (spec.log_limit_bytes == 0) return Error("log_limit_bytes must be greater than 0");
  if (!spec.workdir.empty()) {
    if (spec.workdir[0] != '/') return Error("workdir '" + spec.workdir + "' is not absolute");
    struct stat st {};
    if (::stat(spec.workdir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Error("workdir '" + spec.workdir + "' is not a directory");
    }
  }
  if (::access(shim_path_.c_str(), X_OK) != 0) {
    return Error("shim '" + shim_path_ + "' is not executable: " + std::strerror(errno));
  }
  return Ok();
}

Expected<Handle> ProcessDriver::launch(const LaunchSpec& spec) {
  auto fail = [&](const std::string& why) {
    logger()->warn("launch failed instance={} error=\"{}\"", spec.instance_id, why);
    return Error("Failed to launch instance '" + spec.instance_id + "': " + why);
  };
  if (Status s = validate(spec); !s) return fail(s.error().message());

  const std::string dir = instance_dir(spec.instance_id);
  const std::string logs = log_dir(spec.instance_id);
  if (Status s = fs::make_dirs(root_ + "/instances"); !s) return fail(s.error().message());
  if (Status s = fs::make_dirs(logs); !s) return fail(s.error().message());
  // A plain mkdir claims the id: a second launch of the same instance fails here.
  if (::mkdir(dir.c_str(), 0750) != 0) {
    if (errno == EEXIST) return fail("it already exists (clean it up first)");
    return fail("Failed to create directory '" + dir + "': " + std::strerror(errno));
  }

  std::vector<std::string> argv = {shim_path_,
                                   "--ready-fd=" + std::to_string(kShimReadyFd),
                                   dir,
                                   logs,
                                   std::to_string(spec.log_limit_bytes),
                                   spec.workdir.empty() ? dir : spec.workdir,
                                   "--"};
  argv.insert(argv.end(), spec.command.begin(), spec.command.end());
  std::vector<std::string> env;
  for (const auto& [key, value] : spec.env) env.push_back(key + "=" + value);

  auto report = spawn_detached(argv, env, kShimReadyFd, kReadyTimeout);
  if (!report) {
    (void)fs::remove_all(dir);
    return fail(report.error().message());
  }
  if (report->timed_out) {
    // The shim may still come up: keep its folder so that recover() finds it then.
    if (!read_pid_record(dir)) {
      return fail("shim did not report ready within " + std::to_string(kReadyTimeout.count()) +
                  " ms");
    }
    logger()->warn("shim was slow to report ready instance={}", spec.instance_id);
  } else if (report->text.rfind("ok", 0) != 0) {
    (void)fs::remove_all(dir);  // the shim exited without starting anything
    std::string why = report->text;
    if (why.rfind("error: ", 0) == 0) why = why.substr(7);
    while (!why.empty() && why.back() == '\n') why.pop_back();
    return fail(why.empty() ? "shim exited before it was ready" : "shim: " + why);
  }
  auto record = read_pid_record(dir);
  if (!record) return fail("shim reported ready but left no readable '" + dir + "/shim.pid'");

  Handle handle{spec.instance_id, record->pid, record->start_ticks, type()};
  logger()->info("instance launched instance={} workload={} pid={} command=\"{}\"",
                 spec.instance_id, spec.workload, handle.pid, join(spec.command));
  return handle;
}

Observation ProcessDriver::observe(const Handle& handle) {
  if (!validate_instance_id(handle.instance_id)) {
    return Observation{RunState::kUnknown, 0, 0, "invalid instance id"};
  }
  const std::string dir = instance_dir(handle.instance_id);
  if (auto record = read_exit_record(dir)) return exited(*record);
  if (handle.pid > 1 && is_same_live_process(handle.pid, handle.start_ticks)) {
    return Observation{RunState::kRunning, 0, 0, "running"};
  }
  // The shim writes its exit record and only then exits: look again, it may have just done so.
  if (auto record = read_exit_record(dir)) return exited(*record);
  if (!fs::exists(dir)) return Observation{RunState::kUnknown, 0, 0, "no record of the instance"};
  return Observation{RunState::kExited, 0, SIGKILL,
                     "supervisor vanished without an exit record (killed, or the node rebooted)"};
}

Status ProcessDriver::terminate(const Handle& handle) {
  if (handle.pid <= 1 || !is_same_live_process(handle.pid, handle.start_ticks)) {
    logger()->debug("terminate: not running instance={} pid={}", handle.instance_id, handle.pid);
    return Ok();
  }
  if (::kill(static_cast<pid_t>(handle.pid), SIGTERM) != 0 && errno != ESRCH) {
    return Error("Failed to terminate instance '" + handle.instance_id +
                 "': " + std::strerror(errno));
  }
  logger()->info("instance sent SIGTERM instance={} pid={}", handle.instance_id, handle.pid);
  return Ok();
}

Status ProcessDriver::kill(const Handle& handle) {
  if (handle.pid <= 1) return Ok();
  if (!is_same_live_process(handle.pid, handle.start_ticks)) {
    int killed = kill_group_remnants(handle);
    if (killed > 0) {
      logger()->warn("killed processes left by a vanished shim instance={} pgid={} count={}",
                     handle.instance_id, handle.pid, killed);
    }
    return Ok();
  }
  if (::kill(static_cast<pid_t>(-handle.pid), SIGKILL) != 0 && errno != ESRCH) {
    return Error("Failed to kill instance '" + handle.instance_id + "': " + std::strerror(errno));
  }
  logger()->info("instance sent SIGKILL instance={} pgid={}", handle.instance_id, handle.pid);
  return Ok();
}

Status ProcessDriver::cleanup(const std::string& instance_id) {
  auto fail = [&](const std::string& why) {
    return Error("Failed to clean up instance '" + instance_id + "': " + why);
  };
  if (Status s = validate_instance_id(instance_id); !s) return fail(s.error().message());
  const std::string dir = instance_dir(instance_id);
  if (fs::exists(dir)) {
    if (auto record = read_pid_record(dir)) {
      bool alive = is_same_live_process(record->pid, record->start_ticks);
      if (alive && !read_exit_record(dir)) {
        return fail("it is still running (pid " + std::to_string(record->pid) + ")");
      }
      // With its exit record written the shim is an instant from exiting. Let it, so that no
      // observe() after cleanup() can see it still alive and report the instance running.
      auto deadline = std::chrono::steady_clock::now() + kShimExitWait;
      while (alive && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        alive = is_same_live_process(record->pid, record->start_ticks);
      }
      if (alive) logger()->warn("shim slow to exit instance={} pid={}", instance_id, record->pid);
      kill_group_remnants(Handle{instance_id, record->pid, record->start_ticks});
    }
    if (Status s = fs::remove_all(dir); !s) return fail(s.error().message());
    logger()->info("instance cleaned up instance={}", instance_id);
  }
  prune_logs();
  return Ok();
}

std::vector<Handle> ProcessDriver::recover() {
  std::vector<Handle> handles;
  std::error_code ec;
  stdfs::directory_iterator it(root_ + "/instances", ec);
  for (; !ec && it != stdfs::directory_iterator(); it.increment(ec)) {
    std::string id = it->path().filename().string();
    if (!it->is_directory(ec) || !validate_instance_id(id)) continue;
    Handle handle{id, 0, 0, type()};
    // No shim.pid: a launch was cut short; observe() reports it exited, cleanup() removes it.
    if (auto record = read_pid_record(it->path().string())) {
      handle.pid = record->pid;
      handle.start_ticks = record->start_ticks;
    }
    handles.push_back(handle);
  }
  std::sort(handles.begin(), handles.end(),
            [](const Handle& a, const Handle& b) { return a.instance_id < b.instance_id; });
  logger()->debug("recover found={}", handles.size());
  return handles;
}

void ProcessDriver::prune_logs() {
  struct Folder {
    stdfs::path path;
    stdfs::file_time_type last_write;
  };
  std::vector<Folder> removed;  // log folders whose instance has been cleaned up
  std::error_code ec;
  stdfs::directory_iterator it(root_ + "/logs", ec);
  for (; !ec && it != stdfs::directory_iterator(); it.increment(ec)) {
    std::error_code ec2;
    if (!it->is_directory(ec2) || fs::exists(instance_dir(it->path().filename().string()))) {
      continue;
    }
    Folder folder{it->path(), stdfs::last_write_time(it->path(), ec2)};
    stdfs::directory_iterator files(it->path(), ec2);
    for (; !ec2 && files != stdfs::directory_iterator(); files.increment(ec2)) {
      std::error_code ec3;
      folder.last_write = std::max(folder.last_write, files->last_write_time(ec3));
    }
    removed.push_back(folder);
  }
  if (removed.size() <= kRetainedLogFolders) return;
  std::sort(removed.begin(), removed.end(),
            [](const Folder& a, const Folder& b) { return a.last_write > b.last_write; });
  for (size_t i = kRetainedLogFolders; i < removed.size(); ++i) {
    if (Status s = fs::remove_all(removed[i].path.string()); !s) {
      logger()->warn("log pruning failed error=\"{}\"", s.error().message());
    }
  }
  logger()->debug("pruned log folders count={}", removed.size() - kRetainedLogFolders);
}

}  // namespace flotilla::runtime
