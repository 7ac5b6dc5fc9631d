#include "runtime/run_command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace flotilla::runtime {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::vector<char*> to_c_array(const std::vector<std::string>& items) {
  std::vector<char*> out;
  out.reserve(items.size() + 1);
  for (const std::string& s : items) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// Between fork and exec: async-signal-safe calls only.
[[noreturn]] void exec_child(char* const* argv, char* const* envp, const char* workdir, int devnull,
                             int out_w, int err_w, int exec_err_w) {
  ::setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::dup2(devnull, 0);
  ::dup2(out_w, 1);
  ::dup2(err_w, 2);
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  ::fcntl(exec_err_w, F_SETFD, FD_CLOEXEC);
  if (workdir != nullptr && ::chdir(workdir) != 0) {
    int err = errno;
    ssize_t ignored = ::write(exec_err_w, &err, sizeof err);
    (void)ignored;
    ::_exit(127);
  }
  if (envp != nullptr) {
    ::execvpe(argv[0], argv, envp);
  } else {
    ::execvp(argv[0], argv);
  }
  int err = errno;
  ssize_t ignored = ::write(exec_err_w, &err, sizeof err);
  (void)ignored;
  ::_exit(127);
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

Expected<CommandResult> run_command(const std::vector<std::string>& argv,
                                    const CommandOptions& options) {
  if (argv.empty() || argv[0].empty()) return Error("Failed to run a command: empty argv");
  auto fail = [&](const std::string& why) {
    return Error("Failed to run '" + argv[0] + "': " + why);
  };
  std::vector<char*> c_argv = to_c_array(argv);
  std::vector<char*> c_env = options.env ? to_c_array(*options.env) : std::vector<char*>{};
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out[2] = {-1, -1}, err[2] = {-1, -1}, exec_err[2] = {-1, -1};
  if (devnull < 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 ||
      ::pipe2(exec_err, O_CLOEXEC) != 0) {
    std::string why = std::strerror(errno);
    for (int* fd : {&devnull, &out[0], &out[1], &err[0], &err[1], &exec_err[0], &exec_err[1]}) {
      close_fd(*fd);
    }
    return fail(why);
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    exec_child(c_argv.data(), options.env ? c_env.data() : nullptr,
               options.workdir.empty() ? nullptr : options.workdir.c_str(), devnull, out[1], err[1],
               exec_err[1]);
  }
  int fork_errno = errno;
  close_fd(devnull);
  close_fd(out[1]);
  close_fd(err[1]);
  close_fd(exec_err[1]);
  if (pid < 0) {
    for (int* fd : {&out[0], &err[0], &exec_err[0]}) close_fd(*fd);
    return fail(std::string("fork: ") + std::strerror(fork_errno));
  }
  ::setpgid(pid, pid);  // also done by the child: whichever runs first

  CommandResult result;
  auto deadline = SteadyClock::now() + options.timeout;
  int exec_errno = 0;
  size_t got_exec = 0;
  while (out[0] >= 0 || err[0] >= 0 || exec_err[0] >= 0) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0 && !result.timed_out && options.on_timeout) {
      result.timed_out = true;
      options.on_timeout();
      deadline = SteadyClock::now() + options.timeout_grace;
      continue;
    }
    if (left.count() <= 0) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
      break;
    }
    pollfd fds[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {exec_err[0], POLLIN, 0}};
    int rc = ::poll(fds, 3, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (rc < 0 && errno != EINTR) break;
    for (int i = 0; i < 3; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        close_fd(i == 0 ? out[0] : i == 1 ? err[0] : exec_err[0]);
        continue;
      }
      if (i == 2) {
        size_t take = std::min(sizeof exec_errno - got_exec, static_cast<size_t>(n));
        std::memcpy(reinterpret_cast<char*>(&exec_errno) + got_exec, buf, take);
        got_exec += take;
        continue;
      }
      std::string& sink = i == 0 ? result.out : result.err;
      size_t room = options.max_output > sink.size() ? options.max_output - sink.size() : 0;
      sink.append(buf, std::min(room, static_cast<size_t>(n)));
    }
  }
  for (int* fd : {&out[0], &err[0], &exec_err[0]}) close_fd(*fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (result.timed_out) ::kill(-pid, SIGKILL);  // whatever the program left in its group
  if (got_exec == sizeof exec_errno && exec_errno != 0) return fail(std::strerror(exec_errno));
  result.exit_code = WIFEXITED(status)     ? WEXITSTATUS(status)
                     : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                           : -1;
  return result;
}

std::string command_failure(const CommandResult& result) {
  if (result.timed_out) return "timed out";
  std::string text = !result.err.empty() ? result.err : result.out;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  auto nl = text.rfind('\n');
  if (nl != std::string::npos) text = text.substr(nl + 1);
  if (text.size() > 300) text = text.substr(0, 300) + "...";
  return text.empty() ? "exit code " + std::to_string(result.exit_code) : text;
}

}  // namespace flotilla::runtime
