// Test doubles for the hub's tests: a FakeAgent speaking the agent side of the protocol over
// sync::FakeBroker, and HubHarness wiring a Controller and SyncServer over an in-memory store
// and a FakeClock. The broker delivers synchronously, so every call below has had its whole
// effect (including the hub's answers) when it returns.
#pragma once

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cloud-hub/controller.hpp"
#include "cloud-hub/manifest.hpp"
#include "cloud-hub/sync_server.hpp"
#include "common/clock.hpp"
#include "sync/codec.hpp"
#include "sync/fake_transport.hpp"
#include "sync/topics.hpp"

namespace flotilla::hub::testing {

namespace pb = flotilla::v1;

class FakeAgent {
 public:
  FakeAgent(sync::FakeBroker& broker, std::string node, uint32_t shards = sync::kDefaultShards)
      : node_(std::move(node)), shards_(shards), transport_(broker.connect("agent-" + node_)) {
    transport_->set_handlers(
        [this](sync::Message m) {
          // The hub may publish from several threads (HTTP workers) at once.
          std::lock_guard<std::mutex> lock(mu_);
          auto t = sync::parse_topic(m.topic);
          if (!t) return;
          if (t->kind == "desired") {
            auto d = sync::decode<pb::DesiredState>(m.payload);
            if (d) desired.push_back(*d);
          } else if (t->kind == "resync") {
            resyncs += 1;
          } else if (t->kind == "twin") {
            auto d = sync::decode<pb::TwinDesired>(m.payload);
            if (d) twins.push_back(*d);
          } else if (t->kind == "ota") {
            auto d = sync::decode<pb::UpdateAssignment>(m.payload);
            if (d) assignments.push_back(*d);
          }
        },
        [](bool) {});
    (void)transport_->subscribe(sync::node_down_filter(node_, shards_), 1);
    (void)transport_->start();
  }

  void hello(uint64_t acked, std::map<std::string, std::string> labels = {},
             const std::string& boot = "boot-1", std::vector<std::string> runtimes = {"process"},
             int64_t memory = 0) {
    pb::Hello h;
    h.set_node(node_);
    h.set_protocol_version(sync::kProtocolVersion);
    h.set_agent_version("test");
    for (const auto& [k, v] : labels) (*h.mutable_labels())[k] = v;
    h.mutable_capacity()->set_cpu_millis(4000);
    h.mutable_capacity()->set_memory_bytes(memory);
    h.set_arch(arch);
    for (const auto& t : taints) {
      pb::Taint* taint = h.add_taints();
      taint->set_key(t.key);
      taint->set_value(t.value);
      taint->set_effect(t.effect);
    }
    for (const auto& r : runtimes) h.add_runtimes(r);
    h.set_acked_revision(acked);
    h.set_boot_id(boot);
    send("hello", h);
  }
  void heartbeat(uint64_t acked, uint64_t status_seq = 0, const std::string& boot = "boot-1") {
    pb::Heartbeat hb;
    hb.set_node(node_);
    hb.set_acked_revision(acked);
    hb.set_status_seq(status_seq);
    hb.set_boot_id(boot);
    send("heartbeat", hb);
  }
  void ack(uint64_t revision) {
    pb::Ack a;
    a.set_node(node_);
    a.set_revision(revision);
    send("ack", a);
  }
  // Applies the last DesiredState received and acks it, like a well-behaved agent.
  void ack_last() {
    if (!desired.empty()) ack(desired.back().to_revision());
  }
  // `as_of`: the agent's status seq when it took a full status (unset as from older agents).
  void status(const std::vector<pb::InstanceStatus>& instances, bool full = false,
              std::optional<uint64_t> as_of = std::nullopt) {
    pb::StatusBatch b;
    b.set_node(node_);
    b.set_full(full);
    if (as_of) b.set_status_seq(*as_of);
    for (const auto& i : instances) *b.add_instances() = i;
    send("status", b);
  }
  void will(const std::string& boot = "boot-1") {
    pb::Offline o;
    o.set_node(node_);
    o.set_boot_id(boot);
    send("will", o);
  }
  // Reports one device's reported document (canonical JSON text) as the agent holds it.
  void report(const std::string& device, const std::string& reported, uint64_t reported_version,
              uint64_t observed_desired = 0, uint64_t desired_version = 0) {
    pb::TwinReported r;
    r.set_node(node_);
    pb::DeviceReported* d = r.add_devices();
    d->set_device(device);
    d->set_reported(reported);
    d->set_reported_version(reported_version);
    d->set_observed_desired(observed_desired);
    d->set_desired_version(desired_version);
    send("twin", r);
  }
  // Reports the updater's state for the last assignment received (rollout and generation
  // from it unless given), with the agent's next seq unless given.
  void update_report(pb::UpdatePhase phase, const std::string& message = "",
                     std::optional<uint64_t> seq = std::nullopt,
                     std::optional<uint64_t> generation = std::nullopt) {
    pb::UpdateReport r;
    r.set_node(node_);
    if (!assignments.empty()) {
      r.set_rollout(assignments.back().rollout());
      r.set_generation(assignments.back().generation());
    }
    if (generation) r.set_generation(*generation);
    r.set_phase(phase);
    r.set_message(message);
    r.set_seq(seq ? *seq : ++update_seq);
    if (seq) update_seq = std::max(update_seq, *seq);
    send("ota", r);
  }
  const std::string& node() const { return node_; }
  template <typename M>
  void send(const std::string& kind, const M& msg) {
    raw(kind, sync::encode(msg));
  }
  void raw(const std::string& kind, std::string payload) {
    (void)transport_->publish(sync::up_topic(node_, shards_, kind), std::move(payload), 1);
  }

  // What the next hello() reports.
  std::string arch = "amd64";
  std::vector<Taint> taints;

  // Read them once no hub thread is publishing (the test's own calls are synchronous).
  std::vector<pb::DesiredState> desired;
  std::vector<pb::TwinDesired> twins;             // down/twin
  std::vector<pb::UpdateAssignment> assignments;  // down/ota
  uint64_t update_seq = 0;                        // the last UpdateReport seq sent
  int resyncs = 0;

 private:
  std::mutex mu_;
  std::string node_;
  uint32_t shards_;
  std::unique_ptr<sync::FakeTransport> transport_;
};

inline pb::InstanceStatus instance(const std::string& workload, const std::string& id,
                                   pb::Phase phase, uint64_t seq, bool removed = false) {
  pb::InstanceStatus s;
  s.set_workload(workload);
  s.set_instance_id(id);
  s.set_phase(phase);
  s.set_seq(seq);
  s.set_removed(removed);
  return s;
}

inline std::vector<WorkloadManifest> manifests(const std::string& yaml) {
  auto r = parse_manifests(yaml, "test.yaml");
  if (!r) ADD_FAILURE() << r.error().message();
  return r ? *r : std::vector<WorkloadManifest>{};
}

inline std::string process_workload(const std::string& name, const std::string& placement,
                                    const std::string& extra = "") {
  return "apiVersion: flotilla/v1\nkind: Workload\nmetadata: {name: " + name +
         "}\nspec:\n  type: process\n  " + placement + "\n" + extra +
         "  process: {command: [/bin/sleep, '1000']}\n";
}

struct HubHarness {
  explicit HubHarness(std::string db = ":memory:", ControllerOptions options = {},
                      bool ingest_thread = false) {
    auto s = Store::open(db);
    if (!s) ADD_FAILURE() << s.error().message();
    store = std::move(*s);
    hub_transport = broker.connect("flotilla-hub");
    controller = std::make_unique<Controller>(*store, clock, *hub_transport, metrics, options);
    sync_server = std::make_unique<SyncServer>(*hub_transport, *controller, metrics, options.shards,
                                               ingest_thread);
    EXPECT_TRUE(controller->start().ok());
    EXPECT_TRUE(sync_server->start().ok());
  }
  NodeRecord node(const std::string& name) {
    auto n = store->get_node(name);
    if (!n || !*n) ADD_FAILURE() << "no node " << name;
    return n && *n ? **n : NodeRecord{};
  }
  void apply(const std::string& yaml) {
    auto r = controller->apply(manifests(yaml));
    if (!r) ADD_FAILURE() << r.error().message();
    if (r && !r->refused.empty()) ADD_FAILURE() << r->refused;
  }

  sync::FakeBroker broker;
  FakeClock clock;
  Metrics metrics;
  std::unique_ptr<Store> store;
  std::unique_ptr<sync::FakeTransport> hub_transport;
  std::unique_ptr<Controller> controller;
  std::unique_ptr<SyncServer> sync_server;
};

}  // namespace flotilla::hub::testing
