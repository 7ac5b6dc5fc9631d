// Workload specs and desired-state messages for agent tests.
#pragma once

#include <string>
#include <vector>

#include "sync/flotilla.pb.h"

namespace flotilla::agent::testing {

inline v1::WorkloadSpec process_spec(const std::string& name, const std::string& hash = "h1",
                                     v1::RestartPolicy policy = v1::RESTART_ALWAYS) {
  v1::WorkloadSpec spec;
  spec.set_name(name);
  spec.set_type("process");
  spec.set_spec_hash(hash);
  spec.set_generation(1);
  spec.set_restart_policy(policy);
  spec.mutable_process()->add_command("/bin/sleep");
  spec.mutable_process()->add_command("1000");
  (*spec.mutable_process()->mutable_env())["GREETING"] = "hello";
  return spec;
}

inline v1::WorkloadSpec container_spec(const std::string& name, const std::string& image,
                                       const std::string& hash = "c1") {
  v1::WorkloadSpec spec;
  spec.set_name(name);
  spec.set_type("container");
  spec.set_spec_hash(hash);
  spec.set_generation(1);
  spec.mutable_container()->set_image(image);
  spec.mutable_container()->add_args("--serve");
  (*spec.mutable_container()->mutable_env())["MODE"] = "edge";
  spec.mutable_resources()->set_memory_bytes(64 << 20);
  return spec;
}

inline v1::DesiredState snapshot(const std::string& node, uint64_t to,
                                 const std::vector<v1::WorkloadSpec>& specs) {
  v1::DesiredState d;
  d.set_node(node);
  d.set_snapshot(true);
  d.set_to_revision(to);
  for (const auto& s : specs) *d.add_upserts() = s;
  return d;
}

inline v1::DesiredState delta(const std::string& node, uint64_t from, uint64_t to,
                              const std::vector<v1::WorkloadSpec>& upserts,
                              const std::vector<std::string>& deletes = {}) {
  v1::DesiredState d;
  d.set_node(node);
  d.set_from_revision(from);
  d.set_to_revision(to);
  for (const auto& s : upserts) *d.add_upserts() = s;
  for (const auto& n : deletes) d.add_deletes(n);
  return d;
}

}  // namespace flotilla::agent::testing
