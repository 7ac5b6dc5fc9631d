#include "runtime/oci/command_runner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

extern char** environ;

namespace flotilla::runtime::oci {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kTimeoutGrace{1000};

std::string errno_text() { return std::strerror(errno); }

struct Pipe {
  int fds[2] = {-1, -1};
  ~Pipe() {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
  void close_end(int i) {
    if (fds[i] >= 0) ::close(fds[i]);
    fds[i] = -1;
  }
};

// Reads what is available; false at EOF or error.
bool drain(int fd, std::string* into) {
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf);
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return false;
  size_t room =
      CommandRunner::kMaxCapturedBytes - std::min(into->size(), CommandRunner::kMaxCapturedBytes);
  into->append(buf, std::min(room, static_cast<size_t>(n)));
  return true;
}

// Reads until the pipe is empty (non-blocking) or closed.
void drain_available(int fd, std::string* into) {
  for (int i = 0; i < 1024; ++i) {
    errno = 0;
    if (!drain(fd, into) || errno == EAGAIN) return;
  }
}

}  // namespace

Expected<CommandResult> SystemCommandRunner::run(const std::vector<std::string>& argv,
                                                 std::chrono::milliseconds timeout,
                                                 const std::function<void()>& on_timeout) {
  const std::string what = argv.empty() ? std::string("(nothing)") : argv[0];
  auto fail = [&](const std::string& why) { return Error("Failed to run '" + what + "': " + why); };
  if (argv.empty()) return fail("no program given");
  Pipe out, err;
  if (::pipe2(out.fds, O_CLOEXEC) != 0 || ::pipe2(err.fds, O_CLOEXEC) != 0) {
    return fail("Failed to create pipes: " + errno_text());
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out.fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err.fds[1], STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> cargs;
  for (const std::string& a : argv) cargs.push_back(const_cast<char*>(a.c_str()));
  cargs.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, cargs[0], &actions, &attr, cargs.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return fail(std::strerror(rc));
  out.close_end(1);
  err.close_end(1);

  CommandResult result;
  auto deadline = Clock::now() + timeout;
  bool timed_out = false;
  // The program may hand its stdio to something that outlives it (`runc run -d` gives them to
  // the container), so its exit, not the pipes' EOF, ends the wait: a pidfd says when.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  pollfd fds[3] = {{out.fds[0], POLLIN, 0}, {err.fds[0], POLLIN, 0}, {pidfd, POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int status = 0;
  bool reaped = false;
  while (!reaped) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      if (timed_out || !on_timeout) {
        timed_out = true;
        break;
      }
      // Let the caller stop what the program started, so the program can clean up and exit.
      timed_out = true;
      on_timeout();
      deadline = Clock::now() + kTimeoutGrace;
      continue;
    }
    // Without a pidfd (old kernels), look for the exit every few milliseconds.
    int wait_ms = pidfd >= 0 ? static_cast<int>(left.count())
                             : static_cast<int>(std::min<int64_t>(left.count(), 5));
    if (::poll(fds, 3, wait_ms) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
          !drain(fds[i].fd, sinks[i])) {
        fds[i].fd = -1;
      }
    }
    reaped = ::waitpid(pid, &status, WNOHANG) == pid;
  }
  if (reaped) {
    // What it wrote before exiting is in the pipes already.
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0) continue;
      ::fcntl(fds[i].fd, F_SETFL, O_NONBLOCK);
      drain_available(fds[i].fd, sinks[i]);
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  if (timed_out) {
    if (!reaped) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
    return fail("timed out after " + std::to_string(timeout.count()) + " ms");
  }
  if (!reaped) {
    while (::waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) return fail("Failed to wait: " + errno_text());
    }
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace flotilla::runtime::oci
