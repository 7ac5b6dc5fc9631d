// Helpers shared by the fuzz targets: invariant checks that abort (so libFuzzer and the replay
// driver both report the input), and a log sink that counts warnings instead of printing them.
//
// Set FLOTILLA_FUZZ_LOG=1 to also print the components' logs to stderr while debugging an input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "common/log.hpp"

namespace flotilla::fuzz {

[[noreturn]] inline void fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "\n%s:%d: fuzz invariant violated: %s\n", file, line, what.c_str());
  std::fflush(stderr);
  std::abort();
}

// Counts what a component logs at warn level or above.
class LogCounter final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  uint64_t warnings() {
    std::lock_guard<std::mutex> lock(mutex_);
    return warnings_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (msg.level >= spdlog::level::warn) ++warnings_;
  }
  void flush_() override {}

 private:
  uint64_t warnings_ = 0;
};

// Routes `component`'s logger into a LogCounter (at warn level, so debug and info lines cost
// nothing). Call once per process; the counter lives as long as the logger.
inline std::shared_ptr<LogCounter> count_warnings_of(const std::string& component) {
  auto counter = std::make_shared<LogCounter>();
  auto logger = log::get(component);
  const bool verbose = std::getenv("FLOTILLA_FUZZ_LOG") != nullptr;
  logger->sinks().clear();
  logger->sinks().push_back(counter);
  if (verbose) logger->sinks().push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::warn);
  return counter;
}

}  // namespace flotilla::fuzz

// Aborts with `what` (a std::string expression, evaluated only on failure) unless `cond` holds.
#define FUZZ_CHECK(cond, what)                                       \
  do {                                                               \
    if (!(cond)) ::flotilla::fuzz::fail(__FILE__, __LINE__, (what)); \
  } while (0)
