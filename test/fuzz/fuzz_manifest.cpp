// fuzz_manifest: hub::parse_all_manifests on arbitrary text (YAML, or JSON when it starts with
// '{' or '[').
//
// Invariants: a rejected input gets a non-empty reason; every accepted workload's canonical JSON
// parses again to the same canonical JSON and spec hash (the hub stores that JSON and re-reads it
// on restart); and the WorkloadSpecs the hub would send for the accepted workloads pass the
// agent's own validation (else the agent would reject its node's whole desired state forever).
// Every accepted Device has a valid name and node and a desired document the twin rules take,
// and written back as a JSON manifest it parses to the same device.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/desired_validation.hpp"
#include "cloud-hub/manifest.hpp"
#include "common/twin.hpp"
#include "sync/topics.hpp"
#include "test/fuzz/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto all = hub::parse_all_manifests(text, "fuzz.yaml");
  if (!all) {
    FUZZ_CHECK(!all.error().message().empty(), "parse_all_manifests failed without a reason");
    return 0;
  }
  FUZZ_CHECK(!all->workloads.empty() || !all->devices.empty(),
             "parse_all_manifests accepted an input without manifests");
  for (const auto& d : all->devices) {
    FUZZ_CHECK(sync::validate_node_name(d.name).ok() && sync::validate_node_name(d.node).ok(),
               "a device with an invalid name or node was accepted: '" + d.name + "'");
    if (d.desired) {
      twin::Twin t;
      auto taken = t.replace_desired(*d.desired);
      FUZZ_CHECK(taken.ok(), "the twin rules refuse the desired document of '" + d.name + "'");
    }
    nlohmann::json doc = {{"apiVersion", "flotilla/v1"},
                          {"kind", "Device"},
                          {"metadata", {{"name", d.name}, {"labels", d.labels}}},
                          {"spec", {{"node", d.node}}}};
    if (d.desired) doc["spec"]["desired"] = *d.desired;
    auto again = hub::parse_all_manifests(doc.dump(), "device.json");
    FUZZ_CHECK(again.ok() && again->devices.size() == 1,
               "device '" + d.name + "' written back does not parse: " +
                   (again ? "" : again.error().message()) + "\n" + doc.dump());
    const auto& d2 = again->devices.front();
    FUZZ_CHECK(d2.name == d.name && d2.labels == d.labels && d2.node == d.node &&
                   d2.desired == d.desired && hub::device_body(d2) == hub::device_body(d),
               "device '" + d.name + "' changed when written back:\n" + doc.dump());
  }
  const std::vector<hub::WorkloadManifest>* parsed = &all->workloads;
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
