// HubProbe: what the simulator observes of the hub from outside: its REST API, its /metrics
// text, and its process's CPU time and peak memory from /proc.
//
// Thread-safety: one HubProbe per thread.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

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
// Machine-wide CPU seconds from /proc/stat, summed over all CPUs: busy (not idle or iowait) and
// in all.
struct MachineCpu {
  double busy_seconds = 0;
  double total_seconds = 0;
};
MachineCpu read_machine_cpu();
// Each thread of the process by thread id (/proc/PID/task): its name (comm: Paho names its
// threads MQTTAsync_rcv / MQTTAsync_send, the others carry the program's name) and CPU seconds
// (utime + stime); empty when the process is unknown.
struct ThreadCpu {
  std::string name;
  double cpu_seconds = 0;
};
std::map<pid_t, ThreadCpu> read_thread_cpu(pid_t pid);

class HubProbe {
 public:
  // keep_alive false: a new connection for every request (as curl or flotctl make them).
  explicit HubProbe(int port, bool keep_alive = true);
  ~HubProbe();

  Expected<std::string> get(const std::string& path);
  // One request with a body (method PUT, POST or PATCH; JSON unless told); the reply's status
  // and body, any status. An error only when no reply came (connection refused, timeout).
  struct Reply {
    int status = 0;
    std::string body;
  };
  Expected<Reply> send_json(const std::string& method, const std::string& path,
                            const std::string& body,
                            const std::string& content_type = "application/json");
  // PUT /api/v1/workloads/NAME?force=true with a JSON manifest; the response body on 200.
  Expected<std::string> apply(const std::string& name, const std::string& manifest_json);
  // The value of one series in /metrics, e.g. metric(text, "flotilla_hub_nodes{state=\"Ready\"}");
  // 0 when absent.
  static double metric(const std::string& text, const std::string& series);
  // The values of every series of metric `name` (any labels, in text order), e.g. each shard's
  // flotilla_hub_shard_lag_seconds.
  static std::vector<double> metric_values(const std::string& text, const std::string& name);
  Expected<double> metric(const std::string& series);

 private:
  std::unique_ptr<httplib::Client> client_;
};

// An everyNode process workload selecting label fleet=sim, with env MODE=`mode`.
std::string every_node_manifest(const std::string& name, const std::string& mode);

}  // namespace flotilla::bench
