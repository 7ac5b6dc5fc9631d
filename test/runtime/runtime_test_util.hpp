// Helpers for the runtime tests: a temporary folder and polling with a deadline.
#pragma once

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "common/fs.hpp"
#include "runtime/driver.hpp"

namespace flotilla::runtime::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/flotilla-runtime-test-XXXXXX";
    char* made = ::mkdtemp(tmpl);
    path_ = made != nullptr ? made : "";
  }
  ~TempDir() {
    if (!path_.empty()) (void)fs::remove_all(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Polls `done` every few milliseconds until it holds or `timeout` passes.
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

inline Observation wait_until_exited(Driver& driver, const Handle& handle,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  Observation last;
  eventually(
      [&] {
        last = driver.observe(handle);
        return last.state != RunState::kRunning;
      },
      timeout);
  return last;
}

inline std::string read_or_empty(const std::string& path) {
  auto text = fs::read_file(path);
  return text ? *text : "";
}

inline uint64_t file_size_or_zero(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

}  // namespace flotilla::runtime::testing
