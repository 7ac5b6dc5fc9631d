// fuzz_admission_policy: hub::parse_admission_policy on arbitrary text, and hub::admit of what
// parsed against workloads. The input is a policy, optionally followed by a NUL byte and workload
// manifests (parse_all_manifests); without them, a few fixed workloads of each type are admitted.
//
// Invariants: a rejected policy gets a non-empty reason naming the source; an accepted policy has
// unique, valid rule names and exactly one check per rule; every violation admit() reports names
// a rule of the policy and the workload, with a non-empty reason; a match only narrows a rule
// (the same policy without matches reports every violation and maybe more); admit() is
// deterministic.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "cloud-hub/admission.hpp"
#include "cloud-hub/manifest.hpp"
#include "test/fuzz/fuzz_check.hpp"

namespace {

using namespace flotilla;

int checks_of(const hub::AdmissionRule& r) {
  return int{r.deny_host_network} + int{r.require_image_digest} +
         int{!r.allowed_registries.empty()} + int{r.require_resource_limits} +
         int{!r.allowed_types.empty()} + int{r.max_replicas.has_value()} +
         int{r.require_non_root_user} + int{r.require_read_only_root} +
         int{r.allowed_host_paths.has_value()} + int{r.require_read_only_mounts};
}

const std::vector<hub::WorkloadManifest>& fixed_workloads() {
  static const std::vector<hub::WorkloadManifest> workloads = [] {
    const std::string digest(64, 'a');
    auto all = hub::parse_manifests(
        "apiVersion: flotilla/v1\nkind: Workload\nmetadata: {name: web, labels: {tier: prod}}\n"
        "spec:\n  type: container\n  replicas: 3\n  resources: {cpu: 1, memory: 1Gi}\n"
        "  container:\n    image: registry.example.com/app@sha256:" +
            digest +
            "\n"
            "    user: \"0\"\n    mounts: [{source: /srv/data, destination: /d}]\n"
            "---\napiVersion: flotilla/v1\nkind: Workload\nmetadata: {name: box}\nspec:\n"
            "  type: vm\n  replicas: 1\n  vm:\n    image: oci://127.0.0.1:5000/disk:1\n"
            "    sha256: " +
            digest +
            "\n    kernel: http://k.example/vmlinuz\n"
            "---\napiVersion: flotilla/v1\nkind: Workload\nmetadata: {name: proc}\nspec:\n"
            "  type: process\n  placement: {everyNode: true}\n  process: {command: [/bin/true]}\n",
        "fixed.yaml");
    FUZZ_CHECK(all.ok(), "the fixed workloads do not parse: " + all.error().message());
    return *all;
  }();
  return workloads;
}

// Every violation of `fewer` appears in `more` (by rule and reason).
bool covered(const std::vector<hub::AdmissionViolation>& fewer,
             const std::vector<hub::AdmissionViolation>& more) {
  return std::all_of(fewer.begin(), fewer.end(), [&](const hub::AdmissionViolation& v) {
    return std::any_of(more.begin(), more.end(), [&](const hub::AdmissionViolation& m) {
      return m.rule == v.rule && m.reason == v.reason;
    });
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view text = input.substr(0, nul);
  auto policy = hub::parse_admission_policy(text, "fuzz.yaml");
  if (!policy) {
    const std::string& why = policy.error().message();
    FUZZ_CHECK(why.rfind("fuzz.yaml", 0) == 0, "a policy error does not name its source: " + why);
    return 0;
  }
  std::set<std::string> names;
  for (const auto& r : policy->rules) {
    FUZZ_CHECK(hub::validate_name(r.name).ok(), "an invalid rule name was accepted: " + r.name);
    FUZZ_CHECK(names.insert(r.name).second, "a duplicate rule name was accepted: " + r.name);
    FUZZ_CHECK(checks_of(r) == 1,
               "rule '" + r.name + "' has " + std::to_string(checks_of(r)) + " checks");
  }
  hub::AdmissionPolicy unmatched = *policy;
  for (auto& r : unmatched.rules) {
    r.match_names.clear();
    r.match_labels.clear();
  }
  std::vector<hub::WorkloadManifest> workloads = fixed_workloads();
  if (nul != std::string_view::npos) {
    auto all = hub::parse_all_manifests(input.substr(nul + 1), "workloads.yaml");
    if (!all) return 0;
    workloads = all->workloads;
  }
  for (const auto& w : workloads) {
    auto violations = hub::admit(*policy, w);
    for (const auto& v : violations) {
      FUZZ_CHECK(names.count(v.rule) == 1, "a violation names an unknown rule: " + v.rule);
      FUZZ_CHECK(v.workload == w.name && !v.reason.empty(),
                 "a violation without its workload or reason: " + v.message());
    }
    FUZZ_CHECK(hub::admission_error(violations) == hub::admission_error(hub::admit(*policy, w)),
               "admit() is not deterministic");
    // A match only narrows a rule: without the matches, every violation is still there.
    FUZZ_CHECK(
        covered(violations, hub::admit(unmatched, w)),
        "a rule refused more with its match than without: " + hub::admission_error(violations));
  }
  return 0;
}
