// flotilla-shim: supervises one workload process for the process driver, in the manner of conmon
// and containerd-shim. It outlives the agent that started it: it leads its own session and
// process group, so neither a crash nor a kill -9 of the agent touches the workload.
//
//   flotilla-shim [--ready-fd=N] INSTANCE_DIR LOG_DIR LOG_LIMIT_BYTES WORKDIR -- COMMAND [ARG...]
//
// The shim's own environment is passed unchanged, and as the only environment, to COMMAND. It
// writes INSTANCE_DIR/shim.pid, reports "ok" (or "error: <why>") on the ready fd and closes it,
// runs COMMAND with its stdout/stderr copied into size-capped logs in LOG_DIR, forwards
// SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to it, and when it ends kills whatever is left
// of the process group, writes INSTANCE_DIR/exit and exits. See instance_records.hpp.
//
// Links only libc and libstdc++ so it stays small in memory: one shim runs per instance.
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.hpp"
#include "runtime/instance_records.hpp"
#include "runtime/proc_stat.hpp"
#include "runtime/rotating_log.hpp"
#include "runtime/supervisor_io.hpp"

namespace flotilla::runtime {
namespace {

using SteadyClock = std::chrono::steady_clock;

// How long to keep copying output after COMMAND exits, for descendants still holding the pipes.
constexpr auto kDrainGrace = std::chrono::milliseconds(500);
constexpr auto kLeftoverKillLimit = std::chrono::seconds(2);
constexpr int kStartFailureCode = 127;
constexpr int kForwardedSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

struct Args {
  std::string instance_dir;
  std::string log_dir;
  uint64_t log_limit = 0;
  std::string workdir;
  std::vector<std::string> command;
};

std::string errno_text() { return std::strerror(errno); }

// Parses the arguments from argv[i] on (after the optional --ready-fd=N).
std::optional<Args> parse_args(int argc, char** argv, int i, std::string* error) {
  Args args;
  if (argc - i < 6 || std::strcmp(argv[i + 4], "--") != 0) {
    *error =
        "usage: flotilla-shim [--ready-fd=N] INSTANCE_DIR LOG_DIR LOG_LIMIT_BYTES WORKDIR -- "
        "COMMAND [ARG...]";
    return std::nullopt;
  }
  args.instance_dir = argv[i];
  args.log_dir = argv[i + 1];
  char* end = nullptr;
  args.log_limit = std::strtoull(argv[i + 2], &end, 10);
  args.workdir = argv[i + 3];
  if (end == nullptr || *end != '\0' || args.log_limit == 0) {
    *error = "bad LOG_LIMIT_BYTES '" + std::string(argv[i + 2]) + "'";
    return std::nullopt;
  }
  if (args.instance_dir.empty() || args.instance_dir[0] != '/' || args.log_dir.empty() ||
      args.log_dir[0] != '/') {
    *error = "INSTANCE_DIR and LOG_DIR must be absolute paths";
    return std::nullopt;
  }
  for (int j = i + 5; j < argc; ++j) args.command.emplace_back(argv[j]);
  if (args.command[0].empty()) {
    *error = "empty COMMAND";
    return std::nullopt;
  }
  return args;
}

int fail_startup(int* ready_fd, const std::string& why) {
  write_all(STDERR_FILENO, "flotilla-shim: " + why + "\n");
  report_ready(ready_fd, "error: " + why);
  return 1;
}

// Runs in the forked child: becomes COMMAND or exits 127 after writing why to `status_fd`.
[[noreturn]] void exec_child(const Args& args, std::vector<char*>& argv, int devnull, int out_fd,
                             int err_fd, int status_fd, pid_t shim_pid) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  // If the shim is killed, the workload goes with it instead of running on unsupervised.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != shim_pid) ::_exit(kStartFailureCode);
  ::dup2(devnull, STDIN_FILENO);
  ::dup2(out_fd, STDOUT_FILENO);
  ::dup2(err_fd, STDERR_FILENO);
  std::string why;
  if (!args.workdir.empty() && ::chdir(args.workdir.c_str()) != 0) {
    why = "Failed to enter workdir '" + args.workdir + "': " + errno_text();
  } else {
    if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      for (int fd = 3; fd < 4096; ++fd) {
        if (fd != status_fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      }
    }
    ::execvp(argv[0], argv.data());
    why = "Failed to start command '" + args.command[0] + "': " + errno_text();
  }
  write_all(status_fd, why);
  ::_exit(kStartFailureCode);
}

// Waits for the exec-status pipe to close; returns what the child wrote (empty: exec worked).
std::string read_start_failure(int status_fd) {
  std::string why;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(status_fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    why.append(buf, static_cast<size_t>(n));
  }
  return why;
}

// Reaps every exited child (the shim is a subreaper, so orphaned descendants count too).
void reap(pid_t main_child, std::optional<int>* main_status) {
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    if (pid == main_child) *main_status = status;
  }
}

// SIGKILLs what is left of the process group once COMMAND has ended (daemonised helpers,
// background jobs of a shell), so an exited instance leaves nothing running behind it.
void kill_leftovers(pid_t self) {
  auto deadline = SteadyClock::now() + kLeftoverKillLimit;
  std::optional<int> ignored;
  for (;;) {
    bool any = false;
    for (const ProcStat& member : live_group_members(self)) {
      if (member.pid == self) continue;
      any = true;
      ::kill(static_cast<pid_t>(member.pid), SIGKILL);
    }
    reap(-1, &ignored);
    if (!any || SteadyClock::now() > deadline) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Copies one pipe's available output into its log; returns false at EOF or on a read error.
bool pump(int fd, RotatingLog& log) {
  char buf[64 * 1024];
  ssize_t n = ::read(fd, buf, sizeof buf);
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return false;
  (void)log.append(buf, static_cast<size_t>(n));  // a full disk must not stall the workload
  return true;
}

int run(int argc, char** argv) {
  std::string error;
  int ready_fd = -1;
  int first = 1;
  if (argc > 1 && std::strncmp(argv[1], "--ready-fd=", 11) == 0) {
    ready_fd = std::atoi(argv[1] + 11);
    first = 2;
  }
  auto parsed = parse_args(argc, argv, first, &error);
  if (!parsed) return fail_startup(&ready_fd, error);
  const Args& args = *parsed;

  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
  }
  ::signal(SIGPIPE, SIG_IGN);  // the driver may have stopped reading the ready pipe
  if (::setsid() < 0) {
    // Already a process group leader (started by hand from a shell): fork to shed that.
    pid_t pid = ::fork();
    if (pid < 0) return fail_startup(&ready_fd, "Failed to fork: " + errno_text());
    if (pid > 0) ::_exit(0);
    if (::setsid() < 0) return fail_startup(&ready_fd, "Failed to setsid: " + errno_text());
  }
  const pid_t self = ::getpid();
  if (::chdir("/") != 0) return fail_startup(&ready_fd, "Failed to chdir to '/': " + errno_text());
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : kForwardedSignals) sigaddset(&handled, sig);
  sigaddset(&handled, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &handled, nullptr);
  int sig_fd = ::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sig_fd < 0) return fail_startup(&ready_fd, "Failed to create signalfd: " + errno_text());

  RotatingLog out_log(args.log_dir + "/" + kStdoutLogFile, args.log_limit);
  RotatingLog err_log(args.log_dir + "/" + kStderrLogFile, args.log_limit);
  if (Status s = out_log.open(); !s) return fail_startup(&ready_fd, s.error().message());
  if (Status s = err_log.open(); !s) return fail_startup(&ready_fd, s.error().message());

  auto me = read_proc_stat(self);
  if (!me) return fail_startup(&ready_fd, "Failed to read /proc/self/stat");
  std::string pid_path = args.instance_dir + "/" + kPidRecordFile;
  if (Status s = fs::write_atomic(pid_path, format_pid_record({self, me->start_ticks})); !s) {
    return fail_startup(&ready_fd, s.error().message());
  }
  report_ready(&ready_fd, "ok");

  ExitRecord record;
  int out_pipe[2], err_pipe[2], status_pipe[2];
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 ||
      ::pipe2(status_pipe, O_CLOEXEC) != 0) {
    record = {kStartFailureCode, 0, "Failed to create pipes: " + errno_text()};
  }
  std::vector<char*> child_argv;
  for (const std::string& a : args.command) child_argv.push_back(const_cast<char*>(a.c_str()));
  child_argv.push_back(nullptr);

  pid_t child = -1;
  if (record.message.empty()) {
    child = ::fork();
    if (child == 0) {
      exec_child(args, child_argv, devnull, out_pipe[1], err_pipe[1], status_pipe[1], self);
    }
    if (child < 0) record = {kStartFailureCode, 0, "Failed to fork: " + errno_text()};
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    ::close(status_pipe[1]);
    ::close(devnull);
    std::string why = read_start_failure(status_pipe[0]);
    ::close(status_pipe[0]);
    if (!why.empty()) {
      (void)err_log.append("flotilla-shim: " + why + "\n");
      record.message = why;
    }
  }

  std::optional<int> child_status;
  std::optional<SteadyClock::time_point> drain_deadline;
  if (child < 0) {
    drain_deadline = SteadyClock::now();
  } else {
    ::fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
    ::fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
  }
  pollfd fds[3] = {{sig_fd, POLLIN, 0},
                   {child < 0 ? -1 : out_pipe[0], POLLIN, 0},
                   {child < 0 ? -1 : err_pipe[0], POLLIN, 0}};
  RotatingLog* logs[3] = {nullptr, &out_log, &err_log};
  for (;;) {
    if (child >= 0 && !child_status) {
      reap(child, &child_status);
      if (child_status) drain_deadline = SteadyClock::now() + kDrainGrace;
    }
    bool pipes_open = fds[1].fd >= 0 || fds[2].fd >= 0;
    if (drain_deadline && (!pipes_open || SteadyClock::now() >= *drain_deadline)) break;
    int timeout_ms = 1000;  // a safety net: SIGCHLD arrives through the signalfd
    if (drain_deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*drain_deadline -
                                                                        SteadyClock::now());
      timeout_ms = static_cast<int>(std::max<int64_t>(left.count(), 0));
    }
    if (::poll(fds, 3, timeout_ms) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      while (::read(sig_fd, &info, sizeof info) == sizeof info) {
        int sig = static_cast<int>(info.ssi_signo);
        if (sig != SIGCHLD && child > 0 && !child_status) ::kill(child, sig);
      }
    }
    for (int i = 1; i < 3; ++i) {
      if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
          !pump(fds[i].fd, *logs[i])) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
      }
    }
  }
  kill_leftovers(self);
  if (child > 0) {
    while (!child_status) {  // normally reaped already; blocks only if the loop broke early
      int status = 0;
      if (::waitpid(child, &status, 0) == child)
        child_status = status;
      else if (errno != EINTR)
        break;
    }
  }
  if (child_status) {
    if (WIFSIGNALED(*child_status)) {
      record.signal = WTERMSIG(*child_status);
    } else {
      record.exit_code = WEXITSTATUS(*child_status);
    }
  }
  std::string exit_path = args.instance_dir + "/" + kExitRecordFile;
  if (Status s = fs::write_atomic(exit_path, format_exit_record(record)); !s) return 1;
  return 0;
}

}  // namespace
}  // namespace flotilla::runtime

int main(int argc, char** argv) { return flotilla::runtime::run(argc, argv); }
