// flotilla-oci-monitor: supervises one container for the container driver, as flotilla-shim does
// a process (and conmon or containerd-shim do for their engines), leaving the same records in
// the same places so the process driver's observe/terminate/kill/cleanup/recover work on it:
//
//   flotilla-oci-monitor --ready-fd=N INSTANCE_DIR LOG_DIR LOG_LIMIT_BYTES PID_FILE -- RUNTIME...
//
// It leads its own session (an agent crash or kill -9 does not touch it), writes
// INSTANCE_DIR/shim.pid, and runs RUNTIME... -- `<runc|crun> --root R run --detach --pid-file
// PID_FILE --bundle B ID` -- with its stdout/stderr on pipes that the container inherits, so the
// container writes into them; they are copied into size-capped logs in LOG_DIR. Once the
// runtime has started the container it reports "ok" on the ready fd (or "error: <the runtime's
// last stderr line>" if the runtime failed), then waits for the container's init, forwards
// SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to it, and when it ends writes INSTANCE_DIR/exit
// with its exit code or signal (see instance_records.hpp) and exits.
//
// Why detached and not the foreground `runc run` under flotilla-shim: a foreground runc deletes
// the container's cgroup as soon as the container exits, taking the OOM-kill counter with it;
// detached, the cgroup stays until `runc delete`. The monitor is a child subreaper, so the
// container's init is re-parented to it when the runtime exits, and it can wait for it. And one
// supervisor process instead of shim + helper keeps container starts short.
//
// Links only libc and libstdc++ (statically where possible): one runs per container.
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/fs.hpp"
#include "runtime/instance_records.hpp"
#include "runtime/proc_stat.hpp"
#include "runtime/rotating_log.hpp"
#include "runtime/supervisor_io.hpp"

namespace flotilla::runtime {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr auto kDrainGrace = std::chrono::milliseconds(500);
constexpr int kRuntimeFailureCode = 125;  // like docker: the failure is the runtime's
constexpr int kForwardedSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
constexpr size_t kStderrTail = 4096;

struct Args {
  int ready_fd = -1;
  std::string instance_dir;
  std::string log_dir;
  uint64_t log_limit = 0;
  std::string pid_file;
  std::vector<std::string> runtime;
};

std::string errno_text() { return std::strerror(errno); }

std::optional<Args> parse_args(int argc, char** argv) {
  Args args;
  int i = 1;
  if (argc > 1 && std::strncmp(argv[1], "--ready-fd=", 11) == 0) {
    args.ready_fd = std::atoi(argv[1] + 11);
    i = 2;
  }
  if (argc - i < 6 || std::strcmp(argv[i + 4], "--") != 0) return std::nullopt;
  args.instance_dir = argv[i];
  args.log_dir = argv[i + 1];
  char* end = nullptr;
  args.log_limit = std::strtoull(argv[i + 2], &end, 10);
  args.pid_file = argv[i + 3];
  if (end == nullptr || *end != '\0' || args.log_limit == 0) return std::nullopt;
  for (int j = i + 5; j < argc; ++j) args.runtime.emplace_back(argv[j]);
  if (args.runtime[0].empty() || args.runtime[0][0] != '/') return std::nullopt;
  return args;
}

// shim.pid needs no fsync: it must survive an agent restart, not a node crash, which the
// container does not survive either. Temp + rename still makes it all-or-nothing to readers.
bool write_record(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  write_all(fd, text);
  ::close(fd);
  return ::rename(tmp.c_str(), path.c_str()) == 0;
}

int read_pid_file(const std::string& path) {
  auto text = fs::read_file(path);
  long pid = text ? std::atol(text->c_str()) : 0;
  return pid > 1 && pid < (1L << 22) ? static_cast<int>(pid) : 0;
}

// The runtime's own words: runc logs `time=... level=error msg="..."`, crun "crun: ...".
std::string last_error_line(const std::string& err) {
  std::string text = err;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  size_t nl = text.rfind('\n');
  std::string line = nl == std::string::npos ? text : text.substr(nl + 1);
  size_t msg = line.find("msg=\"");
  if (msg != std::string::npos && line.rfind('"') > msg + 5) {
    line = line.substr(msg + 5, line.rfind('"') - msg - 5);
  }
  return line.empty() ? "no error message" : line;
}

[[noreturn]] void exec_runtime(const Args& args, int devnull, int out_fd, int err_fd) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  ::dup2(devnull, STDIN_FILENO);
  ::dup2(out_fd, STDOUT_FILENO);
  ::dup2(err_fd, STDERR_FILENO);
  std::vector<char*> argv;
  for (const std::string& a : args.runtime) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(argv[0], argv.data());
  write_all(STDERR_FILENO, "Failed to start '" + args.runtime[0] + "': " + errno_text() + "\n");
  ::_exit(kRuntimeFailureCode);
}

bool pump(int fd, RotatingLog& log, std::string* tail) {
  char buf[64 * 1024];
  ssize_t n = ::read(fd, buf, sizeof buf);
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return false;
  (void)log.append(buf, static_cast<size_t>(n));  // a full disk must not stall the container
  if (tail != nullptr) {
    tail->append(buf, static_cast<size_t>(n));
    if (tail->size() > kStderrTail) tail->erase(0, tail->size() - kStderrTail);
  }
  return true;
}

// Leaves the agent's session and records this process as the instance's supervisor (in
// shim.pid, which the process driver reads); an error message, or empty.
std::string lead_own_session(const Args& args) {
  if (::setsid() < 0) return "Failed to setsid: " + errno_text();
  const pid_t self = ::getpid();
  auto me = read_proc_stat(self);
  if (!me) return "Failed to read /proc/self/stat";
  std::string path = args.instance_dir + "/" + kPidRecordFile;
  if (!write_record(path, format_pid_record({self, me->start_ticks}))) {
    return "Failed to write '" + path + "': " + errno_text();
  }
  return "";
}

// Copies what a pipe holds now (it is non-blocking), closing it at EOF.
void drain_now(int* fd, RotatingLog& log, std::string* tail) {
  while (*fd >= 0) {
    errno = 0;
    if (!pump(*fd, log, tail)) {
      ::close(*fd);
      *fd = -1;
    } else if (errno == EAGAIN) {
      return;
    }
  }
}

int run(int argc, char** argv) {
  auto parsed = parse_args(argc, argv);
  if (!parsed) {
    write_all(STDERR_FILENO,
              "usage: flotilla-oci-monitor [--ready-fd=N] INSTANCE_DIR LOG_DIR LOG_LIMIT_BYTES "
              "PID_FILE -- /path/to/RUNTIME ARG...\n");
    return 2;
  }
  Args args = *parsed;
  int ready_fd = args.ready_fd;
  auto fail_startup = [&](const std::string& why) {
    report_ready(&ready_fd, "error: " + why);
    return 1;
  };

  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
  }
  ::signal(SIGPIPE, SIG_IGN);
  // The monitor leaves the agent's session only once the runtime has started the container:
  // a new session is also a new scheduler autogroup, and on a busy node the runtime started
  // from one took half as long again (measured) as in the agent's own. Until then an agent
  // killed with its process group takes the half-started launch with it, which is what a launch
  // cut short should do anyway.
  if (::getpgrp() == ::getpid()) {
    pid_t pid = ::fork();  // a group leader (started by hand) cannot setsid later: shed that
    if (pid < 0) return fail_startup("Failed to fork: " + errno_text());
    if (pid > 0) ::_exit(0);
  }
  if (::chdir("/") != 0) return fail_startup("Failed to chdir to '/': " + errno_text());
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : kForwardedSignals) sigaddset(&handled, sig);
  sigaddset(&handled, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &handled, nullptr);
  int sig_fd = ::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sig_fd < 0) return fail_startup("Failed to create signalfd: " + errno_text());

  RotatingLog out_log(args.log_dir + "/" + kStdoutLogFile, args.log_limit);
  RotatingLog err_log(args.log_dir + "/" + kStderrLogFile, args.log_limit);
  if (Status s = out_log.open(); !s) return fail_startup(s.error().message());
  if (Status s = err_log.open(); !s) return fail_startup(s.error().message());
  int out_pipe[2], err_pipe[2];
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return fail_startup("Failed to create pipes: " + errno_text());
  }
  pid_t runtime = ::fork();
  if (runtime < 0) return fail_startup("Failed to fork: " + errno_text());
  if (runtime == 0) exec_runtime(args, devnull, out_pipe[1], err_pipe[1]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(devnull);
  ::fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
  ::fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);

  std::string err_tail;
  std::map<pid_t, int> reaped;  // children reaped before we knew which one the container is
  std::vector<int> pending;     // signals that arrived before the container's init was known
  pid_t target = 0;
  std::optional<int> target_status;
  ExitRecord record;
  bool done = false;
  std::optional<SteadyClock::time_point> drain_deadline;
  pollfd fds[3] = {{sig_fd, POLLIN, 0}, {out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  RotatingLog* logs[3] = {nullptr, &out_log, &err_log};
  while (!done) {
    // Reap, and move through the phases: runtime running -> container running -> draining.
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) reaped[pid] = status;
    if (pid < 0 && errno == ECHILD && target > 0 && !target_status && !reaped.count(target)) {
      // No children left and the container's process was never ours: nothing to wait for.
      break;
    }
    if (runtime > 0 && reaped.count(runtime)) {
      int rs = reaped[runtime];
      reaped.erase(runtime);
      runtime = 0;
      target = WIFEXITED(rs) && WEXITSTATUS(rs) == 0 ? read_pid_file(args.pid_file) : 0;
      if (target == 0) {
        // Take in what the runtime said before reporting it.
        for (int i = 1; i < 3; ++i) drain_now(&fds[i].fd, *logs[i], i == 2 ? &err_tail : nullptr);
        std::string why = last_error_line(err_tail);
        record = {WIFEXITED(rs) && WEXITSTATUS(rs) != 0 ? WEXITSTATUS(rs) : kRuntimeFailureCode, 0,
                  why};
        // The exit record first: once the driver hears of the failure it cleans up, and a
        // monitor still running without one would make that fail.
        (void)fs::write_atomic(args.instance_dir + "/" + kExitRecordFile,
                               format_exit_record(record));
        report_ready(&ready_fd, "error: " + why);
        return 0;
      }
      if (std::string why = lead_own_session(args); !why.empty()) {
        ::kill(target, SIGKILL);  // unsupervisable: better no container than an orphan
        return fail_startup(why);
      }
      report_ready(&ready_fd, "ok");
      for (int sig : pending) ::kill(target, sig);
    }
    if (target > 0 && !target_status && reaped.count(target)) {
      target_status = reaped[target];
      drain_deadline = SteadyClock::now() + kDrainGrace;
    }
    // Kept while the runtime runs: a container that exits at once can be reaped (it is
    // re-parented to us, the subreaper) before the runtime is, while its pid is still unknown.
    if (runtime == 0) reaped.clear();
    bool pipes_open = fds[1].fd >= 0 || fds[2].fd >= 0;
    if (drain_deadline && (!pipes_open || SteadyClock::now() >= *drain_deadline)) break;
    int timeout_ms = 1000;  // a safety net: SIGCHLD arrives through the signalfd
    if (drain_deadline) {
      timeout_ms = static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(*drain_deadline -
                                                                   SteadyClock::now())
                 .count()));
    }
    if (::poll(fds, 3, timeout_ms) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      while (::read(sig_fd, &info, sizeof info) == sizeof info) {
        int sig = static_cast<int>(info.ssi_signo);
        if (sig == SIGCHLD || target_status) continue;
        if (target > 0) {
          ::kill(target, sig);
        } else {
          pending.push_back(sig);
        }
      }
    }
    for (int i = 1; i < 3; ++i) {
      if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
          !pump(fds[i].fd, *logs[i], i == 2 && target == 0 ? &err_tail : nullptr)) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
      }
    }
  }
  if (target_status) {
    if (WIFSIGNALED(*target_status)) {
      record.signal = WTERMSIG(*target_status);
    } else {
      record.exit_code = WEXITSTATUS(*target_status);
    }
  } else if (target > 0) {
    record = {kRuntimeFailureCode, 0, "lost track of the container's process"};
  }
  std::string exit_path = args.instance_dir + "/" + kExitRecordFile;
  if (Status s = fs::write_atomic(exit_path, format_exit_record(record)); !s) return 1;
  return 0;
}

}  // namespace
}  // namespace flotilla::runtime

int main(int argc, char** argv) { return flotilla::runtime::run(argc, argv); }
