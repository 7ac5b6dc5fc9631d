// flotilla-fleetsim: virtual Flotilla agents over real MQTT, and the benchmark scenarios that
// drive them against a running hub (bench/run starts broker and hub, then this).
#include <signal.h>

#include <iostream>
#include <sstream>

#include "bench/scenarios.hpp"
#include "bench/virtual_twins.hpp"
#include "common/flags.hpp"
#include "common/log.hpp"

namespace {

int usage_error(const flotilla::Flags& flags, const std::string& message) {
  std::cerr << "flotilla-fleetsim: " << message << "\n\n" << flags.usage();
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  flotilla::Flags flags(
      "flotilla-fleetsim",
      "Simulates a fleet of Flotilla agents over real MQTT and measures the hub.");
  flags.add(
      "mode",
      "ready | startup | catchup | ingest | list | twin | ota | console | blast-size | twin-size",
      "", true);
  flags.add("broker-port", "mosquitto port on 127.0.0.1", "1883");
  flags.add("hub-port", "hub REST port on 127.0.0.1", "8080");
  flags.add("hub-pid", "hub process id, for CPU and memory (0: not reported)", "0");
  flags.add("extra-hubs",
            "ingest: further hub instances sharing the shards, PORT:PID,...; their ingest and CPU "
            "are added to the first hub's",
            "");
  flags.add("broker-pid", "ingest: mosquitto's process id, for its CPU time (0: not reported)",
            "0");
  flags.add("nodes", "virtual nodes", "10");
  flags.add("nodes-per-connection", "virtual nodes sharing one MQTT connection", "1");
  flags.add("shards", "topic shards (as the hub's --shards)", "16");
  flags.add("heartbeat-ms", "heartbeat period per node", "5000");
  flags.add("max-connecting", "MQTT handshakes in progress at once", "256");
  flags.add("timeout-s", "upper bound of every wait", "120");
  flags.add("poll-ms", "hub /metrics polling period", "200");
  flags.add("revisions", "catchup: changes applied while the node is offline", "1000");
  flags.add("workloads", "catchup: workloads the changes rotate over", "4");
  flags.add("batches", "ingest: StatusBatch messages in all", "10000");
  flags.add("records", "ingest: records per StatusBatch", "50");
  flags.add("instances",
            "ingest: instance ids per node the records cycle through (= records: every batch "
            "updates the same instances; records * batches / nodes: every record a new instance)",
            "50");
  flags.add("window", "ingest: unacknowledged batches per connection", "1000");
  flags.add("raw-msgs-per-s", "ingest: raw broker rate at the same payload size", "0");
  flags.add("list-limits", "list: page sizes, comma-separated", "500,100");
  flags.add("list-passes", "list: passes over all nodes per page size", "3");
  flags.add("list-apply",
            "list: then run an everyNode workload on every node and list again (true|false)",
            "true");
  flags.add("devices", "twin: devices (device i on node i mod nodes)", "100000");
  flags.add("twin-sets", "twin: desired sets under load, one per device (0: every device)", "0");
  flags.add("twin-paced-sets", "twin: then desired sets from one client, one at a time", "1000");
  flags.add("twin-paced-gap-ms", "twin: pause between the sets from one client", "0");
  flags.add("twin-records", "twin: device reports in the reported flood", "1000000");
  flags.add("twin-per-message",
            "twin: devices per TwinReported in the flood (0: all of a node's, as the agent's "
            "outbox batches them)",
            "0");
  flags.add("http-parallel", "twin: concurrent REST clients", "8");
  flags.add("http-keep-alive",
            "twin: each REST client reuses its connection (true|false; off by default so runs "
            "compare with the first ones, made before the hub set TCP_NODELAY in ab3b027)",
            "false");
  flags.add("twin-check", "twin: devices whose hub view is compared at the end", "1000");
  flags.add("ota-payload-kib", "ota: size of the artifact's payload", "1024");
  flags.add("ota-waves", "ota: the rollout's waves, cumulative percent of the nodes", "10,50,100");
  flags.add("ota-soak-s", "ota: soak time after each wave", "0");
  flags.add("ota-fail-permille", "ota: nodes whose simulated post-switch health check fails", "0");
  flags.add("ota-threshold-percent", "ota: the rollout's failure threshold (minCount 1)", "5");
  flags.add("ota-download-threads", "ota: concurrent payload downloads of the simulator", "8");
  flags.add("control-file", "console: the file of commands (offline NAME, stop) to follow", "");
  if (auto st = flags.parse(argc, argv); !st) return usage_error(flags, st.error().message());
  if (flags.help_requested()) {
    std::cout << flags.usage();
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  (void)flotilla::log::init("warn");

  flotilla::bench::ScenarioOptions o;
  struct IntFlag {
    const char* name;
    int64_t min, max;
    int64_t* out;
  };
  int64_t broker_port, hub_port, hub_pid, broker_pid, nodes, per, shards, hb, connecting, timeout,
      poll, revs, workloads, batches, records, window, instances, passes, devices, twin_sets, paced,
      gap_ms, twin_records, per_message, parallel, check, ota_kib, ota_soak, ota_fail,
      ota_threshold, ota_threads;
  const IntFlag ints[] = {{"broker-port", 1, 65535, &broker_port},
                          {"hub-port", 1, 65535, &hub_port},
                          {"hub-pid", 0, 1 << 30, &hub_pid},
                          {"broker-pid", 0, 1 << 30, &broker_pid},
                          {"nodes", 1, 10'000'000, &nodes},
                          {"nodes-per-connection", 1, 1'000'000, &per},
                          {"shards", 1, 65536, &shards},
                          {"heartbeat-ms", 100, 3'600'000, &hb},
                          {"max-connecting", 1, 100'000, &connecting},
                          {"timeout-s", 1, 86'400, &timeout},
                          {"poll-ms", 10, 60'000, &poll},
                          {"revisions", 1, 1'000'000, &revs},
                          {"workloads", 1, 1000, &workloads},
                          {"batches", 1, 100'000'000, &batches},
                          {"records", 1, 2000, &records},
                          {"instances", 1, 100'000'000, &instances},
                          {"window", 1, 60'000, &window},
                          {"list-passes", 1, 1000, &passes},
                          {"devices", 1, 10'000'000, &devices},
                          {"twin-sets", 0, 10'000'000, &twin_sets},
                          {"twin-paced-sets", 0, 10'000'000, &paced},
                          {"twin-paced-gap-ms", 0, 60'000, &gap_ms},
                          {"twin-records", 1, 1'000'000'000, &twin_records},
                          {"twin-per-message", 0, 100'000, &per_message},
                          {"http-parallel", 1, 256, &parallel},
                          {"twin-check", 0, 10'000'000, &check},
                          {"ota-payload-kib", 1, 4 << 20, &ota_kib},
                          {"ota-soak-s", 0, 86'400, &ota_soak},
                          {"ota-fail-permille", 0, 1000, &ota_fail},
                          {"ota-threshold-percent", 0, 100, &ota_threshold},
                          {"ota-download-threads", 1, 256, &ota_threads}};
  for (const auto& f : ints) {
    auto v = flags.get_int(f.name, f.min, f.max);
    if (!v) return usage_error(flags, v.error().message());
    *f.out = *v;
  }
  o.fleet.broker_port = static_cast<uint16_t>(broker_port);
  o.fleet.nodes = static_cast<uint32_t>(nodes);
  o.fleet.nodes_per_connection = static_cast<uint32_t>(per);
  o.fleet.shards = static_cast<uint32_t>(shards);
  o.fleet.heartbeat = std::chrono::milliseconds(hb);
  o.fleet.max_connecting = static_cast<uint32_t>(connecting);
  o.hub_port = static_cast<int>(hub_port);
  o.hub_pid = static_cast<pid_t>(hub_pid);
  o.broker_pid = static_cast<pid_t>(broker_pid);
  o.timeout_s = static_cast<int>(timeout);
  o.poll_ms = static_cast<int>(poll);
  o.revisions = static_cast<uint32_t>(revs);
  o.workloads = static_cast<uint32_t>(workloads);
  o.batches = static_cast<uint64_t>(batches);
  o.records = static_cast<uint32_t>(records);
  o.instances = static_cast<uint32_t>(instances);
  o.window = static_cast<uint32_t>(window);
  o.raw_msgs_per_s = std::strtod(flags.get("raw-msgs-per-s").c_str(), nullptr);
  o.list_passes = static_cast<uint32_t>(passes);
  o.devices = static_cast<uint32_t>(devices);
  o.twin_sets = static_cast<uint32_t>(twin_sets);
  o.twin_paced_sets = static_cast<uint32_t>(paced);
  o.twin_paced_gap_ms = static_cast<uint32_t>(gap_ms);
  o.twin_records = static_cast<uint64_t>(twin_records);
  o.twin_per_message = static_cast<uint32_t>(per_message);
  o.http_parallel = static_cast<uint32_t>(parallel);
  o.twin_check = static_cast<uint32_t>(check);
  o.ota_payload_kib = static_cast<uint32_t>(ota_kib);
  o.ota_soak_s = static_cast<uint32_t>(ota_soak);
  o.ota_fail_permille = static_cast<uint32_t>(ota_fail);
  o.ota_threshold_percent = static_cast<uint32_t>(ota_threshold);
  o.ota_download_threads = static_cast<uint32_t>(ota_threads);
  o.ota_waves.clear();
  std::stringstream waves(flags.get("ota-waves"));
  for (std::string item; std::getline(waves, item, ',');) {
    const long v = std::strtol(item.c_str(), nullptr, 10);
    if (v < 1 || v > 100 || (!o.ota_waves.empty() && v <= o.ota_waves.back())) {
      return usage_error(flags, "--ota-waves: want rising percents 1..100, got '" + item + "'");
    }
    o.ota_waves.push_back(static_cast<uint32_t>(v));
  }
  if (o.ota_waves.empty()) return usage_error(flags, "--ota-waves: empty");
  o.list_limits.clear();
  std::stringstream limits(flags.get("list-limits"));
  for (std::string item; std::getline(limits, item, ',');) {
    const long v = std::strtol(item.c_str(), nullptr, 10);
    if (v < 1 || v > 10000) {
      return usage_error(flags, "--list-limits: want 1..10000, got '" + item + "'");
    }
    o.list_limits.push_back(static_cast<int>(v));
  }
  if (o.list_limits.empty()) return usage_error(flags, "--list-limits: empty");
  std::stringstream extra(flags.get("extra-hubs"));
  for (std::string item; std::getline(extra, item, ',');) {
    char* end = nullptr;
    const long port = std::strtol(item.c_str(), &end, 10);
    const long pid = *end == ':' ? std::strtol(end + 1, &end, 10) : -1;
    if (port < 1 || port > 65535 || pid < 0 || *end != '\0') {
      return usage_error(flags, "--extra-hubs: want PORT:PID, got '" + item + "'");
    }
    o.extra_hub_ports.push_back(static_cast<int>(port));
    o.extra_hub_pids.push_back(static_cast<pid_t>(pid));
  }
  for (auto [name, out] :
       {std::pair{"list-apply", &o.list_apply}, std::pair{"http-keep-alive", &o.http_keep_alive}}) {
    const std::string v = flags.get(name);
    if (v != "true" && v != "false") {
      return usage_error(flags, std::string("--") + name + ": want true or false, got '" + v + "'");
    }
    *out = v == "true";
  }

  o.control_file = flags.get("control-file");
  const std::string mode = flags.get("mode");
  if (mode == "ready") return flotilla::bench::run_ready(o, std::cout);
  if (mode == "startup") return flotilla::bench::run_startup(o, std::cout);
  if (mode == "catchup") return flotilla::bench::run_catchup(o, std::cout);
  if (mode == "ingest") return flotilla::bench::run_ingest(o, std::cout);
  if (mode == "list") return flotilla::bench::run_list(o, std::cout);
  if (mode == "twin") return flotilla::bench::run_twin(o, std::cout);
  if (mode == "ota") return flotilla::bench::run_ota(o, std::cout);
  if (mode == "console") return flotilla::bench::run_console(o, std::cout);
  if (mode == "blast-size") {
    flotilla::bench::EventLoop loop;
    flotilla::bench::VirtualFleet fleet(loop, o.fleet);
    std::cout << fleet.blast_payload_size(o.records) << "\n";
    return 0;
  }
  if (mode == "twin-size") {  // one flood TwinReported: payload bytes, device reports
    flotilla::bench::EventLoop loop;
    flotilla::bench::VirtualFleet fleet(loop, o.fleet);
    flotilla::bench::VirtualTwins twins(fleet, o.devices);
    std::cout << twins.flood_payload_size(o.twin_per_message) << " "
              << twins.records_per_message(o.twin_per_message) << "\n";
    return 0;
  }
  return usage_error(flags, "unknown --mode '" + mode + "'");
}
