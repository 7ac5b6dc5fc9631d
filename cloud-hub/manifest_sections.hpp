// Readers of the per-type sections of a Workload spec (container, vm) and of its probes;
// internal to flotilla_manifest, built on Checker like the rest of manifest validation.
#pragma once

#include <string>

#include "cloud-hub/manifest_checker.hpp"

namespace flotilla::hub {

ContainerSection read_container(Checker& c, const DocNode& n, const std::string& path);
VmSection read_vm(Checker& c, const DocNode& n, const std::string& path);
// spec.probes: {liveness: PROBE, readiness: PROBE}.
void read_probes(Checker& c, const DocNode& n, const std::string& path, WorkloadManifest& m);

}  // namespace flotilla::hub
