#include "runtime/detached_spawn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace flotilla::runtime {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr int kExecFailedCode = 127;
constexpr int kForkFailedCode = 126;

std::string errno_text(int err) { return std::strerror(err); }

std::vector<char*> to_c_array(const std::vector<std::string>& items) {
  std::vector<char*> out;
  out.reserve(items.size() + 1);
  for (const std::string& s : items) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// Writes "exec-errno=<n>" with async-signal-safe calls only.
void report_exec_errno(int fd, int err) {
  char buf[32] = "exec-errno=";
  size_t len = std::strlen(buf);
  char digits[12];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + err % 10);
    err /= 10;
  } while (err > 0 && n < 11);
  while (n > 0) buf[len++] = digits[--n];
  ssize_t ignored = ::write(fd, buf, len);
  (void)ignored;
}

// Runs in the grandchild, between fork and exec: async-signal-safe calls only.
[[noreturn]] void exec_grandchild(char* const* argv, char* const* envp, int devnull, int ready_w,
                                  int ready_fd, int max_fd) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Move both descriptors above the range we are about to overwrite, then place them.
  int null_hi = ::fcntl(devnull, F_DUPFD, ready_fd + 1);
  int ready_hi = ::fcntl(ready_w, F_DUPFD, ready_fd + 1);
  if (null_hi < 0 || ready_hi < 0) ::_exit(kExecFailedCode);
  for (int fd = 0; fd <= 2; ++fd) {
    if (fd != ready_fd) ::dup2(null_hi, fd);
  }
  ::dup2(ready_hi, ready_fd);
  if (::close_range(static_cast<unsigned>(ready_fd) + 1, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = ready_fd + 1; fd < max_fd; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  for (int fd = 3; fd < ready_fd; ++fd) ::close(fd);
  ::execve(argv[0], argv, envp);
  report_exec_errno(ready_fd, errno);
  ::_exit(kExecFailedCode);
}

Status reap_intermediate(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno == EINTR) continue;
    if (errno == ECHILD) return Ok();  // SIGCHLD ignored by the caller: reaped automatically
    return Error("Failed to wait for the intermediate child: " + errno_text(errno));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == kForkFailedCode) {
    return Error("Failed to fork the detached process");
  }
  return Ok();
}

}  // namespace

Expected<SpawnReport> spawn_detached(const std::vector<std::string>& argv,
                                     const std::vector<std::string>& env, int ready_fd,
                                     std::chrono::milliseconds timeout) {
  if (argv.empty() || argv[0].empty()) return Error("Failed to spawn: empty argv");
  // Everything the children need is prepared here: after fork they may not allocate.
  std::vector<char*> c_argv = to_c_array(argv);
  std::vector<char*> c_env = to_c_array(env);
  rlimit lim{};
  int max_fd = ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < 65536
                   ? static_cast<int>(lim.rlim_cur)
                   : 65536;

  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) return Error("Failed to open '/dev/null': " + errno_text(errno));
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(devnull);
    return Error("Failed to create a pipe: " + errno_text(err));
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    pid_t grandchild = ::fork();
    if (grandchild == 0) {
      exec_grandchild(c_argv.data(), c_env.data(), devnull, pipe_fds[1], ready_fd, max_fd);
    }
    ::_exit(grandchild < 0 ? kForkFailedCode : 0);
  }
  int fork_err = errno;
  ::close(devnull);
  ::close(pipe_fds[1]);
  if (pid < 0) {
    ::close(pipe_fds[0]);
    return Error("Failed to fork: " + errno_text(fork_err));
  }
  if (Status s = reap_intermediate(pid); !s) {
    ::close(pipe_fds[0]);
    return s.error();
  }

  SpawnReport report;
  bool eof = false;
  auto deadline = SteadyClock::now() + timeout;
  while (!eof) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) break;
    pollfd pfd{pipe_fds[0], POLLIN, 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) break;
    char buf[512];
    ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof = true;
    } else {
      report.text.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(pipe_fds[0]);
  report.timed_out = !eof;
  const std::string exec_prefix = "exec-errno=";
  if (report.text.rfind(exec_prefix, 0) == 0) {
    int err = std::atoi(report.text.c_str() + exec_prefix.size());
    return Error("Failed to execute '" + argv[0] + "': " + errno_text(err));
  }
  return report;
}

}  // namespace flotilla::runtime
