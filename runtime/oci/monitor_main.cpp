// flotilla-oci-monitor: stands between flotilla-shim and one container, in the manner of
// containerd-shim's use of runc. It runs
//
//   flotilla-oci-monitor RUNTIME STATE_ROOT BUNDLE CONTAINER_ID PID_FILE
//
// which starts `RUNTIME --root STATE_ROOT run --detach --pid-file PID_FILE --bundle BUNDLE ID`
// with the monitor's own stdio (the shim's log pipes: the container writes straight into them),
// then waits for the container's init process and ends the way it ended (same exit code, or the
// same signal), so the shim's exit record is the container's.
//
// Why not the shim running the foreground `runc run`: that runc deletes the container's cgroup
// as soon as the container exits, taking the OOM-kill counter with it. Detached, the cgroup stays
// until `runc delete`, so the driver can still tell an OOM kill apart from any other SIGKILL.
// The monitor is a child subreaper, so the container's init is re-parented to it when the
// detached runtime exits, and it can wait for it.
//
// Signals the shim forwards (TERM, INT, HUP, QUIT, USR1, USR2) go on to the container's init.
// Links only libc and libstdc++: one runs per container.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

constexpr int kForwardedSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
constexpr int kUsageCode = 125;  // like docker: the failure is the runtime's, not the workload's

int read_pid_file(const std::string& path) {
  std::ifstream in(path);
  long pid = 0;
  if (!(in >> pid) || pid <= 1 || pid > (1L << 22)) return 0;
  return static_cast<int>(pid);
}

// Ends this process the way the container's init ended.
[[noreturn]] void exit_like(int status) {
  if (WIFEXITED(status)) ::_exit(WEXITSTATUS(status));
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
  rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  ::signal(sig, SIG_DFL);
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_UNBLOCK, &all, nullptr);
  ::raise(sig);
  ::_exit(128 + sig);  // a signal whose default action does not terminate
}

// Waits (handling signals meanwhile) until `pid` has been reaped; returns its wait status.
// Signals that arrive before `target` is known are kept and delivered once it is.
int wait_for(pid_t pid, const sigset_t& handled, int* target, std::vector<int>* pending) {
  for (;;) {
    int status = 0;
    pid_t reaped;
    while ((reaped = ::waitpid(-1, &status, WNOHANG)) > 0) {
      if (reaped == pid) return status;
    }
    if (reaped < 0 && errno == ECHILD) return -1;
    siginfo_t info;
    int sig = ::sigwaitinfo(&handled, &info);
    if (sig <= 0 || sig == SIGCHLD) continue;
    if (*target > 0) {
      ::kill(*target, sig);
    } else {
      pending->push_back(sig);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr,
                 "usage: flotilla-oci-monitor RUNTIME STATE_ROOT BUNDLE CONTAINER_ID PID_FILE\n");
    return kUsageCode;
  }
  const std::string runtime = argv[1], state_root = argv[2], bundle = argv[3], id = argv[4],
                    pid_file = argv[5];
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : kForwardedSignals) sigaddset(&handled, sig);
  sigaddset(&handled, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &handled, nullptr);

  std::vector<std::string> args = {runtime,      "--root", state_root, "run",  "--detach",
                                   "--pid-file", pid_file, "--bundle", bundle, id};
  std::vector<char*> cargs;
  for (std::string& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);

  pid_t runner = ::fork();
  if (runner < 0) {
    std::fprintf(stderr, "flotilla-oci-monitor: Failed to fork: %s\n", std::strerror(errno));
    return kUsageCode;
  }
  if (runner == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(cargs[0], cargs.data());
    std::fprintf(stderr, "flotilla-oci-monitor: Failed to start '%s': %s\n", cargs[0],
                 std::strerror(errno));
    ::_exit(kUsageCode);
  }

  int target = 0;
  std::vector<int> pending;
  int status = wait_for(runner, handled, &target, &pending);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    // The runtime has said why on stderr (the shim's stderr log); the driver reports it.
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : kUsageCode;
  }
  target = read_pid_file(pid_file);
  if (target == 0) {
    std::fprintf(stderr, "flotilla-oci-monitor: no container pid in '%s'\n", pid_file.c_str());
    return kUsageCode;
  }
  for (int sig : pending) ::kill(target, sig);
  status = wait_for(target, handled, &target, &pending);
  if (status == -1) {
    // Not our child: the runtime's init was not re-parented here (it should always be).
    std::fprintf(stderr, "flotilla-oci-monitor: container process %d is not a child\n", target);
    return kUsageCode;
  }
  exit_like(status);
}
