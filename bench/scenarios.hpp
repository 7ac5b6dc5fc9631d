// The benchmark scenarios the fleet simulator runs against a hub and broker started by
// bench/run. Each one bounds every wait with a timeout and writes its results as Markdown
// (a table of metric | value) to `out`; progress goes to stderr.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "bench/virtual_fleet.hpp"

namespace flotilla::bench {

struct ScenarioOptions {
  FleetOptions fleet;
  int hub_port = 8080;
  pid_t hub_pid = 0;
  pid_t broker_pid = 0;       // ingest: mosquitto, for its CPU time (0: not reported)
  int timeout_s = 120;        // per wait
  int poll_ms = 200;          // /metrics polling period
  uint32_t revisions = 1000;  // catchup
  uint32_t workloads = 4;     // catchup
  uint64_t batches = 10000;   // ingest
  uint32_t records = 50;      // ingest
  uint32_t instances = 50;    // ingest: instance ids per node that the records cycle through
  uint32_t window = 1000;     // ingest: unacknowledged batches per connection
  double raw_msgs_per_s = 0;  // ingest: mosquitto_pub/sub rate at the same payload size
  std::vector<int> list_limits{500, 100};  // list: page sizes
  uint32_t list_passes = 3;                // list: passes over all nodes per page size
  bool list_apply = true;  // list: list again with an everyNode workload running everywhere
};

// a: connect every node; time until the hub counts all of them Ready.
int run_ready(const ScenarioOptions& options, std::ostream& out);
// b: all Ready, then one everyNode apply; per-instance startup latency.
int run_startup(const ScenarioOptions& options, std::ostream& out);
// c: node 0 offline while `revisions` changes happen; bytes and time to catch up.
int run_catchup(const ScenarioOptions& options, std::ostream& out);
// d: StatusBatch flood; records the hub processed per second.
int run_ingest(const ScenarioOptions& options, std::ostream& out);
// e: once the hub has settled after registration, page through GET /api/v1/nodes (continue
// tokens) over the whole fleet; per-page latency, then one GET of /api/v1/workloads and of
// /metrics; with list_apply, all again once an everyNode workload runs on every node.
int run_list(const ScenarioOptions& options, std::ostream& out);

}  // namespace flotilla::bench
