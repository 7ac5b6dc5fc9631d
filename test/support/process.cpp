#include "test/support/process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace flotilla::testing {
namespace {

std::vector<char*> to_argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
}

void ChildProcess::start(const std::vector<std::string>& argv, const std::string& log_path,
                         const std::map<std::string, std::string>& extra_env) {
  log_path_ = log_path;
  status_.reset();
  auto args = to_argv(argv);
  // Built before fork: the child of a multithreaded test may only call async-signal-safe code.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    if (extra_env.count(kv.substr(0, kv.find('='))) == 0) env_strings.push_back(std::move(kv));
  }
  for (const auto& [key, value] : extra_env) env_strings.push_back(key + "=" + value);
  auto envp = to_argv(env_strings);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::setpgid(0, 0);
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::execve(args[0], args.data(), envp.data());
    std::fprintf(stderr, "exec %s failed: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  pid_ = pid;
}

bool ChildProcess::running() {
  if (pid_ <= 0 || status_) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return true;
}

void ChildProcess::signal(int sig) {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
  if (sig == SIGKILL) wait_exit(std::chrono::seconds(10));
}

void ChildProcess::kill9() { signal(SIGKILL); }

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  eventually([&] { return !running(); }, timeout);
  return status_;
}

std::optional<int> ChildProcess::stop(std::chrono::milliseconds grace) {
  if (!running()) return status_;
  ::kill(pid_, SIGTERM);
  if (wait_exit(grace)) return status_;
  kill9();
  return status_;
}

std::string ChildProcess::log() const { return slurp(log_path_); }

RunResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  char out_tmpl[] = "/tmp/flotilla-run-out-XXXXXX";
  char err_tmpl[] = "/tmp/flotilla-run-err-XXXXXX";
  int out_fd = ::mkstemp(out_tmpl);
  int err_fd = ::mkstemp(err_tmpl);
  auto args = to_argv(argv);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::execv(args[0], args.data());
    std::fprintf(stderr, "exec %s failed: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  RunResult r;
  int st = 0;
  bool done = eventually([&] { return ::waitpid(pid, &st, WNOHANG) == pid; }, timeout);
  if (!done) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &st, 0);
    r.exit_code = -1;
  } else {
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  ::close(out_fd);
  ::close(err_fd);
  r.out = slurp(out_tmpl);
  r.err = slurp(err_tmpl);
  ::unlink(out_tmpl);
  ::unlink(err_tmpl);
  return r;
}

bool pid_alive(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos || close_paren + 2 >= stat.size()) return false;
  return stat[close_paren + 2] != 'Z';
}

std::map<std::string, std::string> process_environ(pid_t pid) {
  std::map<std::string, std::string> out;
  std::string text = slurp("/proc/" + std::to_string(pid) + "/environ");
  size_t start = 0;
  while (start < text.size()) {
    size_t nul = text.find('\0', start);
    if (nul == std::string::npos) nul = text.size();
    std::string kv = text.substr(start, nul - start);
    auto eq = kv.find('=');
    if (eq != std::string::npos) out.emplace(kv.substr(0, eq), kv.substr(eq + 1));
    start = nul + 1;
  }
  return out;
}

std::vector<ProcInfo> find_processes_with_env(const std::map<std::string, std::string>& env) {
  std::vector<ProcInfo> out;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return out;
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    auto have = process_environ(static_cast<pid_t>(pid));
    if (have.empty()) continue;
    size_t matched = 0;
    for (const auto& [key, value] : env) {
      auto it = have.find(key);
      if (it != have.end() && it->second == value) ++matched;
    }
    if (matched == env.size() && pid_alive(static_cast<pid_t>(pid))) {
      std::string comm = slurp("/proc/" + std::to_string(pid) + "/comm");
      while (!comm.empty() && comm.back() == '\n') comm.pop_back();
      out.push_back({static_cast<pid_t>(pid), comm});
    }
  }
  ::closedir(dir);
  return out;
}

}  // namespace flotilla::testing
