#include "test/integration/fleet.hpp"

#include <signal.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

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
}

void Fleet::start_hub() {
  hub_ = std::make_unique<ChildProcess>();
  hub_->start({FLOTILLA_HUB_BIN, "--mqtt", broker_->uri(), "--listen",
               "127.0.0.1:" + std::to_string(http_port_), "--data", dir_ / "hub",
               "--node-timeout-ms", std::to_string(node_timeout_.count()), "--log-level", "debug"},
              dir_ / "hub.log");
  ASSERT_TRUE(wait_for_port(http_port_, 10s)) << hub_->log();
}

void Fleet::kill9_hub() { hub_->kill9(); }

void Fleet::start_agent(const std::string& node, const std::string& labels) {
  if (!labels.empty()) agent_labels_[node] = labels;
  auto agent = std::make_unique<ChildProcess>();
  std::vector<std::string> argv = {FLOTILLA_AGENT_BIN,
                                   "--node",
                                   node,
                                   "--mqtt",
                                   broker_->uri(),
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
  agent->start(argv, dir_ / ("agent-" + node + ".log"));
  agents_[node] = std::move(agent);
}

void Fleet::stop_agent(const std::string& node) { agents_.at(node)->stop(); }
void Fleet::kill9_agent(const std::string& node) { agents_.at(node)->kill9(); }
bool Fleet::agent_running(const std::string& node) { return agents_.at(node)->running(); }

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
  std::string path = dir_ / file_name;
  // Tag every test workload with this fleet's folder so the test can find (and finally kill)
  // exactly its own processes.
  std::string text = yaml;
  for (size_t at; (at = text.find("__FLEET__")) != std::string::npos;) {
    text.replace(at, 9, dir_.path());
  }
  std::ofstream(path) << text;
  return flotctl({"apply", "-f", path});
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

std::string Fleet::node_state(const std::string& node) {
  json n = get("node", node);
  return n.is_object() ? n.value("state", "") : "";
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
  for (const auto& [node, agent] : agents_) tail("agent " + node, agent->log_path());
  return out.str();
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

}  // namespace flotilla::testing
