// Flotilla manifests: parsing and validation of what users apply, shared by the hub and flotctl.
//
// A manifest has the Kubernetes shape: apiVersion flotilla/v1, kind, metadata {name, labels},
// spec, and a status that the hub fills (ignored on apply). Only kind Workload is supported;
// Device and Rollout are rejected as "not supported yet". Every field is checked: unknown
// fields, wrong types, bad quantities and missing required fields are errors that name the
// file, line and field path ("hello.yaml:7: spec.replicas: want a whole number ≥ 0, got
// 'three'"). A file with several documents is valid only if every document is.
//
// A validated workload has one canonical JSON form (stored by the hub, returned by the API, and
// parsed back to the same value) and one sync::WorkloadSpec (sent to agents). spec_hash covers
// only what needs an instance to be replaced when it changes (type, per-type section,
// restartPolicy, resources, grace period): labels, selector and replica changes leave it alone.
//
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/expected.hpp"
#include "sync/flotilla.pb.h"

namespace flotilla::hub {

inline constexpr const char* kApiVersion = "flotilla/v1";

using StringMap = std::map<std::string, std::string>;

struct ProcessSection {
  std::vector<std::string> command;  // argv, at least one element
  StringMap env;
  std::string workdir;  // empty: the agent's per-instance folder
};

struct ContainerSection {
  std::string image;
  std::vector<std::string> command;  // empty: the image's entrypoint
  StringMap env;
};

struct VmSection {
  std::string image;
  std::string sha256;  // 64 hex digits, or empty
  int64_t cpus = 1;
  int64_t memory_bytes = 0;  // 0: the agent's default
};

struct WorkloadManifest {
  std::string name;
  StringMap labels;
  StringMap annotations;
  std::string type;                                      // process | container | vm
  std::optional<int64_t> replicas;                       // set unless every_node
  bool every_node = false;                               // placement: {everyNode: true}
  StringMap selector;                                    // selector.matchLabels
  nlohmann::json tolerations = nlohmann::json::array();  // accepted and stored as given
  int64_t cpu_millis = 0;                                // resources.cpu; 0 = no request
  int64_t memory_bytes = 0;                              // resources.memory; 0 = no request
  std::string restart_policy = "Always";                 // Always | OnFailure | Never
  std::optional<int64_t> grace_seconds;                  // terminationGracePeriodSeconds
  std::optional<ProcessSection> process;
  std::optional<ContainerSection> container;
  std::optional<VmSection> vm;
  int line = 0;  // line of metadata.name in its file (0 when unknown)
};

// Parses and validates every document in `text` (YAML or JSON). `source` names the input in
// error messages: a file name, or "request body".
Expected<std::vector<WorkloadManifest>> parse_manifests(std::string_view text,
                                                        const std::string& source);

// Checks that `name` is a DNS label: 1-63 of [a-z0-9-], starting and ending alphanumeric.
Status validate_name(std::string_view name);

// The canonical JSON document (apiVersion, kind, metadata, spec) with keys sorted.
nlohmann::json to_json(const WorkloadManifest& m);

// Hex SHA-256 of the canonical JSON of the runnable part of the spec.
std::string spec_hash(const WorkloadManifest& m);

// What an agent receives for this workload.
flotilla::v1::WorkloadSpec to_workload_spec(const WorkloadManifest& m, int64_t generation);

}  // namespace flotilla::hub
