// The canonical forms of a validated workload: JSON (stored and served), the runnable-part hash,
// and the protocol's WorkloadSpec.
#include <openssl/evp.h>

#include "cloud-hub/manifest.hpp"
#include "cloud-hub/quantity.hpp"

namespace flotilla::hub {
namespace {

using json = nlohmann::json;

json string_map(const StringMap& m) {
  json out = json::object();
  for (const auto& [k, v] : m) out[k] = v;
  return out;
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
  if (m.container) {
    json c = {{"image", m.container->image}};
    if (!m.container->command.empty()) c["command"] = m.container->command;
    if (!m.container->env.empty()) c["env"] = string_map(m.container->env);
    spec["container"] = c;
  }
  if (m.vm) {
    json v = {{"image", m.vm->image}, {"cpus", m.vm->cpus}};
    if (!m.vm->sha256.empty()) v["sha256"] = m.vm->sha256;
    if (m.vm->memory_bytes > 0) v["memory"] = format_memory_bytes(m.vm->memory_bytes);
    spec["vm"] = v;
  }
  return spec;
}

std::string sha256_hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
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
  if (!m.tolerations.empty()) spec["tolerations"] = m.tolerations;
  json metadata = {{"name", m.name}};
  if (!m.labels.empty()) metadata["labels"] = string_map(m.labels);
  if (!m.annotations.empty()) metadata["annotations"] = string_map(m.annotations);
  return {
      {"apiVersion", kApiVersion}, {"kind", "Workload"}, {"metadata", metadata}, {"spec", spec}};
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
  // The protocol carries only the process section so far (see docs/protocol.md); container and
  // vm workloads are placed only on nodes that offer those runtimes.
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
