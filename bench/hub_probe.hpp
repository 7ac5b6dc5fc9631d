// HubProbe: what the simulator observes of the hub from outside: its REST API, its /metrics
// text, and its process's CPU time and peak memory from /proc.
//
// Thread-safety: one HubProbe per thread.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "common/expected.hpp"

namespace httplib {
class Client;
}

namespace flotilla::bench {

struct ProcUsage {
  double cpu_seconds = 0;  // utime + stime
  int64_t max_rss_kb = 0;  // VmHWM
};
// Zeroes when the process is unknown (pid 0 or gone).
ProcUsage read_proc_usage(pid_t pid);

class HubProbe {
 public:
  explicit HubProbe(int port);
  ~HubProbe();

  Expected<std::string> get(const std::string& path);
  // PUT /api/v1/workloads/NAME?force=true with a JSON manifest; the response body on 200.
  Expected<std::string> apply(const std::string& name, const std::string& manifest_json);
  // The value of one series in /metrics, e.g. metric(text, "flotilla_hub_nodes{state=\"Ready\"}");
  // 0 when absent.
  static double metric(const std::string& text, const std::string& series);
  Expected<double> metric(const std::string& series);

 private:
  std::unique_ptr<httplib::Client> client_;
};

// An everyNode process workload selecting label fleet=sim, with env MODE=`mode`.
std::string every_node_manifest(const std::string& name, const std::string& mode);

}  // namespace flotilla::bench
