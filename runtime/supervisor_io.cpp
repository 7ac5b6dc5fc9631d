#include "runtime/supervisor_io.hpp"

#include <unistd.h>

#include <cerrno>

namespace flotilla::runtime {

void write_all(int fd, const std::string& text) {
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

void report_ready(int* ready_fd, const std::string& line) {
  if (*ready_fd < 0) return;
  write_all(*ready_fd, line + "\n");
  ::close(*ready_fd);
  *ready_fd = -1;
}

}  // namespace flotilla::runtime
