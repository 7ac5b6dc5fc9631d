#include "runtime/rotating_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace flotilla::runtime {

RotatingLog::RotatingLog(std::string path, uint64_t cap_bytes)
    : path_(std::move(path)), cap_(std::max<uint64_t>(cap_bytes, 1)) {}

RotatingLog::~RotatingLog() {
  if (fd_ >= 0) ::close(fd_);
}

Status RotatingLog::open() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) return Error("Failed to open log '" + path_ + "': " + std::strerror(errno));
  struct stat st {};
  size_ = ::fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  return Ok();
}

Status RotatingLog::rotate() {
  std::string old = path_ + ".1";
  if (::rename(path_.c_str(), old.c_str()) != 0 && errno != ENOENT) {
    return Error("Failed to rotate log '" + path_ + "': " + std::strerror(errno));
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
  size_ = 0;
  if (fd_ < 0) return Error("Failed to open log '" + path_ + "': " + std::strerror(errno));
  return Ok();
}

Status RotatingLog::append(const char* data, size_t size) {
  while (size > 0) {
    if (fd_ < 0 || size_ >= cap_) {
      if (Status s = rotate(); !s) return s;
    }
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(size, cap_ - size_));
    ssize_t n = ::write(fd_, data, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error("Failed to write log '" + path_ + "': " + std::strerror(errno));
    size_ += static_cast<uint64_t>(n);
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Ok();
}

}  // namespace flotilla::runtime
