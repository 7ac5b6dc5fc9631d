#include "bench/scenarios.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench/hub_probe.hpp"

namespace flotilla::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kReady = "flotilla_hub_nodes{state=\"Ready\"}";
constexpr const char* kRunning = "flotilla_hub_instances{phase=\"Running\"}";
constexpr const char* kStatusIn = "flotilla_hub_messages_handled_total{kind=\"status\"}";

double seconds_since(Clock::time_point t0, Clock::time_point t = Clock::now()) {
  return std::chrono::duration<double>(t - t0).count();
}

std::string fmt(double v, int precision = 3) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << v;
  return s.str();
}

// The fleet, its loop thread, and the usage baselines every scenario reports against.
class Harness {
 public:
  explicit Harness(const ScenarioOptions& o)
      : options_(o), fleet_(loop_, o.fleet), hub_(o.hub_port) {
    loop_.set_idle_hook([this] { fleet_.on_idle(); });
    thread_ = std::thread([this] { loop_.run(); });
    start_ = Clock::now();
    usage0_ = read_proc_usage(o.hub_pid);
  }
  ~Harness() {
    loop_.stop();
    thread_.join();
  }

  // Starts every connection and waits until the hub counts all nodes Ready. Seconds, or -1.
  double connect_all_and_wait_ready() {
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

  void usage_rows(std::ostream& out) {
    ProcUsage u = read_proc_usage(options_.hub_pid);
    const double wall = seconds_since(start_);
    const FleetCounters& c = fleet_.counters();
    out << "| hub CPU over the run | " << fmt(u.cpu_seconds - usage0_.cpu_seconds, 2) << " s in "
        << fmt(wall, 1) << " s wall (" << fmt(100 * (u.cpu_seconds - usage0_.cpu_seconds) / wall, 0)
        << "% of one core) |\n";
    out << "| hub max RSS (VmHWM) | " << u.max_rss_kb / 1024 << " MiB |\n";
    out << "| broker $SYS messages received / sent (cumulative, 1 s granularity) | "
        << c.sys_received << " / " << c.sys_sent << " |\n";
    out << "| sim sent: hellos / heartbeats / acks / status batches (records) | " << c.hellos
        << " / " << c.heartbeats << " / " << c.acks << " / " << c.status_batches << " ("
        << c.status_records << ") |\n";
    out << "| sim received: DesiredState msgs (bytes, snapshots, gaps) / resyncs | "
        << c.desired_msgs << " (" << c.desired_bytes << ", " << c.desired_snapshots << ", "
        << c.desired_gaps << ") / " << c.resyncs << " |\n";
    out << "| sim connects / connection losses | " << c.connects << " / " << c.connection_losses
        << " |\n";
  }

  const ScenarioOptions& options_;
  EventLoop loop_;
  VirtualFleet fleet_;
  HubProbe hub_;
  std::thread thread_;
  Clock::time_point start_;
  ProcUsage usage0_;
  std::string ready_curve_;
  double not_ready_at_timeout_ = 0;
};

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

// Every scenario opens the same way: connect the fleet, wait until the hub shows it Ready, and
// start the results table with the fleet and readiness rows. Returns seconds, or < 0 on timeout.
double connect_and_report_ready(Harness& h, const ScenarioOptions& o, std::ostream& out) {
  double ready_s = h.connect_all_and_wait_ready();
  out << "| metric | value |\n|---|---|\n";
  fleet_rows(o, out);
  ready_rows(h, ready_s, out);
  return ready_s;
}

// Percentile p (0..100) of sorted values.
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return -1;
  size_t idx = static_cast<size_t>(std::ceil(p / 100.0 * sorted.size()));
  return sorted[std::min(sorted.size() - 1, idx == 0 ? 0 : idx - 1)];
}

}  // namespace

int run_ready(const ScenarioOptions& o, std::ostream& out) {
  Harness h(o);
  double ready_s = connect_and_report_ready(h, o, out);
  h.usage_rows(out);
  return ready_s >= 0 ? 0 : 1;
}

int run_startup(const ScenarioOptions& o, std::ostream& out) {
  Harness h(o);
  double ready_s = connect_and_report_ready(h, o, out);
  if (ready_s < 0) {
    h.usage_rows(out);
    return 1;
  }
  const uint32_t n = o.fleet.nodes;
  const Clock::time_point sent = Clock::now();
  auto applied = h.hub_.apply("startup", every_node_manifest("startup", "v1"));
  const Clock::time_point accepted = Clock::now();
  if (!applied) {
    out << "| apply | FAILED: " << applied.error().message() << " |\n";
    return 1;
  }
  // Hub-observed: the time of the first /metrics poll at which the hub's Running count
  // reached k is instance k's startup latency (resolution: the poll period plus scrape time).
  std::vector<double> hub_times;
  double last_report = 0;
  while (seconds_since(accepted) < o.timeout_s) {
    auto running = h.hub_.metric(kRunning);
    const double t = seconds_since(accepted);
    if (running) {
      while (hub_times.size() < std::min<double>(*running, n)) hub_times.push_back(t);
      if (hub_times.size() >= n) break;
    }
    if (t - last_report >= 5) {
      last_report = t;
      std::cerr << "t=" << fmt(t, 1) << "s running=" << hub_times.size() << "/" << n << "\n";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(o.poll_ms));
  }
  std::vector<double> sim_times;
  for (auto t : h.fleet_.running_acked("startup")) sim_times.push_back(seconds_since(accepted, t));
  std::sort(sim_times.begin(), sim_times.end());
  out << "| apply request (sent → response) | " << fmt(seconds_since(sent, accepted), 3)
      << " s |\n";
  out << "| instances Running at the hub | " << hub_times.size() << " / " << n << " |\n";
  if (hub_times.size() < n) {
    out << "| (latency of the missing instances) | > " << o.timeout_s << " s (timeout) |\n";
    while (hub_times.size() < n) hub_times.push_back(1e9);
  }
  out << "| hub-observed startup latency p50 / p99 / max (from apply response; poll " << o.poll_ms
      << " ms) | " << fmt(percentile(hub_times, 50)) << " / " << fmt(percentile(hub_times, 99))
      << " / " << fmt(percentile(hub_times, 100)) << " s |\n";
  out << "| sim-side: Running status PUBACK p50 / p99 / max (" << sim_times.size()
      << " instances) | " << fmt(percentile(sim_times, 50)) << " / "
      << fmt(percentile(sim_times, 99)) << " / " << fmt(percentile(sim_times, 100)) << " s |\n";
  h.usage_rows(out);
  return 0;
}

int run_catchup(const ScenarioOptions& o, std::ostream& out) {
  Harness h(o);
  double ready_s = connect_and_report_ready(h, o, out);
  if (ready_s < 0) return 1;
  const std::string node = h.fleet_.node_name(0);
  auto hub_node = [&]() -> nlohmann::json {
    auto body = h.hub_.get("/api/v1/nodes/" + node);
    return body ? nlohmann::json::parse(*body, nullptr, false) : nlohmann::json();
  };
  auto wait_for = [&](auto pred) {
    const Clock::time_point t0 = Clock::now();
    while (seconds_since(t0) < o.timeout_s) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  };
  for (uint32_t w = 0; w < o.workloads; ++w) {
    std::string name = "cu-" + std::to_string(w);
    if (auto st = h.hub_.apply(name, every_node_manifest(name, "start")); !st) {
      out << "| apply | FAILED: " << st.error().message() << " |\n";
      return 1;
    }
  }
  // Node 0 has acked everything, then drops off (its will marks it NotReady).
  bool synced = wait_for([&] {
    auto j = hub_node();
    if (!j.is_object()) return false;
    uint64_t rev = j.value("revision", 0ull);
    return rev > 0 &&
           call_on_loop(h.loop_, [&] { return h.fleet_.probe(0).acked_revision; }) == rev;
  });
  call_on_loop(h.loop_, [&] { h.fleet_.drop_connection_of(0); });
  bool offline = wait_for([&] { return hub_node().value("state", "") == "NotReady"; });
  const uint64_t start_rev = call_on_loop(h.loop_, [&] { return h.fleet_.probe(0).revision; });
  const Clock::time_point t_changes = Clock::now();
  for (uint32_t i = 0; i < o.revisions; ++i) {
    std::string name = "cu-" + std::to_string(i % o.workloads);
    if (auto st = h.hub_.apply(name, every_node_manifest(name, "m" + std::to_string(i))); !st) {
      out << "| apply " << i << " | FAILED: " << st.error().message() << " |\n";
      return 1;
    }
  }
  const double changes_s = seconds_since(t_changes);
  const uint64_t final_rev = hub_node().value("revision", 0ull);
  call_on_loop(h.loop_, [&] { h.fleet_.reset_probe(0); });
  const Clock::time_point t0 = Clock::now();
  call_on_loop(h.loop_, [&] { h.fleet_.reconnect_connection_of(0); });
  bool caught_up = wait_for([&] {
    return call_on_loop(h.loop_, [&] { return h.fleet_.probe(0).acked_revision; }) >= final_rev;
  });
  auto p = call_on_loop(h.loop_, [&] { return h.fleet_.probe(0); });
  out << "| node synced before going offline / hub saw it NotReady | " << (synced ? "yes" : "NO")
      << " / " << (offline ? "yes" : "NO") << " |\n";
  out << "| changes applied while offline | " << o.revisions << " applies over " << o.workloads
      << " workloads in " << fmt(changes_s, 1) << " s; node revision " << start_rev << " → "
      << final_rev << " |\n";
  out << "| DesiredState received after reconnect | " << p.desired_msgs << " msgs, "
      << p.desired_bytes << " bytes |\n";
  out << "| final desired state encoded as a snapshot | " << p.final_snapshot.size()
      << " bytes |\n";
  out << "| bytes received / final snapshot | "
      << fmt(static_cast<double>(p.desired_bytes) / std::max<size_t>(1, p.final_snapshot.size()), 2)
      << " (target ≤ 2) |\n";
  out << "| reconnect → broker acked our Ack of the final revision | "
      << (caught_up ? fmt(seconds_since(t0, p.acked_at), 3) + " s"
                    : "NOT REACHED within " + std::to_string(o.timeout_s) + " s")
      << " (target ≤ 1 s) |\n";
  h.usage_rows(out);
  return caught_up ? 0 : 1;
}

int run_ingest(const ScenarioOptions& o, std::ostream& out) {
  Harness h(o);
  double ready_s = connect_and_report_ready(h, o, out);
  if (ready_s < 0) return 1;
  std::this_thread::sleep_for(std::chrono::seconds(1));  // let hellos' follow-ups settle
  auto base_metric = h.hub_.metric(kStatusIn);
  const double base = base_metric ? *base_metric : 0;
  const size_t payload =
      call_on_loop(h.loop_, [&] { return h.fleet_.blast_payload_size(o.records); });
  const ProcUsage u0 = read_proc_usage(o.hub_pid);
  const Clock::time_point t0 = Clock::now();
  call_on_loop(h.loop_, [&] { h.fleet_.start_blast(o.batches, o.records, o.window, o.instances); });
  double done_s = -1, acked_s = -1, processed = 0;
  while (seconds_since(t0) < o.timeout_s) {
    auto v = h.hub_.metric(kStatusIn);
    if (v) processed = *v - base;
    if (acked_s < 0 && h.fleet_.counters().blast_acked >= o.batches) acked_s = seconds_since(t0);
    if (processed >= static_cast<double>(o.batches)) {
      done_s = seconds_since(t0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const ProcUsage u1 = read_proc_usage(o.hub_pid);
  const double elapsed = done_s > 0 ? done_s : seconds_since(t0);
  const double msgs_per_s = processed / elapsed;
  out << "| batches × records (payload bytes per batch) | " << o.batches << " × " << o.records
      << " (" << payload << ") |\n";
  out << "| broker acked all batches (sim side) after | "
      << (acked_s >= 0 ? fmt(acked_s, 2) + " s" : "not within timeout") << " |\n";
  out << "| hub processed (messages_handled_total{kind=status}, counted after commit) | "
      << processed << " batches in " << fmt(elapsed, 2) << " s" << (done_s < 0 ? " (TIMEOUT)" : "")
      << " |\n";
  out << "| hub ingest | " << fmt(msgs_per_s, 0)
      << " batches/s = " << fmt(msgs_per_s * o.records, 0) << " records/s |\n";
  out << "| hub CPU during the flood | " << fmt(u1.cpu_seconds - u0.cpu_seconds, 2) << " s ("
      << fmt(100 * (u1.cpu_seconds - u0.cpu_seconds) / elapsed, 0) << "% of one core) |\n";
  if (o.raw_msgs_per_s > 0) {
    out << "| mosquitto raw (mosquitto_pub -l → mosquitto_sub, QoS 1, same size) | "
        << fmt(o.raw_msgs_per_s, 0) << " msgs/s |\n";
    out << "| ratio hub / raw broker | " << fmt(msgs_per_s / o.raw_msgs_per_s, 3)
        << " (target ≥ 0.5) |\n";
  }
  h.usage_rows(out);
  return done_s > 0 ? 0 : 1;
}

}  // namespace flotilla::bench
