// fuzz_manifest: hub::parse_manifests on arbitrary text (YAML, or JSON when it starts with '{' or
// '[').
//
// Invariants: a rejected input gets a non-empty reason; every accepted workload's canonical JSON
// parses again to the same canonical JSON and spec hash (the hub stores that JSON and re-reads it
// on restart); and the WorkloadSpecs the hub would send for the accepted workloads pass the
// agent's own validation (else the agent would reject its node's whole desired state forever).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/desired_validation.hpp"
#include "cloud-hub/manifest.hpp"
#include "test/fuzz/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = hub::parse_manifests(text, "fuzz.yaml");
  if (!parsed) {
    FUZZ_CHECK(!parsed.error().message().empty(), "parse_manifests failed without a reason");
    return 0;
  }
  FUZZ_CHECK(!parsed->empty(), "parse_manifests accepted an input without workloads");
  v1::DesiredState desired;
  desired.set_node("edge-1");
  desired.set_snapshot(true);
  desired.set_to_revision(1);
  for (const auto& m : *parsed) {
    const std::string canonical = hub::to_json(m).dump();
    auto again = hub::parse_manifests(canonical, "canonical.json");
    FUZZ_CHECK(again.ok(), "canonical JSON of '" + m.name + "' does not parse: " +
                               (again ? "" : again.error().message()) + "\n" + canonical);
    FUZZ_CHECK(again->size() == 1, "canonical JSON of '" + m.name + "' holds several workloads");
    const auto& m2 = again->front();
    FUZZ_CHECK(
        hub::to_json(m2).dump() == canonical,
        "canonical JSON is not a fixed point:\n" + canonical + "\n" + hub::to_json(m2).dump());
    FUZZ_CHECK(hub::spec_hash(m2) == hub::spec_hash(m),
               "spec hash changed through canonical JSON of '" + m.name + "'");
    *desired.add_upserts() = hub::to_workload_spec(m, 1);
  }
  auto valid = agent::validate_desired(desired, "edge-1");
  FUZZ_CHECK(valid.ok(),
             "the agent rejects what the hub accepted: " + (valid ? "" : valid.error().message()));
  return 0;
}
