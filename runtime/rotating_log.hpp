// RotatingLog: an append-only log file with a size cap, used by flotilla-shim for a workload's
// stdout and stderr. When a write would take the file past the cap, the file is renamed to
// "<path>.1" (replacing an older one) and a fresh file is started, so one stream never uses
// more than 2 x cap bytes of disk. Writes are split so no file ever exceeds the cap.
//
// Depends only on libc and libstdc++ (flotilla-shim links it). Thread-safety: one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/expected.hpp"

namespace flotilla::runtime {

class RotatingLog {
 public:
  RotatingLog(std::string path, uint64_t cap_bytes);
  ~RotatingLog();
  RotatingLog(const RotatingLog&) = delete;
  RotatingLog& operator=(const RotatingLog&) = delete;

  // Opens (appending to) the file; an existing file's size counts toward the cap.
  Status open();
  // Appends `data`, rotating as needed. On a failed write the rest of `data` is dropped: a
  // workload must never block because its log cannot be written.
  Status append(const char* data, size_t size);
  Status append(const std::string& text) { return append(text.data(), text.size()); }

 private:
  Status rotate();

  std::string path_;
  uint64_t cap_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace flotilla::runtime
