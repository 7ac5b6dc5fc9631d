// The canonical forms of a validated workload: JSON (stored and served), the runnable-part hash,
// and the protocol's WorkloadSpec.
#include <algorithm>

#include "cloud-hub/manifest.hpp"
#include "cloud-hub/quantity.hpp"
#include "common/sha256.hpp"

namespace flotilla::hub {
namespace {

using json = nlohmann::json;

json string_map(const StringMap& m) {
  json out = json::object();
  for (const auto& [k, v] : m) out[k] = v;
  return out;
}

json container_json(const ContainerSection& c) {
  json out = {{"image", c.image}};
  if (!c.command.empty()) out["command"] = c.command;
  if (!c.args.empty()) out["args"] = c.args;
  if (!c.env.empty()) out["env"] = string_map(c.env);
  if (!c.workdir.empty()) out["workdir"] = c.workdir;
  if (!c.user.empty()) out["user"] = c.user;
  if (!c.mounts.empty()) {
    json mounts = json::array();
    for (const auto& mnt : c.mounts) {
      json j = {{"source", mnt.source}, {"destination", mnt.destination}};
      if (mnt.read_only) j["readOnly"] = true;
      mounts.push_back(j);
    }
    out["mounts"] = mounts;
  }
  if (c.read_only_root) out["readOnlyRootFilesystem"] = true;
  if (!c.host_network) out["hostNetwork"] = false;
  if (c.pids_limit > 0) out["pidsLimit"] = c.pids_limit;
  return out;
}

json vm_json(const VmSection& v) {
  json out = {{"image", v.image}, {"cpus", v.cpus}};
  if (!v.sha256.empty()) out["sha256"] = v.sha256;
  if (v.memory_bytes > 0) out["memory"] = format_memory_bytes(v.memory_bytes);
  if (!v.ports.empty()) {
    json ports = json::array();
    for (const auto& p : v.ports) {
      ports.push_back({{"host", p.host}, {"guest", p.guest}, {"protocol", p.protocol}});
    }
    out["ports"] = ports;
  }
  if (!v.kernel.empty()) out["kernel"] = v.kernel;
  if (!v.initrd.empty()) out["initrd"] = v.initrd;
  if (!v.kernel_args.empty()) out["kernelArgs"] = v.kernel_args;
  return out;
}

json probe_json(const ProbeSection& p) {
  json out = {{"initialDelaySeconds", p.initial_delay_seconds},
              {"periodSeconds", p.period_seconds},
              {"timeoutSeconds", p.timeout_seconds},
              {"failureThreshold", p.failure_threshold},
              {"successThreshold", p.success_threshold}};
  if (!p.exec.empty()) out["exec"] = {{"command", p.exec}};
  if (p.http_port > 0) out["httpGet"] = {{"path", p.http_path}, {"port", p.http_port}};
  if (p.tcp_port > 0) out["tcpSocket"] = {{"port", p.tcp_port}};
  return out;
}

json count_or_percent_json(const CountOrPercent& c) {
  return c.percent ? json(std::to_string(c.value) + "%") : json(c.value);
}

json update_json(const RolloutPolicy& p) {
  json out = {{"maxUnavailable", count_or_percent_json(p.max_unavailable)},
              {"partition", p.partition}};
  if (!p.waves.empty()) {
    json waves = json::array();
    for (const auto& w : p.waves) waves.push_back(count_or_percent_json(w));
    out["waves"] = waves;
  }
  return out;
}

void fill_probe(const ProbeSection& p, flotilla::v1::Probe* out) {
  for (const auto& arg : p.exec) out->add_exec(arg);
  out->set_http_path(p.http_port > 0 ? p.http_path : "");
  out->set_http_port(static_cast<uint32_t>(p.http_port));
  out->set_tcp_port(static_cast<uint32_t>(p.tcp_port));
  out->set_initial_delay_ms(p.initial_delay_seconds * 1000);
  out->set_period_ms(p.period_seconds * 1000);
  out->set_timeout_ms(p.timeout_seconds * 1000);
  out->set_failure_threshold(static_cast<uint32_t>(p.failure_threshold));
  out->set_success_threshold(static_cast<uint32_t>(p.success_threshold));
}

void fill_container(const ContainerSection& c, flotilla::v1::ContainerSpec* out) {
  out->set_image(c.image);
  for (const auto& arg : c.command) out->add_command(arg);
  for (const auto& arg : c.args) out->add_args(arg);
  for (const auto& [k, v] : c.env) (*out->mutable_env())[k] = v;
  out->set_workdir(c.workdir);
  out->set_user(c.user);
  for (const auto& m : c.mounts) {
    auto* mnt = out->add_mounts();
    mnt->set_source(m.source);
    mnt->set_destination(m.destination);
    mnt->set_read_only(m.read_only);
  }
  out->set_read_only_root(c.read_only_root);
  out->set_private_network(!c.host_network);
  out->set_pids_limit(c.pids_limit);
}

void fill_vm(const VmSection& v, flotilla::v1::VmSpec* out) {
  out->set_image(v.image);
  out->set_sha256(v.sha256);
  out->set_cpus(v.cpus);
  out->set_memory_bytes(v.memory_bytes);
  for (const auto& p : v.ports) {
    auto* port = out->add_ports();
    port->set_protocol(p.protocol);
    port->set_host_port(static_cast<uint32_t>(p.host));
    port->set_guest_port(static_cast<uint32_t>(p.guest));
  }
  out->set_kernel(v.kernel);
  out->set_initrd(v.initrd);
  out->set_kernel_args(v.kernel_args);
}

// The part of the spec an instance is started from; a change here replaces instances.
json runnable_json(const WorkloadManifest& m) {
  json spec = json::object();
  spec["type"] = m.type;
  spec["restartPolicy"] = m.restart_policy;
  json resources = json::object();
  if (m.cpu_millis > 0) resources["cpu"] = format_cpu_millis(m.cpu_millis);
  if (m.memory_bytes > 0) resources["memory"] = format_memory_bytes(m.memory_bytes);
  if (!resources.empty()) spec["resources"] = resources;
  if (m.grace_seconds) spec["terminationGracePeriodSeconds"] = *m.grace_seconds;
  if (m.process) {
    json p = {{"command", m.process->command}};
    if (!m.process->env.empty()) p["env"] = string_map(m.process->env);
    if (!m.process->workdir.empty()) p["workdir"] = m.process->workdir;
    spec["process"] = p;
  }
  if (m.container) spec["container"] = container_json(*m.container);
  if (m.vm) spec["vm"] = vm_json(*m.vm);
  return spec;
}

}  // namespace

json to_json(const WorkloadManifest& m) {
  json spec = runnable_json(m);
  if (m.every_node) {
    spec["placement"] = {{"everyNode", true}};
  } else {
    spec["replicas"] = m.replicas.value_or(0);
  }
  if (!m.selector.empty()) spec["selector"] = {{"matchLabels", string_map(m.selector)}};
  if (!m.tolerations.empty()) {
    json list = json::array();
    for (const auto& t : m.tolerations) {
      json one = {{"operator", t.op}};
      if (!t.key.empty()) one["key"] = t.key;
      if (!t.value.empty()) one["value"] = t.value;
      if (!t.effect.empty()) one["effect"] = t.effect;
      list.push_back(one);
    }
    spec["tolerations"] = list;
  }
  if (m.evict_after_seconds) spec["evictAfterSeconds"] = *m.evict_after_seconds;
  if (!m.arch.empty()) spec["arch"] = m.arch;
  if (!m.node_pool.empty()) spec["nodePool"] = m.node_pool;
  if (!m.spread_key.empty()) {
    spec["spread"] = {{"topologyKey", m.spread_key}, {"maxSkew", m.spread_max_skew}};
  }
  if (m.liveness || m.readiness) {
    json probes = json::object();
    if (m.liveness) probes["liveness"] = probe_json(*m.liveness);
    if (m.readiness) probes["readiness"] = probe_json(*m.readiness);
    spec["probes"] = probes;
  }
  // Not in runnable_json: a new update policy must not replace the instances it governs.
  if (m.update) spec["update"] = update_json(*m.update);
  json metadata = {{"name", m.name}};
  if (!m.labels.empty()) metadata["labels"] = string_map(m.labels);
  if (!m.annotations.empty()) metadata["annotations"] = string_map(m.annotations);
  return {
      {"apiVersion", kApiVersion}, {"kind", "Workload"}, {"metadata", metadata}, {"spec", spec}};
}

int64_t memory_request(const WorkloadManifest& m) {
  if (!m.vm) return m.memory_bytes;
  int64_t guest = m.vm->memory_bytes > 0 ? m.vm->memory_bytes : kVmDefaultMemoryBytes;
  return std::max(m.memory_bytes, guest + kVmMemoryOverheadBytes);
}

std::string spec_hash(const WorkloadManifest& m) { return sha256_hex(runnable_json(m).dump()); }

flotilla::v1::WorkloadSpec to_workload_spec(const WorkloadManifest& m, int64_t generation) {
  flotilla::v1::WorkloadSpec s;
  s.set_name(m.name);
  s.set_type(m.type);
  s.set_spec_hash(spec_hash(m));
  s.set_generation(generation);
  if (m.restart_policy == "OnFailure") {
    s.set_restart_policy(flotilla::v1::RESTART_ON_FAILURE);
  } else if (m.restart_policy == "Never") {
    s.set_restart_policy(flotilla::v1::RESTART_NEVER);
  } else {
    s.set_restart_policy(flotilla::v1::RESTART_ALWAYS);
  }
  s.mutable_resources()->set_cpu_millis(m.cpu_millis);
  s.mutable_resources()->set_memory_bytes(m.memory_bytes);
  if (m.grace_seconds) s.set_termination_grace_ms(*m.grace_seconds * 1000);
  if (m.container) fill_container(*m.container, s.mutable_container());
  if (m.vm) fill_vm(*m.vm, s.mutable_vm());
  if (m.liveness) fill_probe(*m.liveness, s.mutable_liveness());
  if (m.readiness) fill_probe(*m.readiness, s.mutable_readiness());
  if (m.process) {
    auto* p = s.mutable_process();
    for (const auto& arg : m.process->command) p->add_command(arg);
    for (const auto& [k, v] : m.process->env) (*p->mutable_env())[k] = v;
    p->set_workdir(m.process->workdir);
  }
  for (const auto& [k, v] : m.labels) (*s.mutable_labels())[k] = v;
  return s;
}

}  // namespace flotilla::hub
