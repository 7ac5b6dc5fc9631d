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
  // ingest: further hub instances sharing the shards (--store with leases): REST ports and pids,
  // summed with the first hub's.
  std::vector<int> extra_hub_ports;
  std::vector<pid_t> extra_hub_pids;
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
  bool list_apply = true;     // list: list again with an everyNode workload running everywhere
  uint32_t devices = 100000;  // twin: devices, device i on node i mod nodes
  uint32_t twin_sets = 0;     // twin: desired sets under load (0: one per device)
  uint32_t twin_paced_sets = 1000;  // twin: then sets from one client, one at a time
  uint32_t twin_paced_gap_ms = 0;   // twin: pause between those sets
  uint64_t twin_records = 1000000;  // twin: device reports in the reported flood
  uint32_t twin_per_message = 0;    // twin: devices per TwinReported (0: all of a node's)
  uint32_t http_parallel = 8;       // twin: concurrent REST clients
  bool http_keep_alive = false;     // twin: each client reuses its connection
  uint32_t twin_check = 1000;       // twin: devices whose hub view is checked at the end
  uint32_t ota_payload_kib = 1024;  // ota: size of the artifact's payload
  std::vector<uint32_t> ota_waves{10, 50, 100};  // ota: cumulative percent of nodes per wave
  uint32_t ota_soak_s = 0;                       // ota: soak after each wave
  uint32_t ota_fail_permille = 0;                // ota: nodes whose simulated health check fails
  uint32_t ota_threshold_percent = 5;            // ota: the rollout's failure threshold
  uint32_t ota_download_threads = 8;  // ota: concurrent payload downloads of the simulator
  std::string control_file;           // console: commands from the browser benchmark
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
// f: device twins (bench/twin_scenario.cpp): create `devices` through REST; desired sets through
// REST → the virtual agent holding them (per device, from the HTTP response and from the send),
// under load and from one client; a TwinReported flood from every node, device reports the hub
// committed per second (vs raw_msgs_per_s); then the hub's view of a sample of devices.
int run_twin(const ScenarioOptions& options, std::ostream& out);
// g: OTA (bench/ota_scenario.cpp): push a signed artifact, apply a Rollout over every node in
// waves; wall time until it completes (or pauses at its failure threshold), when each wave
// opened, what the hub and the virtual updaters counted.
int run_ota(const ScenarioOptions& options, std::ostream& out);
// h: a fleet for the web console benchmark (test/console/bench.mjs, driven by bench/run
// console): all Ready, one everyNode workload Running everywhere, then it holds the fleet and
// follows `control_file`: each new line "offline NAME" makes that node's agent die (its will,
// then silence), "stop" ends the run. Writes "ready" to control_file + ".ready" once all run.
int run_console(const ScenarioOptions& options, std::ostream& out);

}  // namespace flotilla::bench
