// Replay driver for the fuzz targets in the normal (gcc) build: runs LLVMFuzzerTestOneInput on
// every file under the directories and on the files given, so that the committed corpus and
// every saved reproducer are regression tests. Arguments starting with '-' (libFuzzer flags) are
// ignored.
//
// With several inputs, each runs in a child process, so that one input that aborts (a violated
// invariant), crashes or hangs does not hide the others: all failures are listed and the exit
// status is 1. A single input runs in-process, for debuggers. Like scripts/fuzz's libFuzzer runs,
// an input may take at most kTimeoutSeconds and (outside sanitizer builds, which reserve huge
// mappings) at most kMemoryLimitBytes of data, so an input that makes the code under test loop or
// allocate without end fails instead of stalling the machine.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

constexpr unsigned kTimeoutSeconds = 30;
constexpr rlim_t kMemoryLimitBytes = rlim_t{2} << 30;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

void on_timeout(int) {
  static const char kMsg[] = "\nreplay: timeout: the input ran longer than the limit\n";
  (void)!write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
  abort();
}

bool collect(const fs::path& arg, std::vector<fs::path>& out) {
  std::error_code ec;
  if (fs::is_regular_file(arg, ec)) {
    out.push_back(arg);
    return true;
  }
  if (!fs::is_directory(arg, ec)) {
    std::fprintf(stderr, "replay: '%s' is neither a file nor a directory\n", arg.c_str());
    return false;
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(arg, ec)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  if (ec) {
    std::fprintf(stderr, "replay: cannot list '%s': %s\n", arg.c_str(), ec.message().c_str());
    return false;
  }
  if (files.empty()) {
    std::fprintf(stderr, "replay: '%s' holds no inputs\n", arg.c_str());
    return false;
  }
  std::sort(files.begin(), files.end());
  out.insert(out.end(), files.begin(), files.end());
  return true;
}

// Runs one input in this process; returns false when it cannot be read.
bool run_one(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    std::fprintf(stderr, "replay: cannot read '%s'\n", path.c_str());
    return false;
  }
  std::string data((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::printf("replay %s (%zu bytes)\n", path.c_str(), data.size());
  std::fflush(stdout);
  // A copy in its own allocation, so that reads past the end are caught by sanitizers.
  std::vector<uint8_t> bytes(data.begin(), data.end());
  alarm(kTimeoutSeconds);
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  alarm(0);
  return true;
}

// Runs one input in a child process; returns why it failed, or "" when it passed.
std::string run_in_child(const fs::path& path) {
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return std::string("fork failed: ") + std::strerror(errno);
  if (pid == 0) _exit(run_one(path) ? 0 : 2);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return std::string("waitpid failed: ") + std::strerror(errno);
  }
  if (WIFSIGNALED(status)) return std::string("killed by ") + strsignal(WTERMSIG(status));
  if (WEXITSTATUS(status) != 0) return "exit status " + std::to_string(WEXITSTATUS(status));
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] == '-') continue;
    if (!collect(argv[i], inputs)) return 2;
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  if (!kSanitized) {
    rlimit limit{kMemoryLimitBytes, kMemoryLimitBytes};
    setrlimit(RLIMIT_DATA, &limit);
  }
  signal(SIGALRM, on_timeout);
  if (inputs.size() == 1) {
    if (!run_one(inputs.front())) return 2;
    std::printf("replay: 1 input passed\n");
    return 0;
  }
  std::vector<std::string> failures;
  for (const auto& path : inputs) {
    std::string why = run_in_child(path);
    if (!why.empty()) failures.push_back(path.string() + ": " + why);
  }
  std::printf("replay: %zu of %zu inputs passed\n", inputs.size() - failures.size(), inputs.size());
  for (const auto& f : failures) std::printf("replay: FAILED %s\n", f.c_str());
  return failures.empty() ? 0 : 1;
}
