// A local fleet for end-to-end tests: mosquitto on a free loopback port, one flotilla-hub and
// any number of flotilla-agent processes, each with its own data folder under one temp folder.
// The tests drive it with the real flotctl binary and look at real processes in /proc.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
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

// How to start one agent, beyond its node name.
struct AgentOptions {
  std::string labels;   // k=v,...; remembered for later starts of the same node
  int broker_port = 0;  // 0: the fleet's broker; else another port, e.g. a TcpProxy's
  std::map<std::string, std::string> env;  // extra environment, e.g. FLOTILLA_FAILPOINT
  // Extra flags (e.g. --insecure-registries); remembered for later starts of the same node.
  std::vector<std::string> args;
};

// A live workload process or flotilla-shim of the fleet, with what its environment says.
struct FleetProcess {
  pid_t pid = 0;
  bool shim = false;
  std::string node;
  std::string workload;
  std::string version;  // VERSION (sleeper_manifest's spec version)
};

class Fleet {
 public:
  explicit Fleet(std::chrono::milliseconds heartbeat = kHeartbeat,
                 std::chrono::milliseconds node_timeout = kNodeTimeout);
  ~Fleet();

  Mosquitto& broker() { return *broker_; }
  // `env`: extra environment, e.g. FLOTILLA_FAILPOINT; `args`: extra flags, remembered for later
  // starts.
  void start_hub(const std::map<std::string, std::string>& env = {},
                 const std::vector<std::string>& args = {});
  int http_port() const { return http_port_; }
  // The command line start_hub() runs (without the remembered extra flags), for a hub listening
  // on `http_port` with its data in the fleet's folder under `data` (further hub instances).
  std::vector<std::string> hub_command(int http_port, const std::string& data) const;
  void kill9_hub();
  // Waits for the hub process to end: its exit code, or 128+signal.
  std::optional<int> wait_hub_exit(std::chrono::milliseconds timeout);
  void start_agent(const std::string& node, const std::string& labels = "");
  void start_agent(const std::string& node, const AgentOptions& options);
  void stop_agent(const std::string& node);  // SIGTERM: workloads keep running
  void kill9_agent(const std::string& node);
  bool agent_running(const std::string& node);
  // Waits for the node's agent process to end: its exit code, or 128+signal.
  std::optional<int> wait_agent_exit(const std::string& node, std::chrono::milliseconds timeout);
  // The desired revision in the node's agent store (`flotilla-agent status`, works while the
  // agent is down); -1 when it cannot be read.
  int64_t agent_revision(const std::string& node);

  // flotctl against this fleet's hub.
  RunResult flotctl(const std::vector<std::string>& args);
  // `flotctl get KIND [NAME] -o json`, parsed; a failure is a test failure (returns null).
  json get(const std::string& kind, const std::string& name = "");
  // Writes `yaml` to a file and runs `flotctl apply -f` on it.
  RunResult apply(const std::string& yaml, const std::string& file_name = "manifest.yaml");
  // The same with --force: past the hub's blast-radius guard, for changes that replace or stop
  // most running instances at once.
  RunResult apply_forced(const std::string& yaml);
  // Writes `yaml` to a file in the fleet's folder, as apply() would; returns its path.
  std::string manifest_file(const std::string& yaml, const std::string& file_name);

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
  // True when the hub shows every one of `nodes` Ready.
  bool all_ready(const std::vector<std::string>& nodes);

  // Every live workload process and supervisor of this fleet, from one pass over /proc.
  std::vector<FleetProcess> processes();
  // Differences between desired and actual state, empty when there are none. `want` maps each
  // workload the fleet should run to its VERSION; each runs on every one of `nodes` and nothing
  // else runs there (other nodes are not looked at). Checked against the hub's views and the
  // real processes:
  // - each node is Ready and has acked its current desired revision;
  // - the hub lists exactly `want` and, per node and workload, exactly one instance: Running,
  //   of the current spec, reporting the pid of the live supervisor (status neither lost nor
  //   stale), and no other instance on the node (no ghost of a deleted one);
  // - per node and workload exactly one workload process, of the wanted VERSION, under exactly
  //   one flotilla-shim, and no process of any other workload.
  std::string convergence_gaps(const std::map<std::string, std::string>& want,
                               const std::vector<std::string>& nodes);
  // Polls convergence_gaps() until it is empty or `timeout` passes; returns its last answer.
  std::string wait_converged(const std::map<std::string, std::string>& want,
                             const std::vector<std::string>& nodes,
                             std::chrono::milliseconds timeout);
  // Checks convergence_gaps() over `period`; returns the first non-empty answer.
  std::string stays_converged(const std::map<std::string, std::string>& want,
                              const std::vector<std::string>& nodes,
                              std::chrono::milliseconds period);

  std::string dump_logs();
  // Deletes containers and unmounts what agents left on the host (the destructor does it too).
  void release_host_state();
  const TempDir& dir() const { return dir_; }
  std::string hub_url() const { return "http://127.0.0.1:" + std::to_string(http_port_); }

 private:
  TempDir dir_;
  std::chrono::milliseconds heartbeat_;
  std::chrono::milliseconds node_timeout_;
  int http_port_;
  std::unique_ptr<Mosquitto> broker_;
  std::unique_ptr<ChildProcess> hub_;
  std::vector<std::string> hub_args_;
  std::map<std::string, std::unique_ptr<ChildProcess>> agents_;
  std::map<std::string, std::string> agent_labels_;
  std::map<std::string, std::vector<std::string>> agent_args_;
};

// `flotctl token create NAME --role ROLE`: returns the token and appends its line to `file` (a
// hub's --api-tokens file).
std::string create_token(const std::string& name, const std::string& role, const std::string& file);

// Several hub instances (docs/multi-hub.md): the shards the hub on `port` owns, from its
// flotilla_hub_shard_owned gauges; nullopt when it does not answer.
std::optional<std::set<uint32_t>> owned_shards(int port);

// A process workload that sleeps forever; env VERSION distinguishes spec versions.
std::string sleeper_manifest(const std::string& name, const std::string& version = "1",
                             const std::string& placement = "placement:\n    everyNode: true");
// `count` sleepers named prefix0, prefix1, ... at `version`, as one multi-document manifest.
std::string many_sleepers(const std::string& prefix, int count, const std::string& version = "1");
// Workload name -> VERSION for many_sleepers().
std::map<std::string, std::string> many_versions(const std::string& prefix, int count,
                                                 const std::string& version = "1");

}  // namespace flotilla::testing
