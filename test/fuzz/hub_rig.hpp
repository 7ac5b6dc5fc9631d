// A hub for fuzzing, wired like test/hub/fake_agent.hpp's HubHarness (in-memory store,
// FakeClock, Controller and SyncServer over a FakeBroker) but without GoogleTest. It starts with
// a few workloads applied, so that hellos get placements and desired state, and two devices
// (dev-1 on edge-1, dev-2 on edge-2) for twin reports. An "agents" client
// publishes up messages and records every down message the hub sends. One rig per fuzz input.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cloud-hub/controller.hpp"
#include "cloud-hub/manifest.hpp"
#include "cloud-hub/sync_server.hpp"
#include "common/clock.hpp"
#include "sync/fake_transport.hpp"
#include "sync/topics.hpp"
#include "test/fuzz/fuzz_check.hpp"

namespace flotilla::fuzz {

// Workloads every rig starts with: one on every node, a replicated one, one needing a runtime
// the fuzzed hellos may or may not offer.
inline const char* kHubWorkloads = R"(apiVersion: flotilla/v1
kind: Workload
metadata: {name: hello}
spec:
  type: process
  placement: {everyNode: true}
  process: {command: [/bin/sleep, '1000'], env: {MODE: fast}}
---
apiVersion: flotilla/v1
kind: Workload
metadata: {name: web, labels: {app: web}}
spec:
  type: process
  replicas: 2
  resources: {cpu: 500m, memory: 64Mi}
  process: {command: [/bin/sleep, '1000']}
---
apiVersion: flotilla/v1
kind: Workload
metadata: {name: cam}
spec:
  type: container
  replicas: 1
  selector: {matchLabels: {zone: edge-1}}
  container: {image: reg.local/cam:1}
)";

class HubRig {
 public:
  static constexpr uint32_t kShards = sync::kDefaultShards;

  HubRig() {
    auto store = hub::Store::open(":memory:");
    FUZZ_CHECK(store.ok(), "cannot open the hub store: " + store.error().message());
    store_ = std::move(*store);
    hub_transport_ = broker_.connect("flotilla-hub");
    hub::ControllerOptions options;
    options.shards = kShards;
    controller_ =
        std::make_unique<hub::Controller>(*store_, clock_, *hub_transport_, metrics_, options);
    sync_server_ =
        std::make_unique<hub::SyncServer>(*hub_transport_, *controller_, metrics_, kShards,
                                          /*ingest_thread=*/false);
    FUZZ_CHECK(controller_->start().ok(), "controller start");
    FUZZ_CHECK(sync_server_->start().ok(), "sync server start");
    agents_ = broker_.connect("fuzz-agents");
    agents_->set_handlers([this](sync::Message m) { down_.push_back(std::move(m)); }, [](bool) {});
    FUZZ_CHECK(agents_->subscribe("flotilla/v1/s/+/n/+/down/+", 1).ok(), "agents subscribe");
    FUZZ_CHECK(agents_->start().ok(), "agents start");
    apply(workloads());
    put_device("dev-1", R"({"node": "edge-1", "desired": {"rate": 1}})");
    put_device("dev-2", R"({"node": "edge-2"})");
  }
  HubRig(const HubRig&) = delete;
  HubRig& operator=(const HubRig&) = delete;

  // The parsed kHubWorkloads (parsed once per process).
  static const std::vector<hub::WorkloadManifest>& workloads() {
    static const auto parsed = [] {
      auto r = hub::parse_manifests(kHubWorkloads, "rig.yaml");
      FUZZ_CHECK(r.ok(), "rig workloads: " + (r ? "" : r.error().message()));
      return *r;
    }();
    return parsed;
  }

  // Creates or replaces a device (body as PUT /api/v1/devices/NAME takes it).
  void put_device(const std::string& name, const std::string& body) {
    auto r = controller_->put_device(name, nlohmann::json::parse(body));
    FUZZ_CHECK(r.ok(), "put_device: " + (r ? "" : r.error().message()));
    FUZZ_CHECK(
        r->code == hub::DeviceOutcome::Code::kOk || r->code == hub::DeviceOutcome::Code::kCreated,
        "put_device " + name + ": " + r->message);
  }

  void apply(const std::vector<hub::WorkloadManifest>& manifests) {
    auto r = controller_->apply(manifests);
    FUZZ_CHECK(r.ok(), "apply: " + (r ? "" : r.error().message()));
  }
  // True when the broker took the message; whether the hub got it is for the caller to judge.
  bool publish(const std::string& topic, std::string payload) {
    return agents_->publish(topic, std::move(payload), 1).ok();
  }
  void advance(Millis d) {
    clock_.advance(d);
    controller_->tick();
  }

  hub::Store& store() { return *store_; }
  hub::Controller& controller() { return *controller_; }
  hub::Metrics& metrics() { return metrics_; }
  const std::vector<sync::Message>& down_messages() const { return down_; }
  void clear_down() { down_.clear(); }

 private:
  FakeClock clock_;
  hub::Metrics metrics_;
  sync::FakeBroker broker_;
  std::unique_ptr<hub::Store> store_;
  std::unique_ptr<sync::FakeTransport> hub_transport_;
  std::unique_ptr<hub::Controller> controller_;
  std::unique_ptr<hub::SyncServer> sync_server_;
  std::vector<sync::Message> down_;
  std::unique_ptr<sync::FakeTransport> agents_;
};

}  // namespace flotilla::fuzz
