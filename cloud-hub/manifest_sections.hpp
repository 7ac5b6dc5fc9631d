// Readers of the per-type sections of a Workload spec (container, vm), of its probes, of its
// scheduling fields (manifest_scheduling.cpp) and of its update policy (manifest_update.cpp);
// internal to flotilla_manifest, built on Checker like the rest of manifest validation.
#pragma once

#include <string>

#include "cloud-hub/manifest_checker.hpp"

namespace flotilla::hub {

ContainerSection read_container(Checker& c, const DocNode& n, const std::string& path);
VmSection read_vm(Checker& c, const DocNode& n, const std::string& path);
// spec.probes: {liveness: PROBE, readiness: PROBE}.
void read_probes(Checker& c, const DocNode& n, const std::string& path, WorkloadManifest& m);
// spec.tolerations: [{key, operator: Equal|Exists, value, effect: NoSchedule|NoExecute}].
void read_tolerations(Checker& c, const DocNode& n, const std::string& path, WorkloadManifest& m);
// spec.arch, spec.nodePool and spec.spread (read after the placement).
void read_node_choice(Checker& c, const DocNode& spec, WorkloadManifest& m);
// spec.update: {maxUnavailable, partition, waves}.
void read_update(Checker& c, const DocNode& n, const std::string& path, WorkloadManifest& m);
// A whole kind Rollout document (manifest_rollout.cpp).
Expected<RolloutManifest> read_rollout(Checker& c, const DocNode& doc);

}  // namespace flotilla::hub
