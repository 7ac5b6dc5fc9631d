#include "bench/harness.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace flotilla::bench {
namespace {

constexpr const char* kReady = "flotilla_hub_nodes{state=\"Ready\"}";

void fleet_rows(const ScenarioOptions& o, std::ostream& out) {
  out << "| virtual nodes | " << o.fleet.nodes << " |\n";
  out << "| nodes per MQTT connection | " << o.fleet.nodes_per_connection << " ("
      << (o.fleet.nodes + o.fleet.nodes_per_connection - 1) / o.fleet.nodes_per_connection
      << " connections) |\n";
  out << "| heartbeat period | " << o.fleet.heartbeat.count() << " ms |\n";
}

void ready_rows(Harness& h, double ready_s, std::ostream& out) {
  if (ready_s >= 0) {
    out << "| time until the hub shows all nodes Ready | " << fmt(ready_s, 2) << " s |\n";
  } else {
    out << "| time until the hub shows all nodes Ready | NOT REACHED within "
        << h.options_.timeout_s << " s (" << h.not_ready_at_timeout_ << " not Ready) |\n";
  }
  if (!h.ready_curve_.empty()) out << "| Ready count over time |" << h.ready_curve_ << " |\n";
}

}  // namespace

std::string fmt(double v, int precision) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << v;
  return s.str();
}

std::string busiest_threads(const std::map<pid_t, ThreadCpu>& before,
                            const std::map<pid_t, ThreadCpu>& after, double wall_s, size_t top) {
  std::vector<std::pair<double, pid_t>> used;
  for (const auto& [tid, t] : after) {
    auto it = before.find(tid);
    used.emplace_back(t.cpu_seconds - (it == before.end() ? 0 : it->second.cpu_seconds), tid);
  }
  std::sort(used.rbegin(), used.rend());
  std::string out;
  for (size_t i = 0; i < used.size() && i < top && used[i].first > 0; ++i) {
    if (!out.empty()) out += ", ";
    out += after.at(used[i].second).name + " " + std::to_string(used[i].second) + ": " +
           fmt(used[i].first, 2) + " s (" + fmt(100 * used[i].first / wall_s, 0) + "%)";
  }
  return out + (out.empty() ? "" : "; ") + std::to_string(after.size()) + " threads";
}

CpuSample sample_cpu(const ScenarioOptions& o) {
  CpuSample s{read_proc_usage(o.hub_pid), read_thread_cpu(o.hub_pid),
              read_proc_usage(o.broker_pid).cpu_seconds, read_proc_usage(::getpid()).cpu_seconds,
              read_machine_cpu()};
  // Further hub instances count as the hub (their threads are not listed).
  for (pid_t pid : o.extra_hub_pids) s.hub.cpu_seconds += read_proc_usage(pid).cpu_seconds;
  return s;
}

std::string cpu_shares(const ScenarioOptions& o, const CpuSample& a, const CpuSample& b,
                       double wall_s) {
  const double busy = b.machine.busy_seconds - a.machine.busy_seconds;
  const double hub = b.hub.cpu_seconds - a.hub.cpu_seconds;
  const double broker = b.broker - a.broker, sim = b.sim - a.sim;
  auto pct = [&](double v) { return fmt(100 * v / wall_s, 0) + "%"; };
  return pct(busy) + " / " + pct(hub) + " / " + (o.broker_pid > 0 ? pct(broker) : "?") + " / " +
         pct(sim) + " / " + pct(busy - hub - broker - sim);
}

void flood_cpu_rows(const ScenarioOptions& o, const CpuSample& a, const CpuSample& b, double wall_s,
                    std::ostream& out, const std::string& phase) {
  const double hub_cpu = b.hub.cpu_seconds - a.hub.cpu_seconds;
  out << "| hub CPU during " << phase << " | " << fmt(hub_cpu, 2) << " s ("
      << fmt(100 * hub_cpu / wall_s, 0) << "% of one core) |\n";
  out << "| hub threads, CPU during " << phase << " (busiest first; s, % of its wall time) | "
      << busiest_threads(a.hub_threads, b.hub_threads, wall_s) << " |\n";
  out << "| machine CPU during " << phase
      << ": busy / hub / mosquitto / simulator / everything else | " << cpu_shares(o, a, b, wall_s)
      << " of one core (" << fmt((b.machine.total_seconds - a.machine.total_seconds) / wall_s, 0)
      << " cores) |\n";
}

Harness::Harness(const ScenarioOptions& o) : options_(o), fleet_(loop_, o.fleet), hub_(o.hub_port) {
  loop_.set_idle_hook([this] { fleet_.on_idle(); });
  thread_ = std::thread([this] { loop_.run(); });
  start_ = Clock::now();
  cpu0_ = sample_cpu(o);
}

Harness::~Harness() {
  loop_.stop();
  thread_.join();
}

double Harness::connect_all_and_wait_ready() {
  const Clock::time_point t0 = Clock::now();
  call_on_loop(loop_, [this] { fleet_.start(); });
  double last_report = 0;
  while (seconds_since(t0) < options_.timeout_s) {
    auto ready = hub_.metric(kReady);
    if (ready && *ready >= options_.fleet.nodes) return seconds_since(t0);
    if (seconds_since(t0) - last_report >= 5) {
      last_report = seconds_since(t0);
      std::cerr << "t=" << fmt(last_report, 1) << "s up=" << fleet_.counters().connections_up
                << " hellos=" << fleet_.counters().hellos << " ready=" << (ready ? *ready : -1)
                << "\n";
      ready_curve_ += " " + fmt(last_report, 0) + "s:" + fmt(ready ? *ready : -1, 0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.poll_ms));
  }
  auto ready = hub_.metric(kReady);
  not_ready_at_timeout_ = ready ? options_.fleet.nodes - *ready : options_.fleet.nodes;
  return -1;
}

void Harness::usage_rows(std::ostream& out) {
  const CpuSample cpu = sample_cpu(options_);
  const double wall = seconds_since(start_);
  const FleetCounters& c = fleet_.counters();
  const double hub_cpu = cpu.hub.cpu_seconds - cpu0_.hub.cpu_seconds;
  out << "| hub CPU over the run | " << fmt(hub_cpu, 2) << " s in " << fmt(wall, 1) << " s wall ("
      << fmt(100 * hub_cpu / wall, 0) << "% of one core) |\n";
  out << "| machine CPU over the run: busy / hub / mosquitto / simulator / everything else | "
      << cpu_shares(options_, cpu0_, cpu, wall) << " of one core |\n";
  out << "| hub's busiest threads over the run (CPU s, % of wall time) | "
      << busiest_threads(cpu0_.hub_threads, cpu.hub_threads, wall) << " |\n";
  out << "| hub max RSS (VmHWM) | " << cpu.hub.max_rss_kb / 1024 << " MiB |\n";
  out << "| broker $SYS messages received / sent (cumulative, 1 s granularity) | " << c.sys_received
      << " / " << c.sys_sent << " |\n";
  out << "| sim sent: hellos / heartbeats / acks / status batches (records) | " << c.hellos << " / "
      << c.heartbeats << " / " << c.acks << " / " << c.status_batches << " (" << c.status_records
      << ") |\n";
  out << "| sim received: DesiredState msgs (bytes, snapshots, gaps) / resyncs | " << c.desired_msgs
      << " (" << c.desired_bytes << ", " << c.desired_snapshots << ", " << c.desired_gaps << ") / "
      << c.resyncs << " |\n";
  out << "| sim connects / connection losses | " << c.connects << " / " << c.connection_losses
      << " |\n";
}

double connect_and_report_ready(Harness& h, const ScenarioOptions& o, std::ostream& out) {
  double ready_s = h.connect_all_and_wait_ready();
  out << "| metric | value |\n|---|---|\n";
  fleet_rows(o, out);
  ready_rows(h, ready_s, out);
  if (ready_s < 0) h.usage_rows(out);
  return ready_s;
}

}  // namespace flotilla::bench
