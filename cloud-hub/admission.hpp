// Admission policies: rules the hub checks every applied Workload against before anything is
// written (docs/hub.md "Admission policies"). The policy is a YAML (or JSON) file of kind
// AdmissionPolicy, loaded once at start (flotilla-hub --admission-policy FILE):
//
//   apiVersion: flotilla/v1
//   kind: AdmissionPolicy
//   rules:
//     - name: pinned-images          # 1-63 of [a-z0-9-]; unique
//       requireImageDigest: true     # exactly one check per rule
//       match: {labels: {tier: prod}}  # optional: the rule applies only to matching workloads
//
// Parsing is strict: unknown keys, wrong types, duplicate rule names, a rule with no check or
// two are errors naming the file, line, rule and key ("policy.yaml:9: rule 'limits'.maxReplicas:
// want a whole number ≥ 0, got 'ten'").
//
// admit() returns every violation of a workload; a request with any violation is refused whole
// (api.cpp answers 403), so a multi-document apply with one violating workload applies nothing.
//
// Thread-safety: pure functions over values; a loaded policy is immutable.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cloud-hub/manifest.hpp"
#include "common/expected.hpp"

namespace flotilla::hub {

// The counter of refusals, labelled {rule="NAME"} (one per violated rule per refused request).
inline constexpr const char* kAdmissionRejections = "flotilla_hub_admission_rejections_total";

// One rule: a name, an optional match, and exactly one check (the field that is set).
struct AdmissionRule {
  std::string name;
  int line = 0;  // line of the rule's name in its file (0 when unknown)

  // match: the rule applies to a workload only if its name is in `match_names` (when given) and
  // it carries every label of `match_labels` (when given). No match: every workload.
  std::vector<std::string> match_names;
  StringMap match_labels;

  // The checks; exactly one is set per rule.
  bool deny_host_network = false;     // denyHostNetwork: containers keep their own network
  bool require_image_digest = false;  // requireImageDigest: images pinned by digest
  std::vector<std::string> allowed_registries;  // allowedRegistries: non-empty when set
  bool require_resource_limits = false;         // requireResourceLimits: cpu and memory set
  std::vector<std::string> allowed_types;       // allowedTypes: subset of container, vm, process
  std::optional<int64_t> max_replicas;          // maxReplicas
  bool require_non_root_user = false;           // requireNonRootUser: container user with uid != 0
  bool require_read_only_root = false;          // requireReadOnlyRootFilesystem
  std::optional<std::vector<std::string>> allowed_host_paths;  // allowedHostPaths (may be empty)
  bool require_read_only_mounts = false;                       // requireReadOnlyMounts
};

struct AdmissionPolicy {
  std::string source;  // the file it was loaded from (for logs)
  std::vector<AdmissionRule> rules;
};

// Parses a policy document; `source` names it in errors ("policy.yaml").
Expected<AdmissionPolicy> parse_admission_policy(std::string_view text, const std::string& source);
// Reads and parses the file at `path` (errors name the file).
Expected<AdmissionPolicy> load_admission_policy(const std::string& path);

struct AdmissionViolation {
  std::string rule;
  std::string workload;
  std::string reason;  // "container is on the host's network (hostNetwork defaults to true)"
  // "rule 'no-host-network' denies workload 'web': container is on the host's network ..."
  std::string message() const;
};

// Every rule of `policy` that `w` breaks, in rule order.
std::vector<AdmissionViolation> admit(const AdmissionPolicy& policy, const WorkloadManifest& w);

// The error of a refused request: "admission: " and every violation, joined by "; ".
std::string admission_error(const std::vector<AdmissionViolation>& violations);

}  // namespace flotilla::hub
