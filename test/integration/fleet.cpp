#include "test/integration/fleet.hpp"

#include <signal.h>
#include <sys/mount.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "common/fs.hpp"

namespace flotilla::testing {

Fleet::Fleet(std::chrono::milliseconds heartbeat, std::chrono::milliseconds node_timeout)
    : heartbeat_(heartbeat), node_timeout_(node_timeout), http_port_(free_port()) {
  broker_ = std::make_unique<Mosquitto>(dir_.path(), free_port());
  if (!broker_->start()) ADD_FAILURE() << "mosquitto did not start: " << broker_->log();
}

Fleet::~Fleet() {
  // Delete every workload's processes: agents leave instances running when they stop.
  for (auto& [node, agent] : agents_) agent->kill9();
  for (const auto& p : find_processes_with_env({{"FLOTILLA_TEST_FLEET", dir_.path()}})) {
    ::kill(p.pid, SIGKILL);
  }
  if (hub_) hub_->kill9();
  if (::testing::Test::HasFailure()) std::cerr << dump_logs();
  release_host_state();
}

// What a test's containers leave on the host outside the fleet's folder when the test ends
// before their agent cleaned up: the runtime's containers (and with them their cgroups) and
// overlay mounts. Deleted here, so tests leave the machine as they found it.
void Fleet::release_host_state() {
  for (const auto& [node, agent] : agents_) {
    const std::string state = dir_ / ("agent-" + node + "/runtime/container/state");
    if (!fs::exists(state)) continue;
    for (const char* runtime : {"runc", "crun"}) {
      std::string bin = find_executable(runtime);
      if (bin.empty()) continue;
      RunResult list = run_command({bin, "--root", state, "list", "-q"}, 10s);
      std::istringstream ids(list.out);
      for (std::string id; std::getline(ids, id);) {
        if (!id.empty()) run_command({bin, "--root", state, "delete", "--force", id}, 10s);
      }
    }
  }
  std::ifstream mounts("/proc/self/mountinfo");
  std::vector<std::string> under;
  for (std::string line; std::getline(mounts, line);) {
    std::istringstream fields(line);
    std::string id, parent, devs, root, point;
    fields >> id >> parent >> devs >> root >> point;
    if (point.rfind(dir_.path() + "/", 0) == 0) under.push_back(point);
  }
  for (auto it = under.rbegin(); it != under.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
}

void Fleet::start_hub(const std::map<std::string, std::string>& env,
                      const std::vector<std::string>& args) {
  if (!args.empty()) hub_args_ = args;
  std::vector<std::string> argv = hub_command(http_port_, "hub");
  argv.insert(argv.end(), hub_args_.begin(), hub_args_.end());
  hub_ = std::make_unique<ChildProcess>();
  hub_->start(argv, dir_ / "hub.log", env);
  ASSERT_TRUE(wait_for_port(http_port_, 10s)) << hub_->log();
}

std::vector<std::string> Fleet::hub_command(int http_port, const std::string& data) const {
  return {FLOTILLA_HUB_BIN,
          "--mqtt",
          broker_->uri(),
          "--listen",
          "127.0.0.1:" + std::to_string(http_port),
          "--data",
          dir_ / data,
          "--node-timeout-ms",
          std::to_string(node_timeout_.count()),
          "--log-level",
          "debug"};
}

void Fleet::kill9_hub() { hub_->kill9(); }

std::optional<int> Fleet::wait_hub_exit(std::chrono::milliseconds timeout) {
  return hub_->wait_exit(timeout);
}

void Fleet::start_agent(const std::string& node, const std::string& labels) {
  start_agent(node, AgentOptions{.labels = labels});
}

void Fleet::start_agent(const std::string& node, const AgentOptions& options) {
  if (!options.labels.empty()) agent_labels_[node] = options.labels;
  if (!options.args.empty()) agent_args_[node] = options.args;
  const std::string mqtt = options.broker_port == 0
                               ? broker_->uri()
                               : "tcp://127.0.0.1:" + std::to_string(options.broker_port);
  auto agent = std::make_unique<ChildProcess>();
  std::vector<std::string> argv = {FLOTILLA_AGENT_BIN,
                                   "--node",
                                   node,
                                   "--mqtt",
                                   mqtt,
                                   "--data",
                                   dir_ / ("agent-" + node),
                                   "--heartbeat-ms",
                                   std::to_string(heartbeat_.count()),
                                   "--log-level",
                                   "debug"};
  if (agent_labels_.count(node)) {
    argv.push_back("--labels");
    argv.push_back(agent_labels_[node]);
  }
  for (const auto& arg : agent_args_[node]) argv.push_back(arg);
  agent->start(argv, dir_ / ("agent-" + node + ".log"), options.env);
  agents_[node] = std::move(agent);
}

void Fleet::stop_agent(const std::string& node) { agents_.at(node)->stop(); }
void Fleet::kill9_agent(const std::string& node) { agents_.at(node)->kill9(); }
bool Fleet::agent_running(const std::string& node) { return agents_.at(node)->running(); }

std::optional<int> Fleet::wait_agent_exit(const std::string& node,
                                          std::chrono::milliseconds timeout) {
  return agents_.at(node)->wait_exit(timeout);
}

int64_t Fleet::agent_revision(const std::string& node) {
  RunResult r = run_command({FLOTILLA_AGENT_BIN, "status", "--data", dir_ / ("agent-" + node)});
  const std::string key = "desired revision:";
  auto at = r.out.find(key);
  if (r.exit_code != 0 || at == std::string::npos) return -1;
  return std::strtoll(r.out.c_str() + at + key.size(), nullptr, 10);
}

RunResult Fleet::flotctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {FLOTCTL_BIN, "--hub", hub_url()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, 30s);
}

json Fleet::get(const std::string& kind, const std::string& name) {
  std::vector<std::string> args = {"get", kind};
  if (!name.empty()) args.push_back(name);
  args.insert(args.end(), {"-o", "json"});
  RunResult r = flotctl(args);
  if (r.exit_code != 0) return json();
  try {
    return json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "flotctl printed invalid JSON: " << e.what() << "\n" << r.out;
    return json();
  }
}

RunResult Fleet::apply(const std::string& yaml, const std::string& file_name) {
  return flotctl({"apply", "-f", manifest_file(yaml, file_name)});
}

RunResult Fleet::apply_forced(const std::string& yaml) {
  return flotctl({"apply", "-f", manifest_file(yaml, "manifest.yaml"), "--force"});
}

std::string Fleet::manifest_file(const std::string& yaml, const std::string& file_name) {
  std::string path = dir_ / file_name;
  // Tag every test workload with this fleet's folder so the test can find (and finally kill)
  // exactly its own processes.
  std::string text = yaml;
  for (size_t at; (at = text.find("__FLEET__")) != std::string::npos;) {
    text.replace(at, 9, dir_.path());
  }
  std::ofstream(path) << text;
  return path;
}

std::vector<pid_t> Fleet::workload_pids(const std::string& node, const std::string& workload) {
  std::vector<pid_t> out;
  for (const auto& p : find_processes_with_env({{"FLOTILLA_NODE", node},
                                                {"FLOTILLA_WORKLOAD", workload},
                                                {"FLOTILLA_TEST_FLEET", dir_.path()}})) {
    if (p.comm != "flotilla-shim") out.push_back(p.pid);
  }
  return out;
}

std::vector<pid_t> Fleet::shim_pids(const std::string& node, const std::string& workload) {
  std::vector<pid_t> out;
  for (const auto& p : find_processes_with_env({{"FLOTILLA_NODE", node},
                                                {"FLOTILLA_WORKLOAD", workload},
                                                {"FLOTILLA_TEST_FLEET", dir_.path()}})) {
    if (p.comm == "flotilla-shim") out.push_back(p.pid);
  }
  return out;
}

std::multimap<std::string, json> Fleet::instances(const std::string& workload) {
  std::multimap<std::string, json> out;
  json w = get("workload", workload);
  if (!w.is_object() || !w.contains("status") || !w["status"].contains("instances")) return out;
  for (const auto& inst : w["status"]["instances"]) out.emplace(inst.value("node", ""), inst);
  return out;
}

bool Fleet::running_everywhere(const std::string& workload, const std::vector<std::string>& nodes) {
  auto insts = instances(workload);
  if (insts.size() != nodes.size()) return false;
  for (const auto& node : nodes) {
    if (insts.count(node) != 1) return false;
    const json& inst = insts.find(node)->second;
    if (inst.value("phase", "") != "Running" || !inst.value("current", false)) return false;
    if (workload_pids(node, workload).size() != 1) return false;
  }
  return true;
}

bool Fleet::all_ready(const std::vector<std::string>& nodes) {
  for (const auto& n : nodes)
    if (node_state(n) != "Ready") return false;
  return true;
}

std::string Fleet::node_state(const std::string& node) {
  json n = get("node", node);
  return n.is_object() ? n.value("state", "") : "";
}

std::vector<FleetProcess> Fleet::processes() {
  std::vector<FleetProcess> out;
  for (const auto& p : find_processes_with_env({{"FLOTILLA_TEST_FLEET", dir_.path()}})) {
    auto env = process_environ(p.pid);
    out.push_back({p.pid, p.comm == "flotilla-shim", env["FLOTILLA_NODE"], env["FLOTILLA_WORKLOAD"],
                   env["VERSION"]});
  }
  return out;
}

std::string Fleet::convergence_gaps(const std::map<std::string, std::string>& want,
                                    const std::vector<std::string>& nodes) {
  std::vector<std::string> gaps;
  auto gap = [&](const std::string& where, const std::string& what) {
    gaps.push_back(where + ": " + what);
  };
  auto joined = [&] {
    std::string out;
    for (const auto& g : gaps) out += (out.empty() ? "" : "; ") + g;
    return out;
  };
  const std::set<std::string> node_set(nodes.begin(), nodes.end());

  // The real processes.
  std::map<std::pair<std::string, std::string>, std::vector<FleetProcess>> procs;
  for (auto& p : processes()) procs[{p.node, p.workload}].push_back(p);
  for (const auto& [key, list] : procs) {
    if (node_set.count(key.first) != 0 && want.count(key.second) == 0) {
      gap(key.first + "/" + key.second, std::to_string(list.size()) + " unwanted processes");
    }
  }
  // The supervisor's pid is what agents report; the workload's own is accepted as well.
  std::map<std::pair<std::string, std::string>, std::pair<pid_t, pid_t>> live_pids;
  for (const auto& node : nodes) {
    for (const auto& [workload, version] : want) {
      const std::string where = node + "/" + workload;
      std::vector<FleetProcess> shims, workers;
      for (const auto& p : procs[{node, workload}]) (p.shim ? shims : workers).push_back(p);
      if (workers.size() != 1) {
        gap(where, std::to_string(workers.size()) + " workload processes, want 1");
      } else if (workers[0].version != version) {
        gap(where, "process runs VERSION " + workers[0].version + ", want " + version);
      }
      if (shims.size() != 1) {
        gap(where, std::to_string(shims.size()) + " supervisors, want 1");
      } else if (workers.size() == 1) {
        live_pids[{node, workload}] = {shims[0].pid, workers[0].pid};
      }
    }
  }

  // The hub's nodes.
  json node_list = get("nodes");
  if (!node_list.contains("items")) {
    gaps.push_back("hub: no node list");
  } else {
    for (const auto& node : nodes) {
      const json* found = nullptr;
      for (const auto& n : node_list["items"])
        if (n.value("name", "") == node) found = &n;
      if (found == nullptr) {
        gap(node, "unknown to the hub");
        continue;
      }
      const json& n = *found;
      if (n.value("state", "") != "Ready") gap(node, "state " + n.value("state", "?"));
      if (n.value("ackedRevision", int64_t{-1}) != n.value("revision", int64_t{-2})) {
        gap(node, "acked revision " + n["ackedRevision"].dump() + " of " + n["revision"].dump());
      }
      if (n.value("instances", int64_t{-1}) != static_cast<int64_t>(want.size())) {
        gap(node, "hub reports " + n["instances"].dump() + " instances, want " +
                      std::to_string(want.size()));
      }
    }
  }

  // The hub's workloads and the status it holds for each instance.
  json workload_list = get("workloads");
  if (!workload_list.contains("items")) {
    gaps.push_back("hub: no workload list");
    return joined();
  }
  std::set<std::string> listed;
  for (const auto& w : workload_list["items"]) {
    const std::string name = w["metadata"].value("name", "");
    listed.insert(name);
    if (want.count(name) == 0) {
      gap("hub", "lists unwanted workload " + name);
      continue;
    }
    std::map<std::string, std::vector<json>> by_node;
    for (const auto& inst : w["status"]["instances"])
      by_node[inst.value("node", "")].push_back(inst);
    for (const auto& node : nodes) {
      const std::string where = node + "/" + name;
      const auto& list = by_node[node];
      if (list.size() != 1) {
        gap(where, "hub reports " + std::to_string(list.size()) + " instances, want 1");
        continue;
      }
      const json& inst = list[0];
      if (inst.value("phase", "") != "Running") gap(where, "hub says " + inst.value("phase", "?"));
      if (!inst.value("current", false)) gap(where, "hub reports an instance of an old spec");
      auto live = live_pids.find({node, name});
      int64_t reported = inst.value("pid", int64_t{0});
      if (live != live_pids.end() && reported != live->second.first &&
          reported != live->second.second) {
        gap(where, "hub reports pid " + std::to_string(reported) + ", the live instance is " +
                       std::to_string(live->second.first) + " (supervisor) / " +
                       std::to_string(live->second.second));
      }
    }
  }
  for (const auto& [name, version] : want) {
    if (listed.count(name) == 0) gap("hub", "does not list " + name);
  }
  return joined();
}

std::string Fleet::wait_converged(const std::map<std::string, std::string>& want,
                                  const std::vector<std::string>& nodes,
                                  std::chrono::milliseconds timeout) {
  std::string gaps;
  eventually(
      [&] {
        gaps = convergence_gaps(want, nodes);
        return gaps.empty();
      },
      timeout);
  return gaps;
}

std::string Fleet::stays_converged(const std::map<std::string, std::string>& want,
                                   const std::vector<std::string>& nodes,
                                   std::chrono::milliseconds period) {
  std::string gaps;
  eventually(
      [&] {
        gaps = convergence_gaps(want, nodes);
        return !gaps.empty();
      },
      period);
  return gaps;
}

std::string Fleet::dump_logs() {
  std::ostringstream out;
  auto tail = [&](const std::string& name, const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
    size_t from = lines.size() > 60 ? lines.size() - 60 : 0;
    out << "----- " << name << " (last " << lines.size() - from << " lines) -----\n";
    for (size_t i = from; i < lines.size(); ++i) out << lines[i] << "\n";
  };
  tail("mosquitto", dir_ / "mosquitto.log");
  tail("hub", dir_ / "hub.log");
  // Other hub instances a test started beside this one (hub-b.log, ...).
  std::vector<std::filesystem::path> instances;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("hub-") && name.ends_with(".log")) instances.push_back(entry.path());
  }
  std::sort(instances.begin(), instances.end());
  for (const auto& path : instances) tail(path.stem().string(), path.string());
  for (const auto& [node, agent] : agents_) tail("agent " + node, agent->log_path());
  return out.str();
}

std::string create_token(const std::string& name, const std::string& role,
                         const std::string& file) {
  RunResult r = run_command({FLOTCTL_BIN, "token", "create", name, "--role", role}, 10s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string token = r.out.substr(7, r.out.find('\n') - 7);
  const std::string line = r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1);
  std::ofstream(file, std::ios::app) << line;
  return token;
}

std::string sleeper_manifest(const std::string& name, const std::string& version,
                             const std::string& placement) {
  return "apiVersion: flotilla/v1\n"
         "kind: Workload\n"
         "metadata:\n"
         "  name: " +
         name +
         "\n"
         "spec:\n"
         "  type: process\n"
         "  " +
         placement +
         "\n"
         "  terminationGracePeriodSeconds: 2\n"
         "  resources:\n"
         "    cpu: 10m\n"
         "    memory: 8Mi\n"
         "  process:\n"
         "    command: [\"/bin/sleep\", \"100000\"]\n"
         "    env:\n"
         "      VERSION: \"" +
         version +
         "\"\n"
         "      FLOTILLA_TEST_FLEET: \"__FLEET__\"\n";
}

std::string many_sleepers(const std::string& prefix, int count, const std::string& version) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    if (i > 0) out += "---\n";
    out += sleeper_manifest(prefix + std::to_string(i), version);
  }
  return out;
}

std::map<std::string, std::string> many_versions(const std::string& prefix, int count,
                                                 const std::string& version) {
  std::map<std::string, std::string> out;
  for (int i = 0; i < count; ++i) out[prefix + std::to_string(i)] = version;
  return out;
}

std::optional<std::set<uint32_t>> owned_shards(int port) {
  RunResult r = run_command({"/usr/bin/curl", "-sf", "--max-time", "2",
                             "http://127.0.0.1:" + std::to_string(port) + "/metrics"},
                            5s);
  if (r.exit_code != 0) return std::nullopt;
  std::set<uint32_t> out;
  std::istringstream in(r.out);
  std::string line;
  const std::string prefix = "flotilla_hub_shard_owned{shard=\"";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) != 0 || !line.ends_with("} 1")) continue;
    out.insert(static_cast<uint32_t>(std::stoul(line.substr(prefix.size()))));
  }
  return out;
}

}  // namespace flotilla::testing
