// Names the calling thread (as top -H, perf and /proc/PID/task/*/comm show it), so a profile
// tells a hub's ingest threads from its watch feeder or HTTP workers. Linux keeps 15 bytes.
#pragma once

#include <pthread.h>

#include <string>

namespace flotilla {

inline void set_thread_name(const std::string& name) {
  (void)pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace flotilla
