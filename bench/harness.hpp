// What every fleet-simulator scenario shares: the virtual fleet on its loop thread, the hub's
// REST probe, CPU samples of hub, broker, simulator and machine, and the Markdown rows every
// results table opens and closes with (fleet size, time to Ready, usage over the run).
//
// Thread-safety: a Harness is driven from the scenario's thread; the fleet lives on the loop
// thread (reach it through call_on_loop).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "bench/hub_probe.hpp"
#include "bench/percentile.hpp"
#include "bench/scenarios.hpp"
#include "bench/virtual_fleet.hpp"

namespace flotilla::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0, Clock::time_point t = Clock::now()) {
  return std::chrono::duration<double>(t - t0).count();
}

// Fixed-point text of `v`.
std::string fmt(double v, int precision = 3);

// "MQTTAsync_rcv 123: 1.52 s (95%), …": the threads that used the most CPU between two samples.
std::string busiest_threads(const std::map<pid_t, ThreadCpu>& before,
                            const std::map<pid_t, ThreadCpu>& after, double wall_s, size_t top = 5);

// Who used the CPU: the hub (and each of its threads), the broker, this simulator and the whole
// machine, at one moment; two samples tell the use in between.
struct CpuSample {
  ProcUsage hub;
  std::map<pid_t, ThreadCpu> hub_threads;
  double broker = 0;
  double sim = 0;
  MachineCpu machine;
};
CpuSample sample_cpu(const ScenarioOptions& o);

// "200% / 61% / 21% / 16% / 102%": the machine's busy time, then the hub's, the broker's, the
// simulator's and everything else's between two samples, in % of one core over `wall_s`.
std::string cpu_shares(const ScenarioOptions& o, const CpuSample& a, const CpuSample& b,
                       double wall_s);

// Rows for a phase (default "the flood") between samples a and b, `wall_s` apart: the hub's CPU,
// its busiest threads, and the machine's CPU by hub / broker / simulator / everything else.
void flood_cpu_rows(const ScenarioOptions& o, const CpuSample& a, const CpuSample& b, double wall_s,
                    std::ostream& out, const std::string& phase = "the flood");

// The fleet, its loop thread, and the usage baselines every scenario reports against.
class Harness {
 public:
  explicit Harness(const ScenarioOptions& o);
  ~Harness();

  // Starts every connection and waits until the hub counts all nodes Ready. Seconds, or -1.
  double connect_all_and_wait_ready();
  // The closing rows: CPU, memory, broker and simulator counters over the whole run.
  void usage_rows(std::ostream& out);

  const ScenarioOptions& options_;
  EventLoop loop_;
  VirtualFleet fleet_;
  HubProbe hub_;
  std::thread thread_;
  Clock::time_point start_;
  CpuSample cpu0_;
  std::string ready_curve_;
  double not_ready_at_timeout_ = 0;
};

// Every scenario opens the same way: connect the fleet, wait until the hub shows it Ready, and
// start the results table with the fleet and readiness rows. Returns seconds, or < 0 on timeout
// (then the table ends with the usage rows).
double connect_and_report_ready(Harness& h, const ScenarioOptions& o, std::ostream& out);

}  // namespace flotilla::bench
