#include "agent/desired_validation.hpp"

#include <cctype>
#include <set>

namespace flotilla::agent {

Status validate_workload_name(std::string_view name) {
  if (name.empty()) return Error("workload name is empty");
  if (name.size() > 63) return Error("workload name '" + std::string(name) + "' is too long");
  if (!std::isalnum(static_cast<unsigned char>(name.front()))) {
    return Error("workload name '" + std::string(name) + "' must start with a letter or digit");
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return Error("workload name '" + std::string(name) + "' has an invalid character");
    }
  }
  return Ok();
}

namespace {

Status validate_spec(const v1::WorkloadSpec& spec) {
  if (auto st = validate_workload_name(spec.name()); !st) return st;
  auto bad = [&](const std::string& why) {
    return Error("workload '" + spec.name() + "': " + why);
  };
  if (spec.type().empty()) return bad("type is empty");
  if (spec.spec_hash().empty()) return bad("spec_hash is empty");
  if (!v1::RestartPolicy_IsValid(spec.restart_policy())) return bad("unknown restart policy");
  if (spec.termination_grace_ms() < 0) return bad("termination_grace_ms is negative");
  auto check_env = [&](const auto& env) -> Status {
    for (const auto& [key, value] : env) {
      if (key.empty() || key.find('=') != std::string::npos) {
        return bad("env name '" + key + "' is invalid");
      }
    }
    return Ok();
  };
  if (spec.type() == "process") {
    if (spec.process().command().empty() || spec.process().command(0).empty()) {
      return bad("process.command is empty");
    }
    if (auto st = check_env(spec.process().env()); !st) return st;
  } else if (spec.type() == "container") {
    if (spec.container().image().empty()) return bad("container.image is empty");
    if (auto st = check_env(spec.container().env()); !st) return st;
    for (const auto& m : spec.container().mounts()) {
      if (m.source().empty() || m.source()[0] != '/' || m.destination().empty() ||
          m.destination()[0] != '/') {
        return bad("container mount '" + m.source() + "' -> '" + m.destination() +
                   "' is not between absolute paths");
      }
    }
  } else if (spec.type() == "vm") {
    if (spec.vm().image().empty()) return bad("vm.image is empty");
  }
  for (const v1::Probe* probe : {&spec.liveness(), &spec.readiness()}) {
    if (probe->period_ms() < 0 || probe->timeout_ms() < 0 || probe->initial_delay_ms() < 0) {
      return bad("a probe has a negative period, timeout or delay");
    }
  }
  return Ok();
}

}  // namespace

Status validate_desired(const v1::DesiredState& msg, const std::string& node) {
  if (msg.node() != node) {
    return Error("desired state is for node '" + msg.node() + "', not '" + node + "'");
  }
  if (!msg.snapshot() && msg.to_revision() <= msg.from_revision()) {
    return Error("delta goes from revision " + std::to_string(msg.from_revision()) + " to " +
                 std::to_string(msg.to_revision()));
  }
  std::set<std::string> names;
  for (const auto& spec : msg.upserts()) {
    if (auto st = validate_spec(spec); !st) return st;
    if (!names.insert(spec.name()).second) {
      return Error("workload '" + spec.name() + "' appears twice");
    }
  }
  if (msg.snapshot()) return Ok();  // a snapshot's deletes are implied; any listed are ignored
  for (const auto& name : msg.deletes()) {
    if (auto st = validate_workload_name(name); !st) return st;
    if (names.count(name) != 0) {
      return Error("workload '" + name + "' is both upserted and deleted");
    }
  }
  return Ok();
}

}  // namespace flotilla::agent
