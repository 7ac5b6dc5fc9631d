// Flotilla manifests: parsing and validation of what users apply, shared by the hub and flotctl.
//
// A manifest has the Kubernetes shape: apiVersion flotilla/v1, kind, metadata {name, labels},
// spec, and a status that the hub fills (ignored on apply). Kinds Workload, Device and Rollout
// (an OTA update rollout, docs/hub.md "Rollouts") are supported. Every field is checked: unknown
// fields, wrong types, bad quantities and missing required fields are errors that name the
// file, line and field path ("hello.yaml:7: spec.replicas: want a whole number ≥ 0, got
// 'three'"). A file with several documents is valid only if every document is.
//
// A validated workload has one canonical JSON form (stored by the hub, returned by the API, and
// parsed back to the same value) and one sync::WorkloadSpec (sent to agents). spec_hash covers
// only what needs an instance to be replaced when it changes (type, per-type section,
// restartPolicy, resources, grace period): labels, selector, replica, probe and update-policy
// changes leave it alone (agents apply new probes to the running instances).
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

#include "cloud-hub/rollout.hpp"
#include "cloud-hub/taints.hpp"
#include "common/expected.hpp"
#include "sync/flotilla.pb.h"

namespace flotilla::hub {

inline constexpr const char* kApiVersion = "flotilla/v1";
// The node label spec.nodePool matches.
inline constexpr const char* kPoolLabel = "flotilla.io/pool";

using StringMap = std::map<std::string, std::string>;

struct ProcessSection {
  std::vector<std::string> command;  // argv, at least one element
  StringMap env;
  std::string workdir;  // empty: the agent's per-instance folder
};

struct MountSection {
  std::string source;       // absolute path on the node
  std::string destination;  // absolute path in the container
  bool read_only = false;
};

struct ContainerSection {
  std::string image;
  std::vector<std::string> command;  // empty: the image's entrypoint
  std::vector<std::string> args;     // empty: the image's cmd
  StringMap env;
  std::string workdir;  // empty: the image's
  std::string user;     // uid[:gid]; empty: the image's
  std::vector<MountSection> mounts;
  bool read_only_root = false;  // readOnlyRootFilesystem
  bool host_network = true;     // hostNetwork
  int64_t pids_limit = 0;       // pidsLimit; 0 = none
};

struct PortSection {
  std::string protocol = "tcp";
  int64_t host = 0;   // port on the node's 127.0.0.1
  int64_t guest = 0;  // port in the guest
};

struct VmSection {
  std::string image;
  std::string sha256;  // 64 hex digits; required for http(s) images
  int64_t cpus = 1;
  int64_t memory_bytes = 0;  // 0: the agent's default (256 MiB)
  std::vector<PortSection> ports;
  std::string kernel;  // direct kernel boot: kernel and initrd (URL or path), command line
  std::string initrd;
  std::string kernel_args;
};

// probes.liveness / probes.readiness: exactly one of exec, httpGet, tcpSocket.
struct ProbeSection {
  std::vector<std::string> exec;  // command (in the container for containers)
  std::string http_path;          // httpGet.path
  int64_t http_port = 0;          // httpGet.port
  int64_t tcp_port = 0;           // tcpSocket.port
  int64_t initial_delay_seconds = 0;
  int64_t period_seconds = 10;
  int64_t timeout_seconds = 1;
  int64_t failure_threshold = 3;
  int64_t success_threshold = 1;
};

// What the scheduler adds to a VM's memory for QEMU itself: measured 100-109 MiB of PSS beyond
// the guest's RAM under TCG (48 MiB of it the translation cache), less under KVM.
inline constexpr int64_t kVmMemoryOverheadBytes = 128LL << 20;
inline constexpr int64_t kVmDefaultMemoryBytes = 256LL << 20;

struct WorkloadManifest {
  std::string name;
  StringMap labels;
  StringMap annotations;
  std::string type;                 // process | container | vm
  std::optional<int64_t> replicas;  // set unless every_node
  bool every_node = false;          // placement: {everyNode: true}
  StringMap selector;               // selector.matchLabels
  std::vector<Toleration> tolerations;
  std::vector<std::string> arch;  // spec.arch: node architectures allowed; empty: any
  std::string node_pool;          // spec.nodePool: the node label flotilla.io/pool must equal it
  std::string spread_key;         // spec.spread.topologyKey; empty: no spread
  int64_t spread_max_skew = 1;    // spec.spread.maxSkew
  int64_t cpu_millis = 0;         // resources.cpu; 0 = no request
  int64_t memory_bytes = 0;       // resources.memory; 0 = no request
  std::string restart_policy = "Always";  // Always | OnFailure | Never
  std::optional<int64_t> grace_seconds;   // terminationGracePeriodSeconds
  // evictAfterSeconds: instances on a node NotReady this long are placed elsewhere; unset: never.
  std::optional<int64_t> evict_after_seconds;
  std::optional<ProcessSection> process;
  std::optional<ContainerSection> container;
  std::optional<VmSection> vm;
  std::optional<ProbeSection> liveness;
  std::optional<ProbeSection> readiness;
  // spec.update: how a new spec reaches the instances (rollout.hpp); unset: RolloutPolicy{}'s
  // defaults (maxUnavailable 25%, partition 0, one wave).
  std::optional<RolloutPolicy> update;
  int line = 0;  // line of metadata.name in its file (0 when unknown)
};

// kind Device (docs/hub.md "Devices"): a device attached to a node, with optional desired
// properties. Applying it is PUT /api/v1/devices/NAME with device_body(): it creates the device
// or replaces its labels and desired document (a desired version bump only when desired
// changed); without spec.desired the device's desired is left as it is.
struct DeviceManifest {
  std::string name;  // metadata.name: a device name (sync::validate_node_name's rules)
  StringMap labels;  // metadata.labels
  std::string node;  // spec.node
  std::optional<nlohmann::json> desired;  // spec.desired: a twin document (common/twin.hpp)
  int line = 0;                           // line of metadata.name in its file (0 when unknown)
};

// kind Rollout (docs/hub.md "Rollouts"): an OTA artifact to the nodes a selector matches, in
// waves. Each wave is a cumulative share of the selected nodes: `count` nodes or `percent` of
// them (rounded up), never fewer than the wave before.
struct RolloutWave {
  int64_t count = 0;    // > 0: this many nodes in all, up to this wave
  int64_t percent = 0;  // else 1..100: this share of the nodes in all, up to this wave
  bool operator==(const RolloutWave&) const = default;
};

struct RolloutManifest {
  std::string name;              // metadata.name: validate_name's rules
  StringMap labels;              // metadata.labels
  std::string artifact;          // spec.artifact.name
  std::string artifact_version;  // spec.artifact.version
  StringMap selector;            // spec.selector.matchLabels; empty: every node
  std::vector<RolloutWave> waves = {RolloutWave{0, 100}};  // spec.waves; default one wave
  int64_t soak_seconds = 0;                                // spec.soakSeconds
  int64_t failure_percent = 0;                             // spec.failureThreshold.percent (0..100)
  int64_t failure_min_count = 1;                           // spec.failureThreshold.minCount (>= 1)
  int64_t progress_timeout_seconds = 600;                  // spec.progressTimeoutSeconds
  int line = 0;  // line of metadata.name in its file (0 when unknown)
};

// An OTA artifact's name or version as ota/manifest.hpp allows them: 1..63 printable ASCII
// characters, no spaces or slashes, not "." or "..".
bool artifact_word_ok(std::string_view word);

// The canonical JSON document of a rollout (apiVersion, kind, metadata, spec; keys sorted).
nlohmann::json to_json(const RolloutManifest& r);

// What one input holds, in document order per kind.
struct Manifests {
  std::vector<WorkloadManifest> workloads;
  std::vector<DeviceManifest> devices;
  std::vector<RolloutManifest> rollouts;
};

// Parses and validates every document in `text` (YAML or JSON). `source` names the input in
// error messages: a file name, or "request body". A name may appear once per kind.
Expected<Manifests> parse_all_manifests(std::string_view text, const std::string& source);
// The same for input that may hold only workloads (a Device is an error).
Expected<std::vector<WorkloadManifest>> parse_manifests(std::string_view text,
                                                        const std::string& source);

// The body of PUT /api/v1/devices/NAME for a Device manifest: {"node", "labels", "desired"}.
nlohmann::json device_body(const DeviceManifest& d);

// Checks that `name` is a DNS label: 1-63 of [a-z0-9-], starting and ending alphanumeric.
Status validate_name(std::string_view name);

// The canonical JSON document (apiVersion, kind, metadata, spec) with keys sorted.
nlohmann::json to_json(const WorkloadManifest& m);

// Memory the scheduler reserves for one instance: resources.memory, and for a VM at least its
// guest memory plus QEMU's overhead.
int64_t memory_request(const WorkloadManifest& m);

// Hex SHA-256 of the canonical JSON of the runnable part of the spec.
std::string spec_hash(const WorkloadManifest& m);

// What an agent receives for this workload.
flotilla::v1::WorkloadSpec to_workload_spec(const WorkloadManifest& m, int64_t generation);

}  // namespace flotilla::hub
