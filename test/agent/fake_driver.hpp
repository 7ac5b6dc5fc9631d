// A runtime::Driver for agent unit tests: instances are entries in a map that tests make exit,
// crash, ignore SIGTERM or survive an agent "restart" (the same FakeDriver handed to a new
// Reconciler plays the node's still-running processes).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/driver.hpp"

namespace flotilla::agent::testing {

class FakeDriver final : public runtime::Driver {
 public:
  struct Instance {
    runtime::Handle handle;
    runtime::LaunchSpec spec;
    runtime::RunState state = runtime::RunState::kRunning;
    int exit_code = 0;
    int signal = 0;
    int terms = 0;
    int kills = 0;
    bool ignores_term = false;
  };

  std::string type() const override { return "process"; }

  // Images (container.image or vm.image) listed in `preparing` are not on the node yet.
  runtime::Preparation prepare(const runtime::LaunchSpec& spec) override {
    std::string image = spec.type == "container" ? spec.container.image
                        : spec.type == "vm"      ? spec.vm.image
                                                 : "";
    prepares.push_back(image);
    auto it = preparing.find(image);
    return it == preparing.end() ? runtime::Preparation{} : it->second;
  }

  Expected<runtime::Handle> launch(const runtime::LaunchSpec& spec) override {
    launches.push_back(spec);
    if (fail_launch) return Error("Failed to launch '" + spec.instance_id + "': no such command");
    if (instances.count(spec.instance_id) != 0) {
      return Error("Failed to launch '" + spec.instance_id + "': instance folder exists");
    }
    Instance inst;
    inst.handle = runtime::Handle{spec.instance_id, next_pid++, 1000 + launches.size()};
    inst.spec = spec;
    instances[spec.instance_id] = inst;
    return inst.handle;
  }

  runtime::Observation observe(const runtime::Handle& handle) override {
    runtime::Observation obs;
    auto it = instances.find(handle.instance_id);
    if (it == instances.end() || it->second.handle.pid != handle.pid) return obs;  // kUnknown
    obs.state = it->second.state;
    obs.exit_code = it->second.exit_code;
    obs.signal = it->second.signal;
    if (obs.state == runtime::RunState::kExited) {
      obs.message = !oom_message.empty() ? oom_message
                    : obs.signal != 0    ? "killed by signal " + std::to_string(obs.signal)
                                         : "exited with code " + std::to_string(obs.exit_code);
    }
    return obs;
  }

  Status terminate(const runtime::Handle& handle) override {
    auto* inst = find(handle);
    if (inst == nullptr) return Error("Failed to terminate '" + handle.instance_id + "': gone");
    ++inst->terms;
    if (!inst->ignores_term) end(*inst, 0, 15);
    return Ok();
  }

  Status kill(const runtime::Handle& handle) override {
    auto* inst = find(handle);
    if (inst == nullptr) return Error("Failed to kill '" + handle.instance_id + "': gone");
    ++inst->kills;
    end(*inst, 0, 9);
    return Ok();
  }

  Status cleanup(const std::string& instance_id) override {
    auto it = instances.find(instance_id);
    if (it != instances.end() && it->second.state == runtime::RunState::kRunning) {
      return Error("Failed to clean up '" + instance_id + "': still running");
    }
    if (it != instances.end()) instances.erase(it);
    cleanups.push_back(instance_id);
    return Ok();
  }

  std::vector<runtime::Handle> recover() override {
    std::vector<runtime::Handle> out;
    for (const auto& [id, inst] : instances) out.push_back(inst.handle);
    return out;
  }

  std::string log_path(const std::string& instance_id, bool stderr_stream) const override {
    return "/fake/" + instance_id + (stderr_stream ? "/stderr.log" : "/stdout.log");
  }

  // Test controls.
  void exit(const std::string& id, int code) { end(instances.at(id), code, 0); }
  void crash(const std::string& id, int signal) { end(instances.at(id), 0, signal); }
  // Ids of instances currently running.
  std::vector<std::string> running() const {
    std::vector<std::string> out;
    for (const auto& [id, inst] : instances) {
      if (inst.state == runtime::RunState::kRunning) out.push_back(id);
    }
    return out;
  }
  // Plants a process the agent's store does not know (e.g. launched just before a crash).
  void plant(const std::string& id) {
    Instance inst;
    inst.handle = runtime::Handle{id, next_pid++, 7};
    instances[id] = inst;
  }

  std::map<std::string, Instance> instances;
  std::vector<runtime::LaunchSpec> launches;
  std::vector<std::string> cleanups;
  std::map<std::string, runtime::Preparation> preparing;  // by image
  std::vector<std::string> prepares;                      // images asked about
  bool fail_launch = false;
  std::string oom_message;  // when set, what observe() says of every exited instance
  int64_t next_pid = 100;

 private:
  Instance* find(const runtime::Handle& h) {
    auto it = instances.find(h.instance_id);
    return it == instances.end() ? nullptr : &it->second;
  }
  static void end(Instance& inst, int code, int signal) {
    if (inst.state != runtime::RunState::kRunning) return;
    inst.state = runtime::RunState::kExited;
    inst.exit_code = code;
    inst.signal = signal;
  }
};

}  // namespace flotilla::agent::testing
