// The small I/O pieces both supervisors share: flotilla-shim (processes, VMs) and
// flotilla-oci-monitor (containers) each report startup on a ready pipe the same way.
//
// Depends only on libc and libstdc++ (both supervisors link it). Thread-safety: stateless.
#pragma once

#include <string>

namespace flotilla::runtime {

// Writes all of `text` to `fd`, retrying on EINTR; gives up silently on an error (the reader is
// gone: nothing useful to do about it in a supervisor).
void write_all(int fd, const std::string& text);

// Writes `line` and a newline to the ready pipe *ready_fd, closes it and sets it to -1, so the
// driver waiting in spawn_detached() learns how startup went; does nothing once closed.
void report_ready(int* ready_fd, const std::string& line);

}  // namespace flotilla::runtime
