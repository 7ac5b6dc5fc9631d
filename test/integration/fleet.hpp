// A local fleet for end-to-end tests: mosquitto on a free loopback port, one flotilla-hub and
// any number of flotilla-agent processes, each with its own data folder under one temp folder.
// The tests drive it with the real flotctl binary and look at real processes in /proc.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test/support/peers.hpp"
#include "test/support/process.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::testing {

using json = nlohmann::json;
using namespace std::chrono_literals;

// Liveness settings for tests: short, so a test waits seconds, not minutes.
inline constexpr std::chrono::milliseconds kHeartbeat = 300ms;
inline constexpr std::chrono::milliseconds kNodeTimeout = 1500ms;

class Fleet {
 public:
  explicit Fleet(std::chrono::milliseconds heartbeat = kHeartbeat,
                 std::chrono::milliseconds node_timeout = kNodeTimeout);
  ~Fleet();

  Mosquitto& broker() { return *broker_; }
  void start_hub();
  void kill9_hub();
  void start_agent(const std::string& node, const std::string& labels = "");
  void stop_agent(const std::string& node);  // SIGTERM: workloads keep running
  void kill9_agent(const std::string& node);
  bool agent_running(const std::string& node);

  // flotctl against this fleet's hub.
  RunResult flotctl(const std::vector<std::string>& args);
  // `flotctl get KIND [NAME] -o json`, parsed; a failure is a test failure (returns null).
  json get(const std::string& kind, const std::string& name = "");
  // Writes `yaml` to a file and runs `flotctl apply -f` on it.
  RunResult apply(const std::string& yaml, const std::string& file_name = "manifest.yaml");

  // Live workload processes (not shims) of `workload` on `node`, found by their environment.
  std::vector<pid_t> workload_pids(const std::string& node, const std::string& workload);
  // Live flotilla-shim processes supervising instances of `workload` on `node`.
  std::vector<pid_t> shim_pids(const std::string& node, const std::string& workload);

  // Phase of each instance the hub reports for `workload`, keyed by node.
  std::multimap<std::string, json> instances(const std::string& workload);
  // True when the hub reports exactly one Running, current instance on each of `nodes` and
  // the real processes agree.
  bool running_everywhere(const std::string& workload, const std::vector<std::string>& nodes);
  std::string node_state(const std::string& node);

  std::string dump_logs();
  const TempDir& dir() const { return dir_; }
  std::string hub_url() const { return "http://127.0.0.1:" + std::to_string(http_port_); }

 private:
  TempDir dir_;
  std::chrono::milliseconds heartbeat_;
  std::chrono::milliseconds node_timeout_;
  int http_port_;
  std::unique_ptr<Mosquitto> broker_;
  std::unique_ptr<ChildProcess> hub_;
  std::map<std::string, std::unique_ptr<ChildProcess>> agents_;
  std::map<std::string, std::string> agent_labels_;
};

// A process workload that sleeps forever; env VERSION distinguishes spec versions.
std::string sleeper_manifest(const std::string& name, const std::string& version = "1",
                             const std::string& placement = "placement:\n    everyNode: true");

}  // namespace flotilla::testing
